"""Ray's edges (issue 15): the address, the pinned version, the settings and the CLI's
``--executor ray`` / ``--address``. Bad input or a cluster that does not answer is one line on stderr
with exit status 2, naming what is allowed and what came, and nothing is queued.

The tests that need no Ray session come first: :func:`~mtl_core.runs.ray_support.connect` does
nothing once this process is connected, so "cannot reach" can only be seen before the module's one
local Ray session (``ray_session``) starts; it is shut down at the end of the module.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mtl_core.cli import main
from mtl_core.errors import ConfigError
from mtl_core.runs import ray_support
from mtl_core.runs.ray_support import (
    ALLOWED_ADDRESSES,
    RAY_PIN,
    RaySetupError,
    connect,
    parse_address,
    require_ray,
)
from mtl_core.runs.store import RunStore, lab_home
from mtl_core.settings import SettingError, settings

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -r requirements-ray.txt)")

ROOT = Path(__file__).resolve().parents[1]
TINY_STUDY = ["study", "--suite", "planted", "--suite-opt", "n_samples=120", "--suite-opt", "dim=4",
              "--suite-opt", "n_tasks=2", "--strategy-opt", "hidden=4", "--seeds", "1", "--max-epochs", "2",
              "--batch-size", "32", "--quiet"]


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI, expect exit status 2 and exactly one line on stderr; return it."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's own refusals (an unknown choice) exit from the parser
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def _queued_runs() -> int:
    store = RunStore.at_home(lab_home())
    try:
        return store.count_runs(("queued", "running", "done", "failed", "cancelled"))
    finally:
        store.close()


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- the address ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    (None, None), ("", None), ("   ", None), ("auto", "auto"), (" AUTO ", "auto"),
    ("head:6379", "head:6379"), ("Head.Example.org:6379", "head.example.org:6379"),
    ("10.0.0.7:6379", "10.0.0.7:6379"), ("[::1]:6379", "[::1]:6379"),
    ("ray://head:10001", "ray://head:10001"), ("RAY://10.0.0.7:10001/", "ray://10.0.0.7:10001"),
    ("h:1", "h:1"), ("h:65535", "h:65535"), ("h:007", "h:7"),
])
def test_addresses_are_normalised(text: str | None, expected: str | None) -> None:
    assert parse_address(text) == expected
    if expected is not None:
        assert parse_address(expected) == expected  # a normalised address parses to itself


@pytest.mark.parametrize(("text", "why"), [
    ("head", "no port"),
    ("ray://", "no port"),
    (":6379", "no host"),
    ("head:", "port '' is not in 1–65535"),
    ("head:0", "port '0' is not in 1–65535"),
    ("head:65536", "port '65536' is not in 1–65535"),
    ("head:-1", "port '-1' is not in 1–65535"),
    ("head:http", "port 'http' is not in 1–65535"),
    ("http://head:8265", "the only scheme allowed is ray://"),
    ("grpc://head:10001", "the only scheme allowed is ray://"),
    ("999.1.1.1:6379", "'999.1.1.1' is not a host name or IP address"),
    ("my head:6379", "'my head' is not a host name or IP address"),
    ("-head:6379", "'-head' is not a host name or IP address"),
    ("head_1:6379", "'head_1' is not a host name or IP address"),
    ("::1:6379", "'::1' is not a host name or IP address"),
    ("[nope]:6379", "'[nope]' is not a host name or IP address"),
])
def test_every_bad_address_names_the_setting_what_is_allowed_and_what_came(text: str, why: str) -> None:
    with pytest.raises(RaySetupError) as info:
        parse_address(text)
    assert str(info.value) == (f"`--address` / `MTL_LAB_RAY_ADDRESS` must be {ALLOWED_ADDRESSES}, "
                               f"got {text!r} ({why})")
    with pytest.raises(RaySetupError, match=r"^`--address` must be"):
        parse_address(text, setting="`--address`")


# --- the settings -----------------------------------------------------------------------------------
def test_the_ray_address_setting() -> None:
    assert settings({}).ray_address is None
    assert settings({"MTL_LAB_RAY_ADDRESS": " Ray://Head:10001 "}).ray_address == "ray://head:10001"
    with pytest.raises(SettingError) as info:
        _ = settings({"MTL_LAB_RAY_ADDRESS": "head"}).ray_address
    assert str(info.value) == f"`MTL_LAB_RAY_ADDRESS` must be {ALLOWED_ADDRESSES}, got 'head'"
    assert isinstance(info.value, ConfigError) and info.value.field == "MTL_LAB_RAY_ADDRESS"


def test_an_unknown_executor_setting_names_the_allowed_ones() -> None:
    assert settings({"MTL_LAB_EXECUTOR": "ray"}).executor == "ray"
    with pytest.raises(SettingError) as info:
        _ = settings({"MTL_LAB_EXECUTOR": "dask"}).executor
    assert str(info.value) == "`MTL_LAB_EXECUTOR` must be one of local, ray, serial, got 'dask'"


def test_the_readme_documents_ray() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Running on a Ray cluster" in readme
    for needle in ("ray start --head", "ray start --address", "MTL_LAB_EXECUTOR=ray", "MTL_LAB_RAY_ADDRESS",
                   "--executor ray", "requirements-ray.txt"):
        assert needle in readme, needle
    assert f"ray[default]=={RAY_PIN}" in (ROOT / "requirements-ray.txt").read_text(encoding="utf-8")
    assert "-r requirements-ray.txt" in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()


def test_a_page_gets_one_sentence_naming_the_setting() -> None:
    assert ray_support.executor_problem({}) is None
    assert ray_support.executor_problem({"MTL_LAB_EXECUTOR": "ray", "MTL_LAB_RAY_ADDRESS": "auto"}) is None
    assert ray_support.executor_problem({"MTL_LAB_EXECUTOR": "dask"}) == (
        "Queued runs cannot start: `MTL_LAB_EXECUTOR` must be one of local, ray, serial, got 'dask'.")
    problem = ray_support.executor_problem({"MTL_LAB_EXECUTOR": "ray", "MTL_LAB_RAY_ADDRESS": "head"})
    assert problem is not None and "`MTL_LAB_RAY_ADDRESS` must be" in problem and "got 'head'" in problem


# --- Ray installed, at the pinned version -------------------------------------------------------------
def test_require_ray_returns_the_pinned_ray() -> None:
    assert require_ray() is ray and ray.__version__ == RAY_PIN


def test_a_version_mismatch_names_both_versions(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(ray, "__version__", "2.9.3")
    with pytest.raises(RaySetupError) as info:
        require_ray()
    assert str(info.value) == (f"the `ray` executor needs Ray {RAY_PIN}, got Ray 2.9.3 installed: "
                               "run `pip install -r requirements-ray.txt`")
    err = _error([*TINY_STUDY, "--executor", "ray"], capsys)
    assert f"needs Ray {RAY_PIN}, got Ray 2.9.3" in err
    assert _queued_runs() == 0


def test_ray_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(RaySetupError, match=r"needs Ray 2\.60\.0, which is not installed: run `pip install -r "
                                            r"requirements-ray\.txt`"):
        require_ray()
    assert "which is not installed" in _error(["worker", "--executor", "ray"], capsys)


# --- a cluster that does not answer (before this module's Ray session) ---------------------------------
def test_an_unreachable_cluster_fails_within_seconds() -> None:
    assert not ray.is_initialized()
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(RaySetupError) as info:
        connect(address, timeout=2)
    assert time.monotonic() - started < 5
    assert str(info.value).startswith(f"cannot reach the Ray cluster at {address} (")
    assert "\n" not in str(info.value)
    assert not ray.is_initialized()


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A local port that accepts connections and never answers (something that is not a Ray head)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_something_else_at_the_address_fails_within_seconds(silent_listener: str, scheme: str) -> None:
    address = f"{scheme}{silent_listener}"
    started = time.monotonic()
    with pytest.raises(RaySetupError, match=rf"^cannot reach the Ray cluster at {address} "):
        connect(address, timeout=2)
    assert time.monotonic() - started < 15
    assert not ray.is_initialized()
    assert "RAY_gcs_server_port_wait_time_s" not in ray_support.os.environ  # the bound was for that call only


def test_cli_bad_input_is_one_line_and_queues_nothing(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    closed = f"127.0.0.1:{_closed_port()}"
    cases = [
        ([*TINY_STUDY, "--executor", "ray", "--address", "head"], "`--address` must be", "got 'head' (no port)"),
        ([*TINY_STUDY, "--executor", "ray", "--address", closed], f"cannot reach the Ray cluster at {closed}", ""),
        ([*TINY_STUDY, "--executor", "pool", "--address", "auto"], "`--address` applies to --executor ray only",
         "got --executor pool"),
        ([*TINY_STUDY, "--executor", "dask"], "invalid choice: 'dask'", "'pool', 'serial', 'ray'"),
        (["worker", "--executor", "ray", "--address", closed], f"cannot reach the Ray cluster at {closed}", ""),
        (["worker", "--executor", "ray", "--address", "ray://head:99999"], "`--address` must be",
         "port '99999' is not in 1–65535"),
        (["worker", "--address", "auto"], "`--address` applies to --executor ray only", ""),
        (["group", "--from", "study.json", "--k", "2", "--executor", "ray"], "`--executor` applies with --train only",
         ""),
    ]
    for argv, first, second in cases:
        err = _error(argv, capsys)
        assert first in err and second in err, err
    monkeypatch.setenv("MTL_LAB_EXECUTOR", "dask")
    assert _error(TINY_STUDY, capsys) == "error: `MTL_LAB_EXECUTOR` must be one of local, ray, serial, got 'dask'"
    monkeypatch.setenv("MTL_LAB_EXECUTOR", "ray")
    monkeypatch.setenv("MTL_LAB_RAY_ADDRESS", "head:port")
    assert _error(TINY_STUDY, capsys) == (f"error: `MTL_LAB_RAY_ADDRESS` must be {ALLOWED_ADDRESSES}, "
                                          "got 'head:port'")
    assert _error(["worker"], capsys).startswith("error: `MTL_LAB_RAY_ADDRESS` must be")
    assert _queued_runs() == 0
    assert not ray.is_initialized()


# --- on a local Ray (one session for the rest of the module) -----------------------------------------
@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    connect(None, num_cpus=2)
    yield
    ray.shutdown()


def test_study_and_group_train_through_ray(ray_session: None, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "study.json"
    assert main([*TINY_STUDY, "--executor", "ray", "--out", str(out)]) == 0
    study = json.loads(out.read_text(encoding="utf-8"))
    assert study["n_runs"] == 3 and study["n_failed"] == 0
    store = RunStore.at_home(lab_home())
    try:
        assert {run.status for run in store.list_runs()} == {"done"}
    finally:
        store.close()
    capsys.readouterr()
    err = _error(["group", "--from", str(out), "--k", "1", "--train", "--executor", "ray", "--address", "nowhere"],
                 capsys)
    assert "`--address` must be" in err and "got 'nowhere' (no port)" in err
    assert main(["group", "--from", str(out), "--k", "1", "--train", "--executor", "ray", "--json"]) == 0
    evaluation = json.loads(capsys.readouterr().out)["evaluation"]
    assert set(evaluation["tasks"]) == {"t1", "t2"}


def test_a_refused_connection_names_rays_token_authentication(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray 2.60's ``ray start --head`` turns token authentication on; a driver without it is refused
    with only "failed to connect", so the line says what to set (unless the token mode is already on)."""
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    hint = ray_support._token_hint("10.0.0.5:6379")
    assert "RAY_AUTH_MODE=token" in hint and "~/.ray/auth_token" in hint and "\n" not in hint
    assert ray_support._token_hint(None) == ""  # a local Ray started here needs nothing
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert ray_support._token_hint("10.0.0.5:6379") == ""


def test_a_study_on_a_local_ray_prints_nothing_of_rays_own_on_stderr(tmp_path: Path) -> None:
    """The local Ray that the CLI starts for itself: Ray 2.60 announces on stderr that it turned token
    authentication on; that stray line is dropped (the study's own "wrote …" stays)."""
    import os
    import subprocess

    out = tmp_path / "study.json"
    env = {**os.environ, "MTL_LAB_HOME": str(tmp_path / "home")}
    env.pop("RAY_AUTH_MODE", None)
    done = subprocess.run([sys.executable, "-m", "mtl_core", *TINY_STUDY, "--executor", "ray", "--out", str(out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=240)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines() == [f"wrote {out}"], done.stderr
