"""A missing system program skips its tests on a fresh machine and fails them under CI."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import pg_cluster

REPO = Path(__file__).parents[1]


def run_pytest(tmp_path, required: bool):
    """pytest on one test that looks for a browser and initdb with an empty PATH and no Debian folders."""
    (tmp_path / "test_needs_tools.py").write_text(
        "import pytest\n"
        "from tests import browser, pg_cluster\n"
        "@pytest.mark.parametrize('find', [browser.browser_binary, lambda: pg_cluster.find_pg_bin('initdb')])\n"
        "def test_tool(find, monkeypatch):\n"
        "    monkeypatch.setenv('PATH', '')\n"
        "    monkeypatch.setattr(pg_cluster.glob, 'glob', lambda pattern: [])\n"
        "    monkeypatch.setattr(pg_cluster.importlib.util, 'find_spec', lambda name: None)\n"
        "    find()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("KSEQ_REQUIRE_SYSTEM_TOOLS", None)
    if required:
        env["KSEQ_REQUIRE_SYSTEM_TOOLS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           str(tmp_path / "test_needs_tools.py")], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)


def test_missing_tools_skip_naming_what_to_install(tmp_path):
    done = run_pytest(tmp_path, required=False)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "2 skipped" in done.stdout
    assert "install it (Debian: apt-get install chromium)" in done.stdout
    assert "install it (pip install pgserver, or Debian: apt-get install postgresql)" in done.stdout


def test_ci_turns_the_skips_into_failures(tmp_path):
    done = run_pytest(tmp_path, required=True)
    assert done.returncode == 1 and "2 failed" in done.stdout, done.stdout[-2000:]
    assert done.stdout.count("KSEQ_REQUIRE_SYSTEM_TOOLS=1: CI runs every test") >= 2


def test_ci_sets_the_variable_before_the_tests():
    script = (REPO / ".ci" / "run").read_text().splitlines()
    assert script.index("export KSEQ_REQUIRE_SYSTEM_TOOLS=1") < script.index("python -m pytest")


@pytest.mark.skipif(not pg_cluster.importlib.util.find_spec("pgserver"), reason="pgserver (dev extra) not installed")
def test_pgserver_bundles_a_server_the_cluster_finds(monkeypatch):
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(pg_cluster.glob, "glob", lambda pattern: [])
    found = Path(pg_cluster.find_pg_bin("initdb"))
    assert found.parts[-4:-1] == ("pgserver", "pginstall", "bin") and os.access(found, os.X_OK)
