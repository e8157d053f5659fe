"""Tests of the capacity and cost planner (tools/tune)."""
