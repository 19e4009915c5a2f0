"""Where things are: the repository, the tests' own folders, the interpreter's bin folder."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
DATA = TESTS / "data"
# Screenshots and pages the browser tests leave for a reader (gitignored).
ARTIFACTS = TESTS / "artifacts"
BIN = Path(sys.executable).parent
