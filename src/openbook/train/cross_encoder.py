"""Fine-tune a cross-encoder reranker from a shipped encoder, since no cross-encoder ships offline.

Data: an exam whose rows carry the passage they were written from (llmse-stem-1k's `context`;
`openbook train cross-encoder` keeps only its grounded rows, see `openbook.retrieve.source`).
For each question, BM25 retrieves candidates for the joint query from the index; candidates drawn
from the source passage (the same 5-gram rule as `openbook eval-retrieval`) are positives, the
others hard negatives (`negatives` per question). The encoder (e.g. all-MiniLM-L6-v2's BERT) gets
a fresh one-logit head and is trained with binary cross-entropy on (question, passage) pairs.
The result is a sentence-transformers CrossEncoder folder: rerank with `+cross:FOLDER`.

Never train on the questions you evaluate on: split the exam first (bench/retrieval.py does).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from openbook.config import check_fields_at_least
from openbook.errors import OpenbookError
from openbook.models import local_model_location
from openbook.progress import console, meter
from openbook.records import Question
from openbook.retrieve import Retrieval, RetrievalSpec
from openbook.retrieve.query import joint_query
from openbook.retrieve.source import MATCH_THRESHOLD, overlap_with_source


@dataclass(frozen=True)
class CrossEncoderTraining:
    base: str = "all-minilm-l6-v2"  # registered embedder, folder or hub id
    candidates: int = 20  # BM25 candidates per question to draw pairs from
    negatives: int = 3  # hard negatives per question
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 3e-5
    max_tokens: int = 256
    seed: int = 13
    context_column: str = "context"


def training_pairs(
    questions: Sequence[Question], retrieval: Retrieval, settings: CrossEncoderTraining
) -> list[tuple[str, str, float]]:
    """(query, passage, label) pairs: the source passages found among the candidates, and hard negatives."""
    rng = random.Random(settings.seed)
    with_source = [q for q in questions if q.extra.get(settings.context_column, "").strip()]
    hit_lists = retrieval.search(with_source, RetrievalSpec("bm25"), settings.candidates)
    pairs = []
    for question, hits in zip(with_source, hit_lists):
        context = question.extra[settings.context_column]
        overlaps = [overlap_with_source(h.passage.text, context) for h in hits]
        positive = [h for h, overlap in zip(hits, overlaps) if overlap >= MATCH_THRESHOLD]
        negative = [h for h, overlap in zip(hits, overlaps) if overlap < 0.1]
        query = joint_query(question)
        # the source passage itself is a positive even when BM25 missed it
        pairs.append((query, context, 1.0))
        pairs += [(query, h.passage.indexed_text(), 1.0) for h in positive[:1]]
        pairs += [
            (query, h.passage.indexed_text(), 0.0) for h in rng.sample(negative, min(settings.negatives, len(negative)))
        ]
    rng.shuffle(pairs)
    return pairs


def train_cross_encoder(
    questions: Sequence[Question],
    index: Path,
    out: Path,
    settings: CrossEncoderTraining = CrossEncoderTraining(),
    show_progress: bool = True,
) -> dict:
    import torch
    from sentence_transformers import CrossEncoder

    check_fields_at_least(settings, ("epochs", "batch_size"))  # before the search and the model load
    check_fields_at_least(settings, ("negatives",), minimum=0)
    torch.manual_seed(settings.seed)
    pairs = training_pairs(questions, Retrieval(index), settings)
    if not pairs:
        raise OpenbookError(
            f"no training pairs: none of the {len(questions)} questions has a "
            f"{settings.context_column!r} source passage"
        )
    model = CrossEncoder(
        local_model_location(settings.base), num_labels=1, max_length=settings.max_tokens, local_files_only=True
    )
    network, tokenizer = model.model, model.tokenizer
    device = next(network.parameters()).device
    network.train()
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate)
    loss_function = torch.nn.BCEWithLogitsLoss()
    started = time.perf_counter()
    losses = []
    steps = (len(pairs) + settings.batch_size - 1) // settings.batch_size
    for epoch in range(settings.epochs):
        with meter(f"cross-encoder epoch {epoch + 1}/{settings.epochs}", steps, ("pairs",), enabled=show_progress) as m:
            for step in range(steps):
                batch = pairs[step * settings.batch_size : (step + 1) * settings.batch_size]
                features = tokenizer(
                    [q for q, _, _ in batch],
                    [p for _, p, _ in batch],
                    padding=True,
                    truncation=True,
                    max_length=settings.max_tokens,
                    return_tensors="pt",
                ).to(device)
                logits = network(**features).logits.squeeze(-1)
                loss = loss_function(logits, torch.tensor([label for _, _, label in batch], device=device))
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
                m.advance(completed=step + 1, pairs=len(batch))
        random.Random(settings.seed + epoch + 1).shuffle(pairs)
    network.eval()
    model.save(str(out))
    summary = {
        "pairs": len(pairs),
        "positives": int(sum(label for _, _, label in pairs)),
        "epochs": settings.epochs,
        "seconds": round(time.perf_counter() - started, 1),
        "final_loss": round(sum(losses[-20:]) / max(len(losses[-20:]), 1), 4),
        "base": settings.base,
        "seed": settings.seed,
    }
    if show_progress:
        console.print(f"cross-encoder saved to {out}: {summary}")
    return summary
