"""Fixtures for the reliability tests: real OpenBao servers (tests/support/openbao.py) and helpers."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # tests/ is not a package; make tests/support importable
    sys.path.append(_TESTS)

from support.openbao import openbao, openbao_private  # noqa: E402,F401  (pytest fixtures)
