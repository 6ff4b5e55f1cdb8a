"""Layers point one way (DESIGN.md §1): the domain knows its own errors and the stores'
(StateUnavailable, NotFound…), never a transport's or a client library's."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import ROOT

FOREIGN = {"redis", "asyncpg", "sanic", "sanic_ext", "socketio", "engineio", "aiohttp"}
# The domain, and the errors and shapes it raises and answers.
DOMAIN = sorted((ROOT / "app" / "domain").glob("*.py")) + [
    ROOT / "app" / name for name in ("errors.py", "models.py", "contract.py")
]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("module", DOMAIN, ids=[p.stem for p in DOMAIN])
def test_a_domain_module_imports_no_transport_or_client_library(module: Path):
    assert imported_packages(module) & FOREIGN == set()
