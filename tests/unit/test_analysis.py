"""nbprod.notebooks.analysis on its own: what a cell reads, binds and changes, and what it cannot follow."""

from __future__ import annotations

import pytest

from nbprod.notebooks.analysis import CodeSyntaxError, analyse_code, literal_assignments, sanitize


def facts(source: str):
    return analyse_code(source)


def test_reads_are_free_names_before_their_binding():
    f = facts("y = x + 1\nz = y * w\nprint(len(z))")
    assert f.reads == {"x", "w"}  # y is bound first; print and len are builtins
    assert f.writes == {"y", "z"}


def test_a_read_after_the_binding_in_the_same_cell_is_not_free():
    assert facts("df = load()\ndf = df.dropna()").reads == {"load"}
    assert facts("df = df.dropna()").reads == {"df"}


def test_function_and_class_bodies_read_at_call_time_but_bind_only_their_name():
    f = facts("def score(a):\n    return a * weight + bias\nclass Model:\n    size = depth\n")
    assert f.writes == {"score", "Model"}
    assert {"weight", "bias", "depth"} <= f.reads
    assert "a" not in f.reads


def test_comprehension_and_lambda_variables_stay_local():
    f = facts("squares = [i * i for i in values]\nscale = lambda v: v * factor\nd = {k: v for k, v in pairs}")
    assert f.reads == {"values", "factor", "pairs"}
    assert f.writes == {"squares", "scale", "d"}


def test_loops_with_and_except_bind_their_targets():
    f = facts("for row in rows:\n    total = row\nwith open(p) as handle:\n    text = handle.read()\n"
              "try:\n    risky()\nexcept ValueError as err:\n    msg = str(err)\n")
    assert {"row", "total", "handle", "text", "err", "msg"} <= f.writes
    assert f.reads == {"rows", "p", "risky"}


def test_imports_are_bindings_and_listed():
    f = facts("import numpy as np\nfrom sklearn.linear_model import LogisticRegression\nimport os.path\n")
    assert f.imports == {"np", "LogisticRegression", "os"}
    assert f.imports <= f.writes and f.reads == set()


def test_names_bound_on_some_branches_only_are_conditional():
    f = facts("if flag:\n    model = a\nelse:\n    other = b\n")
    assert {"model", "other"} <= f.conditional
    assert facts("model = None\nif flag:\n    model = a\n").conditional == set()


@pytest.mark.parametrize("source, name", [
    ("data.append(1)", "data"),
    ("table['k'] = 2", "table"),
    ("model.fit(X, y)", "model"),
    ("frame.loc[0, 'a'] = 3", "frame"),
    ("items.extend(more)", "items"),
])
def test_in_place_changes_of_existing_objects(source, name):
    assert name in facts(source).mutated


def test_augmented_assignment_reads_then_rebinds():
    f = facts("counts += 1")
    assert f.reads == {"counts"} and f.writes == {"counts"}


def test_patterns_it_cannot_follow_are_reported_with_their_line():
    assert facts("x = 1\nfrom helpers import *").star_import == 2
    assert facts("def f():\n    global g\n    g = 1\n").global_decl == 2
    assert facts("exec(code)").dynamic == (1, "exec()")
    assert facts("a = 1\nglobals()['b'] = 2").dynamic == (2, "globals()")
    assert facts("%run other.ipynb").dynamic == (1, "%run")


def test_ipython_syntax_is_neutralised_before_parsing():
    f = facts("%matplotlib inline\nfiles = !ls\nresult = compute()\ncompute?\n")
    assert f.writes == {"files", "result"} and f.reads == {"compute"}
    code, opaque, run = sanitize("%%bash\necho hi")
    assert (code, opaque, run) == ("", "bash", None)
    assert facts("%%bash\necho $x").opaque_magic == "bash"
    assert facts("%%time\ny = x").reads == {"x"}  # a cell magic whose body is still Python


def test_syntax_errors_carry_their_line():
    with pytest.raises(CodeSyntaxError) as caught:
        analyse_code("a = 1\nb = (\n")
    assert caught.value.lineno >= 2


def test_literal_assignments_of_a_parameters_cell():
    values, problem = literal_assignments("n = 3\nrate: float = 0.5\nnames = ['a', 'b']\nopts = {'k': None}\npass")
    assert problem is None
    assert values == {"n": 3, "rate": 0.5, "names": ["a", "b"], "opts": {"k": None}}


@pytest.mark.parametrize("source, line", [
    ("n = 3\nm = n + 1", 2),                 # not a literal
    ("a, b = 1, 2", 1),                      # not one name
    ("print('x')", 1),                       # not an assignment
    ("s = {1, 2}", 1),                       # a set: params.yaml cannot hold it
    ("d = {1: 'a'}", 1),                     # a mapping with non-string keys
])
def test_literal_assignments_report_the_first_offending_line(source, line):
    values, problem = literal_assignments(source)
    assert values == {} and problem is not None and problem[0] == line
