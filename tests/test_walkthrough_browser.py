"""A newcomer's first hour, clicked through in a real browser (issue 13): Debian's Chromium driven by
Playwright against the app served on 127.0.0.1 by this test, from an empty store, with real
background training.

One test walks every page in the order a newcomer meets them — default run, two-method run, the
single-task baseline and Δm, a lesson, a transfer study, a grouping from each source, Compare,
Playground, a CSV import — and asserts what each page *claims*, not just that it renders.

Checks that a page's claim holds are collected (:meth:`Walk.check`) so that one broken claim does
not hide the rest of the walk; the test fails at the end with every broken claim and the screenshot
to look at. A step whose prerequisite is missing (a run that never finished) stops the walk at once.
Settings are kept small by changing widgets as a user would (15 epochs for the two-method run, a
3-task, 1-seed study of at most 8 epochs per run); the lesson's 16 runs are cancelled through the
store once its run view has been checked, so that the study does not wait for them. About two
minutes on two quiet cores.

Screenshots (one or more per step, ``NN_name.png``) go to ``tmp_path/shots`` and, when
``MTL_LAB_WALKTHROUGH_SHOTS`` names a folder, there too. Without ``/usr/bin/chromium`` the test skips,
unless ``MTL_LAB_REQUIRE_BROWSER=1`` (CI), where it fails.

Selectors (visible texts and roles, as the issue names them) live in one place, :class:`UI`, because
other work changes the pages' wording: when a page renames a button, change it there.
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from browser_support import CHROMIUM, FLAGS, require_browser, served_app

from mtl_core.runs import workers
from mtl_core.runs.store import RunStore

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
SHOTS_VARIABLE = "MTL_LAB_WALKTHROUGH_SHOTS"
#: Generous: on a busy machine a fresh worker needs tens of seconds to import PyTorch.
SLOW = 240_000
#: Epochs of the two-method run: enough optimizer steps on the planted suite not to be "under-trained".
TWO_METHOD_EPOCHS = 15
#: How soon after the baseline finished the run view must show Δm, without a reload (issue 13).
DELTA_M_WITHIN_S = 15


class UI:
    """Every visible text and role the walk relies on, page by page."""

    # Train
    TRAIN_HEADING = re.compile("Train a multi-task model")
    TOUR = "New here? The one-minute tour"
    SUITE = "Task suite"
    METHODS = "Balancing methods (one run each, shown side by side)"
    EPOCHS = "Epochs"
    START = "Start training"
    READY = re.compile(r"Ready: (\d+) runs?")
    # Run view
    COSINE_TITLE = re.compile(r"Gradient cosine similarity")
    LOSS_TITLE = "Training loss per step"
    RUN_PICK = "Run"
    TAB_SIDE_BY_SIDE = "Side by side"
    TAB_RESULTS = "Results"
    QUEUE_BASELINE = "Queue the single-task baseline"
    DELTA_M = "Δm vs single-task"
    STATUS_WORDS = ("queued", "running", "done", "failed", "cancelled")
    # Learn
    LEARN_LINK = "Learn"
    LESSON_TITLE = "Sharing strategies on weakly related tasks"
    RUN_LESSON = "Run this lesson"
    QUESTION = re.compile(r"^Question\.")
    # Relationships
    RELATIONSHIPS_LINK = "Relationships"
    NO_STUDY = "No study yet"
    SUITE_OPTIONS = "Suite options"
    N_TASKS = "n_tasks"
    STUDY_SEEDS = "Seeds"
    MAX_EPOCHS = "Max epochs per run"
    STUDY_SIZE = re.compile(r"This study queues (\d+) runs")
    START_STUDY = "Start the study"
    STUDY_CHARTS = ("Pairwise transfer", "Inter-task affinity (TAG)", "Mean gradient cosine",
                    "Early forecast: do the cheap signals rank the pairs as transfer does?")
    # Groupings
    GROUPINGS_LINK = "Groupings"
    SCORES_FROM = "Scores from"
    TRAIN_GROUPING = re.compile(r"^Train this grouping \((\d+) runs?\)")
    MEASURED_HEADING = "Measured vs predicted"
    HEADLINE = re.compile(r"Measured mean gain over tasks")
    # Compare
    COMPARE_LINK = "Compare"
    COMPARE_RUNS = "Runs"
    COMPARE_BARS = re.compile(r"^Test metric per task")
    DOWNLOAD_SUMMARY = "Download the summary (CSV)"
    # Playground
    PLAYGROUND_LINK = "Playground"
    ANGLE = "angle (°)"
    # Your data
    DATA_LINK = "Your data"
    TARGETS = "Target columns (each one is a task; at least two)"
    SUITE_NAME = "Suite name"
    SAVE_SUITE = "Save as suite"
    SAVED = re.compile(r"Saved the suite")
    TRAIN_ON_IT = "Train on it"


# --- the browser and the server ---------------------------------------------------------------------------------

def _shots_variable() -> str | None:
    """``$MTL_LAB_WALKTHROUGH_SHOTS`` (kept by ``conftest.py`` as a test switch)."""
    return os.environ.get(SHOTS_VARIABLE) or None


@dataclass
class Walk:
    """The served app, its store, the folder of screenshots and the broken claims found so far."""

    url: str
    home: Path
    shots: Path
    extra_shots: Path | None
    findings: list[str] = field(default_factory=list)
    #: Broken claims that wait for the next screenshot (the picture of the state they were checked on).
    pending: list[str] = field(default_factory=list)

    @property
    def store(self) -> RunStore:
        return RunStore.at_home(self.home)

    def check(self, holds: bool, claim: str) -> bool:
        """Record ``claim`` as broken unless it ``holds``; the next screenshot is named with it."""
        if not holds:
            self.pending.append(claim)
        return holds

    def shot_taken(self, file_name: str) -> None:
        self.findings.extend(f"{claim} [see {file_name}]" for claim in self.pending)
        self.pending.clear()

    def broken(self) -> list[str]:
        return self.findings + self.pending


@pytest.fixture
def walk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Walk]:
    """The app served from this checkout on a free port, for an empty store in ``tmp_path/home``,
    with a pool of two workers; stopped (with the pool) afterwards."""
    require_browser()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MTL_LAB_HOME", str(home))
    shots = tmp_path / "shots"
    shots.mkdir()
    extra = _shots_variable()
    extra_shots = Path(extra) if extra else None
    if extra_shots is not None:
        extra_shots.mkdir(parents=True, exist_ok=True)
    with served_app(home, tmp_path / "streamlit.log", {"MTL_LAB_WORKERS": "2"}) as url:
        yield Walk(url=url, home=home, shots=shots, extra_shots=extra_shots)


@pytest.fixture
def page(walk: Walk) -> Iterator[object]:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        expect.set_options(timeout=60_000)  # a busy machine: pages wait for the engine and the store
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(60_000)
            yield page
        finally:
            expect.set_options(timeout=5_000)  # Playwright's default, for the tests after this one
            browser.close()


# --- small moves a user makes -----------------------------------------------------------------------------------

def _shot(walk: Walk, page, name: str, height: int = 1900) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so the window is made
    tall enough instead of relying on ``full_page``)."""
    count = len(list(walk.shots.glob("*.png"))) + 1
    file_name = f"{count:02d}_{name}.png"
    path = walk.shots / file_name
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_timeout(1200)
    # From the top of the page, whatever a click scrolled to.
    page.evaluate("() => { window.scrollTo(0, 0); for (const e of document.querySelectorAll('*')) "
                  "{ if (e.scrollTop > 0) e.scrollTop = 0; } }")
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})
    walk.shot_taken(file_name)
    if walk.extra_shots is not None:
        shutil.copy(path, walk.extra_shots / file_name)


