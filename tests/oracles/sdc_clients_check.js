/*
 * Copyright (c) smartos.images contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Run the Triton sdc-clients IMGAPI client, which the Triton tools and the
 * *-imgadm commands use, against an image server, and print what it got.
 *
 * Reads one JSON object from stdin:
 *   {url, image_uuid, download_path,
 *    publish: {user, password, manifest, file_path, compression}  (optional)}
 * and prints one JSON object:
 *   {list: {count, unique, uuids} | {error},
 *    get: {uuid, name, state} | {error},
 *    file: {size, md5} | {error},
 *    publish: {imported, file_sha1, file_size, activated_state, listed} | {error},
 *    change: {disabled_state, listed_when_disabled, enabled_state, description} | {error}}
 * The change step disables, enables and updates the published image.
 * Errors are reported as {error: {name, message, code, statusCode}}, so that
 * the calling test can assert on each step.
 */

'use strict';

var crypto = require('crypto');
var fs = require('fs');
var IMGAPI = require('sdc-clients').IMGAPI;

function describeError(err) {
    return {
        error: {
            name: err.name,
            message: err.message,
            code: err.code || (err.body && err.body.code),
            statusCode: err.statusCode
        }
    };
}

function readStdin(callback) {
    var chunks = [];
    process.stdin.on('data', function (chunk) { chunks.push(chunk); });
    process.stdin.on('end', function () {
        callback(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    });
}

function listAll(client, result, next) {
    client.listImages(function (err, images) {
        if (err) {
            result.list = describeError(err);
        } else {
            var uuids = images.map(function (image) { return image.uuid; });
            var unique = {};
            uuids.forEach(function (uuid) { unique[uuid] = true; });
            result.list = {
                count: images.length,
                unique: Object.keys(unique).length,
                uuids: uuids
            };
        }
        next();
    });
}

function getOne(client, request, result, next) {
    client.getImage(request.image_uuid, function (err, image) {
        if (err) {
            result.get = describeError(err);
        } else {
            result.get = {uuid: image.uuid, name: image.name, state: image.state};
        }
        next();
    });
}

function getFile(client, request, result, next) {
    // getImageFile fails with a ChecksumError unless Content-MD5 matches the body.
    client.getImageFile(request.image_uuid, request.download_path, function (err) {
        if (err) {
            result.file = describeError(err);
        } else {
            var data = fs.readFileSync(request.download_path);
            result.file = {
                size: data.length,
                md5: crypto.createHash('md5').update(data).digest('base64')
            };
        }
        next();
    });
}

function publish(request, result, next) {
    var spec = request.publish;
    if (!spec) {
        next();
        return;
    }
    var writer = new IMGAPI({url: request.url, user: spec.user, password: spec.password, agent: false});
    var uuid = spec.manifest.uuid;
    result.publish = {};
    writer.adminImportImage(spec.manifest, function (importErr, imported) {
        if (importErr) {
            result.publish = describeError(importErr);
            writer.close();
            next();
            return;
        }
        result.publish.imported = imported.state;
        writer.addImageFile({uuid: uuid, file: spec.file_path, compression: spec.compression},
                function (fileErr, withFile) {
            if (fileErr) {
                result.publish = describeError(fileErr);
                writer.close();
                next();
                return;
            }
            result.publish.file_sha1 = withFile.files[0].sha1;
            result.publish.file_size = withFile.files[0].size;
            writer.activateImage(uuid, function (activateErr, activated) {
                if (activateErr) {
                    result.publish = describeError(activateErr);
                    writer.close();
                    next();
                    return;
                }
                result.publish.activated_state = activated.state;
                writer.getImage(uuid, function (getErr, image) {
                    result.publish.listed = getErr ? describeError(getErr) : image.state;
                    change(request, writer, uuid, result, function () {
                        writer.close();
                        next();
                    });
                });
            });
        });
    });
}

function change(request, writer, uuid, result, next) {
    var reader = new IMGAPI({url: request.url, agent: false});
    function fail(err) {
        result.change = describeError(err);
        reader.close();
        next();
    }
    result.change = {};
    writer.disableImage(uuid, function (disableErr, disabled) {
        if (disableErr) {
            fail(disableErr);
            return;
        }
        result.change.disabled_state = disabled.state;
        reader.listImages(function (listErr, images) {
            if (listErr) {
                fail(listErr);
                return;
            }
            result.change.listed_when_disabled = images.some(function (image) { return image.uuid === uuid; });
            writer.enableImage(uuid, function (enableErr, enabled) {
                if (enableErr) {
                    fail(enableErr);
                    return;
                }
                result.change.enabled_state = enabled.state;
                writer.updateImage(uuid, {description: request.publish.new_description},
                        function (updateErr, updated) {
                    if (updateErr) {
                        fail(updateErr);
                        return;
                    }
                    result.change.description = updated.description;
                    reader.close();
                    next();
                });
            });
        });
    });
}

readStdin(function (request) {
    var client = new IMGAPI({url: request.url, agent: false});
    var result = {};
    listAll(client, result, function () {
        getOne(client, request, result, function () {
            getFile(client, request, result, function () {
                client.close();
                publish(request, result, function () {
                    process.stdout.write(JSON.stringify(result) + '\n');
                });
            });
        });
    });
});
