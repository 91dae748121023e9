"""The package's layer rules (README, "Architecture"), read from the imports of every module,
lazy imports inside functions included."""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pcseg"
# the lower floors: reading, generating, scoring and looking at data needs no model
DATA_ONLY = {"io", "synth", "evaluation", "viz"}
MODEL_SIDE = {"models", "sparse", "engine", "pipelines", "apps", "cli"}
# who may import the engine (training, checkpoints, prediction): the pipelines and what runs them
ENGINE_USERS = {"engine", "pipelines", "apps", "cli"}


def part_of(module: str) -> str:
    """'pcseg.io.scannet' -> 'io'; 'pcseg.cli' -> 'cli'; 'pcseg' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _is_module(parts: list[str]) -> bool:
    path = PACKAGE.parent.joinpath(*parts)
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports() -> dict[str, set[str]]:
    """Top-level part of pcseg -> the parts of pcseg its modules import."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = module if rel.name == "__init__" else module.rpartition(".")[0]
        here = part_of(module)
        targets = graph.setdefault(here, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    names = [".".join(base + ([node.module] if node.module else []))]
                    if not node.module:  # from . import x: x is a module, or a name of the package itself
                        names = [".".join(base + [a.name]) if _is_module(base + [a.name]) else ".".join(base)
                                 for a in node.names]
                else:
                    names = [node.module or ""]
            else:
                continue
            for name in names:
                if name == "pcseg" or name.startswith("pcseg."):
                    target = part_of(name)
                    if target and target != here:
                        targets.add(target)
    return graph


GRAPH = imports()


def test_the_graph_is_read():
    assert {"io", "engine", "pipelines", "cli", "models", "sparse"} <= set(GRAPH)
    assert "io" in GRAPH["engine"] and "engine" in GRAPH["pipelines"] and "pipelines" in GRAPH["cli"]


@pytest.mark.parametrize("part", sorted(DATA_ONLY))
def test_data_floors_import_no_model_side(part):
    assert not GRAPH.get(part, set()) & MODEL_SIDE, f"pcseg.{part} imports {sorted(GRAPH[part] & MODEL_SIDE)}"


def test_nothing_imports_the_cli_and_only_its_users_import_the_engine():
    for part, targets in GRAPH.items():
        if part != "__main__":  # `python -m pcseg` is the command line
            assert "cli" not in targets, f"pcseg.{part} imports pcseg.cli"
        if part not in ENGINE_USERS:
            assert "engine" not in targets, f"pcseg.{part} imports pcseg.engine"


def test_the_engine_never_imports_a_pipeline():
    """It drives the interface (engine/pipeline.py); pcseg.pipelines holds the table and does the choosing."""
    assert not GRAPH["engine"] & {"pipelines", "apps", "baseline2d"}, sorted(GRAPH["engine"])


def test_no_import_cycle_between_parts():
    state: dict[str, int] = {}

    def visit(part, path):
        state[part] = 1
        for nxt in sorted(GRAPH.get(part, ())):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[part] = 2

    for part in sorted(GRAPH):
        if part not in state:
            visit(part, [part])
