"""Data passing between stages, in process: generated programs split into stages end with the values of
running them all at once; values are stored by type and an unpassable value names its variable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers.notebooks import save_nb
from nbprod.core.project import load_project
from nbprod.notebooks.compile import generate
from nbprod.notebooks.notebook import cell_source
from nbprod.notebooks.pipeline import load_pipeline


def write_notebook(path: Path, cells: list[tuple[str, list[str]]], markdown: str | None = None) -> None:
    nb_cells = []
    if markdown:
        nb_cells.append({"cell_type": "markdown", "metadata": {}, "source": markdown})
    nb_cells += [{"cell_type": "code", "execution_count": None, "metadata": {"tags": tags}, "outputs": [],
                  "source": source} for source, tags in cells]
    save_nb(path, {"cells": nb_cells, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                    "display_name": "Python 3"}},
                   "nbformat": 4, "nbformat_minor": 5})


@st.composite
def programs(draw):
    """Straight-line programs over ints, lists, DataFrames and arrays, one statement per cell."""
    kinds: dict[str, str] = {}
    lines: list[str] = []

    def pick(kind):
        names = [n for n, k in kinds.items() if k == kind]
        return draw(st.sampled_from(names)) if names else None

    for index in range(draw(st.integers(3, 14))):
        name = f"v{index}"
        choice = draw(st.sampled_from(["int", "int_op", "list", "list_append", "frame", "frame_col",
                                       "array", "array_op", "series", "rebind"]))
        i, lst, frame, arr = pick("int"), pick("list"), pick("frame"), pick("array")
        if choice == "int" or i is None:
            lines.append(f"{name} = {draw(st.integers(-50, 50))}")
            kinds[name] = "int"
        elif choice == "int_op":
            j = pick("int")
            lines.append(f"{name} = {i} {draw(st.sampled_from(['+', '-', '*']))} {j}")
            kinds[name] = "int"
        elif choice == "list":
            lines.append(f"{name} = [{i}, {i} * 2, {draw(st.integers(0, 9))}]")
            kinds[name] = "list"
        elif choice == "list_append" and lst:
            lines.append(f"{lst}.append({i})")
        elif choice == "frame" and lst:
            lines.append(f"{name} = pd.DataFrame({{'a': {lst}, 'b': [float(x) / 3 for x in {lst}]}})")
            kinds[name] = "frame"
        elif choice == "frame_col" and frame:
            lines.append(f"{frame}['c{index}'] = {frame}['a'] * {i}")
        elif choice == "series" and frame:
            lines.append(f"{name} = {frame}['a'] + {i}")
            kinds[name] = "series"
        elif choice == "array":
            lines.append(f"{name} = np.arange(abs({i}) % 7 + 1, dtype='int64') * {draw(st.integers(1, 5))}")
            kinds[name] = "array"
        elif choice == "array_op" and arr:
            lines.append(f"{name} = {arr} * 2.5 + {i}")
            kinds[name] = "array"
        elif choice == "rebind" and lst:
            lines.append(f"{lst} = {lst} + [{i}]")
        else:
            lines.append(f"{name} = {i} + 1")
            kinds[name] = "int"
    cuts = sorted(set(draw(st.lists(st.integers(1, len(lines) - 1), max_size=4)))) if len(lines) > 1 else []
    return lines, cuts


def same(a, b) -> bool:
    if isinstance(a, pd.DataFrame):
        return isinstance(b, pd.DataFrame) and a.equals(b) and list(a.dtypes) == list(b.dtypes) \
            and a.index.equals(b.index)
    if isinstance(a, pd.Series):
        return isinstance(b, pd.Series) and a.equals(b) and a.dtype == b.dtype and a.name == b.name
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    root = tmp_path_factory.mktemp("equiv")
    (root / ".dvc").mkdir()
    (root / "nb").mkdir()
    return root


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(programs())
def test_split_pipeline_ends_with_the_values_of_run_all(scratch, monkeypatch, program):
    _check_run_all(scratch, monkeypatch, program, imports_in_stages=False)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(programs())
def test_imports_spread_over_stages_end_with_the_values_of_run_all(scratch, monkeypatch, program):
    """Each import sits in the cell that first uses it, as users write them; compile carries it."""
    _check_run_all(scratch, monkeypatch, program, imports_in_stages=True)


def _check_run_all(scratch, monkeypatch, program, imports_in_stages: bool) -> None:
    lines, cuts = program
    cells = [] if imports_in_stages else [("import numpy as np\nimport pandas as pd", ["shared"])]
    stage_of = {0: "s0", **{cut: f"s{n}" for n, cut in enumerate(cuts, start=1)}}
    imported: set[str] = set()
    for index, line in enumerate(lines):
        tags = [f"stage:{stage_of[index]}"] if index in stage_of else []
        if imports_in_stages:
            for alias, module in (("np", "numpy"), ("pd", "pandas")):
                if f"{alias}." in line and alias not in imported:
                    imported.add(alias)
                    line = f"import {module} as {alias}\n{line}"
        cells.append((line, tags))
    write_notebook(scratch / "nb/prog.ipynb", cells)
    for leftover in (scratch / ".nbprod").glob("data/**/value.*"):
        leftover.unlink()

    reference: dict = {}
    for source, _ in cells:
        exec(source, reference)

    project = load_project(scratch)
    pipeline = load_pipeline(project)
    files = generate(pipeline)
    monkeypatch.setenv("NBPROD_ROOT", str(scratch))
    final: dict = {}
    for stage in pipeline.order():
        namespace: dict = {}  # a fresh kernel per stage
        nb = json.loads(files[stage.stage_notebook])
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                exec(cell_source(cell), namespace)
        final.update({k: v for k, v in namespace.items() if not k.startswith("_") and k not in ("np", "pd")})
    names = {k for k in reference if not k.startswith("_") and k not in ("np", "pd")}
    # Each variable's final value is the one its last defining stage ends with.
    last_stage = {}
    for stage in pipeline.order():
        for cell in stage.cells:
            for name in cell.facts.writes | cell.facts.mutated:
                last_stage[name] = stage.name
    for name in sorted(names):
        stage = pipeline.stage(last_stage[name])
        namespace: dict = {}
        nb = json.loads(files[stage.stage_notebook])
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                exec(cell_source(cell), namespace)
        assert same(reference[name], namespace[name]), (name, lines, cuts)


def test_values_are_stored_by_type_and_unpassable_values_name_the_variable(tmp_path, monkeypatch):
    from nbprod.artifacts import ArtifactError, load, save
    from sklearn.linear_model import LogisticRegression

    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("NBPROD_ROOT", str(tmp_path))
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}, index=[5, 7])
    values = {"frame": frame, "series": frame["x"], "array": np.eye(2), "model": LogisticRegression(C=0.3),
              "mixed": pd.DataFrame({0: [1, "a"]}), "number": 3}
    save("train", "out", **values)
    stored = {p.parent.name: p.name for p in (tmp_path / "out").glob("*/value.*")}
    assert stored == {"frame": "value.arrow", "series": "value.series.arrow", "array": "value.npy",
                      "model": "value.joblib", "mixed": "value.joblib", "number": "value.joblib"}
    for name, value in values.items():
        back = load("out", name)
        if name == "model":
            assert back.get_params() == value.get_params()
        else:
            assert same(value, back), name
    with pytest.raises(ArtifactError) as raised:
        save("train", "out", handle=open(os.devnull))
    message = str(raised.value)
    assert "stage 'train' cannot pass variable 'handle'" in message and "outs:PATH" in message


def test_large_frames_round_trip_exactly_through_arrow_files(tmp_path, monkeypatch):
    """Above VERIFY_ROWS a numeric frame is not read back when saved (its values are exact by type);
    every shape still comes back equal, and one that Arrow cannot keep exactly is pickled instead."""
    from nbprod.artifacts import VERIFY_ROWS, load, save

    (tmp_path / ".dvc").mkdir()
    monkeypatch.setenv("NBPROD_ROOT", str(tmp_path))
    rows = VERIFY_ROWS + 7
    rng = np.random.default_rng(3)
    floats = rng.standard_normal(rows)
    floats[:3] = [np.nan, -0.0, np.inf]
    values = {
        "numeric": pd.DataFrame({"f": floats, "i": rng.integers(-9, 9, rows), "u": np.arange(rows, dtype="uint8"),
                                 "b": floats > 0, "f32": floats.astype("float32")}),
        "named_range": pd.DataFrame({"x": floats}, index=pd.RangeIndex(10, 10 + 2 * rows, 2, name="row")),
        "int_index": pd.DataFrame({"x": floats}, index=pd.Index(rng.permutation(rows), name="key")),
        "filtered": pd.DataFrame({"x": floats})[floats > 0],
        "strings": pd.DataFrame({"s": [f"v{i}" for i in range(rows)], "x": floats}),
        "series": pd.Series(floats, name="score"),
        "unnamed_series": pd.Series(floats),
        "int_columns": pd.DataFrame(np.ones((rows, 2)), columns=[0, 1]),
        "big_array": rng.standard_normal((300, 1000)),
        "fortran_array": np.asfortranarray(rng.integers(0, 9, (1000, 300))),
    }
    save("big", "out", **values)
    stored = {p.parent.name: p.name for p in (tmp_path / "out").glob("*/value.*")}
    assert stored["numeric"] == "value.arrow" and stored["series"] == "value.series.arrow"
    for name, value in values.items():
        back = load("out", name)
        assert same(value, back), name
        if isinstance(value, np.ndarray):
            assert type(back) is np.ndarray and back.flags.writeable and back.flags.f_contiguous == \
                value.flags.f_contiguous, name
        else:
            assert type(back.index) is type(value.index) and back.index.names == value.index.names, name
    back = load("out", "numeric")  # bit for bit, not only equal (-0.0, NaN, inf)
    assert back["f"].to_numpy().tobytes() == floats.tobytes()
    # a value passed before Arrow files (an older run's output, a run cache entry) still loads
    old = tmp_path / "out" / "old"
    old.mkdir()
    values["numeric"].to_parquet(old / "value.parquet")
    assert same(values["numeric"], load("out", "old"))
