"""A model's architecture and tokenizer without its weights, for measuring speed and memory where
the weights cannot go (the device machine takes 64 MiB per call; Qwen2.5-Coder-1.5B is 1.1 GB).

    python bench/random_weights.py export qwen2.5-coder-1.5b-instruct ARCH_DIR   # here: config + tokenizer
    python bench/random_weights.py init ARCH_DIR MODEL_DIR                       # there: seeded random bf16 weights

Speed and memory depend on the shapes alone, so a model with random weights runs exactly as fast
and as large as the real one; its answers mean nothing, so report no accuracy from it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def export(model: str, out: Path) -> None:
    """Config and tokenizer of a registered GGUF model (read from its metadata; no weights)."""
    from transformers import AutoConfig, AutoTokenizer

    from openbook.models import resolve_model

    gguf = resolve_model(model)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    print(f"{out}: {config.model_type}, {config.num_hidden_layers} layers, hidden {config.hidden_size}")


def init(architecture: Path, out: Path, seed: int, dtype: str) -> None:
    """Seeded random weights of that architecture, saved as a transformers folder with its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    started = time.perf_counter()
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(architecture)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising 1.5B parameters on a GPU takes seconds, not minutes
        network = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    network.save_pretrained(out)
    for path in architecture.iterdir():
        if path.name != "config.json" and path.is_file():
            shutil.copy(path, out / path.name)
    parameters = sum(p.numel() for p in network.parameters())
    print(
        f"{out}: {parameters / 1e9:.2f}B random {dtype} parameters (seed {seed}) in {time.perf_counter() - started:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser("export", help="config + tokenizer of a registered GGUF model")
    exporting.add_argument("model")
    exporting.add_argument("out", type=Path)
    initialising = commands.add_parser("init", help="random weights for an exported architecture")
    initialising.add_argument("architecture", type=Path)
    initialising.add_argument("out", type=Path)
    initialising.add_argument("--seed", type=int, default=0)
    initialising.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = parser.parse_args()
    if args.command == "export":
        export(args.model, args.out)
    else:
        init(args.architecture, args.out, args.seed, args.dtype)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    main()
