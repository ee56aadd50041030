"""The HTTP API: `POST /v1/answer`, `POST /v1/search`, `GET /v1/health`, `GET /v1/info`, OpenAPI at /docs.

Every answer goes through the session's `execute`, as `openbook answer` does, and carries the fields
predictions.jsonl logs. One model is in memory and one worker reads with it: requests wait in a
bounded queue in arrival order (full: 503 with Retry-After); a request past its deadline answers 504
and is stopped at its next answer; a body over the limit answers 413; invalid input 422 naming the
field; with an API key, a request without it 401. No request can name a file: the per-request settings
are the answer options that change how a question is read, never a path or a model.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import math
import queue
import time
import typing
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from openbook import __version__
from openbook.answer import AnswerOptions, Plan, make_plan, settings_of
from openbook.answer.session import Session
from openbook.errors import OpenbookError
from openbook.index.manifest import Manifest
from openbook.records import LETTERS, Question
from openbook.runlog import record_of
from openbook.serve.worker import Abandoned, Job, Worker

# the answer options a request may set: how questions are read, never a path, a model or a run folder
REQUEST_SETTINGS = (
    "readers",
    "rotations",
    "retrieval",
    "candidates",
    "passages",
    "evidence",
    "context_tokens",
    "triage_readers",
    "triage_rotations",
    "escalate_margin",
    "average_stages",
    "context_coverage",
    "letter_prior",
    "budget_per_question",
    "budget_seconds",
)
MAX_TEXT = 4000  # characters of a prompt or an option
MAX_QUESTIONS = 64  # per request
MAX_PASSAGES = 50  # per search


@dataclass(frozen=True)
class ServeConfig:
    queue_size: int = 16  # requests waiting beyond the one being answered
    deadline_seconds: float = 120.0  # the longest a request may take, queueing included
    max_body_bytes: int = 1 << 20
    api_key: str | None = None


def _settings_model() -> type[BaseModel]:
    """The per-request settings, typed from the options registry (unknown names are refused)."""
    hints = typing.get_type_hints(AnswerOptions)
    described = {spec.name: spec.metadata["help"] for spec in AnswerOptions.__dataclass_fields__.values()}
    fields: dict[str, Any] = {
        name: (hints[name] | None, Field(None, description=described[name])) for name in REQUEST_SETTINGS
    }
    return create_model("Settings", __config__=ConfigDict(extra="forbid"), **fields)


Settings = _settings_model()
OptionText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]


class QuestionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, max_length=200, description="Echoed back; default: its place in the request.")
    prompt: OptionText
    options: list[OptionText] = Field(min_length=2, max_length=len(LETTERS), description="Lettered A-E in order.")


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: QuestionIn | None = None
    questions: list[QuestionIn] | None = Field(None, min_length=1, max_length=MAX_QUESTIONS)
    settings: Settings | None = None  # type: ignore[valid-type]
    deadline_seconds: float | None = Field(None, gt=0, description="At most the server's deadline.")

    @model_validator(mode="after")
    def one_or_a_list(self) -> AnswerRequest:
        if (self.question is None) == (self.questions is None):
            raise ValueError("give either `question` or `questions`")
        return self

    def asked(self) -> list[Question]:
        given = [self.question] if self.question is not None else list(self.questions or [])
        return [
            Question(q.id or str(i), q.prompt, {LETTERS[j]: text for j, text in enumerate(q.options)})
            for i, q in enumerate(given)
        ]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: OptionText
    k: int = Field(5, ge=1, le=MAX_PASSAGES)


def create_app(session: Session, options: AnswerOptions, config: ServeConfig = ServeConfig()) -> FastAPI:
    worker = Worker(config.queue_size)

    @asynccontextmanager
    async def lifespan(_: FastAPI):  # type: ignore[no-untyped-def]
        yield
        await asyncio.to_thread(worker.stop, config.deadline_seconds)  # the queued requests run out first

    app = FastAPI(title="openbook", version=__version__, lifespan=lifespan)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)  # type: ignore[arg-type]
    authorized = _authorization(config.api_key)

    @functools.lru_cache(maxsize=32)
    def plan_for(settings: str) -> Plan:
        given = {key: value for key, value in json.loads(settings).items() if value is not None}
        return make_plan(replace(options, progress=False, **given))

    async def queued(work: Callable[[Callable[[Any], None]], Any], deadline: float) -> Any:
        job = Job(work, time.monotonic() + deadline)
        try:
            worker.submit(job)
        except queue.Full:
            retry = {"Retry-After": str(_retry_after(worker))}
            raise Refusal(503, "the queue is full; try again later", retry) from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout=deadline)
        except TimeoutError:
            job.abandoned.set()
            raise Refusal(504, f"not answered within {deadline:g} s") from None
        except Abandoned:
            raise Refusal(504, f"not answered within {deadline:g} s") from None

    @app.exception_handler(Refusal)
    async def refused(_: Request, refusal: Refusal) -> JSONResponse:
        return JSONResponse({"detail": refusal.detail}, status_code=refusal.status, headers=refusal.headers)

    @app.post("/v1/answer", dependencies=[Depends(authorized)])
    async def answer(request: AnswerRequest) -> dict[str, Any]:
        """Answer one question or a list; each answer carries the fields of predictions.jsonl."""
        settings: dict[str, Any] = request.settings.model_dump() if request.settings is not None else {}
        try:
            plan = plan_for(json.dumps(settings, sort_keys=True))
        except OpenbookError as mistake:
            raise Refusal(422, f"settings: {mistake}") from None
        questions = request.asked()
        deadline = min(request.deadline_seconds or config.deadline_seconds, config.deadline_seconds)
        run = await queued(lambda check: session.answer(questions, plan, on_result=check), deadline)
        if run.failure is not None:
            raise Refusal(500, f"stopped at {run.failure}")
        by_id = {result.question.id: result for result in run.results}
        answers = [
            {"question": q.prompt, "options": q.options, **record_of(by_id[q.id])} for q in questions if q.id in by_id
        ]
        return {"answers": answers, "seconds": asdict(run.seconds)}

    @app.post("/v1/search", dependencies=[Depends(authorized)])
    async def search(request: SearchRequest) -> dict[str, Any]:
        """The best passages for a query, by the server's first retrieval pipeline."""
        question = Question("query", request.query, {"A": ""})  # per-option queries: the query itself
        hits = await queued(lambda _: session.search(question, request.k), config.deadline_seconds)
        return {
            "query": request.query,
            "passages": [
                {"id": h.passage.id, "title": h.passage.title, "score": h.score, "text": h.passage.text} for h in hits
            ],
        }

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "waiting": worker.waiting, "busy": worker.busy, "queue_size": config.queue_size}

    @app.get("/v1/info", dependencies=[Depends(authorized)])
    async def info() -> dict[str, Any]:
        return {
            "openbook": __version__,
            "model": session.model_path,
            "index": _index_summary(options),
            "settings": settings_of(replace(options, progress=False)),
            "plan": session.plan.describe(),
            "request_settings": list(REQUEST_SETTINGS),
        }

    return app


