"""The worker processes that run the Distributed Map's children (``worker``), for ``distmap``'s runner.

At most ``min(MaxConcurrency, CPU cores)`` workers (or ``processes``, when given; 0 runs the children in
this process). They are started ahead of the first map run and serve every map run of the pipeline, like
warm Lambda environments; Ctrl-C reaches the parent alone, which ends them.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tools.localrun import worker


@dataclass
class WorkerPool:
    """A process pool of warmed workers, sized per map run; in-process when ``processes`` is 0."""

    env: dict[str, str]  # the function's environment
    log_dir: Path
    processes: int | None = None  # None: min(MaxConcurrency, cores); 0: in this process
    _executor: ProcessPoolExecutor | None = None
    _executor_workers: int = 0

    def workers(self, concurrency: int) -> int:
        cores = os.cpu_count() or 1
        return min(concurrency, cores) if self.processes is None else min(concurrency, self.processes)

    def prewarm(self, concurrency: int) -> None:
        """Start the worker processes now (they import the handler while the parent exports the day)."""
        if self.processes == 0:
            return
        workers = self.workers(concurrency)
        if workers > 0:
            self._process_pool(workers)

    def start(self, workers: int, config: worker.WorkerConfig) -> ProcessPoolExecutor | None:
        """The pool for one map run, or None after configuring this process to run the children."""
        if workers <= 0 or self.processes == 0:
            worker.init(config, in_process=True)
            return None
        return self._process_pool(workers)

    def _process_pool(self, workers: int) -> ProcessPoolExecutor:
        if self._executor is not None and self._executor_workers == workers:
            return self._executor
        self.close()
        # spawn: each worker is a clean interpreter (a cold start); no state leaks from the parent.
        context = multiprocessing.get_context("spawn")
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=worker.warm,
            initargs=(dict(self.env), worker.HANDLER_MODULE, str(self.log_dir)),
        )
        self._executor_workers = workers
        # Workers start with SIGINT ignored (an ignored signal stays ignored across exec, and Python keeps
        # it so), so a Ctrl-C during their start-up reaches only the parent; worker.warm keeps it ignored.
        with _sigint_ignored():
            for _ in range(workers):  # start every worker now rather than on first use
                self._executor.submit(time.sleep, 0)
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None
        self._executor_workers = 0

    def abort(self) -> None:
        """Stop the workers now (Ctrl-C): they ignore SIGINT, so the parent ends them, once."""
        executor, self._executor, self._executor_workers = self._executor, None, 0
        if executor is None:
            return
        processes = list((getattr(executor, "_processes", None) or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=5)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
