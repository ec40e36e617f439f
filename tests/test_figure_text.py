"""User-provided names in figures are shown as literal text, never read as plotly markup.

plotly.js reads a subset of HTML in every text it draws (titles, axis titles, tick labels, legend entries,
annotations, hover and bar text): tags such as ``<b>``, ``<br>``, ``<a href=…>``, ``<span style=…>``,
entities such as ``&lt;``, ``$…$`` as TeX where MathJax is loaded, and ``%{…}`` as a placeholder in hover
templates. Every figure function is built twice, once with plain placeholder names and once with hostile
ones, and every text of the two figures must read the same to plotly.js — the same tags, placeholders and
TeX, with the placeholders' text replaced by the hostile names, character for character. ``_reading`` is a
port of plotly.js's own reading of a text (``svg_text_utils.js``: its tag split, tag names and entity table;
``hovertemplateString``'s placeholder pattern; ``matchTex``).

The browser tests write a figure to HTML with the figure export and open it in Chromium (skipped without
``/usr/bin/chromium`` unless ``MTL_LAB_REQUIRE_BROWSER=1``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from mtl_core import figures
from mtl_core.cli import main
from mtl_core.runs.export import export_figure, figure_to_html

HOSTILE = (
    '<a href="https://evil.example">click</a>',
    "<b>big</b>",
    "<br>",
    '<span style="font-size:90px">x</span>',
    "&lt;",
    "=cmd|' /C calc'!A0",
    "![pix](http://127.0.0.1:8765/md.png)",
    "$x^2$",
    "%{y}",
)
#: Plain names in the same roles; none is a part of another, nor of any text the figures draw themselves.
PLACEHOLDERS = tuple(f"Qname{index}Q" for index in range(len(HOSTILE)))

# --- plotly.js's reading of a text -------------------------------------------------------------------

_SPLIT_TAGS = re.compile(r"(<[^<>]*>)")
_ONE_TAG = re.compile(r"<(/?)([^ >]*)(\s+(.*))?>", re.IGNORECASE)
_MARKUP_TAGS = {"br", "sup", "sub", "s", "u", "b", "i", "a", "span", "em"}
_ENTITY = re.compile(r"&(#\d+|#x[\da-fA-F]+|[a-z]+);")
_NAMED_ENTITIES = {"mu": "μ", "amp": "&", "lt": "<", "gt": ">", "nbsp": "\xa0", "times": "×",
                   "plusmn": "±", "deg": "°"}
_PLACEHOLDER = re.compile(r"%{([^\s%{}:]*)([:|\|][^}]*)?}")
_TEX = re.compile(r"([^$]*)([$]+[^$]*[$]+)([^$]*)")


def _entity(match: re.Match[str]) -> str:
    code = match.group(1)
    if code.startswith("#"):
        number = int(code[2:], 16) if code[1] == "x" else int(code[1:])
        return chr(number) if number <= 0x10FFFF else match.group(0)
    return _NAMED_ENTITIES.get(code, match.group(0))


def _reading(text: str) -> tuple[bool, tuple[str, ...], tuple[tuple[str, str], ...]]:
    """What plotly.js makes of ``text``: whether it is TeX, its template placeholders, and its parts in
    order, each a ``("tag", tag)`` it turns into markup or a ``("text", shown characters)``."""
    parts = []
    for part in _SPLIT_TAGS.split(text):
        tag = _ONE_TAG.search(part)
        if tag and tag.group(2).lower() in _MARKUP_TAGS:
            parts.append(("tag", part))
        elif part:
            parts.append(("text", _ENTITY.sub(_entity, part)))
    placeholders = tuple(match.group(0) for match in _PLACEHOLDER.finditer(text))
    return bool(_TEX.search(text)), placeholders, tuple(parts)


def _named(reading: Any, names: dict[str, str]) -> Any:
    """``reading`` with every placeholder name in its shown text replaced by its hostile twin."""
    tex, placeholders, parts = reading
    renamed = []
    for kind, value in parts:
        if kind == "text":
            for plain, hostile in names.items():
                value = value.replace(plain, hostile)
        renamed.append((kind, value))
    return tex, placeholders, tuple(renamed)


def _pairs(plain: Any, hostile: Any, path: str = "") -> Iterator[tuple[str, str, str]]:
    """The strings at the same place of two figure dicts of the same shape, as (path, plain, hostile)."""
    if isinstance(plain, np.ndarray):
        plain, hostile = plain.tolist(), np.asarray(hostile).tolist()
    if isinstance(plain, dict):
        assert isinstance(hostile, dict) and plain.keys() == hostile.keys(), path
        for key in plain:
            if path == "layout" and key == "template":
                continue  # plotly's theme: the same for every figure
            yield from _pairs(plain[key], hostile[key], f"{path}.{key}" if path else key)
    elif isinstance(plain, (list, tuple)):
        assert isinstance(hostile, (list, tuple)) and len(plain) == len(hostile), path
        for index, (first, second) in enumerate(zip(plain, hostile)):
            yield from _pairs(first, second, f"{path}[{index}]")
    elif isinstance(plain, str):
        assert isinstance(hostile, str), path
        yield path, plain, hostile


# --- every figure function, with names in every role it draws ------------------------------------------


def _history(tasks: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "epoch": epoch,
            "train_loss": {task: 1.0 / (epoch + index + 1) for index, task in enumerate(tasks)},
            "val_loss": {task: 1.2 / (epoch + index + 1) for index, task in enumerate(tasks)},
            "val_metric": {task: 0.5 + 0.1 * epoch for task in tasks},
        }
        for epoch in range(3)
    ]


def _bars(names: list[str], per_task: bool = False) -> go.Figure:
    table = pd.DataFrame(
        [
            {names[5]: group, "task": task, "mean": 0.5, "ci_low": 0.4, "ci_high": 0.6, "metric": names[7],
             "higher_is_better": True}
            for group in names[3:5]
            for task in names[:3]
        ]
    )
    return figures.compare_bars(
        table, group_column=names[5], value_label=names[6], title="bars", per_task=per_task
    )


def _transfer(names: list[str]) -> go.Figure:
    mean = [[None, 0.1, -0.2], [0.05, None, 0.3], [-0.1, 0.2, None]]
    p_value = [[None, 0.001, 0.2], [0.001, None, 0.002], [0.5, 0.001, None]]
    return figures.transfer_heatmap(mean, mean, mean, p_value, names[:3])


_COSINE = [[1.0, -0.4, 0.2], [-0.4, 1.0, 0.5], [0.2, 0.5, 1.0]]
_GATES = [0.2, 0.3, 0.5]

CASES: dict[str, Callable[[list[str]], go.Figure]] = {
    "loss_curves": lambda names: figures.loss_curves(_history(names[:3])),
    "step_loss_curves": lambda names: figures.step_loss_curves(
        [1, 2, 3], {task: [1.0, 0.5, 0.25] for task in names[:3]}, smoothing=0.5
    ),
    "metric_curves": lambda names: figures.metric_curves(
        _history(names[:3]),
        {
            names[0]: {"metric": names[3], "higher_is_better": True},
            names[1]: {"metric": names[4], "higher_is_better": False},
            names[2]: {"metric": names[3], "higher_is_better": True},
        },
    ),
    "overlay_curves": lambda names: figures.overlay_curves(
        {names[3]: _history(names[:3]), names[4]: _history(names[:3])}, names[0]
    ),
    "overlay_curves (empty)": lambda names: figures.overlay_curves({names[3]: []}, names[0]),
    "compare_bars": _bars,
    "compare_bars (per task)": lambda names: _bars(names, per_task=True),
    "cosine_heatmap": lambda names: figures.cosine_heatmap(_COSINE, names[:3], window=names[7]),
    "cosine_timeseries": lambda names: figures.cosine_timeseries(
        [1, 2], [_COSINE, _COSINE], names[:3], smoothing=0.5
    ),
    "norm_ratio_timeseries": lambda names: figures.norm_ratio_timeseries(
        [1, 2], [[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]], names[:3]
    ),
    "norm_ratio_timeseries (raw)": lambda names: figures.norm_ratio_timeseries(
        [1, 2], [[1.0, 2.0, 3.0], [2.0, 1.0, 3.0]], names[:3], mode="raw", smoothing=0.5
    ),
    "weights_timeseries": lambda names: figures.weights_timeseries(
        [1, 2], [[0.2, 0.3, 0.5], [0.3, 0.3, 0.4]], names[:3], smoothing=0.5
    ),
    "transfer_heatmap": _transfer,
    "affinity_heatmap": lambda names: figures.affinity_heatmap(_COSINE, names[:3], [2, 0, 1]),
    "groupings_figure": lambda names: figures.groupings_figure(
        [names[:2], names[2:4]], dict.fromkeys(names[:4], 0.5), score_label=names[8]
    ),
    "groupings_figure (no scores)": lambda names: figures.groupings_figure([names[:2], names[1:4]]),
    "measured_vs_predicted": lambda names: figures.measured_vs_predicted(
        {task: 0.1 * index for index, task in enumerate(names[:4])},
        {task: 0.12 * index for index, task in enumerate(names[:3])},
        label=names[8],
    ),
    "measured_vs_predicted (two units)": lambda names: figures.measured_vs_predicted(
        {task: 0.1 * index for index, task in enumerate(names[:4])},
        {task: 0.12 * index for index, task in enumerate(names[:3])},
        label=names[8],
        predicted_label=names[7],
    ),
    "gradient_arrows": lambda names: figures.gradient_arrows(
        [[1.0, 0.0], [-0.5, 1.0]], {names[3]: [0.5, 0.5], names[4]: [0.2, 0.4]}, names[:2]
    ),
    "gradient_arrows (zero and equal updates)": lambda names: figures.gradient_arrows(
        [[1.0, 0.0], [-0.5, 1.0]],
        {names[3]: [0.0, 0.0], names[4]: [0.2, 0.4], names[5]: [0.2, 0.4]},
        names[:2],
        show_agreement=True,
    ),
    "gradient_arrows (3-D)": lambda names: figures.gradient_arrows(
        [[1.0, 0.0, 0.0], [0.0, 1.0, -0.5]], {names[3]: [0.5, 0.5, 0.0]}, names[:2]
    ),
    "gate_heatmap": lambda names: figures.gate_heatmap(
        dict.fromkeys(names[:2], _GATES), expert_labels=names[5:8]
    ),
    "class_panels": lambda names: figures.class_panels(
        [{"participant": names[0], "status": "passed", "curves": {names[1]: {"epochs": [1, 2], "loss": [1.0, 0.5]}}},
         {"participant": names[2], "status": "running", "note": names[3], "curves": {}}]),
    "class_summary": lambda names: figures.class_summary(
        [{"participant": names[0], "values": {names[1]: 1.0, names[2]: -1.0}},
         {"participant": names[3], "values": {names[1]: 2.0, names[2]: 0.5}}], names[8]),
    "forecast_figure": lambda names: figures.forecast_figure(
        {"steps": [10, 20, 30], "signals": {"affinity": [0.2, 0.9, 0.95], names[0]: [None, 0.1, 0.3]},
         "reached": {"affinity": 20, names[0]: None}, "threshold": 0.8, "total_steps": 40}
    ),
}

#: Public functions of mtl_core.figures that draw no name: colour and order helpers, the escaping itself,
#: and the empty figure (it draws its caller's title and message only).
NO_NAMES = {"task_colors", "series_colors", "cluster_order", "plot_text", "empty_figure"}


def test_every_figure_function_is_built_with_hostile_names() -> None:
    public = {name for name in figures.__all__ if callable(getattr(figures, name))}
    covered = {case.split(" ")[0] for case in CASES}
    assert public - NO_NAMES == covered


@pytest.mark.parametrize("case", list(CASES))
def test_names_read_as_literal_text(case: str) -> None:
    """Each hostile name in turn takes each role (task, metric, run, method, column, label)."""
    build = CASES[case]
    plain = build(list(PLACEHOLDERS)).to_plotly_json()
    drawn = set()
    for shift in range(len(HOSTILE)):
        hostile_names = HOSTILE[shift:] + HOSTILE[:shift]
        hostile = build(list(hostile_names)).to_plotly_json()
        names = dict(zip(PLACEHOLDERS, hostile_names))
        for path, plain_text, hostile_text in _pairs(plain, hostile):
            drawn.update(name for name in PLACEHOLDERS if name in plain_text)
            assert _reading(hostile_text) == _named(_reading(plain_text), names), (path, hostile_text)
            assert not re.search(r"<(a|span)\b|<[^<>]*style=|\$", hostile_text), (path, hostile_text)
    assert drawn, f"{case} draws none of the names it was given"


def test_plot_text_escapes_what_plotly_reads() -> None:
    assert figures.plot_text('<b>x</b> & $1 %{y}') == "&lt;b&gt;x&lt;/b&gt; &amp; &#36;1 &#37;{y}"
    assert figures.plot_text("plain name · 1") == "plain name · 1"
    for name in HOSTILE:
        assert _reading(figures.plot_text(name)) == (False, (), (("text", name),))


def test_own_markup_is_kept() -> None:
    """Only the names are escaped: the figures' own line breaks and subscripts still work."""
    metric = figures.metric_curves(_history(["a<b"]), {"a<b": {"metric": "acc", "higher_is_better": True}})
    assert metric.layout.yaxis.title.text == "acc<br>↑ higher is better"
    cosine = figures.cosine_heatmap([[1.0, -0.4], [-0.4, 1.0]], ["<i>", "b"])
    assert cosine.data[0].customdata[0][1].startswith("cos(g<sub>&lt;i&gt;</sub>, g<sub>b</sub>)")
    assert list(cosine.data[0].x) == ["&lt;i&gt;", "b"]


