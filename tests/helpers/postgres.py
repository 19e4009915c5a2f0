"""A real PostgreSQL server (Debian's `postgresql` package) for tests and benchmarks: a temporary
data directory, 127.0.0.1 on a free port, a password user; always stopped and removed."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    port: int
    user: str
    password: str
    database: str = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"


def pg_bin(name: str) -> str | None:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    return found


def available() -> bool:
    return bool(pg_bin("initdb") and pg_bin("pg_ctl"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres():
    """PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user (the
    temporary folder is given to it; /tmp itself is world-traversable)."""
    folder = Path(tempfile.mkdtemp(prefix="nbprod-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(12)
    data = folder / "data"
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if as_user:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    server = Server(free_port(), "nbprod", password)
    started = False
    try:
        subprocess.run([*as_user, pg_bin("initdb"), "-D", str(data), "-U", server.user, f"--pwfile={pwfile}",
                        "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        pwfile.unlink()
        options = f"-h 127.0.0.1 -p {server.port} -k {folder} -c fsync=off"
        subprocess.run([*as_user, pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
                        "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=120)
        started = True
        yield server
    finally:
        if started:
            subprocess.run([*as_user, pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                           capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
