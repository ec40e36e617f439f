"""The engine works as an installed package, away from the checkout: a wheel built from a copy of
the repository is pip-installed (not editable) into a fresh virtual environment, and the CLI, run
from a folder outside the repository, draws figures and trains a shipped lesson.

The new environment borrows the dependencies (torch, numpy, …) from the development environment
through a ``.pth`` line naming its site-packages folder; such a line only extends ``sys.path``, so
the ``.pth`` files inside that folder, among them the editable install's finder, are not run and
the checkout stays invisible. Slow (about 50 s on two cores, half of it training the lesson).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "mtl_core" / "assets" / "lessons"
#: The cheapest shipped lesson (9 short runs, about 20 s).
LESSON = "scale-imbalance"
#: What never belongs in a build: environments, caches, earlier builds and their metadata.
NOT_SOURCES = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache",
                                     "test-artifacts", ".mtl_lab")


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(command)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh virtual environment with the project installed from its wheel: (python, site-packages)."""
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)  # builds write into the tree: never into the checkout
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
          "--wheel-dir", str(tmp / "dist"), str(source)], cwd=tmp)
    (wheel,) = (tmp / "dist").glob("mtl_lab-*.whl")

    _run([sys.executable, "-m", "venv", "--without-pip", str(tmp / "venv")], cwd=tmp)
    python = tmp / "venv" / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp).strip())
    dependencies = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "dependencies_from_dev_venv.pth").write_text("".join(f"{path}\n" for path in dependencies), encoding="utf-8")
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], cwd=tmp)
    return python, site


@dataclass(frozen=True)
class InstalledCli:
    """``python -m mtl_core ARGS`` of the installed copy, run in ``cwd``, a folder outside the checkout."""

    python: Path
    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str) -> str:
        return _run([str(self.python), "-m", "mtl_core", *args], cwd=self.cwd, env=self.env)


@pytest.fixture
def cli(installed: tuple[Path, Path], tmp_path: Path) -> InstalledCli:
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "PYTHONHOME") and not key.startswith("MTL_LAB_")}
    env["MTL_LAB_HOME"] = str(tmp_path / "home")
    env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"  # as in the test process: no spinning threads on busy cores
    return InstalledCli(installed[0], work, env)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed: tuple[Path, Path], cli: InstalledCli) -> None:
    python, site = installed
    where = _run([str(python), "-c", "import mtl_core.figures, mtl_core.workshop.lessons as l; "
                                     "print(mtl_core.__file__); print(l.lessons_dir())"], cwd=cli.cwd, env=cli.env)
    package_file, lessons_dir = map(Path, where.split())
    assert package_file.is_relative_to(site), package_file
    assert lessons_dir == site / "mtl_core" / "assets" / "lessons"
    shipped = sorted(path.name for path in lessons_dir.iterdir())
    assert shipped == sorted(path.name for path in LESSONS.iterdir() if path.is_file())
    assert any(name.endswith(".yaml") for name in shipped)


def test_the_installed_cli_draws_figures_of_a_study(cli: InstalledCli) -> None:
    cli("study", "--suite", "planted", "--suite-opt", "n_tasks=2", "--seeds", "1", "--max-epochs", "2",
        "--executor", "serial", "--quiet", "--out", "study.json")
    cli("export", "figure", "--study", "study.json", "--kind", "transfer", "--out", "transfer.html")
    html = (cli.cwd / "transfer.html").read_text(encoding="utf-8")
    assert "plotly" in html.lower() and '"type":"heatmap"' in html.replace(" ", "")


def test_the_installed_cli_runs_a_shipped_lesson(cli: InstalledCli) -> None:
    output = cli("lessons", "run", LESSON)
    assert "The expected observation holds" in output
