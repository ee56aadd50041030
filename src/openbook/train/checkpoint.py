"""What the trainers share: atomic checkpoints (weights or adapter, optimiser, scheduler, RNG,
step) that a stopped run resumes from, refusing to mix settings."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from openbook.errors import OpenbookError
from openbook.records import Question

CHECKPOINT = "checkpoint"
PARTIAL, PREVIOUS = CHECKPOINT + ".partial", CHECKPOINT + ".previous"  # being written; set aside for it
STATE_FILE = "state.json"  # written last: a folder with it is a whole checkpoint


def save_checkpoint(out: Path, network, tokenizer, optimiser, scheduler, state: dict) -> None:
    """`network.save_pretrained` (a PEFT model saves its adapter only) plus the training state,
    written beside and renamed into place; the previous checkpoint is set aside first and deleted
    only once the new one is in place, so a stop at any moment leaves a whole checkpoint."""
    import torch

    partial, final, previous = out / PARTIAL, out / CHECKPOINT, out / PREVIOUS
    shutil.rmtree(partial, ignore_errors=True)
    network.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    rng: dict[str, object] = {"torch_rng": torch.get_rng_state()}  # dropout continues as it would have, on the GPU too
    if torch.cuda.is_available():
        rng["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(
        {"optimiser": optimiser.state_dict(), "scheduler": scheduler.state_dict(), **rng}, partial / "optimiser.pt"
    )
    (partial / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")
    if (final / STATE_FILE).is_file():
        shutil.rmtree(previous, ignore_errors=True)
        final.rename(previous)
    else:  # a stop while the last one was being put in place: `previous` is the whole one
        shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    shutil.rmtree(previous, ignore_errors=True)


def checkpoint_folder(out: Path) -> Path | None:
    """The last whole checkpoint in `out`: `checkpoint`, or the one set aside while a newer one was
    being put in place when a stop came between the two renames."""
    for folder in (out / CHECKPOINT, out / PREVIOUS):
        if (folder / STATE_FILE).is_file():
            return folder
    return None


def resumed_folder(out: Path) -> Path:
    """The checkpoint a run resumes from: asked for only once `resumable_state` has found one."""
    folder = checkpoint_folder(out)
    if folder is None:  # a caller's bug, not a user's mistake
        raise ValueError(f"{out} holds no whole checkpoint to resume from")
    return folder


def run_record(settings, questions: Sequence[Question]) -> dict:
    """What a checkpoint may only be resumed with: the training options (a dataclass) and the questions
    trained on (a digest: other exams or another --exclude are another run)."""
    digest = hashlib.sha256()
    for question in questions:
        digest.update(json.dumps([question.id, question.prompt, question.options, question.answer]).encode())
    return {**asdict(settings), "questions_sha256": digest.hexdigest()}


def resumable_state(out: Path, settings: dict, resume: bool) -> dict | None:
    """The checkpoint's state when resuming with the same settings; None for a fresh start."""
    folder = checkpoint_folder(out)
    if not resume:
        if folder is not None:
            raise OpenbookError(
                f"{out} holds a training checkpoint: pass --resume to continue it or choose another --out"
            )
        return None
    if folder is None:
        return None
    state = json.loads((folder / STATE_FILE).read_text())
    if state.get("settings") != settings:
        raise OpenbookError(
            f"{out} holds a training run with other settings ({state.get('settings')}); "
            "resume with the same settings or choose another --out"
        )
    return state


def restore_optimiser(out: Path, optimiser, scheduler) -> None:
    import torch

    saved = torch.load(resumed_folder(out) / "optimiser.pt", weights_only=False)
    optimiser.load_state_dict(saved["optimiser"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    if "cuda_rng" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
