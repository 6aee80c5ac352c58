"""The machine a benchmark ran on, in one line, for the top of its output.

Every time a benchmark reports depends on the CPU count, the load beside the run and the
widest vector instructions the CPU has (an AVX-512 machine with native bfloat16 served this
project's random-kernel model, and trained its `resnet`, about twice as fast as an AVX2 one), so
figures compare only across machines whose lines match. Imported by the benchmark scripts, which
run with this folder on `sys.path`.

    >>> from machine import describe
    >>> describe()  # doctest: +SKIP
    'machine: 2 CPUs, vectors=AVX2, bfloat16=no, load average 0.4'
"""

from __future__ import annotations

import os
from pathlib import Path

# Widest first: the first one the CPU names is the machine's vector width.
VECTOR_FLAGS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"))
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The instruction-set flags of `/proc/cpuinfo`'s first `flags` line; empty where there is none."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())


def vector_width(flags: set[str]) -> str:
    """`AVX-512`, `AVX2`, `AVX`, or `SSE` (none of those), `unknown` without flags."""
    if not flags:
        return "unknown"
    return next((name for flag, name in VECTOR_FLAGS if flag in flags), "SSE")


def describe() -> str:
    """`machine: <CPUs>, vectors=<width>, bfloat16=<yes|no>, load average <1-minute load>`."""
    flags = cpu_flags()
    bfloat16 = "unknown" if not flags else "yes" if any(f in flags for f in BFLOAT16_FLAGS) else "no"
    return (f"machine: {os.cpu_count()} CPUs, vectors={vector_width(flags)}, bfloat16={bfloat16}, "
            f"load average {os.getloadavg()[0]:.1f}")
