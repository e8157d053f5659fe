"""Units the planner counts in: binary byte multiples, and how a duration is written for people."""

from __future__ import annotations

from typing import Final

GIB: Final = 1024**3
TIB: Final = 1024**4
MIB: Final = 1024**2


def format_duration(seconds: float) -> str:
    """Seconds below two minutes, then minutes, hours below two days, then days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} days"
