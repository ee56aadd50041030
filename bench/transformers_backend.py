"""Benchmark the transformers backend: shared-prefix KV reuse vs naive, packed vs separate rotations,
layer-by-layer vs whole-model inference (same outputs, peak memory), side by side in one run.

    python bench/transformers_backend.py                       # CPU, smollm2-135m-instruct, 10 questions
    python bench/transformers_backend.py --model qwen2.5-coder-1.5b-instruct --questions 20   # e.g. on a GPU

Questions are the first N of the default exam with BM25 contexts from --index (default
runs/default-index, which `make demo` builds) packed to --context-tokens. Each mode runs in its own
subprocess so its peak resident memory (and, on CUDA, peak allocated GPU memory) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import DEFAULT_EXAM, DEFAULT_INDEX, markdown_table, plan_contexts

MODES = {
    # name: (backend, share_prefix, packed, readers)
    "yes/no naive": ("transformers", False, False, "yesno"),
    "yes/no shared KV": ("transformers", True, False, "yesno"),
    # the output head over every token, to compare with the head run only where a continuation ends (`logits_to_keep`)
    "yes/no naive, head on every token": ("transformers", False, False, "yesno"),
    "yes/no shared KV, head on every token": ("transformers", True, False, "yesno"),
    "letter k=5 separate": ("transformers", False, False, "letter5"),
    "letter k=5 shared KV": ("transformers", True, False, "letter5"),
    "letter k=5 packed": ("transformers", True, True, "letter5"),
    "yes/no layered": ("transformers-layered", True, False, "yesno"),
    "letter k=5 layered": ("transformers-layered", True, False, "letter5"),
}


def run_mode(args: argparse.Namespace, mode: str) -> dict:
    """In this process: load, read the questions, report seconds, probabilities and memory."""
    from openbook.answer import AnswerOptions
    from openbook.backends import load_backend
    from openbook.backends.base import model_token_counter
    from openbook.exam import read_exam
    from openbook.readers import LetterReader, YesNoReader, read_question

    backend_name, share, packed, readers_name = MODES[mode]
    extras = {"packed": True} if packed else {}
    backend = load_backend(backend_name, args.model, n_ctx=2048, **extras)
    if mode.endswith("head on every token"):
        backend.keeps_logits = False
    questions = read_exam(DEFAULT_EXAM)[: args.questions]
    options = AnswerOptions(
        index=args.index, retrieval=["bm25"], context_tokens=args.context_tokens, triage_readers=["none"]
    )
    contexts = [c[0].context for c in plan_contexts(questions, options, model_token_counter(backend))]
    reader = YesNoReader(backend) if readers_name == "yesno" else LetterReader(backend, rotations=5)
    read_question([reader], backend, questions[0], contexts[0], share)  # warm-up, not timed
    started = time.perf_counter()
    outputs = [read_question([reader], backend, q, c, share)[0].probabilities for q, c in zip(questions, contexts)]
    seconds = time.perf_counter() - started
    report = {
        "mode": mode,
        "seconds_per_question": seconds / len(questions),
        "probabilities": outputs,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "device": getattr(backend, "device", "cpu"),
        "context_tokens": sum(c.tokens for c in contexts) / len(contexts),
    }
    import torch

    if torch.cuda.is_available():
        report["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--context-tokens", type=int, default=400)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="index to read context from")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one mode, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_mode(args, args.one)))
        return
    reports = {}
    for mode in args.modes:
        command = [
            sys.executable,
            __file__,
            "--one",
            mode,
            "--model",
            args.model,
            "--questions",
            str(args.questions),
            "--context-tokens",
            str(args.context_tokens),
            "--index",
            str(args.index),
        ]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
        if done.returncode != 0:
            sys.exit(f"{mode} failed:\n{done.stderr[-3000:]}")
        reports[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{mode}: {reports[mode]['seconds_per_question']:.3f} s/q", file=sys.stderr, flush=True)

    def max_difference(a: str, b: str) -> str:
        if a not in reports or b not in reports:
            return "-"
        pairs = zip(reports[a]["probabilities"], reports[b]["probabilities"])
        return f"{max(abs(x[k] - y[k]) for x, y in pairs for k in x):.1e}"

    reference = {
        "yes/no naive": None,
        "yes/no shared KV": "yes/no naive",
        "letter k=5 separate": None,
        "yes/no naive, head on every token": "yes/no naive",
        "yes/no shared KV, head on every token": "yes/no shared KV",
        "letter k=5 shared KV": "letter k=5 separate",
        "letter k=5 packed": "letter k=5 separate",
        "yes/no layered": "yes/no shared KV",
        "letter k=5 layered": "letter k=5 shared KV",
    }
    rows = []
    for mode, report in reports.items():
        base = reference[mode]
        speed = (
            f"{reports[base]['seconds_per_question'] / report['seconds_per_question']:.2f}x" if base in reports else ""
        )
        rows.append(
            [
                mode,
                f"{report['seconds_per_question']:.3f}",
                f"{1 / report['seconds_per_question']:.2f}",
                speed + (f" vs {base}" if speed else ""),
                max_difference(mode, base) if base else "",
                f"{report['peak_rss_mib']:.0f}",
                f"{report.get('peak_gpu_mib', 0):.0f}",
            ]
        )
    first = next(iter(reports.values()))
    print(
        f"\nmodel {args.model} on {first['device']}, {args.questions} questions of the default exam, "
        f"{first['context_tokens']:.0f} context tokens on average\n"
    )
    print(
        markdown_table(
            [
                "mode",
                "s/question",
                "questions/s",
                "speed-up",
                "max abs Δp vs reference",
                "peak RSS MiB",
                "peak GPU MiB",
            ],
            rows,
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
