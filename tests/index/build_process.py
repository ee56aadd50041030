"""`openbook ARGS…` in a process of its own that kills itself with SIGKILL at a chosen point of an
index build: a real kill -9 (no exception, no cleanup, no `finally`) at a point a test can name.

    python tests/index/build_process.py POINT CALLS ARGS…

POINT is where, CALLS at which call of it (1 = the first):
- none: run to the end
- passages: at a checkpoint of the passage stage, after its batch is in the store, before the state says so
- bm25: with the BM25 files written, before their parameters (the stage's last step; on a cluster,
  with every shard built)
- cluster-store: a cluster build's driver writing the store from the work units, at a unit read
- cluster-dense: a cluster build's driver with every dense shard embedded, before it says so
- dense: half way through writing a batch of vectors (a row cut in two)
- exchange: the new index put in place, the old one not yet removed
- holding: with the target's lock held, asleep (a builder that is still running)

Store batches are 16 passages and dense batches 8, so a tiny corpus has several of each; every run of
a test (stopped, resumed or not) goes through here (`run`), so all of them build with the same settings.
"""

from __future__ import annotations

import functools
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HARNESS = Path(__file__)
ROOT = HARNESS.resolve().parents[2]


def run(point: str, calls: int, *args: object) -> subprocess.CompletedProcess:
    """`openbook ARGS…` run here, killed at `point` (see above); its stdout and stderr captured."""
    return subprocess.run(
        [sys.executable, str(HARNESS), point, str(calls), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


def said(process: subprocess.CompletedProcess) -> str:
    """What a process said on stderr, its lines (wrapped at 80 columns) joined."""
    return " ".join(process.stderr.split())


def checksums(index: Path) -> dict[str, str]:
    """sha256 of every part of an index (store, BM25 files, dense shards)."""
    from openbook.index.parts import part_files

    return {part: hashlib.sha256((index / part).read_bytes()).hexdigest() for part in part_files(index)}


def kill_on_call(owner: Any, name: str, calls: int, before: Callable[..., None] | None = None) -> None:
    """Replace `owner.name` so that its `calls`-th call kills the process: after `before(*args)`
    where given, else before the call."""
    original = getattr(owner, name)
    count = [0]

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        if count[0] == calls:
            if before is not None:
                before(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _half_a_batch(writer: Any, vectors: Any) -> None:
    """Half of the batch written, then a piece of the next row, as a stop in the middle of a write leaves it."""
    from openbook.index.dense_build import DenseWriter

    DenseWriter.add.__wrapped__(writer, vectors[: len(vectors) // 2])  # type: ignore[attr-defined]
    shard = writer.folder / f"shard-{writer.rows // writer.info.shard_rows:05d}.f16"
    with shard.open("ab") as sink:
        sink.write(b"\x01\x02\x03")


def _exchanged(first: Path, second: Path) -> None:
    from openbook.index import staging

    if not staging._exchange.__wrapped__(first, second):  # type: ignore[attr-defined]
        second.rename(first.with_name(f".{second.name}.replaced"))
        first.rename(second)


def main(point: str, calls: int, args: list[str]) -> None:
    from openbook.cli import index_cmd
    from openbook.index import build, cluster, dense_build, staging

    index_cmd.IndexSettings = functools.partial(build.IndexSettings, store_batch_rows=16)  # type: ignore[misc]
    index_cmd.DenseSettings = functools.partial(dense_build.DenseSettings, batch_passages=8)  # type: ignore[misc]
    if point == "passages":
        kill_on_call(build, "_checkpoint", calls)
    elif point == "bm25":
        kill_on_call(build, "save_params", calls)
        kill_on_call(cluster, "save_params", calls)
    elif point == "cluster-store":
        kill_on_call(cluster, "read_unit", calls)
    elif point == "cluster-dense":
        kill_on_call(cluster.ShardedMatmulSearch, "largest_row_norm", calls)
    elif point == "dense":
        kill_on_call(dense_build.DenseWriter, "add", calls, before=_half_a_batch)
    elif point == "exchange":
        kill_on_call(staging, "_exchange", calls, before=_exchanged)
    elif point == "holding":
        from openbook.index.lock import build_lock

        with build_lock(Path(args[0]).resolve()):
            print("holding", flush=True)
            time.sleep(600)
    elif point != "none":
        raise SystemExit(f"unknown point {point!r}")
    from openbook.cli.main import app

    app(args)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])
