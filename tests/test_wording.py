"""Counts in words (``newsletter.wording``)."""

from __future__ import annotations

import pytest

from newsletter.wording import counted


@pytest.mark.parametrize(
    ("count", "noun", "plural", "said"),
    [
        (0, "new article", "", "0 new articles"),
        (1, "source", "", "1 source"),
        (2, "source", "", "2 sources"),
        (1, "batch", "batches", "1 batch"),
        (1000, "batch", "batches", "1000 batches"),
        (1, "entry", "entries", "1 entry"),
    ],
)
def test_the_noun_takes_the_number_of_its_count(
    count: int, noun: str, plural: str, said: str
) -> None:
    assert counted(count, noun, plural) == said
