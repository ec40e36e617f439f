"""How much memory and time does a CSV upload cost?

Generates CSV files of about 5, 20 and 45 MB (12 numeric features, a categorical feature, a feature
with missing cells, a text class target, an integer class target and a regression target) and one
file over the row limit (1.1 M narrow rows). Each file is then read, in a fresh Python process each
time, the way the dashboard's "Your data" page does (``inspect_csv`` then ``import_csv`` on the
upload's bytes, which the page holds) and the way the CLI does (``mtl suites inspect`` then ``add``
on the path). Reported per run: wall and CPU seconds (CPU time is steadier on a shared machine), the
tracemalloc peak (Python and numpy allocations, not pandas' C parser buffers; measured in a separate
process for the page only, and by default for the 5 MB file only, as tracing slows the parse ~20×) and
the *extra* memory the file costs, as a multiple of its size: the peak resident set during inspect +
import minus the resident set just before, after the modules are imported, a tiny warm-up CSV is
imported and, for the page, the upload's bytes are held. On Linux the peak is ``VmHWM`` after the
high-water mark is restarted from the current RSS (``/proc/self/clear_refs``); the older measure,
the increase of ``ru_maxrss``, is printed beside it: it under-counts when the process had been
higher before (reading the upload's bytes, the imports), so it is not the one the target is checked
on. The issue's target: at most 3× the file size.

    python benchmarks/csv_upload.py            # ~2 minutes on 2 cores
    python benchmarks/csv_upload.py --quick    # the 5 MB file and the refusal only
    python benchmarks/csv_upload.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

_MB = 1_000_000
_SIZES_MB = (5, 20, 45)
_BYTES_PER_ROW = 118  # of the realistic layout below, measured
_OVER_LIMIT_ROWS = 1_100_000
_TARGETS = ("species", "grade", "price")


def _realistic_csv(path: Path, megabytes: int, seed: int = 0) -> None:
    """A realistic table of about ``megabytes`` MB: sensor-like numbers with 2–5 decimals."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = megabytes * _MB // _BYTES_PER_ROW
    frame = pd.DataFrame({f"x{k}": np.round(rng.normal(size=rows) * 10 ** (k % 3), 5 - k % 4) for k in range(12)})
    frame["age"] = rng.integers(18, 90, size=rows)
    frame["region"] = rng.choice(["north", "south", "east", "west", "centre"], size=rows)
    humidity = np.round(rng.uniform(0, 100, size=rows), 1).astype(object)
    humidity[rng.random(rows) < 0.01] = ""
    frame["humidity"] = humidity
    frame["species"] = rng.choice(["Adelie", "Chinstrap", "Gentoo"], size=rows)
    frame["grade"] = rng.integers(0, 5, size=rows)
    frame["price"] = np.round(rng.lognormal(3, 1, size=rows), 2)
    frame.to_csv(path, index=False)


def _over_limit_csv(path: Path, seed: int = 1) -> None:
    """1.1 M narrow rows: over the default row limit of 1 M."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = _OVER_LIMIT_ROWS
    frame = pd.DataFrame({"a": np.round(rng.normal(size=rows), 3), "b": rng.integers(0, 100, size=rows),
                          "c": rng.integers(0, 3, size=rows), "d": np.round(rng.normal(size=rows), 2)})
    frame.to_csv(path, index=False)


def _files(folder: Path, quick: bool) -> list[tuple[str, Path, bool]]:
    """(label, path, accepted) per file, generated once into ``folder``."""
    out = []
    for megabytes in _SIZES_MB[:1] if quick else _SIZES_MB:
        path = folder / f"realistic_{megabytes}mb.csv"
        if not path.exists():
            _realistic_csv(path, megabytes)
        out.append((f"{megabytes} MB, {megabytes * _MB // _BYTES_PER_ROW:,} rows", path, True))
    path = folder / "over_row_limit.csv"
    if not path.exists():
        _over_limit_csv(path)
    out.append((f"over the row limit ({_OVER_LIMIT_ROWS:,} rows)", path, False))
    return out


# --- one measurement, in a fresh process ------------------------------------------------------------

_CHILD = r"""
import json, os, resource, sys, tempfile, time, tracemalloc
from pathlib import Path
import numpy as np, pandas as pd
from mtl_core.userdata.csv_import import CsvError, import_csv, inspect_csv

