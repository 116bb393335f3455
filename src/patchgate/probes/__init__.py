"""Probes: one PowerShell script per posture area (``<area>.ps1``), its parser, and the capture composer.

Each script prints one JSON document; :mod:`patchgate.probes.batch` embeds the scripts of a capture into one
pipeline and :mod:`patchgate.probes.parsers` turns their output into :mod:`patchgate.model.posture` dataclasses.
"""

from __future__ import annotations

import functools
from importlib import resources

from patchgate.model.posture import AREAS


@functools.cache
def probe_text(area: str) -> str:
    """The source of ``<area>.ps1`` shipped with patchgate."""
    if area not in AREAS:
        raise ValueError(f"unknown probe area '{area}' (known: {', '.join(AREAS)})")
    return resources.files(__package__).joinpath(f"{area}.ps1").read_text(encoding="utf-8")


__all__ = ["AREAS", "probe_text"]
