"""R code read without R (notebooks/rlang.py): the parameters cell's literals, injected values that
read back exactly, the names R code reads."""

from __future__ import annotations

import pytest

from nbprod.notebooks.rlang import r_literal, r_literal_assignments, r_names


def test_r_parameters_cell_literals():
    values, bad = r_literal_assignments(
        'n <- 10\nalpha = 0.25  # a comment\nname <- "it\'s \\"quoted\\""\nflag <- TRUE\n'
        "none <- NULL\nsizes <- c(1, 2.5, 3L)\nwords <- c('a', \"b\")\nbig <- 1e6\nneg <- -3\n\n# note\n")
    assert bad is None
    assert values == {"n": 10, "alpha": 0.25, "name": 'it\'s "quoted"', "flag": True, "none": None,
                      "sizes": [1, 2.5, 3], "words": ["a", "b"], "big": 1e6, "neg": -3}
    for line in ("x <- 1 + 2", "x <- f(1)", "x <- c(1, y)", "x <<- 1", "x <- 'open", "if <- 1", "x"):
        assert r_literal_assignments(line)[1] is not None, line


@pytest.mark.parametrize("value", [0, -7, 2.5, 1e-300, True, False, None, "", "plain", 'say "hi"', "back\\slash",
                                   "two\nlines", "tab\tand\rreturn", "unicode é ✓ 😀", '\\"); system("id"); ("',
                                   [1, 2, 3], ["a", 'b"c'], [True, False], [1, "mixed"], {"k": [1, 2], "j": "v"}])
def test_r_literal_reads_back_through_our_parser(value):
    source = f"x <- {r_literal(value)}"
    if isinstance(value, dict) or (isinstance(value, list) and len({type(v) for v in value}) > 1):
        assert source.startswith("x <- list(")  # exact in R; not a parameters-cell literal
        return
    values, bad = r_literal_assignments(source)
    assert bad is None and values == {"x": value}


def test_r_names_ignore_strings_comments_and_fields():
    assert r_names('y <- df$alpha + beta  # gamma\nz <- "delta"') == {"y", "df", "beta", "z"}
