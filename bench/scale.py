"""How an index's costs grow with the corpus: build time, peak memory per process, bytes on disk and
query latency at 0.1M, 1M and 5M passages, built by one process and by Ray (a local cluster of 2
workers), side by side; then the per-unit costs and slopes that docs/scale.md plans from.

    python bench/scale.py [--sizes 100000 1000000 5000000] [--modes single ray] [--dense-sample 4096]
    python bench/scale.py --reuse ...   # the builds of the last run kept (results.json), queries measured again

The corpora: wiki-2015-core's articles in order, as many as make the size (the whole of it is ~960K
passages); beyond it, synthetic articles whose words are drawn from wiki-2015-core's own word
frequencies (its ~100K most frequent words, Zipf-like as real text is), in sentences of 8-30 words,
so BM25 sees a realistic vocabulary and posting lengths. Each is written once under
bench/out/scale/, in files of ~64 MB (the 5M one is ~2.3 GB in 36 files).

Per size and mode, `openbook index CORPUS --out DIR [--ray]` runs in a process of its own (its peak
RSS from wait4; with Ray, the workers' peak as the build's manifest records it). Query latency: 100
llmse-6k-dev prompts, one at a time (median) and as one batch, through the index's BM25 search; dense
search over random unit fp16 vectors of 384 dimensions as many as the passages (embedding the big
corpora on this CPU would take days: `--dense-sample` passages are embedded instead, single process
and Ray, to measure passages/s).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import zstandard

from common import OPENBOOK, OUT, SHARED, markdown_table

HERE = OUT / "scale"
REAL = SHARED / "corpus" / "wiki-2015-core.wikiextractor.txt.zst"
SEED = 2023


def real_articles():
    """(title, text) of wiki-2015-core's articles in order."""
    with REAL.open("rb") as raw:
        stream = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(raw), encoding="utf-8")
        title, lines = None, []
        for line in stream:
            if line.startswith("<doc "):
                title, lines = line.split('title="', 1)[1].split('"', 1)[0], []
            elif line.startswith("</doc>"):
                yield title, "\n".join(lines[1:]).strip()
            else:
                lines.append(line.rstrip("\n"))


