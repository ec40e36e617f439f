"""Property-based tests: random bytes and random malformed CSV files given to the CSV import.

Every outcome is either a saved suite that builds, or a :class:`CsvError` with a non-empty message —
never another exception (no traceback reaches the user)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from mtl_core.suites import make_suite
from mtl_core.suites.user_csv import refresh_user_suites
from mtl_core.userdata.csv_import import CsvError, CsvLimits, ImportReport, import_csv, inspect_csv, read_spec

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
LIMITS = CsvLimits(max_bytes=200_000, max_rows=400, max_columns=12, max_classes=20, max_categories=15, min_rows=10)


@pytest.fixture(autouse=True)
def _fresh_user_suites(_isolated_home: None, tmp_path_factory: pytest.TempPathFactory):
    refresh_user_suites()
    yield
    refresh_user_suites(tmp_path_factory.mktemp("no_suites"))


NAMES = st.sampled_from(["a", "b", "c", "x", "y", "", " ", "a", '"q"', "n,m", "=1+1", "ü", "tab\tname", '"multi\nline"', "a"])
CELLS = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.3f}"),
    st.sampled_from(["", "NA", "n/a", "nan", "None", "?", "inf", "-inf", "1e400", "abc", "Adelie", "Gentoo", "=1+1",
                     "=HYPERLINK(\"x\")", "@SUM(A1)", "+1", "-", '"', '""', '"quoted, comma"', "'", "\\", "é",
                     "\u200b", "true", "False", " 3 ", "0x10", "1_000", "1,5", "\r", "a\nb", "__import__('os')"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
    st.just("x" * 3000),
)


@st.composite
def malformed_csv(draw: st.DrawFn) -> tuple[bytes, list[str], dict]:
    """CSV-like text: maybe duplicated / empty headers, ragged rows, stray quotes, odd cells,
    all-missing or single-class columns, an odd encoding; and import choices for it."""
    clean = draw(st.booleans())  # half the cases: a clean header and sensible choices, to get further in
    n_columns = draw(st.integers(3 if clean else 1, 6))
    header = [f"c{i}" for i in range(n_columns)] if clean else draw(
        st.lists(NAMES, min_size=n_columns, max_size=n_columns))
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t"]))
    n_rows = draw(st.integers(0, 40))
    constant = draw(st.sampled_from([None, "", "NA", "Adelie", "1"]))
    constant_column = draw(st.integers(0, n_columns - 1))
    rows = []
    for _ in range(n_rows):
        ragged = draw(st.integers(0, 29 if clean else 5)) == 0
        width = draw(st.integers(0, n_columns + 2)) if ragged else n_columns
        cells = draw(st.lists(CELLS, min_size=width, max_size=width))
        if constant is not None and constant_column < len(cells):
            cells[constant_column] = constant  # an all-missing or single-class column
        rows.append(delimiter.join(cells))
    text = "\n".join([delimiter.join(header), *rows]) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))
    encodings = ["utf-8", "utf-8-sig"] if clean else ["utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16"]
    data = text.encode(draw(st.sampled_from(encodings)), errors="replace")
    names = [h.strip() for h in header] + ([] if clean else ["missing_column"])
    targets = draw(st.lists(st.sampled_from(names), min_size=0 if not clean else 2, max_size=3, unique=clean))
    choices: dict = {}
    if draw(st.booleans()):
        rest = [n for n in names if n not in targets] if clean else names
        choices["features"] = draw(st.lists(st.sampled_from(rest), max_size=3, unique=clean)) if rest else []
    if targets and draw(st.booleans()):
        choices["kinds"] = {draw(st.sampled_from(targets)): draw(st.sampled_from(["classification", "regression",
                                                                                  "other"]))}
    choices["missing"] = draw(st.sampled_from(["drop", "impute"]))
    return data, targets, choices


@st.composite
def numeric_csv(draw: st.DrawFn) -> tuple[bytes, list[str], dict]:
    """Mostly well-formed numeric / categorical data with some missing cells and occasional junk: many
    of these import successfully, so that the success path is fuzzed too."""
    n_rows = draw(st.integers(5, 60))
    columns = {
        "f1": [draw(st.sampled_from(["1", "2.5", "-3", "", "NA", "7", "x"])) if draw(st.integers(0, 9)) == 0
               else str(draw(st.integers(-50, 50))) for _ in range(n_rows)],
        "f2": [draw(st.sampled_from(["red", "blue", "green", "", "=1+1"])) for _ in range(n_rows)],
        "t1": [draw(st.sampled_from(["A", "B", "C", "", "A"])) for _ in range(n_rows)],
        "t2": [f"{draw(st.floats(-100, 100, allow_nan=False)):.2f}" if draw(st.integers(0, 99))
               else draw(st.sampled_from(["", "oops", "inf"])) for _ in range(n_rows)],
    }
    lines = [",".join(columns)] + [",".join(columns[c][i] for c in columns) for i in range(n_rows)]
    kinds = draw(st.sampled_from([{}, {}, {}, {"t1": "regression"}, {"t2": "classification"}, {"t2": "regression"}]))
    return ("\n".join(lines) + "\n").encode(), ["t1", "t2"], {"kinds": kinds,
                                                              "missing": draw(st.sampled_from(["drop", "impute"]))}


def note(text: str) -> None:
    """Record an outcome in hypothesis' statistics (``--hypothesis-show-statistics``)."""
    try:
        event(text)
    except InvalidArgument:  # outside a @given test
        pass