# --- exports -------------------------------------------------------------------------------------------

_BREAKOUT = "</script><script>window.__pwned = 1</script>"


def test_html_export_keeps_names_inside_the_embedded_json(tmp_path: Path) -> None:
    """Even a figure that was not escaped (a user's own figure JSON) cannot close the page's script."""
    raw = go.Figure(go.Bar(x=[_BREAKOUT, "b"], y=[1, 2], name=_BREAKOUT), layout={"title": {"text": _BREAKOUT}})
    html = figure_to_html(raw, include_plotlyjs=False)
    assert _BREAKOUT not in html
    assert "</script><script>" not in html
    assert html.count("</script>") == html.count("<script")
    escaped = figure_to_html(figures.cosine_heatmap(_COSINE, [_BREAKOUT, *HOSTILE[:2]]), include_plotlyjs=False)
    assert _BREAKOUT not in escaped and escaped.count("</script>") == escaped.count("<script")


def test_cli_figure_export_escapes_the_run_file_name(tmp_path: Path) -> None:
    source = tmp_path / "<b>big<br>run.json"
    source.write_text(json.dumps({"history": _history(list(HOSTILE[:3]))}), encoding="utf-8")
    out = tmp_path / "figure.json"
    assert main(["export", "figure", "--run", str(source), "--out", str(out)]) == 0
    figure = json.loads(out.read_text(encoding="utf-8"))
    title = figure["layout"]["title"]["text"]
    assert _reading(title) == (False, (), (("text", "Loss per task — run <b>big<br>run.json"),))
    names = {trace["name"] for trace in figure["data"]}
    assert f"{figures.plot_text(HOSTILE[0])} · train" in names


