"""`openbook serve` under load: concurrent clients against the real server on 127.0.0.1, bounded in
count and time, beside `openbook answer` on the same questions in the same run.

    python bench/serve_load.py [--clients 50] [--questions 50] [--queue-size 16] [--model NAME] [--index DIR]
                               [--time-limit 1800]

Starts `openbook serve` (the shipped model, the default knowledge base, a queue of `--queue-size`),
sends each of the first `--questions` questions of the default exam from `--clients` concurrent
clients, with the whole run read (`budget_seconds` 1e9, so that which questions are re-read does not
depend on the pace). A client refused with 503 waits the Retry-After it is given (plus up to a second
of jitter) and asks again, as a well-behaved client does, until the time limit. Then answers the same questions with `openbook
answer --budget-seconds inf`. Prints: requests sent, answered, refused (by status), lost (no
response: must be 0); p50 and p95 latency from a question's first request to its answer; questions
per second of both; the server's peak memory (RSS, sampled) and how often its worker was busy
(sampled from /v1/health: below 1, the queue ran dry); and how many answers have the ranking the CLI
gives (must be all).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from common import DEFAULT_EXAM, DEFAULT_INDEX, OPENBOOK, markdown_table
from openbook.exam import read_exam
from openbook.runlog import read_records

WHOLE_RUN = 1e9  # seconds: every question read in full, as with --budget-seconds inf


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--questions", type=int, default=50)
    parser.add_argument("--queue-size", type=int, default=16, help="the server's queue (fewer than the clients: 503s)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--time-limit", type=float, default=1800.0, help="seconds for the whole load; then it stops")
    args = parser.parse_args()
    questions = read_exam(DEFAULT_EXAM)[: args.questions]
    port = free_port()
    common = ["--index", str(args.index), "--model", args.model]
    server = subprocess.Popen(
        [*OPENBOOK, "serve", *common, "--port", str(port), "--queue-size", str(args.queue_size)]
        + ["--deadline", str(args.time_limit)],
        stderr=subprocess.DEVNULL,
    )
    address = f"http://127.0.0.1:{port}"
    peak = [0]
    busy: list[bool] = []  # the worker busy or not, sampled while the clients ask
    sampling = threading.Event()

    def sample_server() -> None:
        process = psutil.Process(server.pid)
        while not sampling.is_set():
            try:
                peak[0] = max(peak[0], process.memory_info().rss)
                busy.append(bool(httpx.get(f"{address}/v1/health", timeout=5).json()["busy"]))
            except (psutil.Error, httpx.HTTPError):
                return
            time.sleep(0.5)

    try:
        wait_for(address, server)
        sampler = threading.Thread(target=sample_server, daemon=True)
        sampler.start()
        ended_by = time.monotonic() + args.time_limit

        def ask(index: int) -> tuple[list[int | None], float, dict | None]:
            """Every status this question's requests got, the seconds to its answer, and the answer."""
            q = questions[index]
            body = {
                "question": {"id": q.id, "prompt": q.prompt, "options": list(q.options.values())},
                "settings": {"budget_seconds": WHOLE_RUN},
            }
            began, statuses, jitter = time.monotonic(), [], random.Random(index)
            while time.monotonic() < ended_by:
                try:
                    response = httpx.post(f"{address}/v1/answer", json=body, timeout=ended_by - time.monotonic())
                except httpx.HTTPError:
                    statuses.append(None)
                    break
                statuses.append(response.status_code)
                if response.status_code != 503:
                    answer = response.json()["answers"][0] if response.status_code == 200 else None
                    return statuses, time.monotonic() - began, answer
                back_off = float(response.headers["retry-after"]) + jitter.uniform(0, 1)  # not all at once
                time.sleep(min(back_off, max(0.0, ended_by - time.monotonic())))
            return statuses, time.monotonic() - began, None

        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            outcomes = list(pool.map(ask, range(len(questions))))
        served_seconds = time.monotonic() - started
        sampling.set()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
    with tempfile.TemporaryDirectory() as folder:
        began = time.monotonic()
        subprocess.run(
            [*OPENBOOK, "answer", str(DEFAULT_EXAM), *common, "--out", f"{folder}/run", "--limit", str(args.questions)]
            + ["--budget-seconds", "inf", "--quiet"],
            check=True,
        )
        cli_seconds = time.monotonic() - began
        cli = {str(r["id"]): r["ranking"] for r in read_records(Path(folder) / "run" / "predictions.jsonl")}
    statuses = Counter(status for sent, _, _ in outcomes for status in sent)
    latencies = sorted(seconds for _, seconds, answer in outcomes if answer is not None)
    answered = [answer for _, _, answer in outcomes if answer is not None]
    same = sum(answer["ranking"] == cli.get(str(answer["id"])) for answer in answered)
    refused = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()) if s not in (200, None))
    rows = [
        ["questions asked", len(outcomes)],
        ["requests sent (with retries after 503)", sum(statuses.values())],
        ["answered (200)", statuses.get(200, 0)],
        ["refused, by status", refused or "none"],
        ["lost (no response)", statuses.get(None, 0)],
        ["questions never answered", len(outcomes) - len(answered)],
        ["latency p50 / p95 (s)", f"{percentile(latencies, 50):.1f} / {percentile(latencies, 95):.1f}"],
        ["questions/s: serve / answer", f"{len(answered) / served_seconds:.3f} / {len(cli) / cli_seconds:.3f}"],
        ["server peak RSS (MiB)", f"{peak[0] / 2**20:.0f}"],
        ["worker busy (share of samples while clients asked)", f"{sum(busy) / max(len(busy), 1):.3f}"],
        ["same ranking as the CLI", f"{same} / {len(answered)}"],
    ]
    title = f"{args.clients} clients, {len(questions)} questions, queue {args.queue_size}, {args.model}"
    print(markdown_table(["measure", title], rows))
    print(json.dumps({"clients": args.clients, "questions": len(questions), "cpu_count": os.cpu_count()}))


def wait_for(address: str, server: subprocess.Popen) -> None:
    for _ in range(1200):
        if server.poll() is not None:
            raise SystemExit(f"openbook serve exited with {server.returncode}")
        try:
            if httpx.get(f"{address}/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.25)
    raise SystemExit("openbook serve did not start within 5 minutes")


def percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(share) - 1] if len(values) > 1 else values[0]


if __name__ == "__main__":
    main()
