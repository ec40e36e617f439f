"""End to end in a real browser: Debian's Chromium driven by Playwright against the app served on
127.0.0.1 by this test, with real background training.

Screenshots go to ``test-artifacts/e2e/``; with ``MTL_LAB_UPDATE_SCREENSHOTS=1`` they are also copied to
``assets/screenshots/`` (the README's pictures). Without ``/usr/bin/chromium`` the tests skip, unless
``MTL_LAB_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import CHROMIUM, FLAGS, require_browser, served_app

from mtl_core.runs import workers
from mtl_core.runs.store import RunStore, lab_home

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
SCREENSHOTS = ROOT / "assets" / "screenshots"
#: Generous: on a busy machine a fresh worker needs tens of seconds to import PyTorch.
SLOW = 240_000


@pytest.fixture
def server() -> Iterator[str]:
    """The app, served from this checkout for the test's MTL_LAB_HOME; stopped with its worker pool."""
    require_browser()
    home = lab_home()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with served_app(home, ARTIFACTS / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(server: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def _shot(page, name: str, height: int = 1900) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside its main block, so the window is made
    tall enough instead of relying on ``full_page``)."""
    path = ARTIFACTS / f"{name}.png"
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_timeout(1500)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size({"width": 1400, "height": 1000})
    if os.environ.get("MTL_LAB_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / f"{name}.png")


def _chart_titles(page) -> list[str]:
    titles = page.locator("[data-testid='stPlotlyChart'] .gtitle")
    return [t or "" for t in titles.evaluate_all("nodes => nodes.map(n => n.textContent)")]


def _pick(page, label: str, option: str) -> None:
    """Add ``option`` to the multiselect (or choose it in the select box) labelled ``label``."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)
    page.get_by_role("option", name=re.compile(rf"^{re.escape(option)}\b")).first.click()
    page.keyboard.press("Escape")


def _set_number(page, label: str, value: int) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")


def test_train_two_methods_and_watch_the_live_charts(server: str, page) -> None:
    from playwright.sync_api import expect

    page.goto(f"{server}/")
    expect(page.get_by_role("heading", name=re.compile("Train a multi-task model"))).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("combobox", name="Task suite")).to_have_value("planted", timeout=SLOW)
    _pick(page, "Balancing methods (one run each, shown side by side)", "pcgrad")
    _set_number(page, "Epochs", 60)
    expect(page.get_by_text(re.compile(r"× 60 epochs")).first).to_be_visible()
    expect(page.get_by_text("Ready: 2 runs").first).to_be_visible()
    page.get_by_role("button", name="Start training").click()

    page.wait_for_url(re.compile(r"/run\?run=1(&me=[\w-]+)?$"))  # the participant token rides along
    charts = page.get_by_test_id("stPlotlyChart")
    expect(charts.locator(".main-svg").first).to_be_visible(timeout=SLOW)
    cosine_title = "Gradient cosine similarity — mean of all "  # the default window: every probe so far
    expect(page.get_by_text(re.compile(re.escape(cosine_title) + r"\d+ probes")).first).to_be_visible(timeout=SLOW)

    # The charts keep updating while the runs train: the heatmap's window grows with each probe.
    seen: set[str] = set()
    deadline = time.monotonic() + SLOW / 1000
    while len(seen) < 3 and time.monotonic() < deadline:
        seen.update(t for t in _chart_titles(page) if t.startswith(cosine_title))
        page.wait_for_timeout(300)
    assert len(seen) >= 2, f"the cosine heatmap never changed: {seen}"
    assert "Training loss per step" in _chart_titles(page)

    store = RunStore.at_home(lab_home())
    runs = sorted(store.list_runs(), key=lambda r: r.id)
    assert [(r.method, r.config["epochs"]) for r in runs] == [("ew", 60), ("pcgrad", 60)]
    workers.wait([r.id for r in runs], timeout=SLOW / 1000, home=lab_home())
    interval, last_step = runs[0].config["probe_interval"], store.get_result(runs[0].id)["steps"]
    last_probe = last_step - last_step % interval
    whole_run = f"{cosine_title}{last_probe // interval} probes (steps {interval}–{last_probe})"
    page.reload()
    expect(page.get_by_text(whole_run).first).to_be_visible(timeout=SLOW)
    _shot(page, "run_view")
    assert store.get_run(runs[0].id).status == "done"

    # Relationships: a small transfer study, live progress, then the heatmaps.
    page.get_by_role("link", name="Relationships").click()
    expect(page.get_by_text("No study yet").first).to_be_visible(timeout=SLOW)
    expect(page.get_by_text(re.compile(r"This study queues 22 runs")).first).to_be_visible()
    page.get_by_role("button", name="Start the study").click()
    expect(page.get_by_text(re.compile(r"\d+ of 22 runs done")).first).to_be_visible(timeout=SLOW)
    expect(page.get_by_text("22 of 22 runs done").first).to_be_visible(timeout=SLOW)
    titles = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        titles = _chart_titles(page)
        if titles[:3] == ["Pairwise transfer", "Inter-task affinity (TAG)", "Mean gradient cosine"]:
            break
        page.wait_for_timeout(300)
    assert titles[:3] == ["Pairwise transfer", "Inter-task affinity (TAG)", "Mean gradient cosine"], titles
    expect(page.get_by_text("The planted suite hid these groups").first).to_be_visible()
    _shot(page, "relationships", height=1750)

    # A deep link opened in a fresh tab lands on the app's own navigation (not Streamlit's
    # folder-based one) and shows the run.
    fresh = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})
    fresh.goto(f"{server}/run?run={runs[1].id}")
    expect(fresh.get_by_text(whole_run).first).to_be_visible(timeout=SLOW)
    sidebar = fresh.get_by_test_id("stSidebar")
    expect(sidebar.get_by_role("link", name="Playground")).to_be_visible(timeout=SLOW)
    expect(sidebar.get_by_text(re.compile(r"\d+ running · \d+ queued")).first).to_be_visible(timeout=SLOW)
    assert sidebar.get_by_role("link", name=re.compile(r"^_?(lessons|widgets)$", re.I)).count() == 0
    fresh.close()


