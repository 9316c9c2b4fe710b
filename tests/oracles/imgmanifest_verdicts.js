/*
 * Copyright (c) smartos.images contributors
 * GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 * Run the imgmanifest library, the reference that SmartOS imgadm vendors,
 * on many manifests at once and print its verdicts for the compatibility
 * tests.
 *
 * Reads a JSON array of {id, manifest, mode, has_channels} from stdin, where
 * mode is "minimal", "dc", "public" or "private". For each case it calls
 * upgradeManifest, then the matching validate function on the upgraded
 * manifest, or on the original one when the upgrade threw, so that the
 * validation rules are compared on every case. Prints a JSON array of
 * {id, upgraded | upgrade_error, errors | threw}: errors is the list
 * imgmanifest returned ([] for valid) and threw is the message of an
 * exception thrown by the validate function.
 */

'use strict';

var imgmanifest = require('imgmanifest');

var VALIDATORS = {
    minimal: function (manifest) {
        return imgmanifest.validateMinimalManifest(manifest);
    },
    dc: function (manifest) {
        return imgmanifest.validateDcManifest(manifest);
    },
    'public': function (manifest, opts) {
        return imgmanifest.validatePublicManifest(manifest, opts);
    },
    'private': function (manifest, opts) {
        return imgmanifest.validatePrivateManifest(manifest, opts);
    }
};

function verdict(testCase) {
    var result = {id: testCase.id};
    var validate = VALIDATORS[testCase.mode];
    if (!validate) {
        throw new Error('case ' + testCase.id + ': unknown mode ' +
            JSON.stringify(testCase.mode));
    }

    var manifest = testCase.manifest;
    try {
        manifest = imgmanifest.upgradeManifest(manifest);
        result.upgraded = manifest;
    } catch (err) {
        result.upgrade_error = String(err.message || err);
    }

    // imgmanifest only tests that the channel table option is set, so an
    // empty object is enough.
    var opts = testCase.has_channels ? {channelFromName: {}} : undefined;
    try {
        result.errors = validate(manifest, opts) || [];
    } catch (err) {
        result.threw = String(err.message || err);
    }
    return result;
}

function main() {
    var chunks = [];
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', function (chunk) {
        chunks.push(chunk);
    });
    process.stdin.on('end', function () {
        var cases = JSON.parse(chunks.join(''));
        process.stdout.write(JSON.stringify(cases.map(verdict)));
    });
}

main();
