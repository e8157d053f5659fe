"""Benchmarks: each module is runnable as ``.venv/bin/python -m benchmarks.<name>`` (or ``make bench ARGS=<name>``) and writes JSON under build/benchmarks/."""
