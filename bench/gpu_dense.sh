#!/usr/bin/env bash
# Dense indexing on a GPU and encoder training memory, in one script that ends within BUDGET seconds:
#
#   bash bench/gpu_dense.sh OUT MINILM_DIR ST_CONFIG_DIR EXAMS_DIR
#
# MINILM_DIR: all-MiniLM-L6-v2's plain HF folder (the fp16 copy that travels); ST_CONFIG_DIR: the
# sentence-transformers files of the registered model (modules.json, 1_Pooling/, sentence_bert_config.json,
# config_sentence_transformers.json: mean pooling, normalisation, 256 tokens), so the folder built from
# the two, with its weights cast back to fp32, is the model `openbook index --dense all-minilm-l6-v2` uses.
# 1. dense: openbook.index.dense_build.build_dense_index (what `openbook index --dense` calls) over the
#    passages of $INDEX (default runs/default-index: the default knowledge base, 21,014 passages) with
#    that folder: a cold build at the CLI's default 64 passages per batch, then warm builds at 64 and
#    256; passages/s from each build's dense.json `seconds` (embedding only, model load excluded), the
#    embedder's torch device and dtype, torch's peak allocation. OUT gets dense.json and the cold
#    build's shard-00000.f16, to compare with a CPU build's vectors.
# 2. `openbook eval-retrieval EXAMS_DIR/llmse-stem-1k.csv` with bm25, dense and hybrid-rrf/both+embed
#    on the cold-built index (OUT/eval-retrieval.json).
# 3. `openbook train encoder` (bench/gpu_run.sh's invocation, 1 epoch, 256 context tokens) from an
#    fp32 copy of MINILM_DIR, with nvidia-smi's peak memory sampled (OUT/training.json), then which
#    devices JAX takes after openbook's import_bm25s() (it should be the CPU: JAX_PLATFORMS=cpu).
# Each step runs under `timeout`, cut to what is left of BUDGET seconds (default 400) so the whole
# script ends inside the device call; a summary table goes to stdout and OUT/summary.txt.
# On a CPU, a quick check of the script itself: INDEX=a small index, EVAL="--limit 5",
# SMOKE="--max-questions 8 --validation-fraction 0.001" (appended to the training command; the last value wins).
# Setup on a machine without a package registry: as in bench/gpu_run.sh's header (wheels, blingfire and
# src/ on PYTHONPATH, the BM25 index unpacked to runs/default-index).
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: bash bench/gpu_dense.sh OUT MINILM_DIR ST_CONFIG_DIR EXAMS_DIR" >&2; exit 2; }
mkdir -p "$1" && out=$(cd "$1" && pwd)
minilm=$2 stconfig=$3 exams=$4 index=${INDEX:-runs/default-index} budget=${BUDGET:-400}
summary=$out/summary.txt
: >"$summary"
export GPU_SUMMARY=$summary
source "$(dirname "$0")/gpu_common.sh"  # the openbook command, peak_gpu_memory
PYTHON=${PYTHON:-python3}

limit() {  # seconds for a step: at most $1, and no more than the budget has left (less a margin)
    local left=$((budget - SECONDS - 10))
    [ "$left" -lt "$1" ] && echo $((left > 5 ? left : 5)) || echo "$1"
}

! command -v nvidia-smi >/dev/null || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$summary"
$PYTHON -c 'import torch, transformers, sentence_transformers as st; print("torch", torch.__version__, "transformers",
  transformers.__version__, "sentence-transformers", st.__version__, "cuda", torch.cuda.is_available())' | tee -a "$summary"

# the model folders: fp32 weights (the shipped model is fp32; fp16 travels), with and without the ST files
$PYTHON - "$minilm" "$stconfig" <<'EOF'
import shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
source, config = Path(sys.argv[1]), Path(sys.argv[2])
for target in (Path("/tmp/minilm-fp32"), Path("/tmp/minilm-st")):
    shutil.copytree(source, target, dirs_exist_ok=True)
    weights = load_file(source / "model.safetensors")
    save_file({k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()},
              target / "model.safetensors", metadata={"format": "pt"})
shutil.copytree(config, "/tmp/minilm-st", dirs_exist_ok=True)
EOF

# 1. dense index builds
rm -rf /tmp/idx-cold /tmp/idx-warm64 /tmp/idx-warm256
for copy in /tmp/idx-cold /tmp/idx-warm64 /tmp/idx-warm256; do
    mkdir -p "$copy" && cp -r "$index/bm25" "$index/passages.arrow" "$index/manifest.json" "$copy/"
done
peak_gpu_memory dense-builds timeout "$(limit 150)" $PYTHON - "$out" <<'EOF'
import json, shutil, sys, time
from pathlib import Path
import torch
from openbook.embed import EmbedderSettings, load_embedder
from openbook.index.dense_build import build_dense_index

