"""Benchmarks: each module is runnable as ``python -m benchmarks.<name>`` and writes JSON under build/benchmarks/."""
