"""Tests of the local run: stand-ins, the executor, the Distributed Map and the pipeline end to end."""