def _texts(locator) -> list[str]:
    return [t or "" for t in locator.evaluate_all("nodes => nodes.map(n => n.textContent)")]


def _chart_titles(page) -> list[str]:
    return _texts(page.locator("[data-testid='stPlotlyChart'] .gtitle"))


def _wait_for_titles(page, wanted, timeout_s: float) -> list[str]:
    """The chart titles once every one of ``wanted`` (strings or patterns) is among them, or the last
    titles seen after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        titles = _chart_titles(page)
        if all(any(_matches(w, t) for t in titles) for w in wanted) or time.monotonic() > deadline:
            return titles
        page.wait_for_timeout(300)


def _matches(wanted, text: str) -> bool:
    return bool(wanted.search(text)) if isinstance(wanted, re.Pattern) else wanted == text


def _settle(page, timeout_s: float = 30) -> None:
    """Wait until the page's script has finished its rerun (Streamlit shows a "Stop" button while it
    runs), seen twice in a row; a page that keeps polling settles at the timeout."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        quiet = quiet + 1 if page.get_by_role("button", name="Stop", exact=True).count() == 0 else 0


def _tab(page, name: str, timeout_s: float = 30):
    """The tab named ``name``, once it is the only one (a rerun briefly draws the new tabs beside the
    stale ones)."""
    tab = page.get_by_role("tab", name=name, exact=True)
    deadline = time.monotonic() + timeout_s
    while tab.count() != 1 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    return tab


