"""Whether an index is whole: the cheap check (`check_index`: what every open checks, for every part at
once; `openbook index` keeps an index only if it passes) and the full one (`verify_index`: every byte
of every part against the checksums the manifest records; `openbook verify-index`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.index.bm25 import check_bm25
from openbook.index.dense import INFO_FILE, ShardedMatmulSearch
from openbook.index.faiss_search import record_path
from openbook.index.manifest import MANIFEST_FILE, Manifest, read_json
from openbook.index.parts import DENSE_DIR, DamagedIndex, checksum, part_files, rebuild_command
from openbook.index.store import PassageStore


def load_manifest(directory: Path) -> Manifest:
    if not (directory / MANIFEST_FILE).is_file():
        raise OpenbookError(
            f"{directory} is not an openbook index (no {MANIFEST_FILE}); build one with `openbook index`"
        )
    return Manifest.load(directory)


def check_index(directory: Path, dense: bool = True) -> Manifest:
    """The index's manifest, once every part is there at its recorded size, carries the index's build
    id and holds one entry per passage (the dense part too, unless `dense` is False): a stat per file
    and a few small reads. A `DamagedIndex` names the first part that is not."""
    manifest = load_manifest(directory)
    PassageStore(directory)
    check_bm25(directory, manifest)
    if dense and (directory / DENSE_DIR / INFO_FILE).is_file():
        ShardedMatmulSearch(directory / DENSE_DIR)
    return manifest


@dataclass(frozen=True)
class Verification:
    manifest: Manifest
    checked: dict[str, int]  # part -> bytes, every part read whole and found as recorded
    problems: list[str]  # one line each, naming the file

    def repair(self, directory: Path) -> str:
        return f"rebuild it with `{rebuild_command(directory, self.manifest)}`"


def verify_index(directory: Path) -> Verification:
    """Every part read whole against its recorded size and checksum, files no part of the index
    named, FAISS files against their records, and the cheap checks of `check_index`; every problem
    found, not only the first."""
    manifest = load_manifest(directory)
    problems: list[str] = []
    checked: dict[str, int] = {}
    for part, record in manifest.parts.items():
        path = directory / part
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif path.stat().st_size != record.bytes:
            problems.append(f"{path} has {path.stat().st_size:,} bytes, not the {record.bytes:,} it was built with")
        elif checksum(path) != record.sha256:
            problems.append(f"{path} does not have the checksum it was built with (its bytes changed)")
        else:
            checked[part] = record.bytes
    if manifest.parts:
        problems += [
            f"{directory / part} is not a part of this index"
            for part in part_files(directory)
            if part not in manifest.parts
        ]
    problems += _faiss_problems(directory, manifest)
    try:
        check_index(directory)
        PassageStore(directory).validate()
    except DamagedIndex as error:
        if error.problem not in problems:
            problems.append(error.problem)
    except OpenbookError as error:
        problems.append(str(error))
    return Verification(manifest, checked, problems)


def _faiss_problems(directory: Path, manifest: Manifest) -> list[str]:
    problems = []
    for path in sorted((directory / DENSE_DIR).glob("faiss-*.index")):
        if not record_path(path).is_file():
            if manifest.build:
                problems.append(f"{path} has no record of the vectors it was built from (it is built again when used)")
            continue
        record = read_json(record_path(path), "a FAISS index record", f"delete {path} (it is built again when used)")
        if record.get("build") != manifest.build:
            problems.append(f"{path} was built for another index (it is built again when used)")
        elif record.get("bytes") != path.stat().st_size or record.get("sha256") != checksum(path):
            problems.append(f"{path} is not the file it was built as; delete it to have it built again")
    return problems
