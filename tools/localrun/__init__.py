"""Run the whole pipeline locally: the rendered definition, the real detector, stand-ins for AWS.

``python -m tools.localrun --stack dev`` (``make demo``) simulates readings (``tools/simulate.py``), lays
them out in the raw bucket, runs the stage's state machine definition with a local executor (``machine``
and ``mapspec`` compile it, ``asl`` and ``distmap`` run it) against an object store of folders
(``store``), DuckDB as Athena (``athena``) and a Firehose stand-in (``firehose``), then reports what
arrived (``report``). See docs/local-run.md.
"""
