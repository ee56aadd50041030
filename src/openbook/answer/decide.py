"""From reader outputs to a question's prediction: the mean of the readers, or a fitted ensemble with
calibrated confidence; and the letter prior, fitted over a whole first pass and divided out of it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from openbook.ensemble import Ensemble, average_probabilities, prediction_from, scored_question
from openbook.readers.letter import SlotPrior, estimate_slot_prior, with_slot_prior
from openbook.records import OrderReading, Prediction, Question, QuestionResult, ReaderOutput, RetrievedContext


def decide(
    question: Question,
    outputs: Sequence[ReaderOutput],
    contexts: Sequence[RetrievedContext],
    ensemble: Ensemble | None,
) -> Prediction:
    """One prediction from reader outputs: a fitted ensemble's (calibrated confidence) or their mean."""
    if ensemble is None:
        return prediction_from(question.id, average_probabilities(outputs))
    scored = scored_question(question, {o.reader: o.probabilities for o in outputs}, evidence_text(contexts))
    probabilities = dict(zip(question.letters, map(float, ensemble.probabilities(scored))))
    return prediction_from(question.id, probabilities, calibrated=True)


def evidence_text(contexts: Sequence[RetrievedContext]) -> str:
    """The passages that went into the contexts, whole, as predictions.jsonl logs them: the text the
    ensemble's coverage features are computed from, alike when fitting (from the log) and answering."""
    return "\n".join(
        hit.passage.text
        for retrieved in contexts
        for hit in retrieved.hits
        if hit.passage.id in retrieved.context.passage_ids
    )


def margin(prediction: Prediction) -> float:
    """Top-1 minus top-2 probability: small when the readers hesitate."""
    top = sorted(prediction.probabilities.values(), reverse=True) + [0.0]
    return top[0] - top[1]


def first_pass_ensemble(ensemble: Ensemble | None, outputs: Sequence[ReaderOutput], cascade: bool) -> Ensemble | None:
    """A fitted ensemble knows the main readers: a cascade's triage outputs it does not cover are averaged."""
    if cascade and ensemble is not None and not ensemble.covers({o.reader for o in outputs}):
        return None
    return ensemble


def apply_letter_prior(
    results: list[QuestionResult],
    ensemble: Ensemble | None,
    cascade: bool,
    on_result: Callable[[QuestionResult], None] | None,
    earlier_readings: Sequence[tuple[str, OrderReading]] = (),
) -> dict[str, SlotPrior]:
    """Every letter reading of the first pass divided by its reader's slot prior over the whole pass
    (with `earlier_readings`: those of questions earlier runs answered for good), in place on
    `results`; the changed answers are handed to `on_result` again. Returns the prior per output name."""
    readings: dict[str, list[OrderReading]] = {}
    for name, reading in earlier_readings:
        readings.setdefault(name, []).append(reading)
    for result in results:
        for output in result.outputs:
            if output.orders is not None:
                readings.setdefault(output.reader, []).append(output.orders)
    priors = {name: estimate_slot_prior(found) for name, found in readings.items()}
    for i, result in enumerate(results):
        if not any(o.orders is not None for o in result.outputs):
            continue
        outputs = [
            with_slot_prior(o, result.question.letters, priors[o.reader]) if o.orders is not None else o
            for o in result.outputs
        ]
        prediction = decide(result.question, outputs, result.contexts, first_pass_ensemble(ensemble, outputs, cascade))
        results[i] = replace(result, prediction=prediction, outputs=outputs)
        if on_result is not None and prediction != result.prediction:
            on_result(results[i])
    return priors
