"""The ``lessons`` command (``mtl_core.cli.lessons``), on the shipped lessons and on a tiny one."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from mtl_core.cli import lessons as lessons_command
from mtl_core.workshop.lessons import LESSONS_ENV, LessonError

TINY = """\
title: Tiny
story: Two planted tasks.
question: Do they run?
expect: They do.
preset:
  base: {suite: planted, suite_options: {n_tasks: 2, n_samples: 40, dim: 4}, strategy_options: {hidden: 4},
         epochs: 1, batch_size: 20, probe_interval: 1}
  runs:
    - label: a
    - label: b
      suite_options: {p_in: 0.0}
check:
  - conflict_fraction_at_least: {label: a, at_least: 2.0}
"""


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="python -m mtl_core")
    lessons_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.handler(args)


def test_list_show_and_check_the_shipped_lessons(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("lessons") == 0
    out = capsys.readouterr().out
    assert "1. related-tasks: Related vs unrelated tasks (16 runs)" in out
    assert "5. choosing-groups: Choosing groups — one TAG run vs the pairwise study (31 runs)" in out
    assert _run("lessons", "list") == 0  # the action a newcomer types: the same listing
    assert capsys.readouterr().out == out
    assert _run("lessons", "show", "scale-imbalance") == 0
    out = capsys.readouterr().out
    assert "Question:" in out and "gradnorm: scales" in out and "grad_share_larger(task='s2'" in out
    assert _run("lessons", "check", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)["valid"]) >= 6
    with pytest.raises(LessonError, match="`lesson` must be one of related-tasks"):
        _run("lessons", "show", "nope")


def test_run_trains_the_preset_and_exits_1_when_the_observation_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "01-tiny.yaml").write_text(TINY, encoding="utf-8")
    monkeypatch.setenv(LESSONS_ENV, str(tmp_path))
    # a conflict fraction can never reach 200 %: the check runs on the real probes and fails
    assert _run("lessons", "run", "tiny", "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["lesson"] == "tiny" and report["passed"] is False
    assert report["explanation"][0].startswith("✗ gradient conflict under a:")
    (tmp_path / "01-tiny.yaml").write_text(TINY.replace("at_least: 2.0", "at_least: 0.0"), encoding="utf-8")
    assert _run("lessons", "run", "tiny") == 0
    assert "The expected observation holds" in capsys.readouterr().out


def test_a_closed_pipe_ends_the_listing_quietly(tmp_path: Path) -> None:
    """``python -m mtl_core lessons list | head -1``: no BrokenPipeError traceback, exit 0."""
    import subprocess
    import sys

    command = f"{sys.executable} -m mtl_core lessons list --json | head -c 1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "[" and "Traceback" not in done.stderr, done.stderr
