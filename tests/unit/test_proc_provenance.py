"""Tool lookup (the venv's first) and the one package-name normalisation. Running git and stopping
process groups: tests/func/test_proc_provenance.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nbprod.core import proc, provenance


BIN = Path(sys.executable).parent


def test_tools_come_from_this_environment_first():
    assert proc.tool("dvc") == str(BIN / "dvc")
    assert proc.tool("no-such-tool-here") == "no-such-tool-here"
    env = proc.tool_env({"PATH": "/usr/bin", "KEEP": "1"})
    assert env["PATH"] == f"{BIN}{os.pathsep}/usr/bin" and env["KEEP"] == "1"


def test_one_name_normalisation():
    assert provenance.canonical_name("Scikit_Learn") == provenance.canonical_name("scikit-learn") == "scikit-learn"
    assert provenance.canonical_name("zope.interface") == "zope-interface"
    assert provenance.canonical_name("a__b..c") == "a-b-c"
