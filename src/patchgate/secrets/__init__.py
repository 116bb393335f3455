"""Where credentials come from (env, Vault, the twin) and how their values are kept out of output.

``build_secrets(lab.secrets, lab)`` returns a :class:`~patchgate.secrets.base.SecretsProvider`.

The providers and their models (pydantic) load when first named: the log redaction every command installs first
needs none of them, so ``patchgate validate`` can start its suites without waiting for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from patchgate.secrets.redact import install_logging_redaction, redact_file, redact_tree, redactor, safe_str

if TYPE_CHECKING:
    from patchgate.secrets.base import Credentials, SecretsProvider
    from patchgate.secrets.factory import build_secrets

_LAZY = {"Credentials": "patchgate.secrets.base", "SecretsProvider": "patchgate.secrets.base",
         "build_secrets": "patchgate.secrets.factory"}

__all__ = ["Credentials", "SecretsProvider", "build_secrets", "install_logging_redaction", "redact_file",
           "redact_tree", "redactor", "safe_str"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'patchgate.secrets' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
