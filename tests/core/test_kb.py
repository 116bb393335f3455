"""One KB-id spelling: candidates, the calendar, the policy, the command line and a guest's hotfixes agree."""

from __future__ import annotations

import pytest

from patchgate.model.kb import is_kb_id, kb_id


@pytest.mark.parametrize("typed", ["KB5070893", "kb5070893", " Kb5070893 "])
def test_every_spelling_of_a_kb_id_is_the_same_id(typed: str) -> None:
    assert kb_id(typed) == "KB5070893"


def test_a_bare_number_is_a_kb_id_only_where_that_short_form_is_documented() -> None:
    assert kb_id("5070893", bare_number=True) == "KB5070893"
    with pytest.raises(ValueError, match="'5070893' is not a KB id such as KB5070893"):
        kb_id("5070893")


@pytest.mark.parametrize("typed", ["KB12345", "KB123456789", "KB5070893x", "not-a-kb", "", "KB 5070893"])
def test_anything_else_is_refused(typed: str) -> None:
    assert not is_kb_id(typed, bare_number=True)
    with pytest.raises(ValueError, match="is not a KB id"):
        kb_id(typed, bare_number=True)
