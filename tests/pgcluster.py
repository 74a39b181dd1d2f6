"""An own PostgreSQL cluster on a spare port, for fault tests that stop, crash and restart it.

initdb/pg_ctl from /usr/lib/postgresql/*/bin; as root (CI) they run as the `postgres` user
(runuser), in a temporary folder that user owns. The server trusts local connections.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from sqlalchemy import create_engine, text


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available() -> bool:
    """Whether initdb and pg_ctl are installed (and, as root, a postgres user exists)."""
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        return False
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return True


def spare_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnPostgres:
    """A throwaway cluster: start(), stop(mode), crash(), restart(), read_only(on), url; close() removes it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or spare_port()
        self.root = Path(tempfile.mkdtemp(prefix="newsbot-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if os.geteuid() == 0:
            import pwd

            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", "postgres", "--"]
            self.user = "postgres"
        else:
            self._prefix = []
            import getpass

            self.user = getpass.getuser()
        self._run(_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user, "--no-sync", quiet=True)
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                       "fsync = off\nmax_connections = 100\n")  # fsync off: only the OS crashing could lose commits

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str | None, quiet: bool = False) -> None:
        command = [*self._prefix, *(a for a in args if a is not None)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL if quiet else None,
                       stderr=subprocess.STDOUT if quiet else None, timeout=120)

    def start(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start", quiet=True)

    def stop(self, mode: str = "fast") -> None:
        """fast: a clean shutdown; immediate: like a crash (recovery at the next start)."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", quiet=True)

    def crash(self) -> None:
        self.stop("immediate")

    def restart(self) -> None:
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "-t", "60", "restart",
                  quiet=True)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def _admin(self, *statements: str) -> None:
        engine = create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                for statement in statements:
                    connection.execute(text(statement))
        finally:
            engine.dispose()

    def read_only(self, database: str, on: bool) -> None:
        """on: like a fail-over to a standby, every session of `database` is dropped and new ones
        are read-only; off: new sessions are writable again, while connections opened in the
        read-only period keep that setting until they are closed (what the pool must notice)."""
        if on:
            self._admin(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on',
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")
        else:
            self._admin(f'ALTER DATABASE "{database}" RESET default_transaction_read_only')

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            engine = create_engine(self.url)
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
            finally:
                engine.dispose()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> OwnPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
