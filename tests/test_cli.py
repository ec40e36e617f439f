"""`python -m mtl_core` in real subprocesses: happy paths and every bad-input path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SMALL = ["--suite", "planted", "--suite-opt", "n_samples=150", "--suite-opt", "dim=6", "--suite-opt", "n_tasks=2",
         "--suite-opt", "n_groups=1", "--strategy-opt", "hidden=8", "--strategy-opt", "depth=1"]


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl_core", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_help_on_every_command() -> None:
    from mtl_core.cli import build_parser

    top = cli("--help")
    assert top.returncode == 0
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"suites", "train"} <= set(commands)
    for name in commands:
        result = cli(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "usage:" in result.stdout


def test_suites_json_lists_tasks_and_options() -> None:
    result = cli("suites", "--json")
    assert result.returncode == 0
    suites = {s["name"]: s for s in json.loads(result.stdout)}
    assert {"planted", "mmoe", "scales", "digits", "multidigit", "penguins"} <= set(suites)
    planted_options = {o["name"] for o in suites["planted"]["options"]}
    assert {"n_tasks", "n_groups", "p_in", "p_out", "n_samples", "scarce_task", "scarce_samples", "noise", "dim"} <= planted_options
    for task in suites["digits"]["tasks"]:
        assert task["kind"] == "classification" and task["metric"] == "accuracy" and task["higher_is_better"]
    text = cli("suites")
    assert text.returncode == 0 and "planted" in text.stdout


def test_train_writes_run_json_that_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = cli("train", *SMALL, "--strategy", "hard", "--method", "ew", "--epochs", "2", "--seed", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["config"]["seed"] == 3 and record["config"]["epochs"] == 2
    assert len(record["history"]) == 2
    assert {"train_loss", "val_loss", "val_metric"} <= set(record["history"][0])
    assert set(record["final_metrics"]) == {"t1", "t2"}
    assert record["planted_groups"] == [["t1", "t2"]]
    assert "train_seconds" in record["timings"]
    # the config round-trips into --config and gives the same run
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(record["config"]))
    again = tmp_path / "again.json"
    result = cli("train", "--config", str(config_file), "--out", str(again))
    assert result.returncode == 0, result.stderr
    assert json.loads(again.read_text())["final_metrics"] == record["final_metrics"]


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        "suite: planted\nsuite_options:\n  n_samples: 150\n  dim: 6\n  n_tasks: 2\n  n_groups: 1\n"
        "strategy_options: {hidden: 8, depth: 1}\nepochs: 3\nseed: 1\n"
    )
    out = tmp_path / "run.json"
    result = cli("train", "--config", str(config_file), "--epochs", "1", "--suite-opt", "p_in=0.5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["config"]["epochs"] == 1
    assert record["config"]["seed"] == 1
    assert record["config"]["suite_options"]["p_in"] == 0.5
    assert record["config"]["suite_options"]["n_samples"] == 150


def test_train_patience_flag_stops_early_and_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = cli("train", *SMALL, "--epochs", "200", "--patience", "2", "--lr", "0.05", "--batch-size", "16",
                 "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["config"]["patience"] == 2 and record["config"]["epochs"] == 200
    assert record["stop_reason"] == "patience" and record["stopped_epoch"] < 200
    assert f"stopped early at epoch {record['stopped_epoch']}" in result.stderr


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The same entry point as `python -m mtl_core`, in this process (fast); argparse errors
    exit through SystemExit exactly as they do on the command line."""
    from mtl_core.cli import main

    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_bad_input_exits_2_in_a_real_process() -> None:
    result = cli("train", "--suite", "nosuch")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: `suite` must be one of ") and line.endswith("got 'nosuch'")
    assert "planted" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--suite", "nosuch"], "`suite` must be one of"),
        (["--suite", "planted", "--tasks", "t1,zz"], "`tasks` must be task names from"),
        (["--strategy", "nosuch"], "`strategy` must be one of"),
        (["--method", "nosuch"], "`method` must be one of"),
        (["--epochs", "0"], "`epochs` must be an integer in [1,"),
        (["--lr", "-1"], "`lr` must be a number in (0.0"),
        (["--suite-opt", "p_in=1.5"], "`suite_options.p_in` must be"),
        (["--suite-opt", "nonsense"], "`--suite-opt` must be KEY=VALUE"),
        (["--suite-opt", "colour=red"], "`suite_options.colour` must be a known option"),
        (["--epochs", "many"], "argument --epochs: invalid int value"),
        (["--device", "tpu"], "`device` must be cpu or cuda"),
        (["--patience", "0"], "`patience` must be null (off) or an integer ≥ 1, got 0"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = run_in_process(capsys, "train", *args)
    assert code == 2
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("usage:") and not line.startswith("  ")]
    assert len(lines) == 1, stderr
    assert expected in lines[0]


def test_malformed_yaml_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("suite: planted\nepochs: [1, 2\n")
    result = cli("train", "--config", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "`config` must be valid YAML or JSON, got 'a syntax error at line" in result.stderr
    missing = cli("train", "--config", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "`config` must be an existing file" in missing.stderr
