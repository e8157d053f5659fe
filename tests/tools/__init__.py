"""Tests of the offline checks in tools/: definition checks, stack files, docs, README, CI."""
