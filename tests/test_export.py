"""Exports (mtl_core.runs.export, `python -m mtl_core export`): runs and studies as JSON / CSV, figures as
HTML / PNG / plotly JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest

from mtl_core.analysis.transfer import transfer_matrix
from mtl_core.cli import main
from mtl_core.config import TrainConfig
from mtl_core.runs.export import (
    STUDY_CSV_COLUMNS,
    ExportError,
    export_figure,
    figure_from_json,
    figure_to_html,
    figure_to_json,
    figure_to_png,
    history_to_csv,
    run_to_csv,
    run_to_json,
    static_export_available,
    study_cells,
    study_to_csv,
    study_to_json,
    to_jsonable,
)
from mtl_core.runs.store import MetricRow, RunStore
from mtl_core.training.trainer import train

TASKS = ["t1", "t2", "t3"]


@cache
def run_record() -> dict[str, Any]:
    """A real (tiny) training run's run.json record."""
    config = TrainConfig(suite="planted", suite_options={"n_tasks": 2, "n_groups": 1, "n_samples": 64, "dim": 4},
                         strategy="hard", strategy_options={"hidden": 8, "depth": 1}, epochs=2, seed=0).validated()
    return train(config)


def make_study(with_extras: bool = True) -> dict[str, Any]:
    """A study.json-shaped dict whose transfer matrix is computed from per-seed metrics."""
    alone = {"t1": [0.80, 0.82, 0.81], "t2": [0.50, 0.55, 0.52], "t3": [1.0, 1.2, 1.1]}
    pairs = {("t1", "t2"): [0.84, 0.85, 0.86], ("t2", "t1"): [0.45, 0.50, 0.49], ("t1", "t3"): [0.80, 0.81, 0.83],
             ("t3", "t1"): [0.9, 1.0, 1.0], ("t2", "t3"): [0.5, 0.56, 0.52]}  # (t3, t2) never measured
    higher = {"t1": True, "t2": True, "t3": False}
    study: dict[str, Any] = {
        "format": "mtl_lab.study/1",
        "tasks": TASKS,
        "metric": {"source": "best_val_metric",
                   "tasks": {"t1": {"name": "accuracy", "higher_is_better": True},
                             "t2": {"name": "accuracy", "higher_is_better": True},
                             "t3": {"name": "mse", "higher_is_better": False}}},
        "transfer": transfer_matrix(TASKS, alone, pairs, higher).to_dict(),
    }
    if with_extras:
        study["cosine"] = [[1.0, 0.5, -0.2], [0.5, 1.0, 0.1], [-0.2, 0.1, 1.0]]
        study["affinity"] = [[0.0, 0.3, -0.1], [0.2, 0.0, 0.05], [None, 0.4, 0.0]]
    return study


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- runs --------------------------------------------------------------------------------------------


def test_json_is_strict_nan_and_infinity_become_null() -> None:
    value = {"a": math.nan, "b": [1.0, math.inf, (2, -math.inf)], "c": MetricRow(1, None, "t", "k", math.nan)}
    assert to_jsonable(value) == {"a": None, "b": [1.0, None, [2, None]],
                                  "c": {"step": 1, "epoch": None, "task": "t", "key": "k", "value": None}}
    text = run_to_json({"history": [{"epoch": 1, "val_loss": {"t1": math.nan}}]})
    assert json.loads(text) == {"history": [{"epoch": 1, "val_loss": {"t1": None}}]}
    assert "NaN" not in text
    with pytest.raises(ExportError, match="`record` must be a run"):
        run_to_json([1, 2])


def stored_run() -> tuple[RunStore, int]:
    store = RunStore()
    run_id = store.create_run({"suite": "planted", "epochs": 2})
    store.claim_run(run_id, pid=os.getpid())
    store.append_metrics(run_id, [(step, 1, task, "train_loss", 1.0 / step) for step in (1, 2) for task in ("t1", "t2")])
    store.append_metrics(run_id, [(2, 1, None, "epoch_seconds", math.nan), (2, 1, "=cmd", "val_loss", -0.25)])
    store.set_result(run_id, run_record())
    store.finish_run(run_id, "done", pid=os.getpid())
    return store, run_id


