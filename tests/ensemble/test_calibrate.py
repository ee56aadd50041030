"""Calibration (`ensemble.calibrate`): a fitted temperature, the expected calibration error."""

from __future__ import annotations

import numpy as np
import pytest

from openbook.ensemble.calibrate import expected_calibration_error, fit_temperature, with_temperature


def test_temperature_fit_recovers_the_temperature_answers_were_drawn_with():
    rng = np.random.default_rng(1)
    scores = [rng.normal(0, 2, 5) for _ in range(3000)]
    answers = [int(rng.choice(5, p=with_temperature(s, 2.5))) for s in scores]
    assert fit_temperature(scores, answers) == pytest.approx(2.5, rel=0.1)


def test_expected_calibration_error():
    assert expected_calibration_error([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert expected_calibration_error([0.9] * 10, [False] * 10) == pytest.approx(0.9)
    # two bins: 0.25 confident and right half the time, 0.95 confident and always right
    assert expected_calibration_error([0.25, 0.25, 0.95, 0.95], [True, False, True, True]) == pytest.approx(
        0.5 * 0.25 + 0.5 * 0.05
    )
