"""The Class page in a real browser (issue 16, part 1): Debian's Chromium driven by Playwright against the
app served on 127.0.0.1 by this test as a workshop server (a presenter passcode), with real background
training by the worker pool.

Two participants, each in their own browser context (their own ``?me=`` address), give their names and
run a tiny lesson from Learn; the presenter, in a third context, unlocks with the passcode, opens
Class, sees one panel per participant titled with their names and their checks, and the class
summary; then pushes another lesson, and a participant's Learn page opens it with a banner, without a
word of the other participant. Screenshots go to ``tmp_path/shots`` (and to the folder named by
``MTL_LAB_WALKTHROUGH_SHOTS``, when set). Without ``/usr/bin/chromium`` the test skips, unless
``MTL_LAB_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from browser_support import CHROMIUM, FLAGS, require_browser, served_app

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
PASSCODE = "a long presenter phrase"
TOKENS = {"Ada Lovelace": "a" * 8 + "A" * 8 + "-aaaaaaa", "Bodhi Quill": "b" * 8 + "B" * 8 + "_bbbbbbb"}
PRESENTER_TOKEN = "p" * 8 + "P" * 8 + "-ppppppp"
#: Generous: on a busy machine a fresh worker needs tens of seconds to import PyTorch.
TRAINED_WITHIN_S = 240
TINY_LESSON = """\
title: {title}
story: Two small tasks, trained together and alone.
question: Does sharing the trunk help here?
expect: Shared training is not far from training alone.
preset:
  base:
    suite: scales
    suite_options: {{n_samples: 100, dim: 10, out_dim: 4}}
    strategy_options: {{hidden: 16}}
    epochs: 4
    batch_size: 20
    probe_interval: 1
  runs:
    - label: shared
    - label: alone
      strategy: single
check:
  - delta_m_above: {{label: shared, baseline: alone, above: -1000.0}}
"""


@dataclass
class Server:
    url: str
    home: Path
    shots: Path
    extra_shots: Path | None

    def shot(self, page, name: str) -> Path:
        """A screenshot of the whole page (the window made tall: Streamlit scrolls inside its main block)."""
        path = self.shots / f"{len(list(self.shots.glob('*.png'))) + 1:02d}_{name}.png"
        page.set_viewport_size({"width": 1400, "height": 2000})
        page.wait_for_timeout(1200)
        page.screenshot(path=str(path), full_page=True)
        page.set_viewport_size({"width": 1400, "height": 1000})
        if self.extra_shots is not None:
            shutil.copy(path, self.extra_shots / path.name)
        return path


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The app served from this checkout as a workshop server, with two tiny lessons; stopped (with its
    pool) afterwards."""
    require_browser()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MTL_LAB_HOME", str(home))
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "01-tiny-sharing.yaml").write_text(TINY_LESSON.format(title="Tiny sharing"), encoding="utf-8")
    (lessons / "02-other-tiny.yaml").write_text(TINY_LESSON.format(title="Another tiny one"), encoding="utf-8")
    shots = tmp_path / "shots"
    shots.mkdir()
    extra = os.environ.get("MTL_LAB_WALKTHROUGH_SHOTS")
    extra_shots = Path(extra) if extra else None
    if extra_shots is not None:
        extra_shots.mkdir(parents=True, exist_ok=True)
    env = {"MTL_LAB_WORKERS": "2", "MTL_LAB_LESSONS": str(lessons), "MTL_LAB_PRESENTER_PASSCODE": PASSCODE}
    log_path = tmp_path / "streamlit.log"
    with served_app(home, log_path, env) as url:
        yield Server(url=url, home=home, shots=shots, extra_shots=extra_shots)
        assert PASSCODE not in log_path.read_text(encoding="utf-8", errors="replace")  # never logged