def _go(page, link: str) -> None:
    """Open a page from the sidebar navigation."""
    page.get_by_test_id("stSidebar").get_by_role("link", name=link, exact=True).click()


def _pick(page, label: str, option: str) -> None:
    """Add ``option`` to the multiselect (or choose it in the select box) labelled ``label``."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=re.compile(rf"^{re.escape(option)}\b")).first.click()
    page.keyboard.press("Escape")


def _set_number(page, label: str, value: int, scope=None) -> None:
    """Type ``value`` into the number box labelled ``label`` and wait until the page kept it (a rerun
    still in flight from an earlier change can redraw the box with its old value: type again)."""
    field_ = (scope or page).get_by_label(label, exact=True)
    for _ in range(3):
        field_.fill(str(value))
        field_.press("Enter")
        page.wait_for_timeout(1500)
        if field_.input_value() == str(value):
            return
    raise AssertionError(f"the number box {label!r} did not keep {value}: it shows {field_.input_value()!r}")


def _wait_runs(walk: Walk, run_ids: list[int], timeout_s: float = SLOW / 1000) -> None:
    """Wait for the runs to finish (the walk's prerequisite: stop at once when they do not)."""
    try:
        workers.wait(run_ids, timeout=timeout_s, home=walk.home)
    except Exception as exc:  # noqa: BLE001 - any way of not finishing stops the walk, with its reason
        pytest.fail(f"runs {run_ids} did not finish: {exc}; findings so far: {walk.broken()}")
    failed = [r.id for r in (walk.store.get_run(i) for i in run_ids) if r.status != "done"]
    assert not failed, f"runs {failed} did not finish as done; findings so far: {walk.broken()}"


def _panel_label(text: str) -> tuple[int, str]:
    """``"#12 ew · seed 0 · check_circle done"`` → ``(12, "ew · seed 0")``: the run's id, and what the
    label says about its settings (without the id and the status)."""
    text = " ".join(text.split())
    match = re.match(r"#(\d+)\s*(.*)$", text)
    assert match, f"a side-by-side panel label should start with the run id, got {text!r}"
    parts = [p.strip() for p in match.group(2).split("·")]
    if parts and any(parts[-1].endswith(word) for word in UI.STATUS_WORDS):
        parts = parts[:-1]
    return int(match.group(1)), " · ".join(parts)


def _check_run_box(walk: Walk, page) -> None:
    """The run view's Run box names the run that the address (and the page) shows."""
    shown = int(re.search(r"[?&]run=(\d+)", page.url).group(1))
    picked = page.get_by_role("combobox", name=UI.RUN_PICK).input_value()
    walk.check(picked.startswith(f"#{shown} "),
               f"the run view's Run box names the run it shows (#{shown} from the address), got {picked!r}")


def _settings(walk: Walk, run_id: int) -> dict:
    """What a run was trained with: its config without what only names it."""
    config = dict(walk.store.get_run(run_id).config)
    for key in ("name", "label", "owner", "group_id"):
        config.pop(key, None)
    return config


def _raise_clauses(sentence: str) -> list[list[str]]:
    """The printed d·gᵢ values of every "raises … (d·gᵢ = v, …)" clause of a playground sentence."""
    clauses = []
    for match in re.finditer(r"raises (?!no loss)[^()]*?\(([^()]*)\)", sentence):
        values = re.findall(r"d·g\S*\s*=\s*([^,)\s]+)", match.group(1))
        if values:
            clauses.append(values)
    # "d·g₂ = +0.35 < 0, so this step raises …" (the plain sum's sentence puts the values first)
    for match in re.finditer(r"((?:d·g\S*\s*=\s*[^,<\s]+,?\s*)+)<\s*0,\s*so this step raises", sentence):
        clauses.append(re.findall(r"d·g\S*\s*=\s*([^,<\s]+)", match.group(1)))
    return clauses


def _is_negative(printed: str) -> bool:
    try:
        value = float(printed.replace("−", "-"))
    except ValueError:
        return False
    return value < 0


def _settled_sentences(page, previous: dict[str, str], timeout_s: float = 60) -> dict[str, str]:
    """The playground's sentences once the page has drawn them and they stopped changing (a slider
    move reruns the page; the list is drawn last), preferring a list that differs from ``previous``."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        page.wait_for_timeout(700)
        current = _playground_sentences(page)
        if current and current == last and (current != previous or time.monotonic() > deadline - timeout_s / 2):
            return current
        last = current
    return last


def _playground_sentences(page) -> dict[str, str]:
    """Method → its sentence, from the list under "What each method did"."""
    items = _texts(page.locator("[data-testid='stMarkdownContainer'] li"))
    sentences = {}
    for item in items:
        method, _, sentence = item.partition(" — ")
        if sentence:
            sentences[method.strip()] = sentence.strip()
    return sentences


# --- the walk ---------------------------------------------------------------------------------------------------

def test_a_newcomers_first_hour(walk: Walk, page, tmp_path: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    started = time.monotonic()

    # 1. Empty store: the tour is open; the default run trains and its charts appear.
    page.goto(f"{walk.url}/")
    expect(page.get_by_role("heading", name=UI.TRAIN_HEADING)).to_be_visible(timeout=SLOW)
    tour = page.get_by_test_id("stExpander").filter(has_text=UI.TOUR).first
    expect(tour).to_be_visible()
    walk.check(tour.locator("details").first.get_attribute("open") is not None
               and tour.locator("li").first.is_visible(),
               "on an empty store the Train page's one-minute tour is open")
    expect(page.get_by_role("combobox", name=UI.SUITE)).to_have_value("planted")
    expect(page.get_by_text(UI.READY).first).to_be_visible()
    _shot(walk, page, "train_empty_store")
    page.get_by_role("button", name=UI.START).click()
    page.wait_for_url(re.compile(r"/run\?run=1\b"))
    first_run = walk.store.get_run(1)
    assert (first_run.method, first_run.strategy) == ("ew", "hard"), first_run
    _wait_runs(walk, [1])
    titles = _wait_for_titles(page, [UI.LOSS_TITLE, UI.COSINE_TITLE], 60)
    walk.check(UI.LOSS_TITLE in titles, f"the finished default run shows its losses, got charts {titles}")
    walk.check(any(UI.COSINE_TITLE.search(t) for t in titles),
               f"the finished default run shows a cosine heatmap, got charts {titles}")
    expect(page.get_by_test_id("stMetric").filter(has_text="Status").first).to_contain_text("done",
                                                                                           timeout=30_000)
    _check_run_box(walk, page)
    _shot(walk, page, "run_view_default_run")

    # 2. Two methods side by side, each panel labelled with its method.
    _go(page, "Train")
    expect(page.get_by_role("heading", name=UI.TRAIN_HEADING)).to_be_visible()
    _pick(page, UI.METHODS, "pcgrad")
    expect(page.get_by_text(re.compile(r"Ready: 2 runs")).first).to_be_visible()
    _set_number(page, UI.EPOCHS, TWO_METHOD_EPOCHS)
    expect(page.get_by_text(re.compile(r"Ready: 2 runs")).first).to_be_visible()
    page.get_by_role("button", name=UI.START).click()
    page.wait_for_url(re.compile(r"/run\?run=2\b"))
    pair = sorted(walk.store.list_runs(group_id=walk.store.get_run(2).group_id), key=lambda r: r.id)
    assert [(r.method, r.config["epochs"]) for r in pair] == [("ew", TWO_METHOD_EPOCHS), ("pcgrad", TWO_METHOD_EPOCHS)], pair
    _wait_runs(walk, [r.id for r in pair])
    expect(_tab(page, UI.TAB_SIDE_BY_SIDE)).to_have_attribute("aria-selected", "true")
    labels_locator = page.get_by_role("tabpanel").locator("[data-testid='stMarkdownContainer']").filter(
        has_text=re.compile(r"^#\d+ "))
    expect(labels_locator.first).to_be_visible(timeout=30_000)
    labels = dict(_panel_label(t) for t in _texts(labels_locator))
    walk.check(set(labels) == {r.id for r in pair}, f"side by side shows both runs, got panels {labels}")
    for run in pair:
        walk.check(run.method in re.split(r"[\s·]+", labels.get(run.id, "")),
                   f"panel of run #{run.id} is labelled with its method {run.method!r}, got {labels.get(run.id)!r}")
    _check_run_box(walk, page)
    _shot(walk, page, "run_view_side_by_side")

    # 3. Results: queue the single-task baseline; Δm appears soon after it finishes, without a reload.
    ew_run = pair[0]
    _tab(page, UI.TAB_RESULTS).click()
    page.get_by_role("button", name=UI.QUEUE_BASELINE).click()
    expect(page.get_by_text(re.compile(r"single-task baseline.*run #\d+")).first).to_be_visible(timeout=30_000)
    baseline = max(walk.store.list_runs(), key=lambda r: r.id)
    assert baseline.strategy == "single" and baseline.config.get("seed") == ew_run.config.get("seed"), baseline
    _wait_runs(walk, [baseline.id])
    finished_at = time.monotonic()
    delta_m = page.get_by_test_id("stMetric").filter(has_text=UI.DELTA_M)
    try:
        delta_m.first.wait_for(state="visible", timeout=DELTA_M_WITHIN_S * 1000)
        appeared = True
    except PlaywrightTimeout:  # the claim is recorded, the walk goes on
        appeared = False
    walk.check(appeared, f"Δm appears on the run view within {DELTA_M_WITHIN_S} s of the baseline finishing "
                         f"(run #{baseline.id}) without a reload (waited {time.monotonic() - finished_at:.0f} s)")
    _shot(walk, page, "results_after_baseline_no_reload")
    if not appeared:  # what a newcomer would do next: reload, and Δm must be there then
        page.reload()
        _tab(page, UI.TAB_RESULTS).click()
        expect(delta_m.first).to_be_visible(timeout=30_000)
        _shot(walk, page, "results_after_reload")
    value = delta_m.first.get_by_test_id("stMetricValue").inner_text()
    walk.check(bool(re.fullmatch(r"[+\-−]\d+\.\d+ %", value.strip())), f"Δm is a signed percentage, got {value!r}")

    # 4. Learn: a lesson opens the run view beside its question; panel labels tell the settings apart.
    _go(page, UI.LEARN_LINK)
    # Each lesson is a card: its heading, then its "Run this lesson" button.
    run_buttons = page.get_by_role("button", name=UI.RUN_LESSON)
    expect(page.get_by_role("heading", name=re.compile(re.escape(UI.LESSON_TITLE)))).to_be_visible(timeout=SLOW)
    deadline = time.monotonic() + 60
    while True:  # the cards are drawn one after the other: wait for the last one's button
        lesson_titles = _texts(page.get_by_test_id("stMain").get_by_role("heading", level=3))
        if run_buttons.count() >= len(lesson_titles) or time.monotonic() > deadline:
            break
        page.wait_for_timeout(300)
    position = next((i for i, t in enumerate(lesson_titles) if UI.LESSON_TITLE in t), None)
    assert position is not None, f"the Learn page offers the lesson {UI.LESSON_TITLE!r}: {lesson_titles}"
    assert run_buttons.count() == len(lesson_titles), (lesson_titles, run_buttons.count())
    run_buttons.nth(position).click()
    page.wait_for_url(re.compile(r"/run\?run=\d+.*lesson="))
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text(UI.LESSON_TITLE).first).to_be_visible(timeout=60_000)
    expect(sidebar.get_by_text(UI.QUESTION).first).to_be_visible()
    expect(labels_locator.first).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1500)
    _check_run_box(walk, page)
    lesson_labels = [_panel_label(t) for t in _texts(labels_locator)]
    lesson_ids = [run_id for run_id, _ in lesson_labels]
    walk.check(len(lesson_labels) >= 2, f"the lesson's run view shows its runs side by side, got {lesson_labels}")
    for index, (first_id, first_label) in enumerate(lesson_labels):
        for second_id, second_label in lesson_labels[index + 1:]:
            if first_label == second_label:
                same = _settings(walk, first_id) == _settings(walk, second_id)
                walk.check(same, f"side-by-side panels #{first_id} and #{second_id} are both labelled "
                                 f"{first_label!r} but the runs' settings differ "
                                 f"({_difference(_settings(walk, first_id), _settings(walk, second_id))})")
    _shot(walk, page, "lesson_run_view", height=2400)
    # The walk needs the workers next: stop the lesson's runs (a newcomer could cancel them on Runs).
    lesson_group = walk.store.get_run(lesson_ids[0]).group_id if lesson_ids else None
    for run in walk.store.list_runs(group_id=lesson_group) if lesson_group else []:
        if not run.finished:
            walk.store.request_cancel(run.id)

    # 5. Relationships: the smallest useful study (3 tasks, 1 seed, few epochs); the heatmaps appear.
    _go(page, UI.RELATIONSHIPS_LINK)
    expect(page.get_by_text(UI.NO_STUDY).first).to_be_visible(timeout=SLOW)
    launch = page.get_by_test_id("stExpander").filter(has_text=UI.START_STUDY).first
    launch.get_by_text(UI.SUITE_OPTIONS).click()
    _set_number(page, UI.N_TASKS, 3, scope=launch)
    _set_number(page, UI.STUDY_SEEDS, 1, scope=launch)
    _set_number(page, UI.MAX_EPOCHS, 8, scope=launch)
    expect(page.get_by_text(re.compile(r"This study queues 7 runs")).first).to_be_visible(timeout=30_000)
    _shot(walk, page, "relationships_launch")
    page.get_by_role("button", name=UI.START_STUDY).click()
    expect(page.get_by_text(re.compile(r"\d+ of 7 runs done")).first).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("7 of 7 runs done").first).to_be_visible(timeout=SLOW)
    deadline = time.monotonic() + 60
    titles = _chart_titles(page)
    while titles != list(UI.STUDY_CHARTS) and time.monotonic() < deadline:  # stale charts fade out on a rerun
        page.wait_for_timeout(300)
        titles = _chart_titles(page)
    walk.check(titles == list(UI.STUDY_CHARTS), f"the study's three heatmaps appear, got {titles}")
    heatmap_cells = page.locator("[data-testid='stPlotlyChart'] .heatmaplayer, "
                                 "[data-testid='stPlotlyChart'] .hm image, [data-testid='stPlotlyChart'] .hm")
    walk.check(heatmap_cells.count() > 0, "the transfer heatmap draws cells")
    _shot(walk, page, "relationships_study_done", height=1800)

    # 6. Groupings: every source offers a grouping to train (≥ 1 run); train one from the cosine.
    _go(page, UI.GROUPINGS_LINK)
    radio = page.get_by_test_id("stRadio").filter(has_text=UI.SCORES_FROM).first
    expect(radio).to_be_visible(timeout=SLOW)
    options = radio.get_by_test_id("stRadioOption")
    names = [" ".join(t.split()) for t in _texts(options)]
    walk.check(len(names) == 3, f"a study with TAG offers three sources (transfer, affinity, cosine), got {names}")
    train_button = page.get_by_role("button", name=UI.TRAIN_GROUPING)
    for index, name in enumerate(names):
        options.nth(index).click()
        _settle(page)
        expect(train_button).to_be_visible()
        text = train_button.inner_text()
        runs = int(UI.TRAIN_GROUPING.search(text.strip()).group(1)) if UI.TRAIN_GROUPING.search(text.strip()) else 0
        walk.check(train_button.is_enabled() and runs >= 1,
                   f"from {name!r} the train button is enabled and trains ≥ 1 run, got {text!r} "
                   f"(enabled: {train_button.is_enabled()})")
        _shot(walk, page, f"groupings_source_{index + 1}")
    cosine_index = next((i for i, n in enumerate(names) if "cosine" in n.lower()), None)
    assert cosine_index is not None, f"the cosine source is offered: {names}"
    options.nth(cosine_index).click()
    _settle(page)
    expect(train_button).to_be_enabled()
    train_button.click()
    expect(page.get_by_role("heading", name=UI.MEASURED_HEADING)).to_be_visible(timeout=60_000)
    evaluations = [r for r in walk.store.list_runs() if (r.group_id or "").startswith("grouping-")]
    assert evaluations, "training a grouping queued runs"
    _wait_runs(walk, [r.id for r in evaluations])
    headline = page.get_by_text(UI.HEADLINE).first
    expect(headline).to_be_visible(timeout=60_000)
    page.wait_for_timeout(1500)
    sentence = " ".join(headline.inner_text().split())
    predicted_part = sentence.split("against training each task alone", 1)[-1]
    walk.check("%" not in predicted_part,
               f"from the cosine the prediction is not printed as a percentage: {sentence!r}")
    x_titles = _texts(page.locator("[data-testid='stPlotlyChart'] .g-xtitle"))
    y_titles = _texts(page.locator("[data-testid='stPlotlyChart'] .g-ytitle"))
    scatter_x = [t for t in x_titles if "predicted" in t.lower() or "cosine" in t.lower()]
    walk.check(bool(scatter_x) and all("%" not in t for t in scatter_x),
               f"the measured-vs-predicted x axis (cosine score) carries no %: {x_titles}")
    walk.check(any("%" in t for t in y_titles), f"the measured axis is a relative change in %: {y_titles}")
    _shot(walk, page, "groupings_measured_vs_predicted_cosine", height=3400)

    # 7. Compare: the runs are selectable, per-task panels render, the CSV downloads.
    _go(page, UI.COMPARE_LINK)
    runs_box = page.get_by_role("combobox", name=UI.COMPARE_RUNS)
    expect(runs_box).to_be_visible(timeout=SLOW)
    runs_select = page.get_by_test_id("stMultiSelect").filter(has=runs_box)
    chosen_chips = runs_select.get_by_role("button", name=re.compile(r"^Remove #"))
    expect(chosen_chips.first).to_be_visible()  # a default selection of finished runs
    chosen_before = chosen_chips.count()
    # Add the two-method run's pcgrad run, as a newcomer comparing methods would: type, then pick
    # (the list is long, and only its first options are drawn).
    wanted = f"#{pair[1].id} "
    runs_box.click()
    runs_box.fill(wanted)
    offered = [t for t in _texts(page.get_by_role("option")) if t.startswith(wanted)]
    walk.check(len(offered) == 1, f"Compare offers the finished run {wanted.strip()} once, got {offered}")
    if offered:
        page.get_by_role("option", name=offered[0]).first.click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)
    walk.check(chosen_chips.count() == chosen_before + bool(offered),
               f"picking a run adds it to the comparison ({chosen_before} chosen before, {chosen_chips.count()} after)")
    walk.check(wanted.strip() in runs_select.inner_text(), f"run {wanted.strip()} is among the chosen runs")
    titles = _wait_for_titles(page, [UI.COMPARE_BARS], 30)
    walk.check(any(UI.COMPARE_BARS.search(t) for t in titles), f"the per-task panels render, got charts {titles}")
    with page.expect_download() as download_info:
        page.get_by_role("button", name=UI.DOWNLOAD_SUMMARY).click()
    downloaded = Path(download_info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(downloaded)))
    walk.check(len(rows) >= 2 and len(rows[0]) >= 3, f"the summary CSV has a header and rows, got {downloaded[:200]!r}")
    walk.check(not offered or "pcgrad" in downloaded, f"the summary CSV includes the added pcgrad run: {downloaded[:300]!r}")
    _shot(walk, page, "compare")

    # 8. Playground: a slider moves the sentences; no "raises" next to a d·g that is not negative.
    _go(page, UI.PLAYGROUND_LINK)
    expect(page.get_by_role("slider", name=UI.ANGLE).first).to_be_visible(timeout=SLOW)
    before = _settled_sentences(page, {})
    walk.check(len(before) >= 2, f"the playground says what each method did, got {before}")
    slider = page.get_by_role("slider", name=UI.ANGLE).nth(1)  # g₂'s direction
    slider.focus()
    seen_sentences = [before]
    # From 135° down to 100°: the gradients stop conflicting on the way (d·g crosses 0).
    for _ in range(35):
        slider.press("ArrowLeft")
    after = _settled_sentences(page, before)
    seen_sentences.append(after)
    walk.check(after != before, "moving g₂'s angle changes the sentences")
    for sentences in seen_sentences:
        for method, sentence in sentences.items():
            for values in _raise_clauses(sentence):
                walk.check(all(_is_negative(v) for v in values),
                           f"playground: {method!r} says it raises a loss with d·g = {values}: {sentence!r}")
    _shot(walk, page, "playground_moved")

    # 9. Your data: a small CSV becomes a suite that Train offers.
    lines = ["width,height,colour,area,kind"]
    for i in range(48):
        width, height = 1 + i % 5, 2 + i % 3
        lines.append(f"{width},{height},{('red', 'green', 'blue')[i % 3]},{width * height + 0.1 * (i % 4)},"
                     f"{'tall' if height > width else 'wide'}")
    csv_file = tmp_path / "rectangles.csv"
    csv_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _go(page, UI.DATA_LINK)
    expect(page.get_by_role("heading", name="Your data")).to_be_visible(timeout=SLOW)
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(csv_file))
    expect(page.get_by_text(re.compile(r"rectangles\.csv: 48 rows, 5 columns")).first).to_be_visible(timeout=SLOW)
    _pick(page, UI.TARGETS, "area")
    _pick(page, UI.TARGETS, "kind")
    suite_name = page.get_by_role("textbox", name=UI.SUITE_NAME)
    suite_name.fill("rectangles")
    suite_name.press("Enter")
    page.get_by_role("button", name=UI.SAVE_SUITE).click()
    expect(page.get_by_text(UI.SAVED).first).to_be_visible(timeout=SLOW)
    _shot(walk, page, "data_saved")
    page.get_by_role("button", name=UI.TRAIN_ON_IT).click()
    expect(page.get_by_role("heading", name=UI.TRAIN_HEADING)).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("combobox", name=UI.SUITE)).to_have_value("rectangles", timeout=30_000)
    expect(page.get_by_text(UI.READY).first).to_be_visible()
    _shot(walk, page, "train_on_rectangles")

    elapsed = time.monotonic() - started
    print(f"walk-through: {elapsed:.0f} s, screenshots in {walk.shots}")
    assert not walk.broken(), "broken claims on the walk:\n- " + "\n- ".join(walk.broken())


def _difference(first: dict, second: dict) -> str:
    keys = sorted(set(first) | set(second))
    return ", ".join(f"{k}: {first.get(k)!r} vs {second.get(k)!r}" for k in keys if first.get(k) != second.get(k))