out = Path(sys.argv[1])
started = time.perf_counter()
embedder = load_embedder(EmbedderSettings("/tmp/minilm-st"))
model = embedder.model
report = {"device": str(model.device), "dtype": str(next(model.parameters()).dtype),
          "max_seq_length": model.max_seq_length, "modules": [type(m).__name__ for m in model],
          "load_seconds": round(time.perf_counter() - started, 2), "builds": []}
print(json.dumps(report), flush=True)
del embedder, model
if torch.cuda.is_available():
    torch.cuda.empty_cache()
for folder, batch in (("/tmp/idx-cold", 64), ("/tmp/idx-warm64", 64), ("/tmp/idx-warm256", 256)):
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    info = build_dense_index(Path(folder), EmbedderSettings("/tmp/minilm-st", batch_size=batch), show_progress=False)
    build = {"index": folder, "batch": batch, "passages": info.passages, "complete": info.complete,
             "embed_seconds": info.seconds, "passages_per_s": round(info.passages / info.seconds, 1),
             "call_seconds": round(time.perf_counter() - started, 2)}
    if torch.cuda.is_available():
        build["peak_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    report["builds"].append(build)
    print(json.dumps(build), flush=True)
    (out / "dense-timings.json").write_text(json.dumps(report, indent=2) + "\n")
shutil.copy("/tmp/idx-cold/dense/dense.json", out / "dense.json")
shutil.copy("/tmp/idx-cold/dense/shard-00000.f16", out / "shard-00000.f16")
EOF
echo "dense builds: exit $?"

# 2. retrieval quality on the GPU-built index
peak_gpu_memory eval-retrieval timeout "$(limit 150)" openbook eval-retrieval "$exams/llmse-stem-1k.csv" \
    --index /tmp/idx-cold --pipeline bm25 --pipeline dense --pipeline hybrid-rrf/both+embed \
    --out "$out/eval-retrieval.json" ${EVAL:-}
echo "eval-retrieval: exit $?"

# 3. encoder training, 1 epoch, with JAX kept off the GPU
peak_gpu_memory train-encoder timeout "$(limit 240)" openbook train encoder "$exams/llmse-6k-dev.csv" \
    "$exams/llmse-stem-1k.csv" --exclude src/openbook/resources/default-exam.csv --index "$index" \
    --base /tmp/minilm-fp32 --out /tmp/enc --epochs 1 --batch-size 8 --quiet --checkpoint-every 100000 ${SMOKE:-}
echo "train encoder: exit $?"
[ -f /tmp/enc/training.json ] && $PYTHON -c 'import json, sys; s = json.load(open(sys.argv[1]))
json.dump({k: v for k, v in s.items() if k != "validation_ids"}, open(sys.argv[2], "w"), indent=2)' \
    /tmp/enc/training.json "$out/training.json"
timeout "$(limit 60)" $PYTHON -c 'import os; from openbook.index.bm25 import import_bm25s; import_bm25s()
import importlib.util as u
if u.find_spec("jax"):
    import jax; print("JAX_PLATFORMS", os.environ.get("JAX_PLATFORMS"), "jax devices after import_bm25s():", jax.devices())
else:
    print("no jax installed")' 2>&1 | tail -1 | tee -a "$summary"

# summary
$PYTHON - "$out" <<'EOF' | tee -a "$summary"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    path = out / name
    return json.loads(path.read_text()) if path.is_file() else None
dense = load("dense-timings.json")
if dense:
    print(f"embedder: device {dense['device']}, {dense['dtype']}, max_seq_length {dense['max_seq_length']}, "
          f"modules {dense['modules']}, load {dense['load_seconds']} s")
    print(f"{'build':<18}{'batch':>6}{'passages':>10}{'embed s':>9}{'passages/s':>12}{'peak alloc MiB':>16}")
    for b in dense["builds"]:
        print(f"{b['index']:<18}{b['batch']:>6}{b['passages']:>10}{b['embed_seconds']:>9}{b['passages_per_s']:>12}"
              f"{b.get('peak_allocated_mib', '-'):>16}")
else:
    print("dense: no result")
ev = load("eval-retrieval.json")
if ev:
    print(f"{'pipeline':<26}{'R@1':>7}{'R@5':>7}{'R@20':>7}{'MRR':>7}{'ms/q':>8}")
    for r in ev["results"]:
        print(f"{r['pipeline']:<26}{r['recall@1']:>7.3f}{r['recall@5']:>7.3f}{r['recall@20']:>7.3f}{r['mrr']:>7.3f}"
              f"{r.get('ms_per_question', float('nan')):>8.1f}")
else:
    print("eval-retrieval: no result")
tr = load("training.json")
if tr:
    for h in tr["history"]:
        print(f"encoder epoch {h['epoch']}: {h['seconds']} s, {h['train_questions']} questions, "
              f"val MAP@3 {h['validation_map@3']} ({h['validation_questions']}), "
              f"peak_gpu_allocated_mib {h.get('peak_gpu_allocated_mib')}")
else:
    print("train encoder: no result")
EOF
echo "total script seconds: $SECONDS" | tee -a "$summary"
