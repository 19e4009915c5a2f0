"""The one family of errors a user can cause, each rendered as a single line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class NbprodError(Exception):
    """A mistake in the user's input: says where (file, cell) and how to fix it.

    The CLI prints ``str(error)`` on one line and exits with status 2.
    """

    message: str
    path: str | Path | None = None
    cell: int | None = None
    fix: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = str(self.path)
            if self.cell is not None:
                where += f" cell {self.cell}"
            where += ": "
        text = where + self.message
        if self.fix:
            text += f". Fix: {self.fix}"
        return " ".join(text.split())  # always one line, whatever the parts held


class StageFailed(Exception):
    """A stage's notebook raised; carries the one-line summary for the run report."""

    def __init__(self, stage: str, summary: str, executed_path: str | None = None):
        super().__init__(summary)
        self.stage = stage
        self.summary = summary
        self.executed_path = executed_path


def exit_status(exc: NbprodError | StageFailed | KeyboardInterrupt) -> int:
    """Print how a command ended on one line (stderr) and return its exit status: 2 for a user
    error, 1 for a failed stage, 130 for Ctrl-C. The CLI and the pre-started stage process both
    end this way, so ``nbprod exec`` looks the same from DVC whichever process ran it."""
    import sys

    if isinstance(exc, NbprodError):
        print(f"nbprod: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, StageFailed):
        print(f"nbprod: {exc.summary}", file=sys.stderr)
        return 1
    print("nbprod: interrupted", file=sys.stderr)
    return 130
