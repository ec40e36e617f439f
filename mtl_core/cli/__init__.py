"""``python -m mtl_core`` — the headless command line.

Each sub-command lives in its own module of this package and exposes ``register(subparsers)``,
which adds its parser and sets ``handler`` (a function ``(args) -> int``) as a default. Errors the
user caused (:class:`~mtl_core.errors.MTLError`, including ``ConfigError``) print one line and exit 2;
nothing prints a traceback for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mtl_core.errors import MTLError

__all__ = ["main", "build_parser", "COMMAND_MODULES", "UsageError"]

#: Modules (in this package) that register sub-commands, in the order shown by ``--help``.
COMMAND_MODULES = ("suites", "train", "runs", "worker", "study", "group", "export", "lessons")


class UsageError(MTLError):
    """Bad command-line input (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")

    def format_help(self) -> str:
        # A help given as a function (e.g. one that lists a registry's entries, whose import loads
        # torch) is composed only now, when shown, so that parsing a command line never waits for it.
        for action in self._actions:
            if callable(action.help):
                action.help = action.help()
        return super().format_help()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mtl_core",
        description="MTL Lab engine: train multi-task models, run transfer studies, manage runs.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # a command not built yet
            raise
        module.register(subparsers)
    return parser


def _load_plugins() -> None:
    """Load the plugins (``$MTL_LAB_PLUGINS``, ``mtl_lab.plugins`` entry points); one stderr line
    per plugin that failed, and the command goes on without it."""
    from mtl_core.plugins import load_plugins

    for failure in load_plugins().failed:
        print(f"warning: {failure.message()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    # Before parsing, so that a plugin's suites, strategies and methods appear in the help too
    # (with no plugin named this imports nothing).
    _load_plugins()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except MTLError as exc:
        # A presenter-limit refusal names its limits file here (the pages leave server paths out).
        detail = exc.detail() if callable(getattr(exc, "detail", None)) else str(exc)
        print(f"error: {detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `… | head` closed the pipe: stop quietly, as Unix tools do
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush of the closed pipe raises
    nothing at exit."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
