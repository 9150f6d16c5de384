"""lavaan model syntax -> flat rows (``lhs op rhs`` + modifiers), with no defaults added.

Supported operators: ``=~`` (loadings), ``~~`` (variances/covariances), ``~`` (regressions;
``y ~ 1`` is an intercept and becomes op ``~1``), ``|`` (thresholds ``x | t1 + t2``), ``~*~``
(scales of ordered indicators, ``x ~*~ c(1, NA)*x``), ``==``
(equality constraints between expressions of labels, ``a == b``, ``c == 1.2*d``) and ``:=``
(defined parameters, ``ab := a*b``; see `instrument.sem.constraints`). Modifiers before ``*``: a number (fixed value), ``NA`` (free),
a label (``a*x2``), ``c(...)`` vectors with one entry per group (``c(a, b)*x2``, ``c(1, NA)*x1``),
``start(0.5)*x2`` and ``label("a")*x2``/``equal("a")*x2``.

Errors raise `ModelSyntaxError` naming the line, the column and the offending token.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from instrument.sem.constraints import ConstraintError, parse_expression

__all__ = ["SyntaxRow", "ModelSyntaxError", "parse_syntax", "has_levels", "split_levels"]

_OPS = ("=~", "~*~", "~~", "==", ":=", "<", ">", "~", "|")
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class ModelSyntaxError(ValueError):
    """Error in lavaan model syntax, with the line number, column and quoted line."""

    def __init__(self, message: str, line: int, col: int, text: str):
        self.line, self.col, self.text, self.reason = line, col, text, message
        super().__init__(f"model syntax, line {line}, column {col}: {message}\n  {text}\n"
                         f"  {' ' * max(col - 1, 0)}^")


@dataclass(frozen=True)
class SyntaxRow:
    """One ``lhs op rhs`` statement of the model syntax.

    Attributes
    ----------
    lhs, op, rhs : str
        lavaan's names; an intercept ``x ~ 1`` has ``op == "~1"`` and ``rhs == ""``. For
        ``==`` both sides and for ``:=`` the right-hand side are expressions as lavaan prints
        them (spaces removed).
    fixed : tuple of float or None
        Fixed values (one, or one per group); NaN marks ``NA`` (explicitly free).
    label : tuple of str or None
        Labels (one, or one per group); ``""`` for no label in that group.
    start : tuple of float or None
        Starting values given with ``start()``.
    line : int
        Line number in the syntax (1-based).
    """

    lhs: str
    op: str
    rhs: str
    fixed: tuple | None = None
    label: tuple | None = None
    start: tuple | None = None
    line: int = 0


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for ch in line:
        if quote:
            out.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            out.append(ch)
        elif ch in "#!":
            break
        else:
            out.append(ch)
    return "".join(out)


def _split_top(text: str, sep: str) -> list[tuple[str, int]]:
    """Split ``text`` on ``sep`` outside parentheses; return (piece, offset) pairs."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append((text[start:i], start))
            start = i + 1
    parts.append((text[start:], start))
    return parts


