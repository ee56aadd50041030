"""An index described in words, from its manifest and the bytes of each part on disk
(`openbook index info DIR`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from openbook.index.manifest import Manifest
from openbook.index.parts import BM25_DIR, DENSE_DIR, PASSAGES_FILE
from openbook.index.verify import load_manifest

# the parts of an index folder, by what they are for: the bytes of each are summed
COMPONENTS = {"passages": PASSAGES_FILE, "bm25": BM25_DIR, "dense": DENSE_DIR}


@dataclass(frozen=True)
class IndexInfo:
    directory: Path
    manifest: Manifest
    sizes: dict[str, int]  # component -> bytes on disk (the dense folder with any FAISS files beside it)

    def lines(self) -> list[str]:
        """The manifest in words: what was read, how it was cut, what searches it, how big each part is."""
        manifest = self.manifest
        lines = [
            f"{self.directory}: {manifest.passages:,} passages from {manifest.documents:,} documents, "
            f"built {manifest.created} (build {manifest.build or 'not recorded'}) by openbook "
            f"{manifest.versions.get('openbook', '?')}",
            f"inputs ({len(manifest.inputs)}):",
        ]
        lines += [
            f"  {record.path}  {record.format}, {record.bytes:,} bytes, {record.documents:,} documents -> "
            f"{record.passages:,} passages"
            for record in manifest.inputs
        ]
        for reason, counts in manifest.dropped.items():
            lines.append(f"  dropped ({reason}): {counts}")
        lines.append(
            f"passages: up to {manifest.chunking.get('size', '?')} characters, "
            f"{manifest.chunking.get('overlap', 0)} of overlap"
        )
        for engine, described in manifest.indexes.items():
            settings = ", ".join(_setting(key, value) for key, value in described.items())
            lines.append(f"{engine}: {settings}")
        if "dense" not in manifest.indexes:
            lines.append("dense: none (build with `openbook index ... --dense EMBEDDER` to add it)")
        total = sum(self.sizes.values())
        sizes = ", ".join(f"{component} {size / 2**20:,.1f} MiB" for component, size in self.sizes.items())
        lines.append(f"on disk: {total / 2**20:,.1f} MiB ({sizes})")
        if manifest.seconds:
            lines.append("build seconds: " + ", ".join(f"{step} {s:,.1f}" for step, s in manifest.seconds.items()))
        if manifest.cluster:
            work = manifest.cluster.get("work", {})
            done = "; ".join(
                f"{stage}: " + ", ".join(f"{count} on {node}" for node, count in by_node.items())
                for stage, by_node in (work.items() if isinstance(work, dict) else ())
            )
            nodes = manifest.cluster.get("nodes")
            lines.append(
                f"built on Ray ({nodes} node{'' if nodes == 1 else 's'}): {done or 'resumed with the work done'}"
            )
        return lines

    def as_dict(self) -> dict[str, object]:
        return {"directory": str(self.directory), "manifest": asdict(self.manifest), "bytes": self.sizes}


def _setting(key: str, value: object) -> str:
    if key == "shards" and isinstance(value, list):  # passages per BM25 shard
        return f"{len(value)} shards of up to {max(value):,} passages"
    return f"{key} {value}"


def _bytes_under(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file()) if path.is_dir() else 0


def index_info(directory: Path) -> IndexInfo:
    """What the index in `directory` holds (an error naming the folder when it is not an index)."""
    manifest = load_manifest(directory)
    sizes = {component: _bytes_under(directory / entry) for component, entry in COMPONENTS.items()}
    return IndexInfo(directory, manifest, {component: size for component, size in sizes.items() if size})
