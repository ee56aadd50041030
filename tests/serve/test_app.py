"""`openbook serve`'s API, served for real by uvicorn on 127.0.0.1 and called with httpx: every status
it promises (200, 401, 413, 422, 503, 504), the OpenAPI document fuzzed by schemathesis, and, through
the real command with the smallest shipped model, SIGTERM finishing the request in flight."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

pytest.importorskip("fastapi", reason="openbook serve needs fastapi and uvicorn (pip install -e .[dev])")
import httpx  # noqa: E402
import uvicorn  # noqa: E402

from openbook.answer import AnswerOptions, make_plan  # noqa: E402
from openbook.answer.session import Session  # noqa: E402
from openbook.serve.app import ServeConfig, create_app  # noqa: E402
from tests.conftest import FACTS, TINY_MODEL  # noqa: E402
from tests.scripted_backend import ScriptedBackend  # noqa: E402

PROMPT, RIGHT, WRONG = FACTS[0]
QUESTION = {"prompt": PROMPT, "options": [WRONG[0], RIGHT, WRONG[1]]}


def score(prompt: str, option: str, with_context: bool) -> float:
    return 2.0 if option == RIGHT else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def served(index, config: ServeConfig | None = None, sleep_per_call: float = 0.0) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 in a thread, reading with a scripted model."""
    options = AnswerOptions(index=index, context_tokens=120, progress=False)
    session = Session(make_plan(options), backend=ScriptedBackend(score=score, sleep_per_call=sleep_per_call))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(session, options, config or ServeConfig()), host="127.0.0.1", port=port, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def url(fact_index) -> Iterator[str]:
    with served(fact_index) as address:
        yield address


def test_one_question_and_a_list_are_answered_with_the_run_logs_fields(url):
    one = httpx.post(f"{url}/v1/answer", json={"question": QUESTION}, timeout=30)
    assert one.status_code == 200, one.text
    (answer,) = one.json()["answers"]
    assert answer["ranking"][0] == "B" and answer["options"]["B"] == RIGHT and answer["id"] == "0"
    assert {"probabilities", "confidence", "calibrated", "readers", "contexts", "stage"} <= set(answer)
    assert one.json()["seconds"]["total"] > 0
    many = httpx.post(
        f"{url}/v1/answer",
        json={"questions": [QUESTION, {**QUESTION, "id": "second"}], "settings": {"budget_seconds": 100}},
        timeout=30,
    )
    assert many.status_code == 200 and [a["id"] for a in many.json()["answers"]] == ["0", "second"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"question": {"prompt": PROMPT, "options": [RIGHT]}}, "options"),
        ({"question": {"prompt": "", "options": [RIGHT, WRONG[0]]}}, "prompt"),
        ({"question": QUESTION, "questions": [QUESTION]}, "either"),
        ({"question": QUESTION, "settings": {"index": "/etc"}}, "index"),  # no request names a file
        ({"question": QUESTION, "settings": {"model": "/etc/passwd"}}, "model"),
        ({"question": QUESTION, "settings": {"rotations": 9}}, "rotations"),
        ({"question": QUESTION, "settings": {"readers": ["encoder"]}}, "encoder"),
    ],
)
def test_invalid_input_answers_422_naming_the_field(url, body, named):
    response = httpx.post(f"{url}/v1/answer", json=body, timeout=30)
    assert response.status_code == 422 and named in response.text


def test_search_health_info_and_docs(url):
    found = httpx.post(f"{url}/v1/search", json={"query": "powerhouse of the cell", "k": 2}, timeout=30)
    assert found.status_code == 200 and 1 <= len(found.json()["passages"]) <= 2
    assert found.json()["passages"][0]["title"] == "Mitochondrion"
    assert httpx.get(f"{url}/v1/health").json()["status"] == "ok"
    info = httpx.get(f"{url}/v1/info").json()
    assert info["model"] == "scripted.gguf" and info["index"]["passages"] > 0 and "budget" in info["plan"]
    assert httpx.get(f"{url}/docs").status_code == 200 and "/v1/answer" in httpx.get(f"{url}/openapi.json").text


