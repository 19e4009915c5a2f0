"""The rule of tests/unit, enforced: while a unit test runs (set-up and tear-down included), starting a
process (subprocess, fork, spawn, exec, os.system) or listening on a socket raises ``NotAUnitTest``. A
Jupyter kernel, a server or a CLI call is then a test for tests/func."""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# Every way the standard library starts a process ends in one of these (subprocess and asyncio in
# Popen._execute_child, multiprocessing's fork in os.fork and its spawn in fork_exec), and every server
# in listen().
PROCESS_STARTS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve", "execvp",
                  "execvpe", "spawnv", "spawnve")


class NotAUnitTest(RuntimeError):
    pass


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise NotAUnitTest(f"a test in tests/unit started {what}: it belongs in tests/func")
    return refuse


@contextmanager
def no_processes_or_servers() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(subprocess.Popen, "_execute_child", _refuse("a subprocess"))
        patch.setattr(_posixsubprocess, "fork_exec", _refuse("a process (fork_exec)"))
        for name in PROCESS_STARTS:
            if hasattr(os, name):
                patch.setattr(os, name, _refuse(f"a process (os.{name})"))
        patch.setattr(socket.socket, "listen", _refuse("a server (a listening socket)"))
        yield
    finally:
        patch.undo()
