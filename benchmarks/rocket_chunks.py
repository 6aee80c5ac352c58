"""Time and peak memory of the random-kernel transforms by the chunk size their batches are cut to.

`kseq.models.xla_programs.in_compiled_batches` runs a batch through each compiled program in chunks of
`chunk_size(steps, rows)` series, bounded by `CHUNK_ELEMENTS` values. This measures, side by side
in one run, what the bound costs: each transform (`MiniRocket`, `MultiRocket`, `Hydra`, their
default sizes) on the same series, in chunks of each size asked for, each in a fresh process (so
its peak resident memory is its own): milliseconds per series (the second of two passes, the
first compiles) and the process's peak RSS.

    python benchmarks/rocket_chunks.py [--series 256] [--steps 500] [--channels 1] [--chunks 16 64 256] [--threads 2]

`--channels`: multivariate series of that many channels, whose programs also hold the nine
shifted copies of every channel per dilation (`rows_per_step`).

Last line: `time_ratio_largest_over_bounded= rss_ratio_largest_over_bounded= bounded_chunk=`, means
over the three transforms of the largest chunk's figure over the bounded chunk's (what
`chunk_size` gives these series), so a time ratio at or above 1 says the bound costs no speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from machine import describe

TRANSFORMS = ("MiniRocket", "MultiRocket", "Hydra")


def measure(transform: str, series: int, steps: int, channels: int, chunk: int | None, threads: int) -> dict:
    """One transform in a fresh process, in chunks of `chunk` series (None: as `chunk_size` gives)."""
    code = f"""
import json, resource, time
import numpy as np
from kseq.models import xla_programs
from kseq.models.hydra import Hydra
from kseq.models.rocket import MiniRocket, MultiRocket
from kseq.serving.runtime import configure_threads
configure_threads("train", intra_op={threads}, inter_op=1)
layer = {{"MiniRocket": MiniRocket, "MultiRocket": MultiRocket, "Hydra": Hydra}}["{transform}"]()
x = np.random.default_rng(0).normal(size=({series}, {steps}, {channels})).astype("float32")
layer.adapt(x[:64]) if hasattr(layer, "adapt") else layer.build(x.shape)
chunk = {chunk}
if chunk is not None:
    xla_programs.CHUNK_ELEMENTS = chunk * {steps} * layer.rows_per_step
chunk = xla_programs.chunk_size({steps}, layer.rows_per_step)
layer(x)
start = time.perf_counter()
layer(x)
seconds = time.perf_counter() - start
print(json.dumps({{"chunk": chunk, "ms_per_series": 1e3 * seconds / {series},
                  "rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=256)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--chunks", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    print(f"series={args.series} steps={args.steps} channels={args.channels} threads={args.threads}")
    print("| transform | chunk | ms per series | peak RSS GB |")
    print("|---|---|---|---|")
    time_ratios, rss_ratios, bounded_chunks = [], [], []
    for transform in TRANSFORMS:
        results = {}
        for chunk in [*args.chunks, None]:
            result = measure(transform, args.series, args.steps, args.channels, chunk, args.threads)
            label = f"{result['chunk']} (bounded)" if chunk is None else str(result["chunk"])
            print(f"| {transform} | {label} | {result['ms_per_series']:.2f} | {result['rss_gb']:.2f} |", flush=True)
            results[chunk] = result
        largest, bounded = results[max(args.chunks)], results[None]
        time_ratios.append(largest["ms_per_series"] / bounded["ms_per_series"])
        rss_ratios.append(largest["rss_gb"] / bounded["rss_gb"])
        bounded_chunks.append(str(bounded["chunk"]))
    print(f"time_ratio_largest_over_bounded={sum(time_ratios) / len(time_ratios):.2f} "
          f"rss_ratio_largest_over_bounded={sum(rss_ratios) / len(rss_ratios):.2f} "
          f"bounded_chunk={','.join(bounded_chunks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
