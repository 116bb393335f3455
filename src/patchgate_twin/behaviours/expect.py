"""A behaviour's ``expect`` table: what Microsoft's documentation implies the gate decides for the KB on one image.

The invariant ids it may name are the policy's list (``patchgate.config.policy.INVARIANTS``, which waivers are
checked against too); tests/invariants/test_invariant_ids.py fails when that list and the suites' ``@invariant``
decorators disagree.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from patchgate.config.policy import INVARIANTS
from patchgate_twin.behaviours.common import Strict

INVARIANT_IDS = INVARIANTS


class Expect(Strict):
    """What Microsoft's documentation implies the gate should decide for this KB on one image."""

    verdict: Literal["approve", "block", "inconclusive"]
    fails: list[str] = Field(default_factory=list, description="exactly the invariant ids that fail")
    note: str = ""

    @field_validator("fails")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in INVARIANT_IDS:
                raise ValueError(f"unknown invariant id '{item}' (known: {', '.join(sorted(INVARIANT_IDS))})")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Expect:
        if self.verdict == "block" and not self.fails:
            raise ValueError("a 'block' expectation names the invariants that fail")
        if self.verdict == "approve" and self.fails:
            raise ValueError("an 'approve' expectation cannot list failing invariants")
        return self
