"""Notebooks as JSON: building code notebooks, reading, writing, finding a tagged cell."""

from __future__ import annotations

import json
from pathlib import Path


def code_notebook(cells) -> dict:
    """A python3 notebook of code cells, from (tags, source) pairs."""
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                   "source": source} for tags, source in cells],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


def load_nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def save_nb(path: Path, nb: dict) -> None:
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def find_cell(nb: dict, tag: str) -> dict:
    return next(c for c in nb["cells"] if tag in c.get("metadata", {}).get("tags", []))
