import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # tests/ is not a package; make tests/support importable
    sys.path.append(_TESTS)
