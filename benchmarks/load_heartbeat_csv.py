"""Benchmark `load_heartbeat_csv` on a full-size (87,554-row, ~411 MB) MIT-BIH-format file.

Writes the file from the embedded generator, then loads it in a fresh subprocess and reports the
load's wall time and the subprocess's peak RSS. Targets: under 20 s and under 1 GB on 2 cores.

    python benchmarks/load_heartbeat_csv.py [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

from kseq.data.synthetic import make_heartbeats, write_heartbeat_csv

# Runs in the fresh subprocess: import, reset the peak-RSS mark (Linux), then time the load alone.
_CHILD = """
import json, sys, time
from pathlib import Path
from kseq.data.sources import load_heartbeat_csv

def status_kb(key):
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(key + ":"))
    return int(line.split()[1])

imported_kb, import_peak_kb = status_kb("VmRSS"), status_kb("VmHWM")
Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS: track the load, not the imports
start = time.perf_counter()
data = load_heartbeat_csv(sys.argv[1])
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": len(data), "imported_kb": imported_kb,
                  "import_peak_kb": import_peak_kb, "peak_kb": status_kb("VmHWM")}))
"""


def write_file(path: Path) -> None:
    """Generate the full-size training split and write it in the Kaggle format."""
    start = time.perf_counter()
    train, _ = make_heartbeats(scale=1.0, seed=0)
    generated = time.perf_counter()
    write_heartbeat_csv(train, path)
    written = time.perf_counter()
    print(f"generated {len(train):,} beats in {generated - start:.1f} s; wrote {path.stat().st_size / 1e6:.1f} MB "
          f"in {written - generated:.1f} s")


def time_load(path: Path) -> dict:
    """Load `path` in a fresh Python process and return the figures it measured on itself.

    The child reads its own peak (VmHWM): `getrusage(RUSAGE_CHILDREN)` would also count this
    parent's peak, which a child started by vfork + exec inherits in its ru_maxrss.
    """
    result = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="where to write the CSV (kept); default: a temporary folder")
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.out or Path(tmp) / "mitbih_train_synthetic.csv"
        write_file(path)
        figures = time_load(path)
    peak_mb = figures["peak_kb"] / 1024
    imported_mb = figures["imported_kb"] / 1024
    print(f"load: {figures['seconds']:.2f} s for {figures['rows']:,} rows (target < 20 s)")
    print(f"peak RSS during the load: {peak_mb:.0f} MB (target < 1024 MB), {peak_mb - imported_mb:.0f} MB over "
          f"the {imported_mb:.0f} MB resident after the imports (which peaked at "
          f"{figures['import_peak_kb'] / 1024:.0f} MB)")
    print(f"load_seconds={figures['seconds']:.2f} peak_rss_mb={peak_mb:.0f} rows={figures['rows']}")


if __name__ == "__main__":
    main()
