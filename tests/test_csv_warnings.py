"""A classification target whose classes are too rare to learn or score is named at inspection, on the
Your data page and by ``suites inspect|add-csv`` (issue 13, item 7): the real Linnerud table (20 rows),
whose whole-inch ``Waist`` is detected as a 9-class target, is the case from the walk-through."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from app_support import open_page
from sklearn.datasets import load_linnerud

from mtl_core.suites.user_csv import refresh_user_suites
from mtl_core.userdata.csv_import import MIN_CLASS_ROWS, import_csv, inspect_csv, rare_class_warning


@pytest.fixture(autouse=True)
def _fresh_user_suites(_isolated_home: None, tmp_path_factory: pytest.TempPathFactory):
    refresh_user_suites()
    yield
    refresh_user_suites(tmp_path_factory.mktemp("no_suites"))


def linnerud_csv() -> bytes:
    """sklearn's bundled Linnerud data as one CSV: 3 exercises and 3 physiological measurements, 20 rows."""
    buffer = io.StringIO()
    load_linnerud(as_frame=True).frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def balanced_csv(rows: int = 60) -> bytes:
    lines = ["x,colour,level"] + [f"{i * 0.1:.1f},{['red', 'green', 'blue'][i % 3]},{i % 4}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def test_linnerud_waist_is_named_with_its_rare_classes_and_what_to_do() -> None:
    waist = {c.name: c for c in inspect_csv(linnerud_csv()).columns}["Waist"]
    assert waist.suggested_kind == "classification"  # 9 distinct whole numbers: detected as classes
    warning = waist.class_warning
    assert warning is not None
    assert "`Waist` has 9 classes on 20 rows, all with fewer than 5 rows" in warning
    assert "31 (1 row), 32 (1 row), 46 (1 row), 35 (2 rows)" in warning  # the rarest first, with their counts
    assert "and 3 more" in warning and "choose regression" in warning


def test_balanced_classes_give_no_warning_and_a_rare_text_class_is_named() -> None:
    columns = {c.name: c for c in inspect_csv(balanced_csv()).columns}
    assert columns["colour"].class_warning is None and columns["level"].class_warning is None
    rows = balanced_csv().decode().splitlines()
    rows[1] = rows[1].replace("red", "purple")  # one row of a new class
    colour = {c.name: c for c in inspect_csv(("\n".join(rows) + "\n").encode()).columns}["colour"]
    assert "1 of them with fewer than 5 rows: purple (1 row)" in colour.class_warning
    assert "Merge the rare classes" in colour.class_warning


def test_threshold_is_min_class_rows() -> None:
    assert rare_class_warning("t", {"a": MIN_CLASS_ROWS, "b": 40}, numeric=False) is None
    assert "a (4 rows)" in rare_class_warning("t", {"a": MIN_CLASS_ROWS - 1, "b": 40}, numeric=False)


def test_import_reports_rare_classes_of_the_rows_it_keeps(tmp_path: Path) -> None:
    report = import_csv(linnerud_csv(), "linnerud", targets=["Waist", "Pulse"], home=tmp_path)
    assert [t.kind for t in report.targets] == ["classification", "regression"]
    assert any("`Waist` has 9 classes on 20 rows" in w for w in report.warnings)
    assert not any("`Pulse`" in w for w in report.warnings)
    regression = import_csv(linnerud_csv(), "linnerud2", targets=["Waist", "Pulse"], home=tmp_path,
                            kinds={"Waist": "regression"})
    assert not any("classes" in w for w in regression.warnings)


def test_cli_inspect_and_add_csv_print_the_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mtl_core.cli import main

    path = tmp_path / "linnerud.csv"
    path.write_bytes(linnerud_csv())
    assert main(["suites", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: As a classification target, `Waist` has 9 classes" in out
    assert "`Pulse`" not in out.split("warning:", 1)[1]  # detected as regression: nothing to say
    assert main(["suites", "add-csv", str(path), "--targets", "Waist,Weight", "--name", "lin"]) == 0
    out = capsys.readouterr().out
    assert "warning: As a classification target, `Waist`" in out
    assert main(["suites", "add-csv", str(path), "--targets", "Waist,Weight", "--name", "lin_json", "--json"]) == 0
    assert any("`Waist`" in w for w in json.loads(capsys.readouterr().out)["warnings"])


def test_data_page_warns_beside_the_kind_and_stops_once_regression_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTL_LAB_APP_AUTOSTART", "0")
    at = open_page("data")
    at.file_uploader(key="data_upload").set_value(("linnerud.csv", linnerud_csv(), "text/csv"))
    at.run()
    at.multiselect(key="data_targets").set_value(["Waist", "Pulse"]).run()
    assert not at.exception, at.exception
    assert at.radio(key="data_kind_Waist").value == "classification"
    warnings = [w.value for w in at.warning]  # shown literally: the column name's backticks escaped
    assert any("Waist\\` has 9 classes on 20 rows" in w for w in warnings), warnings
    at.radio(key="data_kind_Waist").set_value("regression").run()
    assert not any("Waist" in w.value for w in at.warning)
