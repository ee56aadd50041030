"""The records every stage speaks (`openbook.records`)."""

from __future__ import annotations

from openbook.records import submission_letters


def test_submission_letters_dedupes_and_pads():
    assert submission_letters(["D", "D", "A"]) == "D A B"
