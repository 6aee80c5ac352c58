"""A throwaway PostgreSQL server for tests: `initdb` and `pg_ctl` in a temporary folder.

The server listens on 127.0.0.1 at a free port, keeps its socket in its own folder, and asks
TCP clients for a password. PostgreSQL refuses to run as root, so under root the server runs
as the `postgres` user (Debian's package creates it) or else `nobody`.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg2

from tests.system_tools import missing

SUPERUSER = "postgres"


def find_pg_bin(name: str) -> str:
    """`initdb`/`pg_ctl` from PATH, else from the newest `/usr/lib/postgresql/<version>/bin`, else the
    server the `pgserver` wheel bundles (in the dev extra; found without importing it). Without any,
    the calling test skips (or fails under CI: `tests.system_tools`)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    if candidates:
        return candidates[-1]
    spec = importlib.util.find_spec("pgserver")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "pginstall" / "bin" / name
        if bundled.is_file():
            return str(bundled)
    missing(f"PostgreSQL's {name}", "pip install pgserver, or Debian: apt-get install postgresql")


def server_user() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and found no postgres or nobody user to run PostgreSQL as")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """Start with `start()`, stop and delete with `stop()`; `url(db)` names a database on it."""

    def __init__(self, password: str = "secret"):
        self.password = password
        self.port = free_port()
        self.user = server_user()
        # Under /tmp itself, not pytest's tmp_path: that sits in a root-only folder.
        self.root = Path(tempfile.mkdtemp(prefix="kseq-pg-"))
        self.data = self.root / "data"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user.pw_name, "--"] if self.user else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, cwd=self.root)

    def start(self) -> PostgresCluster:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.user:
            for path in (self.root, pwfile):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        self.bin = Path(find_pg_bin("initdb")).resolve().parent
        if self.user and not all(os.stat(folder).st_mode & 0o001 for folder in self.bin.parents):
            # A server inside a root-only folder (pgserver's, under /root): the server user cannot
            # reach it there, so it runs from a copy in the cluster's own folder, laid out as the
            # wheel is (its binaries find their libraries at $ORIGIN/../../../pgserver.libs).
            package = self.bin.parents[1]  # .../site-packages/pgserver
            for folder in (package, package.parent / f"{package.name}.libs"):
                if folder.is_dir():
                    shutil.copytree(folder, self.root / folder.name, symlinks=True,
                                    ignore=shutil.ignore_patterns("include", "__pycache__"))
            self.bin = self.root / package.name / self.bin.relative_to(package)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync")
        options = f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", password: str | None = None) -> str:
        password = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL."""
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER,
                                      password=self.password, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)
