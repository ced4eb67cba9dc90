"""A throwaway PostgreSQL server for tests and benchmarks.

``PostgresServer.start()`` runs ``initdb`` and ``pg_ctl`` from the PostgreSQL binaries (found
via ``SALESPROCESS_PG_BIN``, ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin`` or ``PATH``)
on a fresh directory, listening only on a unix socket inside that directory, with ``fsync``
off. PostgreSQL refuses to run as root, so under root the server runs as the ``postgres`` user
(via ``runuser``) in a directory that user owns. ``stop()`` shuts it down and removes the
directory. ``ServerUnavailable`` says why a server could not be had.

Used by ``tests/conftest.py`` (a session fixture) and ``benchmarks/bench_storage.py``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "ServerUnavailable", "find_bin_dir"]


class ServerUnavailable(RuntimeError):
    """No PostgreSQL server could be started here; the message says why."""


def find_bin_dir() -> Path | None:
    """Return the directory holding ``initdb``/``pg_ctl``, or ``None``."""
    candidates: list[str] = []
    if env := os.environ.get("SALESPROCESS_PG_BIN"):
        candidates.append(env)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            candidates.append(
                subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, check=True
                ).stdout.strip()
            )
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    if initdb := shutil.which("initdb"):
        candidates.append(str(Path(initdb).parent))
    for candidate in candidates:
        path = Path(candidate)
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, reachable through a unix socket."""

    def __init__(self) -> None:
        self.directory: Path | None = None
        self.bin_dir: Path | None = None
        self._user: str | None = None

    @property
    def dsn(self) -> str:
        """The libpq connection string of the running server's ``postgres`` database."""
        if self.directory is None:
            raise ServerUnavailable("the server is not running")
        return f"host={self.directory} port=5432 dbname=postgres user=postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def start(self) -> PostgresServer:
        """Create, start and return the server; raise ``ServerUnavailable`` if it cannot."""
        self.bin_dir = find_bin_dir()
        if self.bin_dir is None:
            raise ServerUnavailable(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL, "
                "set SALESPROCESS_PG_BIN, or point SALESPROCESS_POSTGRES_DSN at a server"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="salesprocess-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                self.stop()
                raise ServerUnavailable(
                    "running as root and there is no 'postgres' user to run the server as"
                ) from None
            if shutil.which("runuser") is None:
                self.stop()
                raise ServerUnavailable("running as root and 'runuser' is not available")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
            self._user = "postgres"
        data = self.directory / "data"
        initdb = self._run(
            str(self.bin_dir / "initdb"),
            "-D", str(data),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip
        if initdb.returncode != 0:
            message = initdb.stderr.strip() or initdb.stdout.strip()
            self.stop()
            raise ServerUnavailable(f"initdb failed: {message}")
        options = (
            f"-k {self.directory} -c listen_addresses='' -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
        )
        started = self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D", str(data),
            "-l", str(self.directory / "server.log"),
            "-o", options,
            "-w",
            "-t", "60",
            "start",
        )  # fmt: skip
        if started.returncode != 0:
            log = self.directory / "server.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise ServerUnavailable(
                f"pg_ctl start failed: {started.stderr.strip() or started.stdout.strip()}\n{detail}"
            )
        return self

    def stop(self) -> None:
        """Stop the server (immediately: it holds nothing worth keeping) and remove its files."""
        directory, self.directory = self.directory, None
        if directory is None:
            return
        data = directory / "data"
        if self.bin_dir is not None and (data / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(directory, ignore_errors=True)
