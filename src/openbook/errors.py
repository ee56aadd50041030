"""Errors that point at the offending input: file, line and what is wrong."""

from __future__ import annotations

from pathlib import Path


class OpenbookError(Exception):
    """Base class of the errors openbook reports to its users without a traceback."""


class InputError(OpenbookError):
    """Bad input, located: `path:line: problem`."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ConfigError(OpenbookError):
    """A configuration file or option that cannot be used."""