# --- in a browser ----------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
_SHOWN = """() => {
    const xlink = "http://www.w3.org/1999/xlink";
    const links = [...document.querySelectorAll("a")]
        .map(a => a.getAttribute("href") || a.getAttributeNS(xlink, "href") || "");
    const styled = [...document.querySelectorAll(".main-svg tspan[style]")].map(t => t.getAttribute("style"));
    const texts = [...document.querySelectorAll(".main-svg text")].map(t => t.textContent);
    return {links, styled, texts, pwned: window.__pwned === 1};
}"""


def _require_browser() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("MTL_LAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is missing and MTL_LAB_REQUIRE_BROWSER=1 (install Debian's chromium)")
    pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")


def _shown_in_browser(paths: list[Path]) -> list[dict[str, Any]]:
    from playwright.sync_api import sync_playwright

    seen = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            for path in paths:
                page.goto(path.as_uri())
                page.locator(".main-svg").first.wait_for(state="visible", timeout=60_000)
                seen.append(page.evaluate(_SHOWN))
        finally:
            browser.close()
    return seen


@pytest.mark.e2e
def test_exported_figure_shows_hostile_names_as_text(tmp_path: Path) -> None:
    """A heatmap whose task names are markup, exported to HTML and opened in Chromium: no link, bold or
    sized span from the names, which appear character for character as tick labels. The same names put
    into a figure unescaped are the control: there the checks do see the injected link and styles."""
    _require_browser()
    tasks = [HOSTILE[0], HOSTILE[1], HOSTILE[3], _BREAKOUT]
    matrix = np.eye(4).tolist()
    escaped = export_figure(figures.cosine_heatmap(matrix, tasks), tmp_path / "escaped.html")
    control = export_figure(
        go.Figure(go.Heatmap(z=matrix, x=tasks, y=tasks), layout={"title": {"text": HOSTILE[1]}}),
        tmp_path / "control.html",
    )
    shown, unescaped = _shown_in_browser([Path(escaped), Path(control)])
    assert any("evil.example" in link for link in unescaped["links"])
    assert any("font-weight:bold" in style for style in unescaped["styled"])
    assert any("90px" in style for style in unescaped["styled"])
    assert not unescaped["pwned"]
    assert not any("evil.example" in link for link in shown["links"])
    assert not any("bold" in style or "90px" in style for style in shown["styled"])
    assert not shown["pwned"]
    for task in tasks:
        assert task in shown["texts"], task
