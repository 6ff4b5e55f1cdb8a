"""The README stays true to the code it documents."""

from __future__ import annotations

import ast
import subprocess
import sys

from app import models
from app.api import routes
from app.config import SETTINGS, markdown_table
from app.contract import markdown_table as models_table
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def test_readme_holds_exactly_the_generated_configuration_table():
    assert markdown_table() in README


def test_readme_table_lists_every_setting_once():
    for name, _, _ in SETTINGS:
        assert README.count(f"| `{name}` |") == 1, name


def test_config_module_prints_the_table():
    out = subprocess.run(
        [sys.executable, "-m", "app.config", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == markdown_table()


def test_readme_holds_exactly_the_field_table_generated_from_the_models():
    table = models_table(models.declared())
    assert table in README
    out = subprocess.run(
        [sys.executable, "-m", "app.models", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == table


def test_readme_holds_exactly_the_route_table_generated_from_the_declarations():
    table = routes.markdown_table()
    assert table in README
    out = subprocess.run(
        [sys.executable, "-m", "app.api.routes", "--markdown"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == table


def test_readme_holds_exactly_the_event_tables_generated_from_the_catalog():
    tables = models.events_table()
    assert tables in README
    out = subprocess.run(
        [sys.executable, "-m", "app.models", "--events"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout == tables


def _first_arguments(method: str) -> set[str]:
    """The event names the code passes as the first argument of `<obj>.<method>(…)`."""
    names = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == method
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return names


def test_the_event_catalog_is_what_the_server_handles_and_sends():
    assert {e.name for e in models.CLIENT_EVENTS} == _first_arguments("_on")
    assert {e.name for e in models.SERVER_EVENTS} == _first_arguments("emit")