class Refusal(Exception):
    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def _retry_after(worker: Worker) -> int:
    # when a place should free (the request under way done, at the pace so far): a hint, not a promise
    return max(1, math.ceil(worker.seconds_to_a_free_place()))


def _authorization(api_key: str | None) -> Callable[[Request], Awaitable[None]]:
    async def authorized(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise Refusal(401, "missing or wrong API key (X-API-Key or Authorization: Bearer)")

    return authorized


def _index_summary(options: AnswerOptions) -> dict[str, Any] | None:
    if options.index is None:
        return None
    manifest = Manifest.load(options.index)
    return {
        "path": str(options.index),
        "passages": manifest.passages,
        "documents": manifest.documents,
        "inputs": [record.path for record in manifest.inputs],
        "chunking": manifest.chunking,
    }


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Scope]], Callable[[Scope], Awaitable[None]]], Awaitable[None]]


class BodyLimit:
    """413 for a request body over `max_bytes`: told by its Content-Length, or, for a body sent in
    chunks, counted as it arrives (read here, then handed on whole)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Scope]], send: Callable[[Scope], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        handed = False

        async def replay() -> Scope:
            nonlocal handed
            if handed:
                return await receive()
            handed = True
            return whole

        await self.app(scope, replay, send)

    async def _too_large(self, send: Callable[[Scope], Awaitable[None]]) -> None:
        body = json.dumps({"detail": f"request body over {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
