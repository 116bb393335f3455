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


# ------------------------------------------------------------------ no tricks, no third-party internals

ROOT = ENGINE.parents[1]
HARNESS = [ENGINE, ROOT / "src" / "patchgate_twin", ROOT / "src" / "patchgate_pytest"]
THIRD_PARTY = ("pypsrp", "psrpcore", "allure_commons", "allure_pytest", "xdist")


def _harness_files() -> list[Path]:
    return [path for folder in HARNESS for path in sorted(folder.rglob("*.py"))]


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _privates_defined(paths: list[Path]) -> set[str]:
    """The private names these files define: methods, and attributes they assign."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _private(node.name):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr):
                names.add(node.attr)
    return names


def _own_attributes(paths: list[Path]) -> set[str]:
    """The private attributes the harness's own objects keep (``self._cache = ...``)."""
    return {node.attr for path in paths for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _private(node.attr)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}


def _library_privates() -> frozenset[str]:
    """The private names the libraries define, but for attributes the harness's own objects keep too."""
    import importlib.util

    paths: list[Path] = []
    for package in THIRD_PARTY:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        paths += Path(next(iter(spec.submodule_search_locations))).rglob("*.py")
    return frozenset(_privates_defined(paths) - _own_attributes(_harness_files()))


# pytest-xdist's worker state: public-looking names of its private WorkerInteractor
XDIST_WORKER_STATE = frozenset({"torun", "nextitem_index", "WorkerInteractor"})


def _third_party_names(tree: ast.AST) -> set[str]:
    """Names a module imports from the libraries (classes it could subclass)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in THIRD_PARTY:
            names.update(alias.asname or alias.name for alias in node.names)
    return names


def _tricks(path: Path, library_privates: frozenset[str]) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    imported_from_libraries = _third_party_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                parts = module.split(".")
                if module in ("patchgate.turns", "patchgate.heap"):
                    found.append(f"{_where(path, node)} imports {module}")
                if parts[0] in THIRD_PARTY and any(_private(part) for part in parts[1:]):
                    found.append(f"{_where(path, node)} imports the private module {module}")
        elif isinstance(node, ast.Attribute):
            receiver = node.value
            if isinstance(receiver, ast.Name) and receiver.id == "gc" and node.attr in ("freeze", "set_threshold"):
                found.append(f"{_where(path, node)} calls gc.{node.attr}")
            if node.attr == "__class__" and isinstance(node.ctx, ast.Store):
                found.append(f"{_where(path, node)} swaps an object's class")
            if node.attr in XDIST_WORKER_STATE:
                found.append(f"{_where(path, node)} reads pytest-xdist's worker state ({node.attr})")
            if node.attr in library_privates and not (isinstance(receiver, ast.Name) and receiver.id in
                                                      ("self", "cls")):
                found.append(f"{_where(path, node)} reads or writes {node.attr} of an object it does not own")
        elif isinstance(node, ast.Constant) and node.value in XDIST_WORKER_STATE:
            found.append(f"{_where(path, node)} looks for pytest-xdist's {node.value}")
        elif isinstance(node, ast.ClassDef):
            bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
            if bases & imported_from_libraries:
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name in library_privates:
                        found.append(f"{_where(path, item)} overrides {item.name} of a library class")
    return found


def test_no_tricks_and_no_third_party_internals():
    """No interpreter-lock scheduler, no garbage-collector tuning, no class swaps, and nothing private of
    pypsrp, psrpcore, allure or pytest-xdist read, written or overridden (their public interfaces only)."""
    library_privates = _library_privates()
    assert {"_serializer", "_report_item", "_process_message", "_change_state"} <= library_privates
    found = [line for path in _harness_files() for line in _tricks(path, library_privates)]
    assert not found, "\n".join(found)
    assert not (ENGINE / "turns.py").exists() and not (ENGINE / "heap.py").exists()


# ------------------------------------------------------------------ the engine does not speak of the twin

# What may name the twin in the engine's code, and why. Comments and docstrings may (they explain); code and the
# strings it prints may not: the twin is one lab kind among others, reached through patchgate.labkinds.
TWIN_MENTIONS_ALLOWED = {
    ("labkinds.py", '"--twin-catalog"'): "the documented command-line option (docs/lab-file.md, README) whose "
                                         "folders reach the lab kinds that read catalogues",
    ("cli/common.py", "EPILOG"): "--help's examples run the bundled rehearsal lab, labs/twin.yaml, by its name",
}


def _documentation_lines(tree: ast.AST) -> set[int]:
    """Lines of docstrings and other bare string statements (attribute documentation)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _assigned_name(tree: ast.AST, line: int) -> str | None:
    """The module-level name a string on ``line`` is assigned to, if any (``EPILOG = \"\"\"...\"\"\"``)."""
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.Assign) and node.lineno <= line <= (node.end_lineno or node.lineno):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            return targets[0] if targets else None
    return None


def twin_mentions(path: Path) -> list[tuple[int, str, str]]:
    """(line, token, what it belongs to) for every name or string of ``path``'s code that says "twin"."""
    import io
    import tokenize

    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    documentation = _documentation_lines(tree)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT or "twin" not in token.string.lower():
            continue
        if token.type == tokenize.STRING and token.start[0] in documentation:
            continue
        owner = _assigned_name(tree, token.start[0]) if token.type == tokenize.STRING else None
        found.append((token.start[0], token.string, owner or token.string))
    return found


def test_the_engine_names_the_twin_only_in_comments_and_docstrings():
    """No name, message or option of src/patchgate/ says "twin" but the allow-listed ones: what is the twin's is
    decided by its lab kind (settings models, hooks, hints)."""
    found, used = [], set()
    for path in sorted(ENGINE.rglob("*.py")):
        where = path.relative_to(ENGINE).as_posix()
        for line, token, owner in twin_mentions(path):
            allowed = {(where, token), (where, owner)} & TWIN_MENTIONS_ALLOWED.keys()
            used |= allowed
            if not allowed:
                found.append(f"{where}:{line}: {token[:90]}")
    assert not found, "the engine names the twin outside comments and docstrings:\n" + "\n".join(found)
    assert used == TWIN_MENTIONS_ALLOWED.keys(), f"allowed mentions gone: {TWIN_MENTIONS_ALLOWED.keys() - used}"


def test_the_twin_scan_sees_names_and_strings_but_not_comments(tmp_path):
    """The scan above can fail: code and messages count, documentation does not."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""The twin, in a docstring."""\n# the twin, in a comment\n'
                      'def build(twin_catalogs):\n    """Twin words."""\n'
                      '    raise ValueError("only the twin can")\n')
    assert [token for _, token, _ in twin_mentions(sample)] == ["twin_catalogs", '"only the twin can"']
