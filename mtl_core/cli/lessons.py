"""``python -m mtl_core lessons`` (or ``lessons list``): the workshop lessons; ``lessons show ID`` prints one (story, question,
what to expect, its runs and checks), ``lessons check`` validates every lesson file, and ``lessons run
ID`` trains the lesson's preset in this process and says whether its expected observation holds (exit
status 0 if it does, 1 if not).

Lessons are YAML files shipped in ``mtl_core/assets/lessons`` (or in ``$MTL_LAB_LESSONS``); see :mod:`mtl_core.workshop.lessons`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mtl_core.workshop.lessons import Lesson

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "lessons", help="list, validate and run the workshop lessons", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=list_command)
    commands = parser.add_subparsers(dest="lessons_command", metavar="ACTION", parser_class=type(parser))
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")

    listing = commands.add_parser("list", parents=[common], help="list the lessons (the same as no ACTION)")
    listing.set_defaults(handler=list_command)

    show = commands.add_parser("show", parents=[common], help="print one lesson")
    show.add_argument("lesson", metavar="ID")
    show.set_defaults(handler=show_command)

    check = commands.add_parser("check", parents=[common], help="validate every lesson file")
    check.set_defaults(handler=check_command)

    run = commands.add_parser("run", parents=[common], help="train a lesson's preset here and check its observation")
    run.add_argument("lesson", metavar="ID")
    run.set_defaults(handler=run_command)


def list_command(args: argparse.Namespace) -> int:
    from mtl_core.workshop.lessons import load_lessons

    lessons = load_lessons()
    if args.json:
        print(json.dumps([lesson.to_dict() for lesson in lessons], indent=2))
        return 0
    for lesson in lessons:
        print(f"{lesson.order}. {lesson.id}: {lesson.title} ({lesson.n_runs()} runs)")
    return 0


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent="  ")


def show_command(args: argparse.Namespace) -> int:
    from mtl_core.workshop.lessons import get_lesson

    lesson = get_lesson(args.lesson)
    if args.json:
        print(json.dumps(lesson.to_dict(), indent=2))
        return 0
    print(f"{lesson.order}. {lesson.title} [{lesson.id}]")
    for heading, text in (("Story", lesson.story), ("Question", lesson.question), ("Expect", lesson.expect),
                          ("Look at", lesson.look_at)):
        if text:
            print(f"{heading}:\n{_wrap(text)}")
    print("Runs:")
    for label in lesson.labels:
        runs = [run for run in lesson.runs if run.label == label]
        config = runs[0].config
        seeds = ", ".join(str(run.seed) for run in runs)
        print(f"  {label}: {config.suite} {dict(config.suite_options)} · {config.strategy} · {config.method} · "
              f"{config.epochs} epochs · seeds {seeds}")
    if lesson.study is not None:
        print(f"  study: {lesson.study_size()} runs (every task alone and every pair, seeds "
              f"{', '.join(map(str, lesson.study.seeds))})")
    print("Checks:")
    for spec in lesson.checks:
        print(f"  {spec.describe()}")
    return 0


def check_command(args: argparse.Namespace) -> int:
    from mtl_core.workshop.lessons import load_lessons

    lessons = load_lessons()
    if args.json:
        print(json.dumps({"valid": [lesson.id for lesson in lessons]}))
    else:
        print(f"{len(lessons)} lesson files are valid: {', '.join(lesson.id for lesson in lessons)}")
    return 0


def _check_preset_limits(lesson: Lesson) -> None:
    """The presenter's per-run caps (epochs, tasks, rows) on the lesson's preset runs, before any
    trains: they train in this process, so they are not queued runs of the concurrency cap. The
    lesson's study is queued, and checked in full when it is (``launch_study``)."""
    import dataclasses

    from mtl_core.workshop.limits import check_limits, load_limits

    per_run = dataclasses.replace(load_limits(), max_concurrent_runs_per_session=None)
    check_limits([run.config for run in lesson.runs], None, limits=per_run)


def _train_on_one_thread(train):
    """Small models, often on a busy machine: train with one torch thread, as the pool's workers do
    (:func:`mtl_core.runs.workers.limit_threads`), and give the process its threads back afterwards."""
    import torch

    from mtl_core.runs.workers import limit_threads

    threads = torch.get_num_threads()
    saved = {var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    limit_threads()
    try:
        return train()
    finally:
        torch.set_num_threads(threads)
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def run_command(args: argparse.Namespace) -> int:
    from mtl_core.workshop.lessons import evaluate_check, get_lesson, run_lesson_headless

    lesson = get_lesson(args.lesson)
    _check_preset_limits(lesson)

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\rtraining {done}/{total} runs", end="" if done < total else "\n", file=sys.stderr, flush=True)

    results = _train_on_one_thread(lambda: run_lesson_headless(lesson, progress=progress))
    passed, explanation = evaluate_check(lesson, results)
    if args.json:
        print(json.dumps({"lesson": lesson.id, "passed": passed, "explanation": explanation.splitlines(),
                          "cpu_seconds": round(results.cpu_seconds or 0.0, 2),
                          "wall_seconds": round(results.wall_seconds or 0.0, 2)}, indent=2))
    else:
        print(explanation)
        verdict = "holds" if passed else "does NOT hold"
        print(f"The expected observation {verdict} ({results.cpu_seconds:.1f} s CPU).")
    return 0 if passed else 1
