"""What the trainers share: atomic checkpoints (weights or adapter, optimiser, scheduler, RNG,
step) that a stopped run resumes from, refusing to mix settings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from openbook.errors import OpenbookError

CHECKPOINT = "checkpoint"


def save_checkpoint(out: Path, network, tokenizer, optimiser, scheduler, state: dict) -> None:
    """`network.save_pretrained` (a PEFT model saves its adapter only) plus the training state,
    written beside and renamed into place, so a stop mid-write leaves the previous checkpoint."""
    import torch

    partial = out / (CHECKPOINT + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    network.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    torch.save({"optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state()}, partial / "optimiser.pt")  # dropout continues as it would have
    (partial / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    final = out / CHECKPOINT
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)


def resumable_state(out: Path, settings: dict, resume: bool) -> dict | None:
    """The checkpoint's state when resuming with the same settings; None for a fresh start."""
    state_file = out / CHECKPOINT / "state.json"
    if not resume:
        if state_file.is_file():
            raise OpenbookError(f"{out} holds a training checkpoint: pass --resume to continue it or choose another --out")
        return None
    if not state_file.is_file():
        return None
    state = json.loads(state_file.read_text())
    if state.get("settings") != settings:
        raise OpenbookError(f"{out} holds a training run with other settings ({state.get('settings')}); "
                            "resume with the same settings or choose another --out")
    return state


def restore_optimiser(out: Path, optimiser, scheduler) -> None:
    import torch

    saved = torch.load(out / CHECKPOINT / "optimiser.pt", weights_only=False)
    optimiser.load_state_dict(saved["optimiser"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
