"""Why a promotion is refused: one line, exit 4 (a refusal is about the inputs, never lab trouble)."""

from __future__ import annotations

from patchgate.errors import ConfigError


class PromotionRefused(ConfigError):
    """``promotion refused: <reason>``; ``file`` is the run folder (or rings file) the reason is about."""

    def __init__(self, reason: str, *, file: str | None = None, field: str | None = None) -> None:
        super().__init__(f"promotion refused: {reason}", file=file, field=field)
