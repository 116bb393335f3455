"""The engine is a library: nothing under src/patchgate imports pytest (src/patchgate_pytest/ and suites/ wire it in)."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "src" / "patchgate"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_pytest():
    offenders = [str(p.relative_to(ENGINE)) for p in ENGINE.rglob("*.py")
                 if {"pytest", "_pytest", "xdist", "allure"} & _imports(p)]
    assert not offenders, f"engine modules importing pytest/allure: {offenders}"


PYTEST_LAYER = ENGINE.parent / "patchgate_pytest"


def _python_files() -> list[Path]:
    return [*ENGINE.rglob("*.py"), *PYTEST_LAYER.rglob("*.py"), ENGINE.parents[1] / "conftest.py"]


def test_the_engine_and_its_pytest_layer_never_import_the_twin():
    """The twin is a lab kind like any other: reached through the registry of kinds (patchgate.labkinds)."""
    offenders = [str(p) for p in _python_files() if "patchgate_twin" in _imports(p)]
    assert not offenders, f"modules importing the twin: {offenders}"


def test_the_engine_names_no_twin_fault():
    """Faults are the twin's business: no string of the engine or its pytest layer is a fault's name."""
    from patchgate_twin.faults import FAULTS

    found = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named = [f for f in FAULTS if node.value == f or f"'{f}'" in node.value]
                found += [f"{path.name}:{node.lineno}: {f}" for f in named]
    assert not found, f"twin faults named outside the twin: {found}"


def test_no_handoff_of_the_twin_process():
    """The twin's process is started by its lab kind when the run builds its components, nowhere else."""
    source = "\n".join(p.read_text(encoding="utf-8") for p in _python_files())
    assert "handoff" not in source.lower() and "peek_names" not in source
