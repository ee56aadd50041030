"""The manifest that makes an index folder describe itself: inputs, settings, counts, versions, and
every part of the index with its size and checksum.

`build` names what the index was built from (inputs and settings, `build_id`); the same id is written
into each part (the store's schema, BM25's parameters, the dense description), so parts of two
indexes are never mixed. It is derived, not random, so an interrupted and resumed build writes the
same bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.files import write_atomically

MANIFEST_FILE = "manifest.json"


@dataclass
class InputRecord:
    path: str
    format: str
    bytes: int
    sha256: str
    documents: int = 0
    passages: int = 0


@dataclass(frozen=True)
class PartRecord:
    """One file of an index: its size (checked at every open) and checksum (checked by verify)."""

    bytes: int
    sha256: str


def build_id(inputs: Sequence[InputRecord], chunking: dict[str, int], fields: dict[str, str], bm25_engine: str) -> str:
    """What an index is built from, as a short id: the same inputs and settings give the same id."""
    key = {
        "inputs": [[record.path, record.format, record.sha256] for record in inputs],
        "chunking": chunking,
        "fields": fields,
        "bm25": bm25_engine,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


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
    build: str = ""  # "": an index built before parts were recorded (nothing to tie them together)
    parts: dict[str, PartRecord] = field(default_factory=dict)  # path below the index folder -> record
    cluster: dict[str, object] = field(default_factory=dict)  # built on Ray: the cluster and each node's work

    def identity(self) -> str:
        """The build id of the inputs and settings this manifest records (also for an older manifest)."""
        engine = str(self.indexes.get("bm25", {}).get("engine", ""))
        return build_id(self.inputs, self.chunking, self.fields, engine)

    def save(self, directory: Path) -> Path:
        """Atomically (write, then rename): a stop while saving leaves the previous manifest whole."""
        return save_json(directory / MANIFEST_FILE, asdict(self))

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        return cls.from_dict(read_json(path, "an openbook index manifest"), path)

    @classmethod
    def from_dict(cls, data: dict, source: Path) -> Manifest:
        try:
            data = dict(data)
            data["inputs"] = [InputRecord(**record) for record in data["inputs"]]
            data["parts"] = {path: PartRecord(**record) for path, record in data.get("parts", {}).items()}
            return cls(**data)
        except (TypeError, KeyError, AttributeError) as error:
            raise OpenbookError(
                f"{source}: not an openbook index manifest ({type(error).__name__}: {error}); {REBUILD}"
            ) from None


def save_json(path: Path, data: object) -> Path:
    """`data` as JSON at `path`, written whole or not at all (write, flush to disk, rename)."""
    return write_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", durable=True)


REBUILD = "rebuild the index with `openbook index … --overwrite`"


def read_json(path: Path, what: str, repair: str = REBUILD) -> dict:
    """A JSON object from `path`; one that is not (cut short, damaged) is an error naming the file
    and the `repair`."""
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise OpenbookError(f"{path}: not {what} ({type(error).__name__}: {error}); {repair}") from None
    if not isinstance(data, dict):
        raise OpenbookError(f"{path}: not {what} (not a JSON object); {repair}")
    return data
