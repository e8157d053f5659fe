"""The error every part of the Athena stand-in raises where Athena would reject or fail a query."""

from __future__ import annotations


class AthenaError(RuntimeError):
    """A query Athena would reject or fail; ``code`` is Athena's error category."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(f"{code}: {message}")
