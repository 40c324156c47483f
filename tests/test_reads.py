"""The one rule for reading state: list pages while they cost no more than single reads."""

from __future__ import annotations

import pytest

from fwprep._reads import worth_listing


@pytest.mark.parametrize(
    ("pages_left", "reads_instead", "worth"),
    [(0, 0, True), (1, 1, True), (3, 5, True), (5, 5, True), (6, 5, False), (500, 17, False)],
)
def test_pages_are_read_while_they_cost_no_more_than_single_reads(
    pages_left: int, reads_instead: int, worth: bool
) -> None:
    assert worth_listing(pages_left, reads_instead) is worth
