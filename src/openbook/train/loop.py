"""The training loop the trainers share: seeded epochs over the training items, AdamW with linear
warm-up and decay, gradient clipping, progress, checkpoints every `checkpoint_every` steps and at
each epoch's end, a validation score after each epoch, and resume on the same data order."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from openbook.config import check_fields_at_least
from openbook.errors import ConfigError
from openbook.progress import console, meter
from openbook.train.checkpoint import restore_optimiser, save_checkpoint

if TYPE_CHECKING:
    import torch

SUMMARY_FILE = "training.json"


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def check_training(settings) -> None:
    """Options no run can train with, refused before any model loads."""
    check_fields_at_least(settings, ("epochs", "batch_size", "checkpoint_every", "max_questions"))
    if not 0 <= settings.validation_fraction < 1:
        raise ConfigError(
            f"--validation-fraction is the share held out, 0 to below 1; got {settings.validation_fraction}"
        )
    if not settings.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be > 0; got {settings.learning_rate}")


def train_loop(
    label: str,
    network,
    tokenizer,
    train: Sequence,
    validation: Sequence,
    settings,
    record: dict,
    out: Path,
    batch_loss: Callable[[list], torch.Tensor],
    validate: Callable[[], float | None],
    state: dict | None,
    show_progress: bool,
) -> dict:
    """Train `network` on `train` in batches of `settings.batch_size`; `batch_loss(batch)` returns the
    loss tensor of one batch. `settings` also names epochs, learning_rate, warmup, checkpoint_every
    and seed; `record` (`run_record`) is kept with each checkpoint. Writes the final weights (or
    adapter) and OUT/training.json; returns the summary."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    steps_per_epoch = (len(train) + settings.batch_size - 1) // settings.batch_size
    total_steps = steps_per_epoch * settings.epochs
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=settings.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimiser, int(settings.warmup * total_steps), total_steps)
    step, history = 0, []
    if state is not None:
        restore_optimiser(out, optimiser, scheduler)
        step, history = state["step"], state["history"]
        console.print(f"resuming {out} at step {step} of {total_steps}")
    network.train()
    while step < total_steps:
        epoch, within = divmod(step, steps_per_epoch)
        order = list(range(len(train)))
        random.Random(settings.seed + epoch).shuffle(order)  # the same order on resume
        started, losses = time.perf_counter(), []
        with meter(
            f"{label} epoch {epoch + 1}/{settings.epochs}", steps_per_epoch, ("questions",), enabled=show_progress
        ) as m:
            m.advance(completed=within)
            for position in range(within, steps_per_epoch):
                batch = [train[i] for i in order[position * settings.batch_size : (position + 1) * settings.batch_size]]
                loss = batch_loss(batch)
                optimiser.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimiser.step()
                scheduler.step()
                losses.append(loss.item())
                step += 1
                m.advance(completed=position + 1, questions=len(batch))
                if step % settings.checkpoint_every == 0 and step % steps_per_epoch:
                    save_checkpoint(
                        out,
                        network,
                        tokenizer,
                        optimiser,
                        scheduler,
                        {"step": step, "history": history, "settings": record},
                    )
        seconds = time.perf_counter() - started
        network.eval()
        score = validate() if validation else None
        network.train()
        history.append(
            {
                "epoch": epoch + 1,
                "seconds": round(seconds, 1),
                "steps": steps_per_epoch - within,
                "train_questions": len(train),
                "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
                "validation_map@3": score,
                "validation_questions": len(validation),
            }
        )
        if torch.cuda.is_available():  # what the tensors needed (nvidia-smi also counts the allocator's reserve)
            history[-1]["peak_gpu_allocated_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
        console.print(f"epoch {epoch + 1}: {history[-1]}")
        save_checkpoint(
            out, network, tokenizer, optimiser, scheduler, {"step": step, "history": history, "settings": record}
        )
    network.eval()
    network.save_pretrained(out)
    tokenizer.save_pretrained(out)
    summary = {
        "settings": record,
        "history": history,
        "train_questions": len(train),
        "validation_questions": len(validation),
        "validation_ids": [item[0].id for item in validation],
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
