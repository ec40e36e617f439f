"""Helpers shared by the AppTest modules (``test_app_pages``, ``test_app_data``): where the app is,
opening one of its pages, and training queued runs in this process."""

from __future__ import annotations

import sys
from pathlib import Path

from streamlit.testing.v1 import AppTest

from mtl_core.runs import workers
from mtl_core.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
MAIN = str(APP / "main.py")

if str(APP) not in sys.path:
    sys.path.insert(0, str(APP))  # app/ is a script folder, not a package: `from services import runs` etc.


def open_page(page: str, **query: str) -> AppTest:
    """The app's ``views/<page>.py`` run once through ``main.py``, with ``query`` in the address."""
    at = AppTest.from_file(MAIN, default_timeout=120)
    if page == "run_view":
        # Its url_path ("run") is not its file name: AppTest maps the file to the page only once
        # st.navigation has registered the pages, i.e. after a first run.
        at.run()
    at.switch_page(f"views/{page}.py")
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


#: The element kinds whose text a page shows a person (what :func:`page_texts` reads by default).
TEXT_KINDS = ("error", "warning", "info", "success", "markdown", "caption")


def page_texts(at: AppTest, kinds: tuple[str, ...] = TEXT_KINDS) -> str:
    """The text of every element of ``kinds`` on the page, one per line (what assertions search)."""
    return "\n".join(str(element.value) for kind in kinds for element in getattr(at, kind))


def train_queued(store: RunStore) -> None:
    """Train every queued run of ``store`` here, one after the other (what a worker would do)."""
    while (run := store.claim_next()) is not None:
        workers.execute_run(store, run)
