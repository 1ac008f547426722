"""Benchmarks (`fedsante bench ...`): accuracy against FLamby, protocol latency."""