def test_run_csv_matches_runs_export(capsys: pytest.CaptureFixture[str]) -> None:
    store, run_id = stored_run()
    export = store.export_run(run_id)
    text = run_to_csv(export)
    rows = read_csv(text)
    assert list(rows[0]) == ["run_id", "step", "epoch", "task", "key", "value"]
    assert len(rows) == 6 and rows[0] == {"run_id": str(run_id), "step": "1", "epoch": "1", "task": "t1",
                                          "key": "train_loss", "value": "1.0"}
    assert rows[4]["task"] == "" and rows[4]["value"] == "nan"
    assert rows[5]["task"] == "'=cmd"  # a formula-looking name is neutralised; a negative number is not
    assert rows[5]["value"] == "-0.25"
    assert run_to_csv(store.metrics_after(run_id), run_id=run_id) == text
    assert run_to_csv([dict(r._asdict()) for r in store.metrics_after(run_id)], run_id=run_id) == text
    # exactly what `runs export --format csv` writes (the one CSV writer)
    assert main(["runs", "export", str(run_id), "--format", "csv"]) == 0
    assert capsys.readouterr().out == text
    # `export run ID` is `runs export ID`
    assert main(["export", "run", str(run_id), "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["run"]["id"] == run_id and exported["result"]["final_metrics"] == json.loads(
        run_to_json(run_record()))["final_metrics"]


def test_bad_metric_rows_are_refused() -> None:
    with pytest.raises(ExportError, match=r"`rows\[1\]` must be a metric row"):
        run_to_csv([(1, 1, "t", "k", 0.5), (1, 2)])
    with pytest.raises(ExportError, match="missing 'key'"):
        run_to_csv([{"step": 1, "value": 2.0}])
    with pytest.raises(ExportError, match="use history_to_csv"):
        run_to_csv(run_record())


def test_history_csv_of_a_real_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = run_record()
    rows = read_csv(history_to_csv(record))
    assert list(rows[0]) == ["epoch", "task", "key", "value"]
    keys = {(r["epoch"], r["task"], r["key"]) for r in rows}
    for epoch in ("1", "2"):
        for task in ("t1", "t2"):
            assert {(epoch, task, "train_loss"), (epoch, task, "val_loss"), (epoch, task, "val_metric")} <= keys
    first = next(r for r in rows if r["epoch"] == "1" and r["task"] == "t1" and r["key"] == "val_loss")
    assert float(first["value"]) == pytest.approx(record["history"][0]["val_loss"]["t1"])
    test_metric = next(r for r in rows if r["key"] == "test_metric" and r["task"] == "t2")
    assert test_metric["epoch"] == "" and float(test_metric["value"]) == pytest.approx(
        record["final_metrics"]["t2"]["value"])
    # the CLI on a run.json file
    path = tmp_path / "run.json"
    path.write_text(json.dumps(record))
    out = tmp_path / "history.csv"
    assert main(["export", "run", str(path), "--format", "csv", "--out", str(out)]) == 0
    assert out.read_text() == history_to_csv(record)
    assert main(["export", "run", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["final_metrics"].keys() == record["final_metrics"].keys()
    with pytest.raises(ExportError, match="`record` must be a run.json record"):
        history_to_csv({"metrics": []})


# --- studies -----------------------------------------------------------------------------------------


def test_study_cells_are_the_off_diagonal_transfer_cells() -> None:
    study = make_study()
    cells = study_cells(study)
    assert [(c["target"], c["partner"]) for c in cells] == [
        ("t1", "t2"), ("t1", "t3"), ("t2", "t1"), ("t2", "t3"), ("t3", "t1"), ("t3", "t2")]
    transfer = study["transfer"]
    by_pair = {(c["target"], c["partner"]): c for c in cells}
    cell = by_pair[("t1", "t2")]
    assert cell["mean"] == pytest.approx(transfer["mean"][0][1]) and cell["mean"] > 0  # t2 helps t1
    assert cell["ci_low"] < cell["mean"] < cell["ci_high"] and 0 <= cell["p_value"] <= 1 and cell["n"] == 3
    assert cell["p_value"] <= cell["p_adjusted"] <= 1  # Holm over the cells
    # a study written before p_adjusted was stored: computed from p_value, the same numbers
    old = {**study, "transfer": {k: v for k, v in transfer.items() if k != "p_adjusted"}}
    assert [c["p_adjusted"] for c in study_cells(old)] == pytest.approx([c["p_adjusted"] for c in cells])
    assert by_pair[("t3", "t1")]["mean"] > 0  # lower mse with t1: positive transfer
    assert by_pair[("t3", "t2")]["mean"] is None and by_pair[("t3", "t2")]["n"] == 0
    assert cell["metric"] == "accuracy" and by_pair[("t3", "t1")]["metric"] == "mse"
    assert cell["cosine"] == 0.5
    assert cell["affinity"] == 0.2  # Z_{t2→t1}: a step on the partner, effect on the target
    assert by_pair[("t1", "t3")]["affinity"] is None


def test_study_csv_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = make_study()
    rows = read_csv(study_to_csv(study))
    assert tuple(rows[0]) == STUDY_CSV_COLUMNS
    assert tuple(STUDY_CSV_COLUMNS[:6]) == ("target", "partner", "mean", "ci_low", "ci_high", "p_value")
    assert len(rows) == 6
    assert float(rows[0]["mean"]) == pytest.approx(study["transfer"]["mean"][0][1])
    assert rows[-1]["mean"] == "" and rows[-1]["p_value"] == ""
    plain = read_csv(study_to_csv(make_study(with_extras=False)))
    assert all(r["cosine"] == "" and r["affinity"] == "" for r in plain)
    assert json.loads(study_to_json(study)) == json.loads(json.dumps(study))
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    out = tmp_path / "cells.csv"
    assert main(["export", "study", str(path), "--out", str(out)]) == 0
    assert out.read_text() == study_to_csv(study)
    assert main(["export", "study", str(path), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["tasks"] == TASKS


@pytest.mark.parametrize(
    ("study", "message"),
    [
        ([1, 2], "`study` must be a study.json dict"),
        ({"tasks": TASKS}, "with a `transfer` matrix"),
        ({"transfer": {"mean": [[None]]}}, "with a list of `tasks`"),
        ({"tasks": TASKS, "transfer": {"mean": [[None, 1.0], [1.0, None]]}}, r"`transfer.mean` must be a 3 × 3 matrix"),
        ({"tasks": ["a", "b"], "transfer": {"mean": [[None, "x"], [0.1, None]]}}, r"`transfer.mean\[0\]\[1\]` must hold"),
    ],
)
def test_bad_studies_are_refused(study: Any, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        study_to_csv(study)


# --- figures -----------------------------------------------------------------------------------------


def figure() -> go.Figure:
    return go.Figure(go.Scatter(x=[1, 2, 3], y=[4.5, 5.5, 6.5], name="loss t1"), layout={"title": {"text": "Loss"}})


def test_figure_to_html_is_standalone_and_interactive(tmp_path: Path) -> None:
    html = figure_to_html(figure())
    assert "<html>" in html[:100] and "Plotly.newPlot" in html and "loss t1" in html
    assert len(html) > 1_000_000  # plotly.js embedded: it works offline
    light = figure_to_html(figure(), include_plotlyjs="cdn")
    assert len(light) < 50_000 and "cdn.plot.ly" in light
    path = figure_to_html(figure().to_dict(), tmp_path / "fig.html")
    written = path.read_text(encoding="utf-8")
    assert path == tmp_path / "fig.html" and "loss t1" in written and abs(len(written) - len(html)) < 100
    with pytest.raises(ExportError, match="cannot write"):
        figure_to_html(figure(), tmp_path / "no" / "such" / "dir.html")
    with pytest.raises(ExportError, match="`fig` must be a plotly Figure"):
        figure_to_html(42)
    with pytest.raises(ExportError, match="not a valid plotly figure"):
        figure_to_html({"data": [{"type": "nosuchtrace"}]})


def test_figure_json_round_trips_and_suffix_picks_the_format(tmp_path: Path) -> None:
    text = figure_to_json(figure())
    assert figure_from_json(text).data[0].y == (4.5, 5.5, 6.5)
    assert "Plotly.newPlot" in export_figure(text, tmp_path / "a.HTML").read_text(encoding="utf-8")
    assert json.loads(export_figure(figure(), tmp_path / "a.json").read_text())["data"][0]["name"] == "loss t1"
    with pytest.raises(ExportError, match="must end in .html, .png or .json"):
        export_figure(figure(), tmp_path / "a.svg")
    with pytest.raises(ExportError, match="not a plotly figure JSON"):
        figure_from_json("{oops")


def test_png_needs_a_static_exporter(tmp_path: Path) -> None:
    if static_export_available():
        try:
            data = figure_to_png(figure())
        except ExportError as exc:  # kaleido without a browser: still one clear message
            assert "kaleido" in str(exc)
        else:
            assert data.startswith(b"\x89PNG")
        return
    with pytest.raises(ExportError, match=r"PNG export needs a static image exporter: install the optional `kaleido`"):
        figure_to_png(figure(), tmp_path / "fig.png")
    assert not (tmp_path / "fig.png").exists()


def test_plotly_is_imported_only_when_a_figure_is_exported() -> None:
    code = "import sys, mtl_core.runs.export, mtl_core.cli.export; print('plotly' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_cli_figures_of_runs_studies_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_path = tmp_path / "run.json"
    run_path.write_text(json.dumps(run_record()))
    study_path = tmp_path / "study.json"
    study_path.write_text(json.dumps(make_study()))
    cases = [
        (["--run", str(run_path)], "Loss per task"),
        (["--run", str(run_path), "--kind", "metrics"], "Validation metric per task"),
        (["--study", str(study_path)], "transfer"),
        (["--study", str(study_path), "--kind", "cosine"], "cosine"),
        (["--study", str(study_path), "--kind", "affinity"], "affinity"),
    ]
    for index, (args, title) in enumerate(cases):
        out = tmp_path / f"fig{index}.json"
        assert main(["export", "figure", *args, "--out", str(out)]) == 0, capsys.readouterr().err
        assert title.lower() in json.dumps(json.loads(out.read_text())["layout"]["title"]).lower()
    html = tmp_path / "transfer.html"
    assert main(["export", "figure", "--study", str(study_path), "--out", str(html)]) == 0
    assert "Plotly.newPlot" in html.read_text(encoding="utf-8")
    again = tmp_path / "again.html"
    assert main(["export", "figure", str(tmp_path / "fig0.json"), "--out", str(again)]) == 0
    assert "Loss per task" in again.read_text(encoding="utf-8")
    store, run_id = stored_run()
    stored = tmp_path / "stored.json"
    assert main(["export", "figure", "--run", str(run_id), "--out", str(stored)]) == 0
    assert len(json.loads(stored.read_text())["data"]) == 4  # 2 tasks × (train, val)
    capsys.readouterr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "x.html"], "needs exactly one of FIGURE.json, --run or --study, got none"),
        (["--run", "run.json", "--study", "study.json", "--out", "x.html"], "got --run, --study"),
        (["--run", "run.json", "--kind", "transfer", "--out", "x.html"], "`--kind` must be one of losses, metrics"),
        (["--study", "study.json", "--kind", "losses", "--out", "x.html"], "`--kind` must be one of transfer"),
        (["--run", "run.json", "--out", "x.svg"], "must end in .html, .png or .json"),
        (["--run", "nosuch.json", "--out", "x.html"], "no such file"),
        (["--run", "99", "--out", "x.html"], "no run store"),
        (["--study", "run.json", "--out", "x.html"], "with a list of `tasks`"),
        (["--run", "study.json", "--out", "x.html"], "must be a run.json"),
    ],
)
def test_cli_figure_errors_are_one_line(args: list[str], message: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps(run_record()))
    (tmp_path / "study.json").write_text(json.dumps(make_study(with_extras=False)))
    assert main(["export", "figure", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not (tmp_path / "x.html").exists()


def test_cli_png_without_kaleido_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if static_export_available():
        pytest.skip("kaleido is installed here")
    study_path = tmp_path / "study.json"
    study_path.write_text(json.dumps(make_study()))
    assert main(["export", "figure", "--study", str(study_path), "--out", str(tmp_path / "x.png")]) == 2
    assert "install the optional `kaleido` package" in capsys.readouterr().err


def test_cli_study_figures_order_the_tasks_as_the_relationships_page_does(tmp_path: Path) -> None:
    from mtl_core.report import study_task_order

    study = make_study()
    study["tasks"] = ["t1", "t2", "t3"]
    study_path = tmp_path / "study.json"
    study_path.write_text(json.dumps(study))
    order = study_task_order(study)
    assert order is not None and sorted(order) == [0, 1, 2]
    expected = [study["tasks"][i] for i in order]
    for kind in ("transfer", "cosine", "affinity"):
        out = tmp_path / f"{kind}.json"
        assert main(["export", "figure", "--study", str(study_path), "--kind", kind, "--out", str(out)]) == 0
        heatmap = json.loads(out.read_text())["data"][0]
        assert list(heatmap["x"]) == expected, kind
    cosine = json.loads((tmp_path / "cosine.json").read_text())["data"][0]
    i, j = expected.index("t1"), expected.index("t3")
    assert cosine["z"][i][j] == pytest.approx(-0.2)  # the cells move with their labels
