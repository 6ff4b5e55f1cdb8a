"""Settings are typed and checked: a closed set of environments and log formats, numbers
within their range, each refusal one line that names the variable, its bounds and the
value it got."""

from __future__ import annotations

import pytest

from app.config import SETTINGS, ConfigError, Settings, markdown_table


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PORT": "70000"}, "PORT must be between 1 and 65535, got 70000"),
        ({"PORT": "0"}, "PORT must be between 1 and 65535, got 0"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be between 1 and "),
        ({"RATE_WINDOW": "-5"}, "RATE_WINDOW must be between 1 and "),
        ({"TYPING_TTL": "0"}, "TYPING_TTL must be between 1 and "),
        ({"DB_POOL_MAX": "0"}, "DB_POOL_MAX must be between 1 and "),
        ({"TRUSTED_PROXIES": "-1"}, "TRUSTED_PROXIES must be between 0 and "),
        ({"ARGON2_MEMORY_KIB": "4"}, "ARGON2_MEMORY_KIB must be between 8 and "),
        ({"PORT": "http"}, "PORT must be an integer, got 'http'"),
        ({"ENV": "prod"}, "ENV must be one of development, test, production, got 'prod'"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be one of text, json, got 'xml'"),
        (
            {"AUTO_ASSIGN": "random"},
            "AUTO_ASSIGN must be one of off, round_robin, least_open, got 'random'",
        ),
        ({"AVAILABILITY_GRACE": "0"}, "AVAILABILITY_GRACE must be between 1 and "),
        (
            {"DB_POOL_MIN": "20", "DB_POOL_MAX": "5"},
            "DB_POOL_MIN (20) must not be above DB_POOL_MAX (5)",
        ),
    ],
)
def test_a_setting_out_of_its_range_is_refused_in_one_line(environ, message):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(environ)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_every_refusal_is_named_at_once():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({"PORT": "0", "RATE_WINDOW": "0"})
    assert "PORT must be" in str(refused.value) and "RATE_WINDOW must be" in str(refused.value)


def test_settings_built_in_code_are_checked_too():
    with pytest.raises(ConfigError, match="PRESENCE_TTL must be between 1 and"):
        Settings(presence_ttl=0)


def test_the_bounds_themselves_are_accepted():
    settings = Settings.from_env({"PORT": "65535", "TRUSTED_PROXIES": "0", "ENV": "test"})
    assert settings.port == 65535 and settings.trusted_proxies == 0 and settings.env == "test"


def test_every_number_has_a_range_and_the_readme_table_shows_it():
    table = markdown_table()
    for name, default, _ in SETTINGS:
        if isinstance(default, int) and not isinstance(default, bool):
            row = next(line for line in table.splitlines() if line.startswith(f"| `{name}`"))
            assert "Range: " in row, f"{name} has no range"