def import_outcome(data: bytes, targets: list[str], choices: dict) -> ImportReport | CsvError:
    try:
        report = import_csv(data, "fuzz", targets=targets, limits=LIMITS, replace=True, **choices)
    except CsvError as exc:
        assert str(exc).strip(), "a CsvError must say what is wrong"
        assert "\n" not in str(exc), "a CsvError is one line"
        note(f"error: {str(exc)[:30]}")
        return exc
    note("imported")
    built = make_suite("fuzz").build(0)  # a saved suite always builds
    assert built.task_names == report.task_names
    assert len(built.train) + len(built.val) + len(built.test) == report.n_rows_used
    assert len(built.val) > 0 and len(built.test) > 0
    for split in (built.train, built.val, built.test):
        assert not split.x.isnan().any()
        for name in built.task_names:
            assert not split.y[name].float().isnan().any()
    return report


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(data: bytes) -> None:
    try:
        inspect_csv(data, limits=LIMITS)
    except CsvError as exc:
        assert str(exc).strip()
    import_outcome(data, ["a", "b"], {})


@FUZZ
@given(malformed_csv())
def test_malformed_csv_text(case: tuple[bytes, list[str], dict]) -> None:
    data, targets, choices = case
    try:
        preview = inspect_csv(data, limits=LIMITS)
    except CsvError as exc:
        assert str(exc).strip()
    else:
        assert len(preview.columns) >= 1 and preview.n_rows >= 1
        assert len(set(preview.column_names)) == len(preview.column_names)
    import_outcome(data, targets, choices)


@FUZZ
@given(numeric_csv())
def test_mostly_valid_csv(case: tuple[bytes, list[str], dict]) -> None:
    data, targets, choices = case
    outcome = import_outcome(data, targets, choices)
    if isinstance(outcome, ImportReport):
        assert outcome.n_rows_used >= LIMITS.min_rows
        spec = read_spec(outcome.directory)
        assert [t["name"] for t in spec["targets"]] == ["t1", "t2"]
        dropped = outcome.n_rows_read - outcome.n_rows_used
        assert dropped == outcome.n_rows_dropped
        if choices["missing"] == "drop":
            assert dropped >= max(outcome.missing_counts.values())


def test_the_fuzzers_reach_both_outcomes() -> None:
    """The generators are not vacuous: the same kind of data gives successes and clear failures."""
    good = b"f1,f2,t1,t2\n" + b"".join(f"{i},{'ab'[i % 2]},{'ABC'[i % 3]},{i * 1.5}\n".encode() for i in range(30))
    assert isinstance(import_outcome(good, ["t1", "t2"], {}), ImportReport)
    single = good.replace(b",B,", b",A,").replace(b",C,", b",A,")
    failure = import_outcome(single, ["t1", "t2"], {})
    assert isinstance(failure, CsvError) and "has one class ('A')" in str(failure)
