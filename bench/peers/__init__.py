"""Peers the benchmarks measure reconcile against, run as separate processes."""
