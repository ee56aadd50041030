"""`openbook serve`: the answer path as an HTTP service (FastAPI on uvicorn), the model loaded once.

Its answer options are `ask`'s (the registry less exam files and run folders, `[answer]` table of a
config file); the service's own are switches. SIGTERM or Ctrl-C: the requests in flight and queued
are answered, new connections are refused, then it exits."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Annotated

import typer

from openbook.answer import AnswerOptions, make_plan
from openbook.answer.session import Session
from openbook.cli.ask_cmd import RUN_ONLY_OPTIONS
from openbook.cli.common import options_command
from openbook.errors import require_modules
from openbook.progress import console


def _switch(name: str, default: object, annotation: object) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


SWITCHES = [
    _switch("host", "127.0.0.1", Annotated[str, typer.Option("--host", help="Address to listen on.")]),
    _switch("port", 8000, Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)]),
    _switch(
        "queue_size",
        16,
        Annotated[int, typer.Option("--queue-size", help="Requests that may wait; more answer 503.", min=1)],
    ),
    _switch(
        "deadline",
        120.0,
        Annotated[float, typer.Option("--deadline", help="Seconds a request may take, waiting included; 504 after.")],
    ),
    _switch(
        "max_body",
        1 << 20,
        Annotated[int, typer.Option("--max-body", help="Largest request body in bytes; larger answer 413.", min=1)],
    ),
    _switch(
        "api_key",
        None,
        Annotated[
            str | None,
            typer.Option(
                "--api-key", envvar="OPENBOOK_API_KEY", help="Require this key (X-API-Key or Bearer); else 401."
            ),
        ],
    ),
]


def _serve(
    options: AnswerOptions,
    host: str,
    port: int,
    queue_size: int,
    deadline: float,
    max_body: int,
    api_key: str | None,
) -> None:
    """Serve answers over HTTP: POST /v1/answer and /v1/search, GET /v1/health and /v1/info, OpenAPI
    docs at /docs. One model in memory; requests are answered in arrival order."""
    require_modules("serve", "fastapi", "uvicorn")
    import uvicorn

    from openbook.serve.app import ServeConfig, create_app

    options = replace(options, progress=False)
    session = Session(make_plan(options))
    config = ServeConfig(
        queue_size=queue_size, deadline_seconds=deadline, max_body_bytes=max_body, api_key=api_key or None
    )
    app = create_app(session, options, config)
    console.print(f"openbook serving on http://{host}:{port} (docs at /docs)", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=int(deadline) + 1)


serve = options_command(AnswerOptions, "answer", _serve, switches=SWITCHES, name="serve", leave_out=RUN_ONLY_OPTIONS)
