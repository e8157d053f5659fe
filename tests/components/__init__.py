"""Tests of components/: the program run under recording mocks, component by component."""
