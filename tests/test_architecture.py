"""Data flows one way (recipe -> dataclass -> trainer -> artifacts -> card -> Hub): training code never imports the
publisher, and every run-folder file name lives in `time_hub/run_dir.py`."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "time_hub"


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def package_graph() -> dict[str, set[str]]:
    """time_hub sub-package (or top-level module) -> the time_hub sub-packages / modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        targets = {name.split(".")[1] for name in imports(path) if name.startswith("time_hub.")}
        graph.setdefault(part, set()).update(targets - {part})
    return graph


def test_training_code_never_imports_the_publisher():
    graph = package_graph()
    assert {"distill", "tasks", "compress", "publish"} <= set(graph)
    for part in ("distill", "tasks", "compress", "bench", "card_data", "run_dir", "encoder"):
        assert "publish" not in graph.get(part, set()), f"time_hub/{part} imports time_hub.publish"


def test_run_folder_file_names_live_in_run_dir():
    names = ('"run_config.json"', '"selection.json"', '"distillation.json"', '"card_data.json"', '"stages.json"')
    offenders = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in PACKAGE.rglob("*.py")
        if path.name != "run_dir.py"
        for name in names
        if name in path.read_text(encoding="utf-8")
    ]
    assert not offenders, offenders