def _settle(page, timeout_s: float = 30) -> None:
    """Wait until the page's script has finished its rerun (no "Stop" button), seen twice in a row."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        quiet = quiet + 1 if page.get_by_role("button", name="Stop", exact=True).count() == 0 else 0


def _panel_titles(page) -> list[str]:
    return page.locator("[data-testid='stPlotlyChart'] .annotation-text").evaluate_all(
        "nodes => nodes.map(n => n.textContent)")


def _wait_for_panels(page, wanted: list[str], timeout_s: float) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while True:
        titles = _panel_titles(page)
        if all(w in titles for w in wanted) or time.monotonic() > deadline:
            return titles
        page.wait_for_timeout(500)


def test_two_participants_and_the_presenter_in_class(server: Server) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        expect.set_options(timeout=60_000)
        try:
            participants = {}
            for name, token in TOKENS.items():
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(60_000)
                page.goto(f"{server.url}/learn?me={token}")
                expect(page.get_by_role("heading", name="1. Tiny sharing")).to_be_visible()
                field = page.get_by_role("textbox", name="Your name (optional)")
                field.fill(name)
                field.press("Enter")
                _settle(page)
                expect(page).to_have_url(re.compile(r"name="))
                page.get_by_role("button", name="Run this lesson").first.click()
                expect(page.get_by_role("heading", name="Run view")).to_be_visible()
                participants[name] = page
            server.shot(participants["Ada Lovelace"], "participant_run_view")

            presenter = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            presenter.set_default_timeout(60_000)
            presenter.goto(f"{server.url}/learn?me={PRESENTER_TOKEN}")
            sidebar = presenter.get_by_test_id("stSidebar")
            expect(sidebar.get_by_role("link", name="Class")).to_have_count(0)  # not before the unlock
            sidebar.get_by_text("Presenter", exact=True).click()
            sidebar.get_by_role("textbox", name="Passcode").fill(PASSCODE)
            sidebar.get_by_role("button", name="Unlock").click()
            expect(sidebar.get_by_text("Presenter: you see and manage")).to_be_visible()
            sidebar.get_by_role("link", name="Class").click()
            expect(presenter.get_by_role("heading", name="Class", exact=True)).to_be_visible()
            wanted = ["Ada Lovelace · ✓ holds", "Bodhi Quill · ✓ holds"]
            titles = _wait_for_panels(presenter, wanted, TRAINED_WITHIN_S)  # the page refreshes by itself
            assert all(w in titles for w in wanted), titles
            expect(presenter.get_by_text("2 participants ran this lesson")).to_be_visible()
            chart_titles = presenter.locator("[data-testid='stPlotlyChart'] .gtitle").evaluate_all(
                "nodes => nodes.map(n => n.textContent)")
            assert chart_titles == ["Every participant's runs", "Δm (%): each participant and the class"], \
                chart_titles
            server.shot(presenter, "class_page")
            assert PASSCODE not in presenter.content()

            presenter.get_by_role("combobox", name="Lesson").click()
            presenter.get_by_role("option", name="2. Another tiny one").click()
            _settle(presenter)
            expect(presenter.get_by_text("No participant has run this lesson yet.")).to_be_visible()
            server.shot(presenter, "class_page_empty")
            presenter.get_by_role("button", name="Push this lesson to everyone").click()
            expect(presenter.get_by_text("Pushed to every participant since")).to_be_visible()

            ada = participants["Ada Lovelace"]
            ada.goto(f"{server.url}/learn?me={TOKENS['Ada Lovelace']}")
            banner = ada.get_by_text("Your presenter opened lesson")
            expect(banner).to_be_visible()
            expect(banner).to_contain_text("2. Another tiny one")
            # a new visit without ?name= keeps the name this participant gave
            expect(ada.get_by_role("textbox", name="Your name (optional)")).to_have_value("Ada Lovelace")
            expect(ada.get_by_role("heading", level=3).first).to_have_text("2. Another tiny one")
            expect(ada.get_by_test_id("stSidebar").get_by_text("Does sharing the trunk help here?")).to_be_visible()
            server.shot(ada, "participant_learn_pushed")
            assert "Bodhi Quill" not in ada.content()  # participants never see each other's names
        finally:
            expect.set_options(timeout=5_000)
            browser.close()
