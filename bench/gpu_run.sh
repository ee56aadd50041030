#!/usr/bin/env bash
# The GPU measurements, run on a CUDA machine with openbook importable and runs/default-index built:
#
#   bash bench/gpu_run.sh encoder OUT MINILM_DIR EXAMS_DIR   # full encoder fine-tuning, two context sizes
#   bash bench/gpu_run.sh llm OUT ARCH_DIR EXAMS_DIR         # transformers backend + LoRA, 1.5B architecture
#
# `encoder` fine-tunes all-MiniLM-L6-v2 (MINILM_DIR: its folder) as the multiple-choice reader on
# every llmse-6k-dev + llmse-stem-1k question except the default exam's, 3 epochs, at 256 and 448
# context tokens, and leaves the 256-token model in OUT as encoder-ctx256.tar split into 16 MB parts
# (reassemble with `cat OUT/encoder-ctx256.tar.part-* | tar -xf - -C MODEL_DIR`).
# `llm` gives ARCH_DIR (`python bench/random_weights.py export qwen2.5-coder-1.5b-instruct ARCH_DIR`)
# random bf16 weights, then runs bench/transformers_backend.py on 20 questions at ~1,000 context
# tokens and a short LoRA yes/no training: speed and memory only (random weights answer nothing).
# Peak GPU memory: nvidia-smi's (the whole device: the allocator's cache, and any other library's
# reserve) around each training, and `peak_gpu_allocated_mib` (the tensors) in its training.json.
# Setup on a machine without a package registry, where files travel with the working tree (at most
# 64 MiB, so models travel in fp16): carry wheels of bm25s, PyStemmer and zstandard (and, for `llm`,
# transformers >= 5.20 and peft where the machine's are older), blingfire's __init__.py and .so alone
# (its wheel is 42 MB of other tokenizers' models), the BM25 index and the two exams as a .tar.xz, and
# the fp16 MiniLM; install the wheels with `pip install --target DIR`, put DIR, blingfire and src/ on
# PYTHONPATH, unpack the index to runs/default-index, and run this.
# ONLY=ctx256 runs one encoder variant. SMOKE="--max-questions 8 --epochs 1" (appended to the training
# commands; the last value wins) and
# BENCH="--questions 1" make a quick check of the script itself, e.g. on a CPU.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: bash bench/gpu_run.sh encoder|llm OUT MODEL_DIR EXAMS_DIR" >&2; exit 2; }
what=$1 model=$3 exams=$4
mkdir -p "$2" && out=$(cd "$2" && pwd)  # absolute: the packing below runs in another folder
source "$(dirname "$0")/gpu_common.sh"  # the openbook command, peak_gpu_memory
training_exams=("$exams/llmse-6k-dev.csv" "$exams/llmse-stem-1k.csv")
reported=src/openbook/resources/default-exam.csv

cast_weights() {  # copy a model folder (not its checkpoint or data) with its float weights cast to $3
    python3 - "$@" <<'EOF'
import shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
source, target, dtype = Path(sys.argv[1]), Path(sys.argv[2]), getattr(torch, sys.argv[3])
shutil.copytree(source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("checkpoint", "data.jsonl"))
weights = load_file(source / "model.safetensors")
save_file({k: (v.to(dtype) if v.is_floating_point() else v) for k, v in weights.items()},
          target / "model.safetensors", metadata={"format": "pt"})
EOF
}

! command -v nvidia-smi >/dev/null || nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'

if [ "$what" = encoder ]; then
    # the shipped weights travel as fp16 (the 64 MiB a call allows); train from an fp32 copy
    cast_weights "$model" /tmp/minilm-fp32 float32
    for variant in "ctx256 256 320" "ctx448 448 512"; do
        read -r name context tokens <<<"$variant"
        [ -z "${ONLY:-}" ] || [ "$name" = "$ONLY" ] || continue  # ONLY=ctx256: one variant
        peak_gpu_memory "encoder $name" timeout 300 openbook train encoder "${training_exams[@]}" --exclude "$reported" \
            --index runs/default-index --base /tmp/minilm-fp32 --out "/tmp/encoder-$name" --epochs 3 \
            --batch-size 8 --context-tokens "$context" --max-tokens "$tokens" --checkpoint-every 100000 --quiet ${SMOKE:-} \
            || { echo "encoder $name failed"; continue; }
        python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))["history"]))' \
            "/tmp/encoder-$name/training.json"
        [ "$name" = ctx256 ] || continue  # a device call returns 64 MiB: room for one fp16 MiniLM (45 MB)
        cast_weights "/tmp/encoder-$name" "/tmp/encoder-$name-fp16" float16  # half the bytes to bring back
        (cd "/tmp/encoder-$name-fp16" && tar -cf - . | split -b 16000000 - "$out/encoder-$name.tar.part-")
    done
elif [ "$what" = llm ]; then
    python3 bench/random_weights.py init "$model" /tmp/qwen-random
    timeout 330 python3 bench/transformers_backend.py --model /tmp/qwen-random --questions 20 --context-tokens 1000 ${BENCH:-} \
        || echo "transformers backend bench failed"
    peak_gpu_memory lora timeout 180 openbook train llm "${training_exams[@]}" --exclude "$reported" \
        --index runs/default-index --model /tmp/qwen-random --out /tmp/lora --max-questions 200 \
        --validation-fraction 0.02 --epochs 1 --batch-size 2 --context-tokens 1000 --checkpoint-every 100000 --quiet ${SMOKE:-}
    python3 -c 'import json, sys; s = json.load(open(sys.argv[1])); print(json.dumps(s["history"]))' /tmp/lora/training.json
else
    echo "usage: bash bench/gpu_run.sh encoder|llm OUT MODEL_DIR EXAMS_DIR" >&2
    exit 2
fi
