"""The import rules of docs/architecture.md: the import-linter contracts of pyproject.toml hold,
they break when a circle between the packages appears, and notifications' own modules have none
but the one named below."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("assets", "notifications", "tasks", "radgestmat")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# A message override validates itself by rendering (MessageOverride.clean, a call-time import).
KNOWN_CYCLES = [{"notifications.messages", "notifications.models"}]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.fixture
def tree(tmp_path):
    """A copy of the four packages and pyproject.toml to break."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # notifications publishing through the task object again: notifications -> tasks -> notifications
        ("notifications/publishing.py", "from tasks import send_notification", "notifications.publishing -> tasks"),
        # the Celery app importing the tasks: radgestmat.celery -> tasks -> notifications -> radgestmat.celery
        ("radgestmat/watchdog.py", "import tasks.alerts", "radgestmat.watchdog -> tasks.alerts"),
        # the alert check importing the /healthz view: notifications.alerts -> radgestmat.health -> notifications
        ("notifications/alerts.py", "from radgestmat import health", "notifications.alerts -> radgestmat.health"),
        # the lending pages reaching into the notification views
        ("assets/views.py", "from notifications.views import scheduler", "assets.views -> notifications.views"),
    ],
)
def test_a_circle_breaks_the_contracts(tree, module, line, broken):
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = lint_imports(tree)
    assert result.returncode == 1
    assert "BROKEN" in result.stdout and broken in result.stdout


def cycles_among(graph: grimp.ImportGraph, modules: set[str]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    edges = {m: graph.find_modules_directly_imported_by(m) & modules for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while True:
                other = stack.pop()
                component.add(other)
                if other == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def test_no_circle_among_the_notification_modules():
    graph = grimp.build_graph("notifications", exclude_type_checking_imports=True)
    modules = {m for m in graph.modules if ".tests" not in m and ".migrations" not in m}
    assert cycles_among(graph, modules) == KNOWN_CYCLES
