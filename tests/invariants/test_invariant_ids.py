"""The invariant ids the policy knows (what a waiver may name, what the twin's ``expect`` tables may list) are the
suites' own: every ``@invariant("...")`` in suites/*.py, read as source, never imported."""

from __future__ import annotations

import ast
from pathlib import Path

from patchgate.config.policy import INVARIANTS
from patchgate_twin.behaviours import INVARIANT_IDS

SUITES = Path(__file__).resolve().parents[2] / "suites"


def declared_invariants(folder: Path) -> dict[str, str]:
    """Invariant id -> ``file:line`` of the ``@invariant("id", ...)`` decorators in ``folder/test_*.py``."""
    found: dict[str, str] = {}
    for path in sorted(folder.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for decorator in node.decorator_list:
                if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Name)
                        and decorator.func.id == "invariant" and decorator.args
                        and isinstance(decorator.args[0], ast.Constant)):
                    found[str(decorator.args[0].value)] = f"{path.name}:{decorator.lineno}"
    return found


def test_the_policy_lists_exactly_the_invariants_the_suites_declare() -> None:
    declared = declared_invariants(SUITES)
    assert len(declared) >= 20, f"found only {sorted(declared)} in {SUITES}: is the decorator still @invariant?"
    missing = {i: where for i, where in declared.items() if i not in INVARIANTS}
    stale = sorted(INVARIANTS - set(declared))
    assert not missing and not stale, (
        f"patchgate.config.policy.INVARIANTS and the suites disagree: declared in suites but not listed {missing}; "
        f"listed but declared by no suite {stale}")


def test_the_twin_checks_expect_tables_against_the_same_list() -> None:
    assert set(INVARIANT_IDS) == set(declared_invariants(SUITES))


def test_a_decorator_the_policy_does_not_list_is_found(tmp_path: Path) -> None:
    (tmp_path / "test_extra.py").write_text(
        'from patchgate_pytest.invariants import invariant\n\n\n@invariant("wsus.new_check", severity="normal")\n'
        "def test_new(obs):\n    assert obs\n", encoding="utf-8")
    assert declared_invariants(tmp_path) == {"wsus.new_check": "test_extra.py:4"}
