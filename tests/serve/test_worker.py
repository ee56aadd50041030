"""The worker behind `openbook serve`: one request at a time, in arrival order, and an estimate of
when a place frees, which a refused client is told to come back after."""

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


def test_requests_run_in_arrival_order_and_a_free_place_is_estimated_at_the_pace_so_far():
    worker = Worker(queue_size=4)
    started: list[int] = []
    assert worker.seconds_to_a_free_place() == 0.0  # nothing under way
    done = [job(0.05, started, n) for n in range(2)]
    for j in done:
        worker.submit(j)
    assert [j.future.result(5) for j in done] == [0, 1]
    release = threading.Event()
    worker.submit(job(0.0, started, 2, release))
    worker.submit(job(0.0, started, 3))
    while not worker.busy:
        time.sleep(0.01)
    # the one under way should end within the ~0.05 s each of the two answered took
    assert 0.0 <= worker.seconds_to_a_free_place() <= 0.1
    time.sleep(0.1)
    assert worker.seconds_to_a_free_place() == 0.0  # overdue: a place may free any moment
    release.set()
    worker.stop(5)
    assert started == [0, 1, 2, 3]
