"""Tests of the detector Lambda (functions/detector)."""
