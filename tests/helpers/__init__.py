"""What every test shares: fixtures (``fixtures.py``, registered by tests/conftest.py) and plain helpers,
one module per kind: ``paths``, ``commands``, ``notebooks``, ``projects``, ``waiting``, ``servers``,
``mail``; ``isolation`` keeps tests/unit free of processes and servers.

Tests import them by module (``from helpers.commands import nbprod``): pytest puts tests/ on sys.path
(``pythonpath`` in pyproject.toml), for tests/unit and tests/func alike.
"""

from __future__ import annotations

import os

from helpers.paths import BIN

# Tests commit to git: give them an identity without touching the user's configuration.
os.environ.setdefault("GIT_AUTHOR_NAME", "nbprod tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@nbprod.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "nbprod tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@nbprod.invalid")
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.pop("NBPROD_EVENTS", None)
