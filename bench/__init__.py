"""Load generator and benchmark report (see README: Benchmarks)."""
