"""Where an index is built: a folder beside the target, renamed into place only when complete.

`.<name>.building/` holds the index being built and `build-state.json`, which says how far it got
(the passages checkpoint, whether BM25 is done; the dense part keeps its own progress in its shards),
so a stopped build resumes stage by stage. When every stage is done the manifest, with each part's
size and checksum, is written into it and it replaces the target in one step (Linux `renameat2`
RENAME_EXCHANGE; elsewhere two renames): until then the old index serves, and readers that opened it
keep their files. `tidy` finishes or undoes a replacement a stop cut in two.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.index.dense import INFO_FILE, DenseInfo
from openbook.index.manifest import MANIFEST_FILE, Manifest, read_json, save_json
from openbook.index.parts import BM25_DIR, DENSE_DIR, INDEX_ENTRIES, PASSAGES_FILE, fsync_path, record_parts

STATE_FILE = "build-state.json"


@dataclass(frozen=True)
class PassageCheckpoint:
    """How far the passage stage got: the inputs before `input` are read whole, and `consumed`
    documents of that one; the store's first `batches` batches (`offset` bytes) hold their passages."""

    done: bool = False
    input: int = 0
    consumed: int = 0
    batches: int = 0
    offset: int = 0
    dropped: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass
class BuildState:
    manifest: Manifest  # the manifest to be: inputs, settings, build id, counts as of the checkpoint
    passages: PassageCheckpoint = field(default_factory=PassageCheckpoint)
    bm25_done: bool = False

    def save(self, folder: Path) -> None:
        save_json(folder / STATE_FILE, asdict(self))

    @classmethod
    def load(cls, folder: Path) -> BuildState:
        path = folder / STATE_FILE
        data = read_json(path, "a build state", f"delete {folder} to start the build again")
        return cls(
            manifest=Manifest.from_dict(data["manifest"], path),
            passages=PassageCheckpoint(**data["passages"]),
            bm25_done=bool(data["bm25_done"]),
        )


def check_replaceable(target: Path) -> None:
    """A target that holds anything beside an index is never replaced (its files are not the index's
    to delete): refused before any work, and again before the replacement."""
    if not target.is_dir():
        return
    entries = sorted(entry.name for entry in target.iterdir())
    if entries and not {MANIFEST_FILE, PASSAGES_FILE} & set(entries):
        raise OpenbookError(f"{target} holds files that are not an openbook index; refusing to delete them")
    foreign = [name for name in entries if name not in INDEX_ENTRIES | {STATE_FILE}]
    if foreign:
        raise OpenbookError(
            f"{target} holds files that are not part of its index ({', '.join(foreign[:5])}"
            f"{', …' if len(foreign) > 5 else ''}); move them out of it before it is replaced, or choose another --out"
        )


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    swap = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if swap is None:
        return False
    at_cwd, rename_exchange = -100, 2
    if swap(at_cwd, os.fsencode(first), at_cwd, os.fsencode(second), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(second))


def _link(source: Path, destination: Path) -> None:
    """`source` at `destination` without copying its bytes where the file system allows (a hard link:
    parts are never written once complete), else copied."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


@dataclass(frozen=True)
class Staging:
    """The folders of one target's builds (the caller holds the target's lock, `index/lock.py`)."""

    target: Path

    @property
    def building(self) -> Path:
        return self.target.with_name(f".{self.target.name}.building")

    @property
    def replaced(self) -> Path:
        return self.target.with_name(f".{self.target.name}.replaced")

    def tidy(self) -> None:
        """Finish what a stop during a replacement left: the new index in place, the old one gone
        (or, where the two-rename replacement stopped between its renames, the old one back)."""
        (self.target / STATE_FILE).unlink(missing_ok=True)  # exchanged in: the folder being built holds the old index
        if self.replaced.exists():
            if self.target.exists():
                shutil.rmtree(self.replaced)
            else:
                self.replaced.rename(self.target)
        if self.building.exists() and not (self.building / STATE_FILE).is_file():
            shutil.rmtree(self.building)  # an old index exchanged out, or a build stopped before its first state

    def unfinished(self) -> BuildState | None:
        return BuildState.load(self.building) if (self.building / STATE_FILE).is_file() else None

    def start(self, manifest: Manifest) -> BuildState:
        """A new, empty build of `manifest` (its inputs, settings and build id)."""
        self.discard()
        self.building.mkdir(parents=True)
        state = BuildState(manifest)
        state.save(self.building)
        return state

    def extend(self, manifest: Manifest) -> BuildState:
        """A build that adds to the complete index in the target: its store and BM25 files linked (they
        are never written again), a dense part that was not finished copied (it will be), the rest to do."""
        self.discard()
        self.building.mkdir(parents=True)
        for part in [PASSAGES_FILE, *(p.relative_to(self.target).as_posix() for p in self._files(BM25_DIR))]:
            _link(self.target / part, self.building / part)
        dense = self.target / DENSE_DIR
        if (dense / INFO_FILE).is_file() and not DenseInfo.load(dense).complete:
            shutil.copytree(dense, self.building / DENSE_DIR)
        kept = {part: record for part, record in manifest.parts.items() if not part.startswith(DENSE_DIR + "/")}
        indexes = {name: params for name, params in manifest.indexes.items() if name != DENSE_DIR}
        state = BuildState(
            replace(manifest, parts=kept, indexes=indexes),
            passages=PassageCheckpoint(done=True, dropped=manifest.dropped),
            bm25_done=True,
        )
        state.save(self.building)
        return state

    def _files(self, folder: str) -> list[Path]:
        return sorted(path for path in (self.target / folder).rglob("*") if path.is_file())

    def discard(self) -> None:
        if self.building.exists():
            shutil.rmtree(self.building)

    def commit(self, state: BuildState) -> Manifest:
        """The manifest written (every part's size and checksum), then the build put in the target's place."""
        manifest = replace(
            state.manifest,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            parts=record_parts(self.building, state.manifest.parts),
        )
        check_replaceable(self.target)
        manifest.save(self.building)
        fsync_path(self.building)
        if not self.target.exists():
            self.building.rename(self.target)
        elif not _exchange(self.building, self.target):
            self.target.rename(self.replaced)
            self.building.rename(self.target)
        fsync_path(self.target.parent)
        self.tidy()  # the state file out of the index, the old index gone
        return manifest
