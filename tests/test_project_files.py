"""The project's set-up files agree with each other: the README's two commands, `.ci/run`, the
Dockerfile and requirements.txt (none of these can be exercised end to end by a unit test; the
Dockerfile cannot even be built here, so at least its promises are checked)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_the_readme_has_the_two_commands_and_ci_runs_the_test_command() -> None:
    setup_and_run, test = _readme_commands()
    assert "pip install -r requirements.txt" in setup_and_run and "streamlit run app/server.py" in setup_and_run
    assert test.endswith("python -m pytest") and "requirements-dev.txt" in test
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci, "`.ci/run` must run the README's test command verbatim"
    assert "apt-get install" in ci and "chromium" in ci and "MTL_LAB_REQUIRE_BROWSER=1" in ci


def test_requirements_pin_the_cpu_torch_and_every_package() -> None:
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    packages = [line for line in lines if line and not line.startswith("#") and line != "-e ."]
    assert "torch==2.13.0" in packages
    assert all("==" in line for line in packages), packages
    assert not any(line.split("==")[0] in ("torchvision", "torchjd", "libmtl") for line in packages)


def test_the_dockerfile_mirrors_the_readme_set_up() -> None:
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim", docker, re.M)
    assert "pip install -r requirements.txt" in docker
    assert re.search(r"^USER (?!root)\w+", docker, re.M), "the app must not run as root"
    assert re.search(r"^EXPOSE 8501$", docker, re.M)
    assert "HEALTHCHECK" in docker and "/_stcore/health" in docker
    assert '"streamlit", "run", "app/server.py"' in docker
    for folder in ("app", "mtl_core", ".streamlit"):
        assert re.search(rf"^COPY .*(?<![\w.]){re.escape(folder)}(?!\w)", docker, re.M), folder


def test_every_documented_start_serves_app_server() -> None:
    """``app/server.py`` recovers interrupted runs and starts the pool at server start (``app/main.py``
    alone waits for a page view), so every command that starts the app names it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for block in re.findall(r"```bash\n(.*?)```", readme, re.S)
                for line in block.splitlines() if "streamlit run" in line]
    assert commands and all("streamlit run app/server.py" in line for line in commands), commands