path, mode, trace = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
home = tempfile.mkdtemp(prefix="mtl-csv-bench-")
warm = b"a,b,t1,t2\n" + b"".join(b"%d,x%d,%d,%.1f\n" % (i, i % 3, i % 2, i / 7) for i in range(40))
inspect_csv(warm)
import_csv(warm, "warmup", targets=["t1", "t2"], home=home)
source = Path(path).read_bytes() if mode == "page" else path


def status():
    try:
        with open("/proc/self/status") as lines:
            return {k: int(v.split()[0]) * 1024 for k, v in (line.split(":", 1) for line in lines)
                    if k in ("VmRSS", "VmHWM")}
    except OSError:
        return {}


try:  # Linux: the high-water mark restarts from the current RSS, so the peak is the import's own
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
except OSError:
    pass
rss_now = status().get("VmRSS")
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if trace:
    tracemalloc.start()
start, cpu_start = time.perf_counter(), time.process_time()
outcome = "imported"
try:
    preview = inspect_csv(source)
    import_csv(source, "bench", targets=["species", "grade", "price"], home=home)
except CsvError as exc:
    outcome = "refused: " + str(exc)[:60]
seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
peak = tracemalloc.get_traced_memory()[1] if trace else None
rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hwm = status().get("VmHWM")
print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds,
                  "peak_increase_bytes": hwm - rss_now if hwm and rss_now else None,
                  "rss_increase_bytes": (rss_after - rss_before) * 1024,
                  "tracemalloc_peak_bytes": peak, "outcome": outcome}))
"""


def _measure(path: Path, mode: str, trace: bool) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path), mode, "1" if trace else "0"],
                            capture_output=True, text=True, timeout=600, check=False,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    if result.returncode != 0:
        raise RuntimeError(f"the measurement of {path} ({mode}) failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the 5 MB file and the refusal only")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--trace-all", action="store_true", help="tracemalloc runs for every file (slow)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "mtl-csv-bench",
                        help="where the generated CSV files are kept between runs")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    results = []
    print("| file | size | reader | seconds (inspect + import) | CPU seconds | tracemalloc peak "
          "| peak RSS − RSS before | × file size | ru_maxrss increase | outcome |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for number, (label, path, _accepted) in enumerate(_files(args.folder, args.quick)):
        size = path.stat().st_size
        for mode in ("page", "cli"):
            row = _measure(path, mode, trace=False)
            if not args.no_trace and mode == "page" and (number == 0 or args.trace_all):
                row["tracemalloc_peak_bytes"] = _measure(path, mode, trace=True)["tracemalloc_peak_bytes"]
            row.update(file=label, size_bytes=size, mode=mode)
            results.append(row)
            peak = row["tracemalloc_peak_bytes"]
            peak_text = f"{peak / _MB:.0f} MB" if peak is not None else "—"
            reader = "page (bytes)" if mode == "page" else "CLI (path)"
            increase = row["peak_increase_bytes"]
            increase_text = (f"{increase / _MB:.1f} MB | {increase / size:.2f}×" if increase is not None
                             else "— | —")
            print(f"| {label} | {size / _MB:.1f} MB | {reader} | {row['seconds']:.1f} | {row['cpu_seconds']:.1f} "
                  f"| {peak_text} | {increase_text} | {row['rss_increase_bytes'] / _MB:.1f} MB "
                  f"({row['rss_increase_bytes'] / size:.2f}×) | {row['outcome']} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
