"""R notebooks: the few things nbprod needs to know about R code, without running R.

- ``r_literal_assignments``: a parameters cell of ``name <- literal`` / ``name = literal`` lines
  (numbers, strings, TRUE/FALSE, NULL, ``c(...)`` vectors), as Python values for params.yaml;
- ``r_literal``: a params.yaml value as R source that the R parser reads back exactly (strings
  escaped so that no quote, backslash or newline can end the literal early);
- ``r_names``: the identifiers R code mentions, which tells which parameters a stage reads.

Data passing between R stages is not followed: R stages share data through files (deps:/outs:).
"""

from __future__ import annotations

import math
import re

from ..core.errors import NbprodError

R_LANGUAGES = {"r"}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._]*|\.[A-Za-z_.][A-Za-z0-9._]*")
_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)L?")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v", "`": "`", " ": " "}
_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE", "NULL",
             "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}


def is_r(language: str | None) -> bool:
    return (language or "").strip().lower() in R_LANGUAGES


class _Bad(Exception):
    pass


class _Reader:
    """A cursor over one line of R: just enough of R's lexer for literals."""

    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def rest_is_blank(self) -> bool:
        self.skip_space()
        return self.pos >= len(self.text) or self.text[self.pos] == "#"

    def take(self, token: str) -> bool:
        self.skip_space()
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def name(self) -> str:
        self.skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == "`":
            end = self.text.find("`", self.pos + 1)
            if end < 0:
                raise _Bad
            value, self.pos = self.text[self.pos + 1:end], end + 1
            return value
        match = _NAME.match(self.text, self.pos)
        if not match or match.group() in _RESERVED:
            raise _Bad
        self.pos = match.end()
        return match.group()

    def scalar(self) -> object:
        self.skip_space()
        for word, value in (("TRUE", True), ("FALSE", False), ("NULL", None), ("Inf", math.inf),
                            ("-Inf", -math.inf), ("NaN", math.nan), ("T", True), ("F", False)):
            end = self.pos + len(word)
            if self.text.startswith(word, self.pos) and not (end < len(self.text) and
                                                               (self.text[end].isalnum() or self.text[end] in "._")):
                self.pos = end
                return value
        if self.pos < len(self.text) and self.text[self.pos] in "\"'":
            return self.string()
        match = _NUMBER.match(self.text, self.pos)
        if not match:
            raise _Bad
        self.pos = match.end()
        text = match.group()
        integer = text.endswith("L")
        text = text.rstrip("L")
        if text.lstrip("+-").lower().startswith("0x"):
            return int(text, 16)
        if integer or re.fullmatch(r"[+-]?\d+", text):
            return int(text)
        return float(text)

    def string(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == quote:
                self.pos += 1
                return "".join(out)
            if ch == "\\":
                self.pos += 1
                if self.pos >= len(self.text):
                    raise _Bad
                esc = self.text[self.pos]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    self.pos += 1
                elif esc in "xuU":
                    out.append(self._code_point(esc))
                else:
                    raise _Bad
                continue
            out.append(ch)
            self.pos += 1
        raise _Bad  # unterminated (a string spanning lines is not a parameter literal)

    def _code_point(self, kind: str) -> str:
        self.pos += 1
        limit = {"x": 2, "u": 4, "U": 8}[kind]
        braced = self.pos < len(self.text) and self.text[self.pos] == "{"
        if braced:
            end = self.text.find("}", self.pos)
            if end < 0:
                raise _Bad
            digits, self.pos = self.text[self.pos + 1:end], end + 1
        else:
            match = re.match(f"[0-9a-fA-F]{{1,{limit}}}", self.text[self.pos:])
            if not match:
                raise _Bad
            digits = match.group()
            self.pos += len(digits)
        if not digits or len(digits) > limit or not re.fullmatch(r"[0-9a-fA-F]+", digits):
            raise _Bad
        return chr(int(digits, 16))

    def value(self) -> object:
        self.skip_space()
        if self.text.startswith("c(", self.pos) or self.text.startswith("c (", self.pos):
            self.pos = self.text.index("(", self.pos) + 1
            items = []
            if self.take(")"):
                return []
            while True:
                items.append(self.scalar())
                if self.take(")"):
                    return items
                if not self.take(","):
                    raise _Bad
        return self.scalar()


def r_literal_assignments(source: str) -> tuple[dict[str, object], tuple[int, str] | None]:
    """The literal assignments of an R parameters cell, or the first line that is not one."""
    values: dict[str, object] = {}
    for number, line in enumerate(source.split("\n"), start=1):
        reader = _Reader(line)
        if reader.rest_is_blank():
            continue
        try:
            name = reader.name()
            if not (reader.take("<-") or reader.take("=")):
                raise _Bad
            value = reader.value()
            if not reader.rest_is_blank():
                raise _Bad
        except _Bad:
            return values, (number, line.strip())
        values[name] = value
    return values, None


def r_names(source: str) -> set[str]:
    """Identifiers the code mentions outside strings and comments (over-approximates what it reads)."""
    names: set[str] = set()
    for line in source.split("\n"):
        text, i, quote = [], 0, None
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "\\":
                    i += 2
                    continue
                if ch == quote:
                    quote = None
                i += 1
                continue
            if ch in "\"'":
                quote = ch
                text.append(" ")
            elif ch == "#":
                break
            else:
                text.append(ch)
            i += 1
        for match in _NAME.finditer("".join(text)):
            start = match.start()
            prefix = "".join(text)[:start]
            if prefix.endswith("$") or prefix.endswith("@"):
                continue  # x$name is a field of x, not the variable `name`
            names.add(match.group())
    return names


def r_literal(value: object, where: str = "parameter") -> str:
    """R source for a params value, read back exactly by R; strings fully escaped."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Inf" if value > 0 else "-Inf"
        return repr(value)
    if isinstance(value, str):
        return _r_string(value, where)
    if isinstance(value, list):
        kinds = {"str" if isinstance(v, str) else "bool" if isinstance(v, bool) else
                 "num" if isinstance(v, (int, float)) else "other" for v in value}
        if len(kinds) <= 1 and "other" not in kinds:  # an atomic vector, as c(...) in the notebook
            return "c(" + ", ".join(r_literal(v, where) for v in value) + ")"
        return "list(" + ", ".join(r_literal(v, where) for v in value) + ")"
    if isinstance(value, dict):
        return "list(" + ", ".join(f"{_r_string(str(k), where)} = {r_literal(v, where)}"
                                   for k, v in value.items()) + ")"
    raise NbprodError(f"{where} holds a {type(value).__name__}, which an R parameter cannot hold", "params.yaml",
                      fix="use a number, string, boolean, null or list")


def _r_string(text: str, where: str) -> str:
    if "\0" in text:
        raise NbprodError(f"{where} holds a NUL character, which R strings cannot hold", "params.yaml",
                          fix="remove the \\0 from the value")
    out = ['"']
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch < " " or ch == "\x7f" or ord(ch) > 126:
            out.append(f"\\U{{{ord(ch):x}}}")  # R's own escape: the source stays ASCII
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
