"""Benchmarks (not part of CI); a package so that tests can import the original app's reference network."""
