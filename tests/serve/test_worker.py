"""The worker behind `openbook serve`: one request at a time, in arrival order, and an estimate of
the wait that a refused client is told to back off for."""

from __future__ import annotations

import threading
import time

from openbook.serve.worker import Job, Worker


def job(seconds: float, started: list[int], number: int, release: threading.Event | None = None) -> Job:
    def work(_: object) -> int:
        started.append(number)
        if release is not None:
            release.wait(5)
        time.sleep(seconds)
        return number

    return Job(work, deadline=time.monotonic() + 30)


def test_requests_run_in_arrival_order_and_the_wait_is_estimated_at_the_pace_so_far():
    worker = Worker(queue_size=4)
    started: list[int] = []
    assert worker.wait_estimate() == 0.0  # nothing waiting, nothing under way
    done = [job(0.05, started, n) for n in range(2)]
    for j in done:
        worker.submit(j)
    assert [j.future.result(5) for j in done] == [0, 1]
    release = threading.Event()
    held = job(0.0, started, 2, release)
    worker.submit(held)
    worker.submit(job(0.0, started, 3))
    while not worker.busy:
        time.sleep(0.01)
    # one under way and one waiting, at the ~0.05 s each of the two answered
    assert 0.1 <= worker.wait_estimate() < 0.5
    release.set()
    worker.stop(5)
    assert started == [0, 1, 2, 3]
