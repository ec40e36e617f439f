"""The one-file study report (``export report``, :mod:`mtl_core.report`): a real small study with a
trained grouping, exported by id and from its study.json; one plotly.js, every section, hostile task
names shown literally, the reproducing command parsed back into the same study, bad input refused
with one line and nothing written, a 10-task study under 5 MB, and every figure drawn in Chromium with
the network blocked."""

from __future__ import annotations

import json
import os
import random
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mtl_core.cli import build_parser, main
from mtl_core.config import TrainConfig
from mtl_core.report import REPORT_SECTIONS, check_study, reproduce_command, study_report, write_report
from mtl_core.runs.executors import RunOutcome, SerialExecutor
from mtl_core.runs.export import ExportError
from mtl_core.studies.grouping_runs import collect_grouping, evaluate_grouping, plan_grouping
from mtl_core.studies.study import StudySpec, collect_study, plan_study, run_study

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Three planted tasks, a few epochs: the study and its grouping train in a few seconds.
TINY = TrainConfig(
    suite="planted",
    suite_options={"n_tasks": 3, "n_groups": 2, "n_samples": 60, "dim": 6},
    strategy_options={"hidden": 8, "depth": 1},
    batch_size=32,
    lr=0.05,
)
SPEC = StudySpec(TINY, seeds=(0, 1), include_all=True, tag=True, max_epochs=6, patience=2)
#: Names a user could give to the columns of an uploaded CSV: markup, entities, quotes, plotly syntax.
HOSTILE = {"t1": "<script>alert(1)</script>", "t2": 'a&amp;b "q" </script>', "t3": "$x$ %{y} <b>bold</b>"}


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A finished study recorded in its own home, one grouping trained from it, its study.json."""
    home = tmp_path_factory.mktemp("report_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTL_LAB_HOME", str(home))
        executor = SerialExecutor(home=home)
        study = run_study(SPEC, executor)
        evaluate_grouping(study, [["t1", "t3"], ["t2"]], "transfer", executor)
    path = home / "study.json"
    path.write_text(json.dumps(study), encoding="utf-8")
    yield {"home": str(home), "study": study, "path": path, "id": study["group_id"]}


def _report(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["export", "report", *args])
    return code, capsys.readouterr().err


def _figure_count(text: str) -> int:
    return len(re.findall(r'<div class="figure" id="figure-\d+"></div>', text))


def test_report_of_a_stored_study_by_id(stored: dict[str, Any], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    code, err = _report(["--study", stored["id"], "--home", stored["home"], "--out", str(out)], capsys)
    assert code == 0, err
    assert f"wrote {out}" in err
    text = out.read_text(encoding="utf-8")
    assert out.stat().st_size < 5_000_000
    import plotly.offline

    # plotly.js once, whatever the number of figures
    assert text.count(plotly.offline.get_plotlyjs()[:60]) == 1
    assert text.count("<script") == 2  # plotly.js, then the figures: nothing loaded from elsewhere
    for section in REPORT_SECTIONS:
        assert f'<section id="{section}">' in text, section
    # transfer, affinity, cosine, ≥ 1 suggested grouping, measured vs predicted, forecast
    figures = _figure_count(text)
    assert figures >= 6 and text.count('["figure-') == figures
    assert "Holm" in text and "positive = j helps i" in text and "max_epochs = 6" in text
    assert "{t1, t3} · {t2} from transfer" in text  # the grouping trained, found in the store
    for run in stored["study"]["runs"]:
        assert f"<td>{run['run_id']}</td>" in text
    assert stored["id"] in text


def test_report_from_study_json_without_a_store(stored: dict[str, Any], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "from_file.html"
    empty_home = tmp_path / "empty_home"
    code, err = _report(["--study", str(stored["path"]), "--home", str(empty_home), "--out", str(out)], capsys)
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert '<section id="transfer">' in text and '<section id="measured">' not in text  # no store: no grouping
    assert not empty_home.exists()  # reading a study file creates no store
    # with the study's store, the file's report finds the grouping too
    code, err = _report(["--study", str(stored["path"]), "--home", stored["home"], "--out", str(out)], capsys)
    assert code == 0 and '<section id="measured">' in out.read_text(encoding="utf-8")
    # what a study does not have is left out: no forecast (older studies), no TAG, no cosine
    bare = study_report({**stored["study"], "forecast": None, "affinity": None, "cosine": None, "groupings": {}})
    for section in ("forecast", "cosine"):
        assert f'<section id="{section}">' not in bare
    assert "Not measured: the runs recorded no TAG affinity." in bare  # the study asked for it
    assert '<section id="groupings">' in bare and "From relative change vs alone" in bare


def _parsed_spec(argv: list[str]) -> StudySpec:
    """What ``python -m mtl_core study`` makes of ``argv``: its parser, then the spec as its handler builds it."""
    from mtl_core.cli.common import config_from_args
    from mtl_core.studies.study import apply_study_defaults

    assert argv[:4] == ["python", "-m", "mtl_core", "study"]
    args = build_parser().parse_args(argv[3:])
    config = config_from_args(args, extra={"method": args.method, "seed": args.seed}, defaults=apply_study_defaults)
    return StudySpec(base=config, seeds=StudySpec.seeds_from(config.seed, args.seeds), include_all=args.include_all,
                     tag=args.tag, metric=args.metric, probe_interval=config.probe_interval,
                     patience=args.study_patience, max_epochs=args.max_epochs).validated()


def test_the_command_in_the_report_reproduces_the_study(stored: dict[str, Any], tmp_path: Path) -> None:
    study = stored["study"]
    argv, caveats = reproduce_command(study)
    assert caveats == []
    assert _parsed_spec(argv).to_dict() == study["spec"]
    assert plan_study(_parsed_spec(argv)) == plan_study(StudySpec.from_dict(study["spec"]))  # the same runs
    assert argv[-2:] == ["--out", "study.json"]
    # the report shows exactly this command line (quoted for a shell, escaped for HTML)
    import html

    assert html.escape(shlex.join(argv)) in study_report(study)
    # another study: another strategy, options, method, seeds and protocol, still the same spec back
    other = StudySpec(TINY.replace(strategy="mmoe", strategy_options={}, method="pcgrad", lr=0.002, batch_size=16),
                      seeds=(3, 4, 5), include_all=False, tag=False, metric="final", probe_interval=7, patience=4,
                      max_epochs=9).validated()
    argv, caveats = reproduce_command({"spec": other.to_dict(), "tasks": list(other.tasks)})
    assert caveats == [] and plan_study(_parsed_spec(argv)) == plan_study(other)
    # a study written before the protocol existed: its runs trained `epochs` epochs, and so do the command's
    legacy = {"config": {**TINY.replace(tasks=("t1", "t2"), epochs=5).to_dict()}, "seeds": [0, 1]}
    argv, caveats = reproduce_command({"spec": legacy, "tasks": ["t1", "t2"]})
    assert caveats == [] and plan_study(_parsed_spec(argv)) == plan_study(StudySpec.from_dict(legacy))
    # what the command cannot say is said beside it
    gaps = StudySpec(TINY, seeds=(0, 2)).validated()
    _, caveats = reproduce_command({"spec": gaps.to_dict(), "tasks": list(gaps.tasks)})
    assert len(caveats) == 1 and "not consecutive" in caveats[0]


def _renamed(study: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(study)
    for old, new in names.items():
        text = text.replace(json.dumps(old), json.dumps(new))
    return json.loads(text)


def hostile_report(stored: dict[str, Any], path: Path) -> Path:
    """The stored study with its tasks renamed to :data:`HOSTILE` names, its report written to ``path``."""
    from mtl_core.report import trained_groupings
    from mtl_core.runs.store import RunStore, default_store_path

    study = _renamed(stored["study"], HOSTILE)
    evaluations = [_renamed(e, HOSTILE) for e in trained_groupings(stored["id"], RunStore(default_store_path(
        stored["home"])))]
    assert evaluations and study["tasks"] == list(HOSTILE.values())
    return write_report(study_report(study, evaluations), path)


def test_hostile_task_names_are_shown_literally(stored: dict[str, Any], tmp_path: Path) -> None:
    import html

    text = hostile_report(stored, tmp_path / "hostile.html").read_text(encoding="utf-8")
    assert text.count("<script") == 2 and text.count("</script>") == 2
    assert "<b>bold</b>" not in text and "alert(1)</script>" not in text
    for name in HOSTILE.values():
        assert html.escape(name) in text  # in the tables and headings, escaped once
    # inside the figures' JSON the names are plotly text (plot_text) with < > & as JS escapes
    assert "\\u0026lt;script\\u0026gt;alert(1)" in text


@pytest.mark.parametrize("case", ["unknown id", "no store", "not json", "not a study", "run json", "missing file",
                                  "grouping id", "out folder missing", "out is a folder", "out unwritable"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case: str, stored: dict[str, Any], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    home = stored["home"]
    source = stored["id"]
    expected = ""
    if case == "unknown id":
        source, expected = "study-nope", "no study `study-nope` in the run store"
    elif case == "no store":
        home, expected = str(tmp_path / "nowhere"), "there is no run store"
    elif case == "not json":
        (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
        source, expected = str(tmp_path / "bad.json"), "must be a study.json JSON file, but it is not JSON"
    elif case == "not a study":
        (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
        source, expected = str(tmp_path / "list.json"), "must be a study.json (mtl_lab.study/1), got a JSON list"
    elif case == "run json":
        run_id = stored["study"]["runs"][0]["run_id"]
        assert main(["export", "run", str(run_id), "--home", home, "--out", str(tmp_path / "run.json")]) == 0
        capsys.readouterr()
        source, expected = str(tmp_path / "run.json"), "is a run, not a study"
    elif case == "missing file":
        source, expected = str(tmp_path / "gone.json"), "got `" + str(tmp_path / "gone.json") + "`, which is no file"
    elif case == "grouping id":
        from mtl_core.runs.store import RunStore, default_store_path
        from mtl_core.studies.records import list_studies

        (grouping,) = list_studies(RunStore(default_store_path(home)), "grouping")
        source, expected = grouping.group_id, f"is a grouping evaluation, not a study; give the study it was trained from ({stored['id']})"
    elif case == "out folder missing":
        out, expected = tmp_path / "no" / "report.html", "the folder"
    elif case == "out is a folder":
        out, expected = tmp_path, "must be a file name such as report.html, got the folder"
    elif case == "out unwritable":
        if os.geteuid() == 0:  # root writes into a read-only folder, not into /proc
            out = Path("/proc/mtl_lab_report.html")
        else:
            locked = tmp_path / "locked"
            locked.mkdir()
            locked.chmod(0o500)
            out = locked / "report.html"
        expected = "cannot write the report to"
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, err = _report(["--study", source, "--home", home, "--out", str(out)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written, no temporary file left


def test_check_study_and_write_report_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="the input is a grouping evaluation"):
        check_study({"groups": [["a"]], "measured_score": {}, "tasks": {}})
    with pytest.raises(ExportError, match="is not a complete study: `study` must be a study.json"):
        check_study({"format": "mtl_lab.study/1", "tasks": ["a", "b"]})
    with pytest.raises(ExportError, match="got format 'other/1'"):
        check_study({"format": "other/1"})
    existing = tmp_path / "report.html"
    existing.write_text("old", encoding="utf-8")
    write_report("new ✓", existing)
    assert existing.read_text(encoding="utf-8") == "new ✓" and [p.name for p in tmp_path.iterdir()] == ["report.html"]


def _ten_task_study() -> dict[str, Any]:
    """A 10-task study assembled by the engine (3 seeds, all tasks, TAG) from made-up run results,
    with affinity, cosine and a 50-step forecast, the largest report a workshop makes."""
    rng = random.Random(0)
    base = TINY.replace(suite_options={"n_tasks": 10, "n_groups": 3, "n_samples": 60, "dim": 6})
    spec = StudySpec(base, seeds=(0, 1, 2), include_all=True, tag=True).validated()
    runs = plan_study(spec)
    outcomes = []
    for index, run in enumerate(runs):
        values = {task: rng.uniform(0.5, 0.9) for task in run.tasks}
        result = {"best_val_metric": values, "history": [{"epoch": 1, "step": 10, "val_metric": values}],
                  "stopped_epoch": 30, "best_epoch": 28, "stop_reason": "patience", "steps": 300}
        outcomes.append(RunOutcome(index + 1, "done", result))
    study = collect_study(spec, runs, outcomes, "study-ten")
    size = len(spec.tasks)
    study["affinity"] = [[None if i == j else rng.uniform(-0.1, 0.1) for j in range(size)] for i in range(size)]
    study["cosine"] = [[1.0 if i == j else rng.uniform(-1, 1) for j in range(size)] for i in range(size)]
    study["forecast"] = {"steps": list(range(6, 301, 6)),
                         "signals": {"affinity": [rng.uniform(-1, 1) for _ in range(50)],
                                     "cosine": [None] * 5 + [rng.uniform(-1, 1) for _ in range(45)]},
                         "reached": {"affinity": 120, "cosine": None}, "threshold": 0.8, "total_steps": 300}
    from mtl_core.studies.study import grouping_sources

    study["groupings"] = {}  # recomputed from the matrices by the report
    assert set(grouping_sources(study)) == {"transfer", "affinity", "cosine"}
    return study


def test_a_ten_task_study_fits_in_five_megabytes() -> None:
    study = _ten_task_study()
    plan = plan_grouping(study, [study["tasks"][:5], study["tasks"][5:]], "transfer")
    evaluation = collect_grouping(plan, [RunOutcome(i, "done", {"best_val_metric": {t: 0.7 for t in group}})
                                         for i, (group, _) in enumerate(plan.keys)])
    text = study_report(study, [evaluation, {**evaluation, "source": "cosine"}])
    assert len(text.encode("utf-8")) < 5_000_000
    assert '<section id="forecast">' in text and _figure_count(text) >= 8


# --- in a browser, offline -------------------------------------------------------------------------------


@pytest.mark.e2e
def test_every_figure_is_drawn_offline_in_chromium(stored: dict[str, Any], tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("MTL_LAB_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing and MTL_LAB_REQUIRE_BROWSER=1 (install Debian's chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    path = hostile_report(stored, tmp_path / "report.html")
    expected = _figure_count(path.read_text(encoding="utf-8"))
    blocked: list[str] = []
    problems: list[str] = []

    def route(request_route: Any) -> None:
        url = request_route.request.url
        if url.startswith("file://"):
            request_route.continue_()
        else:  # the report must need nothing from the network
            blocked.append(url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
            context.route("**/*", route)
            page = context.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
            page.goto(path.as_uri())
            # drawn: plotly made the div a plot with its SVG, and a trace is on it (a heatmap's image,
            # bars or lines), not the "No data yet" of an empty figure
            drawn_js = ("Array.from(document.querySelectorAll('.figure')).filter(d => "
                        "d.classList.contains('js-plotly-plot') && d.querySelector('.main-svg') && "
                        "d.querySelector('.hm image, .cartesianlayer .trace path')).length")
            page.wait_for_function(f"{drawn_js} >= {expected}", timeout=60_000)
            drawn = page.evaluate(drawn_js)
            heading = page.locator("#suite table").nth(1).inner_text()
            artifacts = ROOT / "test-artifacts" / "report"
            artifacts.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(artifacts / "report.png"), full_page=True)
        finally:
            browser.close()
    assert drawn == expected >= 6
    assert blocked == [] and problems == []
    for name in HOSTILE.values():  # the hostile names, shown as typed
        assert name in heading
