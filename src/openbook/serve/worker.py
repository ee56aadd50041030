"""One worker thread over a bounded queue: the model answers one request at a time, in arrival order.

A request that cannot be queued is refused at once (the caller answers 503 with Retry-After); one
whose deadline passes is given up by its caller (504) and marked, and the worker stops it at the
next answer it makes, so a request nobody waits for does not hold the model.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class Abandoned(Exception):
    """The request's deadline passed or its caller gave it up: the work under way is stopped."""


@dataclass
class Job:
    work: Callable[[Callable[[Any], None]], Any]  # given a check to call after each answer
    deadline: float  # time.monotonic() by which it must be done
    future: Future = field(default_factory=Future)
    abandoned: threading.Event = field(default_factory=threading.Event)

    def check(self, _: object = None) -> None:
        if self.abandoned.is_set() or time.monotonic() > self.deadline:
            raise Abandoned


class Worker:
    def __init__(self, queue_size: int):
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="openbook-worker", daemon=True)
        self.busy = False
        self._seconds, self._done = 0.0, 0  # of the requests answered: how long each takes, on average
        self._began = 0.0  # when the request under way started
        self._thread.start()

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def seconds_to_a_free_place(self) -> float:
        """Seconds until the request under way ends and a place in the queue frees, at the pace of
        those answered so far (0 when idle; 1 s a request before any is answered)."""
        if not self.busy:
            return 0.0
        per_request = self._seconds / self._done if self._done else 1.0
        return max(0.0, per_request - (time.monotonic() - self._began))

    def submit(self, job: Job) -> None:
        """Queue `job`; `queue.Full` where the queue is full."""
        self._queue.put_nowait(job)

    def stop(self, timeout: float | None = None) -> None:
        """Let the queued requests run out, then end the thread."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (job := self._queue.get()) is not None:
            if not job.future.set_running_or_notify_cancel():
                continue
            self.busy = True
            self._began = began = time.monotonic()
            try:
                job.check()
                job.future.set_result(job.work(job.check))
                self._seconds, self._done = self._seconds + time.monotonic() - began, self._done + 1
            except BaseException as error:  # the caller answers for it; the worker goes on
                job.future.set_exception(error)
            finally:
                self.busy = False
