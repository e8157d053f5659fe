"""Pure specifications of the platform: settings, names, the state machine definition, SQL, alarms, the
dashboard and IAM documents, as data and pure functions. Nothing here creates a resource; the
ComponentResources that turn them into resources live in ``components/``."""