def test_upload_a_csv_save_it_as_a_suite_and_train_on_it(server: str, page, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    rows = ["size,colour,weight,kind"]
    for i in range(60):
        colour = ("red", "green", "blue")[i % 3]
        rows.append(f"{i % 7 + 0.5},{colour},{2.0 * (i % 7) + (i % 3):.2f},{'a' if i % 2 else 'b'}")
    rows.append("3.5,,7.0,a")  # a missing feature value: dropped by default, reported
    csv_file = tmp_path / "shapes.csv"
    csv_file.write_text("\n".join(rows) + "\n", encoding="utf-8")

    page.goto(f"{server}/data")
    expect(page.get_by_role("heading", name="Your data")).to_be_visible(timeout=SLOW)
    page.locator("[data-testid='stFileUploader'] input[type='file']").set_input_files(str(csv_file))
    expect(page.get_by_text(re.compile(r"shapes\.csv: 61 rows, 4 columns")).first).to_be_visible(timeout=SLOW)
    _pick(page, "Target columns (each one is a task; at least two)", "weight")
    _pick(page, "Target columns (each one is a task; at least two)", "kind")
    name = page.get_by_role("textbox", name="Suite name")
    name.fill("shapes")
    name.press("Enter")
    page.get_by_role("button", name="Save as suite").click()
    expect(page.get_by_text(re.compile(r"Saved the suite shapes")).first).to_be_visible(timeout=SLOW)
    assert (lab_home() / "suites" / "shapes" / "spec.json").exists()

    page.get_by_role("button", name="Train on it").click()
    expect(page.get_by_role("heading", name=re.compile("Train a multi-task model"))).to_be_visible(timeout=SLOW)
    expect(page.get_by_role("combobox", name="Task suite")).to_have_value("shapes", timeout=SLOW)
    _shot(page, "train_on_uploaded_suite")