def _find_op(stmt: str) -> tuple[str, int] | None:
    depth, i = 0, 0
    while i < len(stmt):
        ch = stmt[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            for op in _OPS:
                if stmt.startswith(op, i):
                    return op, i
        i += 1
    return None


def _parse_value(tok: str, err) -> tuple[str, object]:
    """Classify one modifier entry: ('fixed', float), ('free', nan) or ('label', str)."""
    t = tok.strip()
    if t in ("NA", "NaN"):
        return "free", math.nan
    if _NUMBER.match(t):
        return "fixed", float(t)
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
        t = t[1:-1]
    if _NAME.match(t):
        return "label", t
    err(f"cannot read modifier {tok.strip()!r} (expected a number, NA or a label)", tok)
    return "", None


def _parse_modifier(mod: str, err) -> dict:
    """Parse what stands before ``*`` into fixed/label/start tuples."""
    m = mod.strip()
    out: dict = {}
    fn = re.match(r"^(c|start|label|equal)\s*\((.*)\)$", m, re.S)
    if fn:
        kind, inner = fn.group(1), fn.group(2)
        items = [p for p, _ in _split_top(inner, ",")]
        if not items or any(not p.strip() for p in items):
            err(f"empty entry in {kind}(...)", mod)
        vals = [_parse_value(p, err) for p in items]
        if kind == "start":
            if any(k == "label" for k, _ in vals):
                err("start() takes numbers", mod)
            out["start"] = tuple(float(v) for _, v in vals)
            return out
        if kind in ("label", "equal"):
            out["label"] = tuple(str(v) for _, v in vals)
            return out
        kinds = {k for k, _ in vals}
        if "label" in kinds and kinds - {"label"}:
            if kinds == {"label", "free"}:
                out["label"] = tuple(v if k == "label" else "" for k, v in vals)
                return out
            err("c() mixes labels and numbers", mod)
        if kinds == {"label"}:
            out["label"] = tuple(v for _, v in vals)
        else:
            out["fixed"] = tuple(v for _, v in vals)
        return out
    kind, val = _parse_value(m, err)
    if kind == "label":
        out["label"] = (val,)
    else:
        out["fixed"] = (val,)
    return out


def parse_syntax(text: str) -> list[SyntaxRow]:
    """Parse lavaan model syntax into flat rows.

    Parameters
    ----------
    text : str
        Model syntax; statements are separated by newlines or ``;``. ``#`` and ``!`` start
        comments. A statement whose line ends in ``+`` (or whose next line starts with ``+``)
        continues on the next line.

    Returns
    -------
    list of SyntaxRow
        One row per ``lhs op rhs`` term, in the order written; no defaults are added.

    Notes
    -----
    Mirrors lavaan 0.6-14 ``lavParseModelString()``: modifiers are joined with ``*`` to the
    right-hand variable (``a*x2``, ``1*x1``, ``NA*x1``, ``c(a,b)*x2``, ``start(.5)*x2``);
    ``y ~ 1`` gives ``op = "~1"``; ``x | t1 + t2`` gives threshold rows ``x | t1``, ``x | t2``.

    Raises
    ------
    ModelSyntaxError
        With line, column and the quoted line for anything that cannot be read.

    Examples
    --------
    >>> [(r.lhs, r.op, r.rhs) for r in parse_syntax("f =~ x1 + a*x2")]
    [('f', '=~', 'x1'), ('f', '=~', 'x2')]
    """
    if not isinstance(text, str):
        raise TypeError(f"model syntax must be a str; got {type(text).__name__}")
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # statements: (text, line number, original line, offset of stmt in line)
    stmts: list[list] = []
    for ln, line in enumerate(raw, start=1):
        body = _strip_comment(line)
        for piece, off in _split_top(body, ";"):
            if not piece.strip():
                continue
            lead = len(piece) - len(piece.lstrip())
            s = piece.strip()
            if stmts and (stmts[-1][0].rstrip().endswith(("+", "*", "=~", "~~", "~", ","))
                          or s.startswith(("+", "*"))):
                stmts[-1][0] = stmts[-1][0] + " " + s
                continue
            stmts.append([s, ln, line, off + lead])
    rows: list[SyntaxRow] = []
    for stmt, ln, line, off in stmts:
        def err(msg: str, token: str = "", _stmt=stmt, _ln=ln, _line=line, _off=off):
            pos = _line.find(token.strip()) if token and token.strip() else -1
            col = (pos if pos >= 0 else _off) + 1
            raise ModelSyntaxError(msg, _ln, col, _line.rstrip())

        found = _find_op(stmt)
        if found is None:
            err("no operator found (expected one of =~ ~~ ~ | == :=)", stmt.split()[0] if stmt.split() else "")
        op, pos = found
        lhs_txt, rhs_txt = stmt[:pos].strip(), stmt[pos + len(op):].strip()
        if op in ("<", ">"):
            err(f"inequality constraints ({op!r}) are not supported", op)
        if not lhs_txt:
            err(f"nothing on the left of {op!r}", op)
        if not rhs_txt:
            err(f"nothing on the right of {op!r}", op)
        if op in ("==", ":="):
            if op == ":=" and not _NAME.match(lhs_txt):
                err(f"{lhs_txt!r} is not a valid name for a defined parameter", lhs_txt)
            sides = []
            for side in ((lhs_txt, rhs_txt) if op == "==" else (rhs_txt,)):
                try:
                    sides.append(parse_expression(side).text)
                except ConstraintError as e:
                    err(str(e), side)
            rows.append(SyntaxRow(lhs_txt if op == ":=" else sides[0], op, sides[-1], line=ln))
            continue
        lhs_names = [p.strip() for p, _ in _split_top(lhs_txt, "+")]
        for nm in lhs_names:
            if not _NAME.match(nm):
                err(f"{nm!r} is not a valid variable name", nm or op)
        terms = _split_top(rhs_txt, "+")
        for term, _ in terms:
            t = term.strip()
            if not t:
                err(f"empty term after {op!r} (a dangling '+'?)", op)
            parts = _split_top(t, "*")
            var = parts[-1][0].strip()
            mods: dict = {}
            for mod, _ in parts[:-1]:
                if not mod.strip():
                    err(f"empty modifier in {t!r}", t)
                for k, v in _parse_modifier(mod, err).items():
                    if k in mods and k != "start":
                        err(f"two {k} modifiers in {t!r}", t)
                    mods[k] = v
            this_op, rhs = op, var
            if op == "~" and var == "1":
                this_op, rhs = "~1", ""
            elif op == "|":
                if not re.match(r"^t\d+$", var):
                    err(f"threshold {var!r} must be named t1, t2, ...", var)
            elif not _NAME.match(var):
                err(f"{var!r} is not a valid variable name", var or t)
            for lhs in lhs_names:
                rows.append(SyntaxRow(lhs, this_op, rhs, fixed=mods.get("fixed"),
                                      label=mods.get("label"), start=mods.get("start"), line=ln))
    if not rows:
        raise ModelSyntaxError("the model syntax is empty", 1, 1, raw[0] if raw else "")
    return rows


# --------------------------------------------------------------------------- level: blocks
_LEVEL = re.compile(r"^\s*level\s*:\s*(\S+)\s*$", re.IGNORECASE)
_LEVEL_NAMES = {"1": 1, "within": 1, "2": 2, "between": 2}


def has_levels(model: str) -> bool:
    """Whether ``model`` has lavaan ``level:`` lines (a two-level model)."""
    return isinstance(model, str) and any(_LEVEL.match(line.split("#")[0])
                                          for line in model.splitlines())


def split_levels(model: str) -> tuple[str, str]:
    """Split lavaan two-level syntax into the ``level: 1`` and ``level: 2`` blocks.

    Parameters
    ----------
    model : str
        lavaan syntax with a ``level: 1`` (or ``level: within``) line followed by the within
        model and a ``level: 2`` (or ``level: between``) line followed by the between model.

    Returns
    -------
    (within, between) : tuple of str
        The text of each block; line numbers are kept (other lines are blanked) so syntax
        errors point at the right line of `model`.
    """
    if not isinstance(model, str):
        raise TypeError(f"model= must be a str of lavaan syntax; got {type(model).__name__}")
    lines = model.splitlines()
    blocks = {1: [""] * len(lines), 2: [""] * len(lines)}
    current, seen = None, []
    for k, line in enumerate(lines):
        m = _LEVEL.match(line.split("#")[0])
        if m:
            lev = _LEVEL_NAMES.get(m.group(1).lower())
            if lev is None:
                raise ModelSyntaxError(f"unknown level {m.group(1)!r} (expected 1, 2, within or "
                                       "between)", k + 1, line.find(m.group(1)) + 1, line)
            if lev in seen:
                raise ModelSyntaxError(f"level {lev} is given twice", k + 1, 1, line)
            current = lev
            seen.append(lev)
            continue
        if current is None:
            if line.split("#")[0].strip():
                raise ModelSyntaxError("a two-level model must start with 'level: 1' (statement "
                                       "found before any level: line)", k + 1, 1, line)
            continue
        blocks[current][k] = line
    if sorted(seen) != [1, 2]:
        raise ModelSyntaxError("a two-level model needs both a 'level: 1' and a 'level: 2' block"
                               f" (found: {seen or 'none'})", 1, 1, lines[0] if lines else "")
    return "\n".join(blocks[1]), "\n".join(blocks[2])
