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
from collections.abc import Callable
from dataclasses import MISSING, Field, field, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from openbook.config import check_at_least, resolve_options
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


def option(
    default: Any,
    help: str,
    *,
    flags: tuple[str, ...] = (),
    negative: str | None = None,
    argument: bool = False,
    required: bool = False,
    config: bool = True,
    minimum: float | None = None,
    unit: str = "",
    shown: str | None = None,
) -> Any:
    """A field of a command's options dataclass.

    `flags`: the command line's names (default `--name-with-dashes`); `negative`: a boolean's off switch
    (default `--no-name`); `argument`: a positional argument instead; `required`: the command refuses
    to run without it (from the command line or the file); `config=False`: the command line only (a
    required argument click asks for itself, never a key of the file); `minimum`: refused below it,
    named by its flag (`unit`: what it counts); `shown`: the default as --help words it, where the
    value alone would not say it (None: "detected", "all", …)."""
    metadata = {
        "help": help,
        "flags": flags,
        "negative": negative,
        "argument": argument,
        "required": required,
        "config": config,
        "minimum": minimum,
        "unit": unit,
        "shown": shown,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def flag_of(spec: Field[Any]) -> str:
    """How a message names an option: its first flag, or an argument's name in capitals."""
    if spec.metadata.get("argument"):
        return spec.name.upper()
    return (spec.metadata.get("flags") or ("--" + spec.name.replace("_", "-"),))[0]


def default_of(spec: Field[Any]) -> Any:
    if callable(spec.default_factory):
        return spec.default_factory()
    return None if spec.default is MISSING else spec.default


def shown_default(spec: Field[Any]) -> str | bool:
    """The default as --help shows it: a boolean by the switch that is on, a list space-separated."""
    if spec.metadata.get("shown") is not None:
        return str(spec.metadata["shown"])
    default = default_of(spec)
    if isinstance(default, bool):
        return _switches(spec)[0 if default else 1]
    if default is None or default == []:
        return False
    return " ".join(map(str, default)) if isinstance(default, list) else str(default)


def _switches(spec: Field[Any]) -> tuple[str, str]:
    on = flag_of(spec)
    return on, spec.metadata.get("negative") or "--no-" + on.removeprefix("--")


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
            flags = ("/".join(_switches(spec)), *flags[1:])
        declared = typer.Option(*flags, help=metadata["help"], show_default=shown_default(spec))
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
        if spec.metadata.get("minimum") is not None and not isinstance(value, bool):
            check_at_least(flag_of(spec), value, spec.metadata["minimum"], spec.metadata.get("unit", ""))


def options_command(options_type: type[T], table: str, run: Callable[[T], object]) -> Callable[..., None]:
    """A typer command whose options are `options_type`'s fields (made with `option`) and `--config`:
    the options are resolved (command line > the file's `[table]` > defaults), checked, then `run`.
    The command's help is `run`'s docstring."""
    hints = typing.get_type_hints(options_type)
    parameters = [_parameter(spec, hints[spec.name]) for spec in fields(options_type)]  # type: ignore[arg-type]
    parameters.append(
        inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ConfigOption)
    )

    def command(**given: Any) -> None:
        config = given.pop("config")
        given = {name: None if value in ([], ()) else value for name, value in given.items()}
        options = resolve_options(options_type, table, config, given)
        check_options(options, table)
        run(options)

    signature = inspect.Signature(parameters)
    command.__signature__ = signature  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__name__ = command.__qualname__ = run.__name__.lstrip("_")
    command.__doc__ = run.__doc__
    command.__module__ = run.__module__
    return reports_errors(command)
