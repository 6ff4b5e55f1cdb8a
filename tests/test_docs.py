"""The README stays true to the code it documents."""

from __future__ import annotations

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
