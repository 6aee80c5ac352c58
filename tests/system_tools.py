"""System programs a few tests need beyond `pip install -e '.[dev]'`: Chromium (report pages) and,
where the `pgserver` wheel's bundled server is absent, PostgreSQL.

On a machine without one, its tests skip with the Debian package to install, so `python -m pytest`
passes on a fresh machine. `.ci/run` installs both and sets `KSEQ_REQUIRE_SYSTEM_TOOLS=1`, which
turns those skips into failures: CI always runs every test.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_VARIABLE = "KSEQ_REQUIRE_SYSTEM_TOOLS"


def missing(what: str, install: str):
    """Skip the calling test because `what` is not installed (fail instead when CI requires it)."""
    message = f"{what} not found; install it ({install}) to run this test"
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{message} ({REQUIRE_VARIABLE}=1: CI runs every test)", pytrace=False)
    pytest.skip(message)
