"""The package's imports follow its flow, one way: a module imports only from its own layer or the
layers before it, and no group of modules imports itself round. Read from the source with ast, so a
lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "evaluator"

# In flow order. A module may import from its own layer and any layer above it in this list.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("errors", "files", "redact", "patterns", "markers", "terminal")),
    ("models", ("models",)),
    (
        "pipeline",
        (
            "reading",
            "transcript_*",
            "transcripts",
            "metadata",
            "labels",
            "checks",
            "rubrics",
            "plan",
            "template_sandbox",
            "prompts",
            "config",
        ),
    ),
    ("judges", ("judges", "judges.*")),
    ("results", ("store", "aggregate", "results")),
    ("orchestration", ("manifest", "progress", "runner", "estimate", "batch", "batch_*")),
    ("analysis", ("analysis", "analysis.*")),
    ("views", ("views", "views.*")),
    ("interface", ("api", "watch", "cli", "cli.*", "__main__", "__init__")),
)


def layer_of(module: str) -> int:
    for index, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(module, pattern) for pattern in patterns):
            return index
    raise AssertionError(f"evaluator.{module} is in no layer: add it to LAYERS in {Path(__file__).name}")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every evaluator module this file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.removeprefix("evaluator.") for a in node.names if a.name.startswith("evaluator.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "evaluator":
                found |= {a.name for a in node.names}
            elif node.module.startswith("evaluator."):
                found.add(node.module.removeprefix("evaluator."))
    return found


def package_graph() -> dict[str, set[str]]:
    graph = {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}
    return {module: {t for t in targets if t in graph and t != module} for module, targets in graph.items()}


def back_edges(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"evaluator.{source} ({LAYERS[layer_of(source)][0]}) imports evaluator.{target} ({LAYERS[layer_of(target)][0]})"
        for source, targets in graph.items()
        for target in targets
        if layer_of(target) > layer_of(source) and source != "__init__"
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each import cycle once, as the modules along it."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def visit(module: str, path: list[str]) -> None:
        for target in sorted(graph.get(module, ())):
            if target in path:
                cycle = path[path.index(target) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append([*cycle, target])
            elif len(path) < len(graph):
                visit(target, [*path, target])

    for module in sorted(graph):
        visit(module, [module])
    return found


def test_every_import_follows_the_flow() -> None:
    assert back_edges(package_graph()) == []


def test_no_modules_import_each_other_round() -> None:
    assert cycles(package_graph()) == []


def test_the_package_root_only_re_exports_the_public_api() -> None:
    """`evaluator/__init__.py` sits above everything so it may import anything; it defines nothing but
    the module hooks (PEP 562) that load the public names on first use."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    defined = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    assert {n.name for n in defined} <= {"__getattr__", "__dir__"}
    assert any(isinstance(n, ast.Assign) and n.targets[0].id == "__all__" for n in tree.body if hasattr(n, "targets"))


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"rubrics": {"judges.rules"}, "judges.rules": set()}, ["evaluator.rubrics (pipeline)"]),
        ({"runner": {"analysis.summary"}, "analysis.summary": set()}, ["evaluator.runner (orchestration)"]),
        ({"views.html": {"analysis.summary"}, "analysis.summary": set()}, []),
    ],
)
def test_a_back_edge_is_caught(graph: dict[str, set[str]], expected: list[str]) -> None:
    assert [edge.split(" imports ")[0] for edge in back_edges(graph)] == expected


def test_a_cycle_is_caught_even_within_one_layer() -> None:
    graph = {"judges.select": {"judges.openai"}, "judges.openai": {"judges.select"}, "judges.base": set()}
    assert cycles(graph) == [["judges.openai", "judges.select", "judges.openai"]]
