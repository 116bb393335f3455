"""What every behaviour model shares: strict parsing and KB ids."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from patchgate.model.kb import kb_id


class Strict(BaseModel):
    """Catalogue YAML is written by people: an unknown key is an error, never ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def norm_kbs(value: Any) -> Any:
    """One KB or a list of them, normalised; other input is left for pydantic to reject."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [kb_id(v) if isinstance(v, str) else v for v in value]
    return value


def check_urls(value: list[str]) -> list[str]:
    """A ``sources`` list: every entry is an http(s) URL."""
    for url in value:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"'{url}' is not a URL")
    return value
