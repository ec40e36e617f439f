"""The settings module: every ``MTL_LAB_*`` variable parsed in one place, with one message style."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mtl_core.errors import ConfigError
from mtl_core.settings import VARIABLES, SettingError, Settings, settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_when_nothing_is_set() -> None:
    current = settings({})
    assert current.home == Path.home() / ".mtl_lab"
    assert current.workers >= 1
    assert current.pool_idle_exit == 60.0
    assert current.executor == "local"
    assert current.plugins == ()
    assert current.limits_file is None and current.lessons_dir is None and current.app_timings is None
    assert (current.max_csv_mb, current.max_csv_rows, current.max_csv_columns) == (50.0, 1_000_000, 1_000)
    assert current.live_refresh == 1.0
    assert current.app_autostart is True


def test_values_are_parsed() -> None:
    current = settings({
        "MTL_LAB_HOME": "~/lab", "MTL_LAB_WORKERS": " 3 ", "MTL_LAB_POOL_IDLE_EXIT": "0",
        "MTL_LAB_EXECUTOR": "local", "MTL_LAB_PLUGINS": "one, ./two.py,,", "MTL_LAB_MAX_CSV_MB": "0.5",
        "MTL_LAB_MAX_CSV_ROWS": "10", "MTL_LAB_LIVE_REFRESH": "600", "MTL_LAB_APP_AUTOSTART": "Off",
        "MTL_LAB_APP_TIMINGS": "/tmp/t.jsonl",
    })
    assert current.home == Path.home() / "lab"
    assert current.workers == 3 and current.pool_idle_exit == 0.0
    assert current.plugins == ("one", "./two.py")
    assert current.max_csv_mb == 0.5 and current.max_csv_rows == 10
    assert current.live_refresh == 60.0  # clamped
    assert current.app_autostart is False
    assert current.app_timings == Path("/tmp/t.jsonl")


def test_blank_values_count_as_unset() -> None:
    assert settings({"MTL_LAB_WORKERS": "  ", "MTL_LAB_HOME": ""}).home == Path.home() / ".mtl_lab"


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("MTL_LAB_WORKERS", "many", "workers", "a positive integer"),
        ("MTL_LAB_WORKERS", "2.5", "workers", "a positive integer"),
        ("MTL_LAB_WORKERS", "0", "workers", "a positive integer"),
        ("MTL_LAB_POOL_IDLE_EXIT", "-1", "pool_idle_exit", "a number of seconds ≥ 0"),
        ("MTL_LAB_POOL_IDLE_EXIT", "inf", "pool_idle_exit", "a number of seconds ≥ 0"),
        ("MTL_LAB_MAX_CSV_MB", "lots", "max_csv_mb", "a positive number"),
        ("MTL_LAB_MAX_CSV_ROWS", "1e2.5", "max_csv_rows", "a positive integer"),
        ("MTL_LAB_MAX_CSV_COLUMNS", "-3", "max_csv_columns", "a positive integer"),
        ("MTL_LAB_LIVE_REFRESH", "nan", "live_refresh", "a number of seconds"),
        ("MTL_LAB_APP_AUTOSTART", "maybe", "app_autostart",
         "one of 1, true, yes, on, 0, false, no, off"),
    ],
)
def test_a_bad_value_names_the_variable_what_was_expected_and_what_came(
        variable: str, value: str, attribute: str, expected: str) -> None:
    current = settings({variable: value})
    with pytest.raises(SettingError) as info:
        getattr(current, attribute)
    assert str(info.value) == f"`{variable}` must be {expected}, got {value!r}"
    assert isinstance(info.value, ConfigError) and info.value.field == variable


def test_a_bad_value_fails_only_what_reads_it() -> None:
    current = settings({"MTL_LAB_WORKERS": "many", "MTL_LAB_HOME": "/tmp/lab"})
    assert current.home == Path("/tmp/lab")


def test_settings_reads_the_environment_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTL_LAB_WORKERS", "2")
    assert settings().workers == 2
    monkeypatch.setenv("MTL_LAB_WORKERS", "5")
    assert settings().workers == 5


def test_unknown_names_are_refused() -> None:
    with pytest.raises(KeyError, match="MTL_LAB_NOPE is not an MTL Lab setting"):
        Settings({}).text("MTL_LAB_NOPE")


def test_the_readme_table_lists_every_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {match.group(1) for match in re.finditer(r"^\| `(MTL_LAB_[A-Z_]+)` \|", readme, flags=re.M)}
    assert rows == {variable.name for variable in VARIABLES}


def test_no_variable_is_read_outside_the_settings_module() -> None:
    """Code names its variables only through :mod:`mtl_core.settings` (docstrings may mention them)."""
    readers = re.compile(r"environ(?:\.get)?\(\s*[\"']MTL_LAB_|environ\[\s*[\"']MTL_LAB_|getenv\(\s*[\"']MTL_LAB_")
    offenders = [str(path.relative_to(ROOT)) for folder in ("mtl_core", "app") for path in (ROOT / folder).rglob("*.py")
                 if path.name != "settings.py" and readers.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
