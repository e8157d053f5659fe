"""Tests of spec/: settings, names, definition, SQL, alarms and IAM documents as data."""