def corpus(size: int) -> Path:
    """A folder of JSONL files of about `size` passages of 512 characters in all, ~64 MB a file (as
    WikiExtractor splits a dump: a cluster build chunks one file per task), written once."""
    folder = HERE / f"corpus-{size}"
    if (folder / ".done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    sink = Parts(folder)
    chars, words = 0, Counter()
    target = size * 440  # characters per 512-character passage, as wiki-2015-core chunks (whole sentences)
    for number, (title, text) in enumerate(real_articles()):
        if chars >= target:
            break
        sink.write({"id": f"w{number}", "title": title, "text": text})
        chars += len(text)
        if number % 20 == 0:  # a sample of the articles is enough for word frequencies
            words.update(text.lower().split())
    if chars < target:
        _synthetic(sink, target - chars, words)
    sink.close()
    (folder / ".done").touch()
    return folder


class Parts:
    """JSONL records into part-00000.jsonl, part-00001.jsonl, … of ~64 MB each."""

    def __init__(self, folder: Path, part_bytes: int = 64 << 20):
        self.folder, self.part_bytes, self.number = folder, part_bytes, 0
        self.sink = (folder / "part-00000.jsonl").open("w")

    def write(self, record: dict) -> None:
        self.sink.write(json.dumps(record) + "\n")
        if self.sink.tell() >= self.part_bytes:
            self.sink.close()
            self.number += 1
            self.sink = (self.folder / f"part-{self.number:05d}.jsonl").open("w")

    def close(self) -> None:
        self.sink.close()


def _synthetic(sink: Parts, chars: int, words: Counter) -> None:
    vocabulary = np.array([w for w, _ in words.most_common(100_000) if w.isalpha()], dtype=object)
    cumulative = np.cumsum([words[w] for w in vocabulary], dtype=np.float64)
    cumulative /= cumulative[-1]
    rng = np.random.default_rng(SEED)
    number = 0
    while chars > 0:
        lengths = rng.integers(8, 31, size=int(rng.integers(15, 60)))
        drawn = vocabulary[np.searchsorted(cumulative, rng.random(int(lengths.sum())))]
        sentences, at = [], 0
        for length in lengths.tolist():
            sentence = " ".join(drawn[at : at + length])
            sentences.append(sentence[0].upper() + sentence[1:] + ".")
            at += length
        text = " ".join(sentences)
        sink.write({"id": f"s{number}", "title": f"Synthetic {number}", "text": text})
        chars -= len(text)
        number += 1


def timed_build(inputs: list[Path], out: Path, extra: list[str]) -> dict:
    """`openbook index` in its own process: wall seconds, its peak RSS, and its manifest."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*OPENBOOK, "index", *map(str, inputs), "--out", str(out), "--overwrite", "--quiet", *extra]
    )
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"openbook index failed ({status})")
    manifest = json.loads((out / "manifest.json").read_text())
    return {"seconds": time.perf_counter() - started, "peak_mib": usage.ru_maxrss / 1024, "manifest": manifest}


def part_mib(manifest: dict, prefix: str) -> float:
    return sum(r["bytes"] for p, r in manifest["parts"].items() if p.startswith(prefix)) / 2**20


def prompts(count: int = 100) -> list[str]:
    """The first `count` llmse-6k-dev prompts."""
    with (SHARED / "exams" / "llmse-6k-dev.csv").open() as handle:
        return [row["prompt"] for _, row in zip(range(count), csv.DictReader(handle))]


def bm25_latency(index: Path) -> tuple[float, float]:
    """(ms per lone query, median; ms per query in a batch of 100), in a process of its own."""
    code = f"""
import json, statistics, time, sys
from pathlib import Path
from openbook.index.bm25 import open_index
index = open_index(Path({str(index)!r}))
queries = json.loads(sys.stdin.read())
index.search(queries[:2], 10)  # warm: numba compiled, pages mapped
lone = []
for q in queries:
    t = time.perf_counter(); index.search([q], 10); lone.append(time.perf_counter() - t)
t = time.perf_counter(); index.search(queries, 10); batch = time.perf_counter() - t
print(json.dumps([1000 * statistics.median(lone), 1000 * batch / len(queries)]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(prompts()), capture_output=True, text=True, check=True
    )
    lone, batch = json.loads(done.stdout.strip().splitlines()[-1])
    return lone, batch


def bm25_agreement(size: int) -> list[object]:
    """The one-process and the Ray index of a size searched with the same prompts (k = 10): prompts
    whose scores agree at every rank, whose passages agree, and whose passages differ only where two
    passages have exactly the same score (in a process of its own)."""
    code = f"""
import json, sys
import numpy as np
from pathlib import Path
from openbook.index.bm25 import open_index
queries = json.loads(sys.stdin.read())
one = open_index(Path({str(HERE / f"index-{size}-single")!r}))
many = open_index(Path({str(HERE / f"index-{size}-ray")!r}))
(r1, s1), (r2, s2) = one.search(queries, 10), many.search(queries, 10)
scores = sum(np.array_equal(a, b) for a, b in zip(s1, s2))
rows = sum(set(a) == set(b) for a, b in zip(r1, r2))
# where the passages differ, each of the other index's passages scored what the one it replaces did
tied = sum(set(a) != set(b) and np.array_equal(x, y) for a, b, x, y in zip(r1, r2, s1, s2))
print(json.dumps([len(queries), scores, rows, tied]))
"""
    queries = prompts(200)
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(queries), capture_output=True, text=True, check=True
    )
    count, scores, rows, tied = json.loads(done.stdout.strip().splitlines()[-1])
    return [f"{size:,}", count, scores, rows, tied]


def dense_latency(rows: int, dimension: int = 384) -> tuple[float, float, float]:
    """(ms per lone query, median of 9; ms per query in a batch of 100; MiB of vectors) over `rows`
    random unit fp16 vectors, searched by the sharded matmul."""
    folder = HERE / f"vectors-{rows}" / "dense"
    if not (folder / "dense.json").is_file():
        from openbook.index.dense import DenseInfo

        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(SEED)
        shard_rows = 65536
        for number, first in enumerate(range(0, rows, shard_rows)):
            block = rng.standard_normal((min(shard_rows, rows - first), dimension), dtype=np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            block.astype("<f2").tofile(folder / f"shard-{number:05d}.f16")
        DenseInfo("random", dimension, "", "", shard_rows, rows, complete=True).save(folder)
    code = f"""
import json, statistics, time
import numpy as np
from pathlib import Path
from openbook.index.dense import ShardedMatmulSearch
search = ShardedMatmulSearch(Path({str(folder)!r}))
queries = np.random.default_rng(1).standard_normal((100, {dimension}), dtype=np.float32)
queries /= np.linalg.norm(queries, axis=1, keepdims=True)
search.search(queries[:1], 10)
lone = []
for q in queries[:9]:
    t = time.perf_counter(); search.search(q[None], 10); lone.append(time.perf_counter() - t)
t = time.perf_counter(); search.search(queries, 10); batch = time.perf_counter() - t
print(json.dumps([1000 * statistics.median(lone), 1000 * batch / len(queries)]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lone, batch = json.loads(done.stdout.strip().splitlines()[-1])
    return lone, batch, rows * dimension * 2 / 2**20


def dense_sample(passages: int) -> list[list]:
    """Embedding `passages` passages with the shipped MiniLM, one process and Ray (2 actors)."""
    HERE.mkdir(parents=True, exist_ok=True)
    path = HERE / f"dense-sample-{passages}.jsonl"
    if not path.exists():
        with path.open("w") as sink:
            for number, (title, text) in zip(range(passages), real_articles()):
                sink.write(json.dumps({"id": f"w{number}", "title": title, "text": text[:450]}) + "\n")
    rows = []
    for mode, extra in (("single", []), ("ray", ["--ray", "--embed-workers", "2"])):
        dense = ["--dense", "all-minilm-l6-v2", "--shard-rows", "1024"]  # 2 shards or more: both actors busy
        built = timed_build([path], HERE / f"dense-sample-{mode}", dense + extra)
        manifest = built["manifest"]
        rate = manifest["passages"] / built["seconds"]
        peak = max(manifest.get("cluster", {}).get("peak_rss_mib", {}).values(), default=built["peak_mib"])
        rows.append([mode, manifest["passages"], f"{built['seconds']:.0f}", f"{rate:.1f}", f"{peak:,.0f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--modes", nargs="+", default=["single", "ray"], choices=["single", "ray"])
    parser.add_argument("--dense-sample", type=int, default=4096, help="passages embedded (0: none)")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the builds of an earlier run (results.json): measure queries again"
    )
    args = parser.parse_args()
    earlier = {}
    if args.reuse and (HERE / "results.json").is_file():
        earlier = {(r["size"], r["mode"]): r for r in json.loads((HERE / "results.json").read_text())}
    rows, results = [], []
    for size in args.sizes:
        path = corpus(size)
        for mode in args.modes:
            extra = ["--ray", "--unit-documents", "2000", "--bm25-shard-rows", "500000"] if mode == "ray" else []
            folder = HERE / f"index-{size}-{mode}"
            built = earlier.get((size, mode)) or timed_build([path], folder, extra)
            manifest = json.loads((folder / "manifest.json").read_text())
            workers = manifest.get("cluster", {}).get("peak_rss_mib", {})
            lone, batch = bm25_latency(folder)
            result = {
                "size": size,
                "mode": mode,
                "passages": manifest["passages"],
                "seconds": built["seconds"],
                "stages": manifest["seconds"],
                "process_peak_mib": built.get("peak_mib", built.get("process_peak_mib")),
                "worker_peak_mib": max(workers.values(), default=0.0),
                "store_mib": part_mib(manifest, "passages"),
                "bm25_mib": part_mib(manifest, "bm25/"),
                "bm25_lone_ms": lone,
                "bm25_batch_ms": batch,
            }
            results.append(result)
            rows.append(
                [
                    f"{size:,}",
                    mode,
                    f"{result['passages']:,}",
                    f"{result['seconds']:.0f}",
                    f"{manifest['seconds'].get('read_and_chunk', 0):.0f} / {manifest['seconds'].get('bm25', 0):.0f}",
                    f"{result['process_peak_mib']:,.0f}",
                    f"{result['worker_peak_mib']:,.0f}" if workers else "-",
                    f"{result['store_mib']:,.0f} / {result['bm25_mib']:,.0f}",
                    f"{lone:.1f} / {batch:.2f}",
                ]
            )
            print(json.dumps(result), flush=True)
    headers = [
        "size",
        "build",
        "passages",
        "build s",
        "chunk s / bm25 s",
        "process peak MiB (driver with Ray)",
        "worker peak MiB",
        "store / bm25 MiB",
        "bm25 ms lone / batched",
    ]
    print(markdown_table(headers, rows))
    if {"single", "ray"} <= set(args.modes):
        print()
        agreement = [bm25_agreement(size) for size in args.sizes]
        heads = ["size", "prompts", "same scores at every rank", "same passages", "passages differ at equal scores"]
        print(markdown_table(["BM25, one process vs Ray: " + heads[0], *heads[1:]], agreement))
    dense_rows = []
    for size in args.sizes:
        passages = next(r["passages"] for r in results if r["size"] == size)
        lone, batch, mib = dense_latency(passages)
        dense_rows.append([f"{passages:,}", f"{mib:,.0f}", f"{lone:.1f}", f"{batch:.2f}"])
    print()
    print(markdown_table(["vectors (384-d fp16)", "MiB", "ms lone query", "ms per query, batch of 100"], dense_rows))
    slopes(results)
    if args.dense_sample:
        print()
        print(
            markdown_table(
                ["embedding", "passages", "s", "passages/s", "peak MiB (process or actor)"],
                dense_sample(args.dense_sample),
            )
        )
    (HERE / "results.json").write_text(json.dumps(results, indent=1))


def slopes(results: list[dict]) -> None:
    """Per-unit costs: each measure's growth per million passages between the smallest and largest size."""
    print()
    rows = []
    for mode in sorted({r["mode"] for r in results}):
        mine = sorted((r for r in results if r["mode"] == mode), key=lambda r: r["passages"])
        if len(mine) < 2:
            continue
        low, high = mine[0], mine[-1]
        millions = (high["passages"] - low["passages"]) / 1e6
        for key in ("seconds", "process_peak_mib", "worker_peak_mib", "store_mib", "bm25_mib", "bm25_lone_ms"):
            if not (low[key] or high[key]):  # no workers in one process
                continue
            rows.append(
                [
                    mode,
                    key,
                    f"{(high[key] - low[key]) / millions:,.2f}",
                    f"{statistics.mean([low[key], high[key]]):,.1f}",
                ]
            )
    print(markdown_table(["build", "measure", "per 1M passages (slope)", "mean of the two ends"], rows))


if __name__ == "__main__":
    main()
