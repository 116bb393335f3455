"""The base of every input model: unknown keys are typos, and a loaded file never changes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Unknown keys are typos; reject them. Loaded values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
