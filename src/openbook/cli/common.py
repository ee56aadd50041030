"""What every subcommand shares: error reporting, the --config option, and commands built from an
options dataclass.

A command with options declares them once, as a frozen dataclass next to the command whose fields
are made with `option(...)` (default, help, flags, bounds). `options_command` derives from it the
typer signature (flags, help, the default shown in --help), the `--config` option and the checks
after the configuration is resolved (command line > the file's table > the defaults: `openbook.config`).
`answer`/`eval` do the same from their own registry, `openbook.answer.options.AnswerOptions`.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import Field, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from openbook.config import check_bounds, flag_of, resolve_options, shown_default, switches_of
from openbook.errors import ConfigError, OpenbookError
from openbook.progress import console

F = TypeVar("F", bound=Callable[..., object])
T = TypeVar("T")

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


def _given_type(annotation: Any) -> Any:
    """The field's type without `None`: on the command line "not given" is always None."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        kinds = [kind for kind in typing.get_args(annotation) if kind is not type(None)]
        (annotation,) = kinds
    return annotation


def _parameter(spec: Field[Any], annotation: Any) -> inspect.Parameter:
    kind = _given_type(annotation)
    metadata = spec.metadata
    on_command_line_only = metadata["argument"] and metadata["required"] and not metadata["config"]
    if metadata["argument"]:
        declared: Any = typer.Argument(help=metadata["help"], show_default=False)
    else:
        flags = tuple(metadata["flags"]) or (flag_of(spec),)
        if kind is bool:
            flags = ("/".join(switches_of(spec)), *flags[1:])
        declared = typer.Option(
            *flags, help=metadata["help"], show_default=shown_default(spec), rich_help_panel=metadata.get("panel")
        )
    hint = kind if on_command_line_only else kind | None
    return inspect.Parameter(
        spec.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=inspect.Parameter.empty if on_command_line_only else None,
        annotation=Annotated[hint, declared],
    )


def check_options(options: object, table: str) -> None:
    """What the file and the command line together must give, and every number's lower bound."""
    for spec in fields(options):  # type: ignore[arg-type]
        value = getattr(options, spec.name)
        if spec.name == "out" and isinstance(value, Path) and value.exists() and not value.is_dir():
            raise ConfigError(f"{flag_of(spec)} {value} is a file; --out names the folder the command creates")
        if spec.metadata.get("required") and value in (None, []):
            where = f" (or `{spec.name}` in the [{table}] table)" if spec.metadata.get("config", True) else ""
            raise ConfigError(f"missing {flag_of(spec)}{where}: {spec.metadata['help']}")
    check_bounds(options)


def parameters_of(options_type: type, leave_out: Sequence[str] = ()) -> list[inspect.Parameter]:
    """The command-line parameters of an options dataclass's fields, in their order (less `leave_out`)."""
    hints = typing.get_type_hints(options_type)
    return [_parameter(spec, hints[spec.name]) for spec in fields(options_type) if spec.name not in leave_out]


def options_command(
    options_type: type[T],
    table: str,
    run: Callable[..., object],
    switches: Sequence[inspect.Parameter] = (),
    name: str | None = None,
    leave_out: Sequence[str] = (),
) -> Callable[..., None]:
    """A typer command whose options are `options_type`'s fields (made with `option`) and `--config`:
    the options are resolved (command line > the file's `[table]` > defaults), checked, then
    `run(options, **switches)`. `switches`: command-line switches that are not options (never in a
    file, e.g. --dry-run); `leave_out`: options the command has no use for (not on its command line).
    The command is `name` (default: `run`'s), its help `run`'s docstring."""
    config = inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOption)
    parameters = [*parameters_of(options_type, leave_out), *switches, config]
    switch_names = [switch.name for switch in switches]

    def command(**given: Any) -> None:
        config_path = given.pop("config")
        chosen = {switch: given.pop(switch) for switch in switch_names}
        given = {name: None if value in ([], ()) else value for name, value in given.items()}
        options = resolve_options(options_type, table, config_path, given)
        check_options(options, table)
        run(options, **chosen)

    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__name__ = command.__qualname__ = name or run.__name__.lstrip("_")
    command.__doc__ = run.__doc__
    command.__module__ = run.__module__
    return reports_errors(command)
