"""One validated configuration per command: command line > TOML file > defaults.

A command's options are a frozen dataclass whose fields are made with `option(...)`: default, help,
flags, bounds and --help panel, declared once; the CLI, the file's check and the bounds check are
derived from them.

A TOML file has one table per command, named as the command (`[index]`, `[search]`, a subcommand
with a dash: `[train-encoder]`, `[ensemble-fit]`, …), whose keys are the command's long options with
dashes as underscores. A value given on the command line always wins, including `False` and `0`:
"not given" is `None`, never a falsy value. A field whose metadata says `config: False` is the
command line's only (a required argument such as `search`'s QUERY), never a key of the file.
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from dataclasses import MISSING, Field, field, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from openbook.errors import ConfigError

T = TypeVar("T")
# the commands a file configures (`eval` reads [answer])
TABLES = (
    "index",
    "search",
    "answer",
    "eval-retrieval",
    "train-encoder",
    "train-llm",
    "train-cross-encoder",
    "ensemble-fit",
    "ensemble-combine",
    "generate",
)


def check_at_least(flag: str, value: float | None, minimum: float = 1, unit: str = "") -> None:
    """A number option below its minimum is refused, naming the flag (None: not given)."""
    if value is not None and value < minimum:
        raise ConfigError(f"{flag} must be {f'a number of {unit} ' if unit else ''}>= {minimum}; got {value}")


def check_fields_at_least(settings: Any, names: typing.Sequence[str], minimum: float = 1) -> None:
    """`check_at_least` on a dataclass's fields, each named by its flag (batch_size: --batch-size)."""
    for name in names:
        check_at_least("--" + name.replace("_", "-"), getattr(settings, name), minimum)


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
    maximum: float | None = None,
    unit: str = "",
    shown: str | None = None,
    panel: str | None = None,
    changes_answers: bool = True,
) -> Any:
    """A field of a command's options dataclass.

    `flags`: the command line's names (default `--name-with-dashes`); `negative`: a boolean's off switch
    (default `--no-name`); `argument`: a positional argument instead; `required`: the command refuses
    to run without it (from the command line or the file); `config=False`: the command line only (a
    required argument click asks for itself, never a key of the file); `minimum`: refused below it,
    named by its flag (`unit`: what it counts), and above `maximum`; `shown`: the default as --help
    words it, where the value alone would not say it (None: "detected", "all", …); `panel`: the --help
    panel it is listed in; `changes_answers`: a resumed run must keep it as it was."""
    metadata = {
        "help": help,
        "flags": flags,
        "negative": negative,
        "argument": argument,
        "required": required,
        "config": config,
        "minimum": minimum,
        "maximum": maximum,
        "unit": unit,
        "shown": shown,
        "panel": panel,
        "changes_answers": changes_answers,
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
        return switches_of(spec)[0 if default else 1]
    if default is None or default == []:
        return False
    return " ".join(map(str, default)) if isinstance(default, list) else str(default)


def switches_of(spec: Field[Any]) -> tuple[str, str]:
    on = flag_of(spec)
    return on, spec.metadata.get("negative") or "--no-" + on.removeprefix("--")


def check_bounds(options: object) -> None:
    """Every number option within its bounds (NaN refused too), each named by its flag."""
    for spec in fields(options):  # type: ignore[arg-type]
        value = getattr(options, spec.name)
        low: float | None = spec.metadata.get("minimum")
        high: float | None = spec.metadata.get("maximum")
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if high is not None:
            floor = -math.inf if low is None else low
            if math.isnan(value) or not floor <= value <= high:
                raise ConfigError(f"{flag_of(spec)} must be {floor:g}-{high:g}; got {value}")
        elif low is not None:
            if math.isnan(value):
                raise ConfigError(f"{flag_of(spec)} must be a number >= {low:g}; got {value}")
            check_at_least(flag_of(spec), value, low, spec.metadata.get("unit", ""))


def read_config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None


def resolve_options(options_type: type[T], command: str, config_path: Path | None, given: dict[str, Any]) -> T:
    """Build `options_type` from the defaults, the file's `[command]` table, then the given values."""
    assert is_dataclass(options_type) and command in TABLES
    config = read_config_file(config_path)
    stray = sorted(key for key, value in config.items() if not isinstance(value, dict))
    if stray:  # a key above every table belongs to none: a mistake, not a setting
        raise ConfigError(
            f"{config_path}: key(s) {', '.join(stray)} outside any table; put them under "
            f"[{command}] (tables: {', '.join(TABLES)})"
        )
    unknown_tables = sorted(set(config) - set(TABLES))
    if unknown_tables:
        raise ConfigError(
            f"{config_path}: unknown table(s) {', '.join(f'[{t}]' for t in unknown_tables)}; "
            f"known: {', '.join(f'[{t}]' for t in TABLES)}"
        )
    section = config.get(command, {})
    known = {f.name: f for f in fields(options_type) if f.metadata.get("config", True)}
    unknown = sorted(set(section) - set(known))
    if unknown:
        raise ConfigError(
            f"{config_path}: unknown key(s) in [{command}]: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    hints = typing.get_type_hints(options_type)
    values: dict[str, Any] = {}
    for name, value in section.items():
        values[name] = _coerce(value, hints[name], f"{config_path}: [{command}] {name}")
    every = {f.name for f in fields(options_type)}  # the command line may give what the file may not
    values.update({name: value for name, value in given.items() if value is not None and name in every})
    return options_type(**values)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check a TOML value against a field's type; paths come as strings and become `Path`s."""
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    for kind in allowed:
        origin = typing.get_origin(kind) or kind
        if kind is type(None):
            continue
        if origin is Path and isinstance(value, str):
            return Path(value)
        if origin is list and isinstance(value, list):
            (item,) = typing.get_args(kind) or (Any,)
            return [_coerce(v, item, f"{where}[{i}]") if item is not Any else v for i, v in enumerate(value)]
        if origin is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if origin is int and isinstance(value, bool):
            continue
        if isinstance(value, origin):
            return value
    raise ConfigError(f"{where}: expected {annotation}, got {value!r}")
