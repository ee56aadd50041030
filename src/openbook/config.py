"""One validated configuration per command: command line > TOML file > defaults.

A TOML file has one table per command, named as the command (`[index]`, `[search]`, a subcommand
with a dash: `[train-encoder]`, `[ensemble-fit]`, …), whose keys are the command's long options with
dashes as underscores. A value given on the command line always wins, including `False` and `0`:
"not given" is `None`, never a falsy value. A field whose metadata says `config: False` is the
command line's only (a required argument such as `search`'s QUERY), never a key of the file.
"""

from __future__ import annotations

import tomllib
import types
import typing
from dataclasses import fields, is_dataclass
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
)


def check_at_least(flag: str, value: float | None, minimum: float = 1, unit: str = "") -> None:
    """A number option below its minimum is refused, naming the flag (None: not given)."""
    if value is not None and value < minimum:
        raise ConfigError(f"{flag} must be {f'a number of {unit} ' if unit else ''}>= {minimum}; got {value}")


def check_fields_at_least(settings: Any, names: typing.Sequence[str], minimum: float = 1) -> None:
    """`check_at_least` on a dataclass's fields, each named by its flag (batch_size: --batch-size)."""
    for name in names:
        check_at_least("--" + name.replace("_", "-"), getattr(settings, name), minimum)


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
