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

    def __reduce__(self) -> tuple[type[InputError], tuple[str, str, int | None]]:
        """Pickled by its parts (a cluster's worker hands it to the driver whole)."""
        return (type(self), (self.path, self.problem, self.line))


class ConfigError(OpenbookError):
    """A configuration file or option that cannot be used."""


def require_modules(extra: str, *modules: str) -> None:
    """A clear error, naming the extra to install, when an optional library is missing."""
    from importlib.util import find_spec

    missing = [module for module in modules if find_spec(module) is None]
    if missing:
        raise OpenbookError(f"{', '.join(missing)} not installed: pip install 'openbook[{extra}]'")
