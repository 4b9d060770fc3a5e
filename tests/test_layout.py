"""Package layout: imports flow one way (no cycle between modules or between subpackages), library code never
imports the CLI, and the README's layout table names what is there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "ascend_slim"
README = PACKAGE.parent.parent / "README.md"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``ascend_slim`` module that ``path`` imports, at top level or inside functions."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "ascend_slim")
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "ascend_slim":
                continue
            for alias in node.names:  # `from . import eval` names a module; `from .x import y` names x
                candidate = f"{target}.{alias.name}"
                found.add(candidate if candidate in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: _imports(path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _unit(module: str) -> str:
    """The subpackage (``ascend_slim.runtime``) or top-level module (``ascend_slim.detector``) of a module."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules():
    assert _cycles(GRAPH) == []


def test_no_import_cycle_between_subpackages():
    units: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        # a package's __init__ re-exporting its own modules is not a cycle with them
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    assert _cycles(units) == []


def test_library_modules_never_import_the_cli():
    entry_points = {"ascend_slim.cli", "ascend_slim.__main__"}  # `python -m ascend_slim` runs the CLI
    offenders = {m: sorted(t for t in targets if _unit(t) == "ascend_slim.cli")
                 for m, targets in GRAPH.items() if _unit(m) not in entry_points}
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_readme_layout_table_matches_the_tree():
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Layout\n"):]
    section = section[:section.index("\n## ", 1)]
    rows = re.findall(r"^\| `([^`]+)`", section, flags=re.M)
    root = PACKAGE.parent.parent
    listed = {row.rstrip("/") for row in rows}
    missing = sorted(p for p in listed if not (root / p).exists())
    assert missing == [], f"README layout names paths that do not exist: {missing}"
    subpackages = {f"python/ascend_slim/{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert sorted(subpackages - listed) == [], "README layout table misses subpackages"


# One home per fact: a pattern that states the fact, and the only module allowed to state it.
ONE_HOME = {
    "validation settings": (r"conf(?:_thres)?\"?\s*[=:]\s*0\.001|max_det\"?\s*[=:]\s*300\b",
                            "ascend_slim.evaluation.protocol"),
    "data-kind rule and default splits": (r"\(\s*\"trainval\",\s*\"test\"\s*\)|else\s+\"yaml\"|DEFAULT_SPLITS\s*=",
                                          "ascend_slim.data.samples"),
    "callback name -> restore registry": (r"\.from_state\s*[,}]|def\s+\w*restore\w*_callbacks|RESTORABLE\s*[:=]",
                                          "ascend_slim.train.callbacks"),
    "onnxruntime session options": (r"SessionOptions\(|ONNX_NUMPY_DTYPES\s*=|\"tensor\(float16\)\"",
                                    "ascend_slim.runtime.onnx_session"),
}


def _stating(pattern: str) -> set[str]:
    """Modules whose source (docstrings and comments included) matches ``pattern``."""
    return {name for name, path in MODULES.items() if re.search(pattern, path.read_text(encoding="utf-8"))}


def test_each_fact_has_one_home():
    found = {fact: sorted(_stating(pattern)) for fact, (pattern, _) in ONE_HOME.items()}
    assert found == {fact: [home] for fact, (_, home) in ONE_HOME.items()}


def test_the_fact_scan_finds_restatements():
    assert re.search(ONE_HOME["validation settings"][0], "Detector(w, conf_thres=0.001, iou_thres=0.6)")
    assert re.search(ONE_HOME["validation settings"][0], 'dict("max_det": 300)')
    assert re.search(ONE_HOME["data-kind rule and default splits"][0], 'kind = "voc" if p.is_dir() else "yaml"')
    assert re.search(ONE_HOME["callback name -> restore registry"][0], '{"distill": Distiller.from_state}')


def _type_unions_evaluated_at_import(tree: ast.Module) -> list[int]:
    """Lines of ``X | Y`` between type names in module-level code outside annotations (Python 3.9 evaluates them
    and has no ``type.__or__``)."""
    def is_type(node: ast.expr) -> bool:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return is_type(node.left) or is_type(node.right)
        if isinstance(node, ast.Constant):
            return node.value is None
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
        return name in ("str", "int", "float", "bytes", "bool", "ndarray", "Tensor") or name[:1].isupper()

    lines = []
    for statement in tree.body:
        values = [statement.value] if isinstance(statement, (ast.Assign, ast.Expr)) else \
            [statement.value] if isinstance(statement, ast.AnnAssign) and statement.value else []
        for value in values:
            lines += [n.lineno for n in ast.walk(value) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
                      and is_type(n)]
    return lines


def test_nothing_evaluated_at_import_needs_python_3_10():
    found = {name: lines for name, path in MODULES.items()
             if (lines := _type_unions_evaluated_at_import(ast.parse(path.read_text(encoding="utf-8"))))}
    assert found == {}, f"X | Y evaluated at import (fails on Python 3.9; use typing.Union): {found}"
    assert _type_unions_evaluated_at_import(ast.parse("import numpy as np\nA = np.ndarray | str\nB = 1 | 2\n")) == [2]
