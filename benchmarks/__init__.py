"""Benchmarks that run the collection against real ZFS and real servers on loopback."""
