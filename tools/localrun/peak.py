"""Peak memory of a process tree: the local run's own figures, whole command and execution side by side.

A sampler thread sums ``VmRSS`` of a process and every descendant (the map's worker processes) from
``/proc`` every 100 ms and keeps the largest sum, for the whole command and for windows inside it (one
execution). Linux only; elsewhere the figures are 0 and say so. ``/usr/bin/time -v`` reports the largest
single process instead, which leaves the workers out.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def tree_rss_mib(root_pid: int) -> float:
    """Resident set of a process and all its descendants, from /proc (Linux; 0 elsewhere)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return 0.0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields.get("PPid", "0").strip()), []).append(pid)
        rss[pid] = int(fields["VmRSS"].split()[0]) if "VmRSS" in fields else 0
    total, pending = 0, [root_pid]
    while pending:
        pid = pending.pop()
        total += rss.get(pid, 0)
        pending.extend(children.get(pid, []))
    return total / 1024


@dataclass
class Window:
    """Wall time and peak tree RSS of one stretch of the command."""

    seconds: float = 0.0
    peak_mib: float = 0.0


class PeakSampler(threading.Thread):
    """Samples this process tree's RSS until stopped; ``peak_mib`` is the largest sum seen."""

    def __init__(self, interval: float = 0.1):
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_mib = 0.0
        self.windows: dict[str, Window] = {}
        self._open: list[Window] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def _sample(self) -> None:
        now = tree_rss_mib(os.getpid())
        with self._lock:
            self.peak_mib = max(self.peak_mib, now)
            for window in self._open:
                window.peak_mib = max(window.peak_mib, now)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self._sample()
            time.sleep(self.interval)

    @contextmanager
    def window(self, name: str) -> Iterator[Window]:
        """Time and peak of the enclosed code, added up under ``name`` (peaks: the largest)."""
        current = Window()
        with self._lock:
            self._open.append(current)
        started = time.perf_counter()
        try:
            yield current
        finally:
            current.seconds = time.perf_counter() - started
            self._sample()
            with self._lock:
                self._open.remove(current)
                total = self.windows.setdefault(name, Window())
                total.seconds += current.seconds
                total.peak_mib = max(total.peak_mib, current.peak_mib)

    def stop(self) -> float:
        self._sample()
        self._stop_event.set()
        if self.is_alive():
            self.join()
        return self.peak_mib


@dataclass
class CommandFigures:
    """What the CLI prints last: the whole command beside its parts."""

    seconds: float
    peak_mib: float
    parts: dict[str, Window] = field(default_factory=dict)

    def describe(self) -> str:
        parts = ", ".join(
            f"{name} {w.seconds:.1f} s (peak {w.peak_mib:,.0f} MiB)" for name, w in self.parts.items()
        )
        return (
            f"whole command {self.seconds:.1f} s, peak {self.peak_mib:,.0f} MiB (this process and its workers); "
            f"{parts}"
        )