def test_a_body_over_the_limit_answers_413(fact_index):
    with served(fact_index, ServeConfig(max_body_bytes=2000)) as address:
        big = {"question": {"prompt": "x" * 3000, "options": ["a", "b"]}}
        assert httpx.post(f"{address}/v1/answer", json=big, timeout=30).status_code == 413
        chunks = (part for part in [b'{"question": {"prompt": "', b"y" * 3000, b'", "options": ["a", "b"]}}'])
        streamed = httpx.post(f"{address}/v1/answer", content=chunks, timeout=30)
        assert streamed.status_code == 413


def test_an_api_key_is_required_where_one_is_set(fact_index):
    with served(fact_index, ServeConfig(api_key="s3cret")) as address:
        assert httpx.post(f"{address}/v1/answer", json={"question": QUESTION}, timeout=30).status_code == 401
        wrong = httpx.get(f"{address}/v1/info", headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401
        right = httpx.post(
            f"{address}/v1/answer", json={"question": QUESTION}, headers={"Authorization": "Bearer s3cret"}, timeout=30
        )
        assert right.status_code == 200
        assert httpx.get(f"{address}/v1/health").status_code == 200  # a load balancer's probe needs no key


def test_a_full_queue_answers_503_with_retry_after(fact_index):
    with served(fact_index, ServeConfig(queue_size=1), sleep_per_call=0.2) as address:
        with ThreadPoolExecutor(6) as pool:
            responses = list(
                pool.map(
                    lambda _: httpx.post(f"{address}/v1/answer", json={"question": QUESTION}, timeout=60), range(6)
                )
            )
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}
    assert all(r.headers["retry-after"].isdigit() for r in responses if r.status_code == 503)


def test_a_request_past_its_deadline_answers_504_and_frees_the_worker(fact_index):
    with served(fact_index, ServeConfig(deadline_seconds=30), sleep_per_call=0.5) as address:
        many = {"questions": [QUESTION] * 8, "deadline_seconds": 0.3, "settings": {"budget_seconds": 1000}}
        late = httpx.post(f"{address}/v1/answer", json=many, timeout=30)
        assert late.status_code == 504 and "0.3 s" in late.text
        began = time.monotonic()
        followed = httpx.post(
            f"{address}/v1/answer", json={"question": QUESTION, "settings": {"budget_seconds": 1000}}, timeout=30
        )
        assert followed.status_code == 200
        assert time.monotonic() - began < 8 * 0.5 * 3  # the abandoned request did not run its 8 questions out


def test_the_openapi_document_holds_under_a_bounded_fuzz(url):
    """Every operation, called with requests schemathesis derives from the OpenAPI document (a bounded
    number each), never answers a server error."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[tuple[str, str, int, str]] = []

    def fuzz(operation) -> None:  # noqa: ANN001
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case) -> None:  # noqa: ANN001
            response = case.call(timeout=30)
            if response.status_code >= 500:
                failures.append((case.method, case.path, response.status_code, response.text[:200]))

        call()

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/answer", "/v1/search", "/v1/health", "/v1/info"}
    for operation in operations:
        fuzz(operation)
    assert not failures


def test_sigterm_finishes_the_request_in_flight_then_refuses_and_exits(fact_index, tiny_llm):
    port = free_port()
    command = [sys.executable, "-c", "from openbook.cli.main import app; app()"]
    process = subprocess.Popen(
        [*command, "serve", "--index", str(fact_index), "--model", TINY_MODEL, "--n-ctx", "1024", "--port", str(port)]
        + ["--deadline", "600"],
        env={name: value for name, value in os.environ.items() if name != "OPENBOOK_API_KEY"},
        stderr=subprocess.PIPE,
        text=True,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{address}/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        body = {"questions": [QUESTION] * 6, "settings": {"budget_seconds": 1000}}
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(httpx.post, f"{address}/v1/answer", json=body, timeout=600)
            time.sleep(1.0)
            process.send_signal(signal.SIGTERM)
            answered = in_flight.result()
        assert answered.status_code == 200 and len(answered.json()["answers"]) == 6
        # uvicorn re-raises the signal once it has shut down: the exit says "stopped by SIGTERM"
        assert process.wait(60) in (0, -signal.SIGTERM)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{address}/v1/health", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
