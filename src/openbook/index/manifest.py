"""The manifest that makes an index folder describe itself: inputs, settings, counts, versions."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from openbook.errors import OpenbookError

MANIFEST_FILE = "manifest.json"


@dataclass
class InputRecord:
    path: str
    format: str
    bytes: int
    sha256: str
    documents: int = 0
    passages: int = 0


@dataclass
class Manifest:
    created: str
    chunking: dict[str, int]
    inputs: list[InputRecord]
    documents: int = 0
    passages: int = 0
    dropped: dict[str, dict[str, object]] = field(default_factory=dict)
    indexes: dict[str, dict[str, object]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)  # table columns read as id, title, text

    def save(self, directory: Path) -> Path:
        """Atomically (write, then rename): a stop while saving leaves the previous manifest whole."""
        path = directory / MANIFEST_FILE
        partial = directory / (MANIFEST_FILE + ".partial")
        partial.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")
        partial.replace(path)
        return path

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            data = json.loads(path.read_text())
            data["inputs"] = [InputRecord(**record) for record in data["inputs"]]
            return cls(**data)
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            raise OpenbookError(
                f"{path}: not an openbook index manifest ({type(error).__name__}: {error}); "
                "rebuild the index with `openbook index … --overwrite`"
            ) from None
