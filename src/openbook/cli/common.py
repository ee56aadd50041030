"""What every subcommand shares: error reporting and the --config option."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from openbook.errors import OpenbookError
from openbook.progress import console

F = TypeVar("F", bound=Callable[..., object])

results = Console()  # results go to stdout; progress and messages to stderr

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML file whose \\[command] table gives defaults for these options.",
        exists=False,
        dir_okay=False,
    ),
]


def reports_errors(command: F) -> F:
    """Show a user's mistake (an `OpenbookError`, or a path that is missing, a folder or unreadable) as
    one clear line and exit 2. Any other exception is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except (OpenbookError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as error:
            console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
