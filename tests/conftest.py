"""Shared set-up: the tests never see the developer's MTL Lab settings or home, and run single-threaded.

At import, before any test module is collected (several parametrise over the registries, which read
user suites and plugins from the home), every ``MTL_LAB_*`` variable but the test switches is
removed and ``MTL_LAB_HOME`` points at a fresh temporary folder; each test then gets its own home.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

#: Variables that steer the tests themselves rather than MTL Lab.
_TEST_SWITCHES = ("MTL_LAB_REQUIRE_BROWSER", "MTL_LAB_UPDATE_SCREENSHOTS", "MTL_LAB_WALKTHROUGH_SHOTS")

for _name in [name for name in os.environ if name.startswith("MTL_LAB_") and name not in _TEST_SWITCHES]:
    del os.environ[_name]
_COLLECTION_HOME = tempfile.mkdtemp(prefix="mtl_lab_test_home_")
os.environ["MTL_LAB_HOME"] = _COLLECTION_HOME

import torch  # noqa: E402  (after the environment is set: nothing of MTL Lab may read it first)

torch.set_num_threads(1)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_COLLECTION_HOME, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path_factory.mktemp("mtl_home")
    monkeypatch.setenv("MTL_LAB_HOME", str(home))
