"""Model syntax for lavaan and Mplus, so others can reproduce a CFA outside this package.

`validate` writes, for each form, ``syntax/<form>.lav`` (lavaan model syntax with the ``cfa()``
call in comments), ``syntax/<form>.inp`` (an Mplus input file) and ``syntax/<form>_cfa.dat``
(the item responses the CFA was fitted to: items only, no identifiers, space separated,
missing as ``-999``). Both programs read the same ``.dat`` file.

Mplus conventions used (Muthén & Muthén, 1998-2017, *Mplus User's Guide*, 8th ed., ch. 5 and 15):
``BY`` for loadings (the first loading is fixed at 1 by default, as in lavaan; ``@v`` fixes,
``*`` frees), ``WITH`` for covariances, ``ON`` for regressions, ``[x]`` for intercepts; a name
alone is a variance. Variable and factor names are at most 8 characters, so longer names are
shortened (and listed in a comment). ``LISTWISE = ON`` reproduces lavaan's
``missing = "listwise"``; without it Mplus uses full-information ML, lavaan's ``"fiml"``.
``INFORMATION = EXPECTED`` matches lavaan's default standard errors for ML. For the categorical
estimators (WLSMV, ULSMV) the ordinal items are declared ``CATEGORICAL`` with lavaan's
parameterization (``PARAMETERIZATION = DELTA|THETA``); lavaan's ``missing = "pairwise"`` is Mplus's
default for them (pairwise present), so no LISTWISE line is written.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from instrument.sem.syntax import parse_syntax

__all__ = ["lavaan_syntax", "mplus_input", "mplus_names", "write_syntax"]

ESTIMATORS = ("ML", "MLR", "WLSMV", "ULSMV")
CATEGORICAL_ESTIMATORS = ("WLSMV", "ULSMV")
MISSING = ("listwise", "fiml", "pairwise")
PARAMETERIZATIONS = ("delta", "theta")
MISSING_CODE = -999
MPLUS_NAME_MAX = 8
MPLUS_LINE_MAX = 80   # Mplus reads at most 90 characters per line


def _check(estimator: str, missing: str, parameterization: str = "delta") -> None:
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization= must be one of "
                         f"{', '.join(map(repr, PARAMETERIZATIONS))}; got {parameterization!r}.")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator= must be one of {', '.join(map(repr, ESTIMATORS))}; "
                         f"got {estimator!r}.")
    if missing not in MISSING:
        raise ValueError(f"missing= must be one of {', '.join(map(repr, MISSING))}; "
                         f"got {missing!r}.")


def mplus_names(names: Sequence[str]) -> dict[str, str]:
    """Map each name to a unique Mplus name of at most 8 characters (case-insensitive).

    Names already short enough are kept; longer ones are cut to 8 characters, and when the cut
    collides with a name already taken the tail is replaced by a counter (``language`` ->
    ``langua_2``).
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for n in names:
        if len(n) <= MPLUS_NAME_MAX and n.lower() not in taken:
            cand = n
        else:
            cand, i = n[:MPLUS_NAME_MAX], 1
            while cand.lower() in taken:
                i += 1
                suffix = f"_{i}"
                cand = n[:MPLUS_NAME_MAX - len(suffix)] + suffix
        if not re.match(r"^[A-Za-z]", cand):
            raise ValueError(f"Mplus names must begin with a letter; got {n!r}.")
        out[n] = cand
        taken.add(cand.lower())
    return out


def _wrap(head: str, words: Sequence[str], indent: str = "  ", end: str = ";") -> list[str]:
    """``head word word ...;`` wrapped so no line is longer than MPLUS_LINE_MAX."""
    lines, cur = [], head
    for w in words:
        if len(cur) + 1 + len(w) > MPLUS_LINE_MAX:
            lines.append(cur)
            cur = indent + "  " + w
        else:
            cur = f"{cur} {w}" if cur.strip() else cur + w
    lines.append(cur + end)
    return lines


def _fixed(row: Any) -> float | None:
    """The row's fixed value (None when free or not fixed)."""
    if row.fixed is None:
        return None
    v = row.fixed[0]
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _val(v: float) -> str:
    return f"{v:g}"


def lavaan_syntax(model: str, *, form: str = "", estimator: str = "ML",
                  ordered: Sequence[str] = (), missing: str = "listwise",
                  parameterization: str = "delta",
                  names: Sequence[str] = (), data_file: str = "") -> str:
    """lavaan model syntax with a comment header giving the ``cfa()`` call that reproduces the fit.

    Parameters
    ----------
    model : str
        lavaan model syntax (checked with `instrument.sem.syntax.parse_syntax`).
    form, estimator, ordered, missing
        As passed to `instrument.cfa`; ``ordered`` names the items treated as ordinal.
    names, data_file : optional
        Column names and file of the data written beside the syntax (space separated, missing
        coded -999), used in the example call.
    """
    _check(estimator, missing, parameterization)
    parse_syntax(model)
    call = [f"fit <- cfa(model, data = dat, estimator = \"{estimator}\""]
    if ordered:
        call.append(", ordered = c(" + ", ".join(f'"{o}"' for o in ordered) + ")")
    if missing != "listwise":
        call.append(f', missing = "{missing}"')
    if parameterization != "delta":
        call.append(f', parameterization = "{parameterization}"')
    call.append(")")
    head = [f"# lavaan model syntax{', ' + form + ' form' if form else ''} "
            "(written by instrument validate; lavaan 0.6).",
            "# Reproduce the confirmatory factor analysis in R:",
            "#   library(lavaan)",
            "#   model <- paste(readLines(\"" + (f"{form}.lav" if form else "model.lav")
            + "\"), collapse = \"\\n\")"]
    if data_file:
        cols = ", ".join(f'"{n}"' for n in names)
        head.append(f"#   dat <- read.table(\"{data_file}\", col.names = c({cols}),")
        head.append(f"#                     na.strings = \"{MISSING_CODE}\")")
    head += ["#   " + "".join(call), "#   summary(fit, fit.measures = TRUE, standardized = TRUE)",
             ""]
    return "\n".join(head) + model.strip() + "\n"


def mplus_input(model: str, *, names: Sequence[str], data_file: str, form: str = "",
                estimator: str = "ML", ordered: Sequence[str] = (),
                missing: str = "listwise", information: str = "expected",
                parameterization: str = "delta") -> str:
    """An Mplus input file (TITLE, DATA, VARIABLE, ANALYSIS, MODEL, OUTPUT) for a lavaan model.

    Parameters
    ----------
    model : str
        lavaan model syntax with ``=~``, ``~~``, ``~`` and ``~ 1`` statements (fixed values and
        ``NA`` are carried over; labels become Mplus labels in parentheses).
    names : sequence of str
        Every column of ``data_file``, in order (NAMES ARE).
    data_file : str
        The data file (space separated, no header, missing coded -999).
    estimator : {"ML", "MLR", "WLSMV", "ULSMV"}
        ESTIMATOR; "WLSMV" and "ULSMV" require ``ordered`` (CATEGORICAL ARE).
    missing : {"listwise", "fiml", "pairwise"}
        ``"listwise"`` adds ``LISTWISE = ON`` to DATA; "pairwise" only with WLSMV/ULSMV.
    parameterization : {"delta", "theta"}
        PARAMETERIZATION for WLSMV/ULSMV.
    information : {"expected", "observed"}
        INFORMATION for ML (lavaan's default for ML is expected).

    Returns
    -------
    str
        The input file text; long names are mapped with `mplus_names` and listed in a comment.
    """
    _check(estimator, missing, parameterization)
    if estimator in CATEGORICAL_ESTIMATORS and not ordered:
        raise ValueError(f"estimator={estimator!r} needs ordered= (the items to declare "
                         "CATEGORICAL).")
    if missing == "pairwise" and estimator not in CATEGORICAL_ESTIMATORS:
        raise ValueError("missing='pairwise' applies to WLSMV/ULSMV only.")
    rows = parse_syntax(model)
    lvs = list(dict.fromkeys(r.lhs for r in rows if r.op == "=~"))
    used = list(dict.fromkeys(r.rhs for r in rows if r.op == "=~" and r.rhs not in lvs))
    for r in rows:
        for n in (r.lhs, r.rhs):
            if n and n not in lvs and n not in used and n in names:
                used.append(n)
    missing_cols = [u for u in used if u not in names]
    if missing_cols:
        raise ValueError(f"model variables not in names=: {', '.join(missing_cols)}.")
    bad = [o for o in ordered if o not in names]
    if bad:
        raise ValueError(f"ordered= names not in names=: {', '.join(bad)}.")
    nm = mplus_names([*names, *lvs])
    out = [f"TITLE: CFA{', ' + form + ' form' if form else ''} (written by instrument validate)"]
    renamed = [f"{k} = {v}" for k, v in nm.items() if k != v]
    if renamed:
        out += ["! Mplus names are at most 8 characters; renamed:"]
        out += _wrap("!  ", renamed, indent="!", end="")
    out += [f"DATA: FILE = \"{data_file}\";"]
    if missing == "listwise":
        out.append("  LISTWISE = ON;")
    out += _wrap("VARIABLE: NAMES ARE", [nm[n] for n in names])
    out += _wrap("  USEVARIABLES ARE", [nm[n] for n in used])
    if ordered:
        out += _wrap("  CATEGORICAL ARE", [nm[o] for o in ordered if o in used])
    out.append(f"  MISSING ARE ALL ({MISSING_CODE});")
    out += ["ANALYSIS: TYPE = GENERAL;", f"  ESTIMATOR = {estimator};"]
    if estimator == "ML":
        out.append(f"  INFORMATION = {information.upper()};")
    if estimator in CATEGORICAL_ESTIMATORS:
        out.append(f"  PARAMETERIZATION = {parameterization.upper()};")
    out.append("MODEL:")
    for lv in lvs:
        words = []
        for r in rows:
            if r.op == "=~" and r.lhs == lv:
                v = _fixed(r)
                w = nm[r.rhs] + (f"@{_val(v)}" if v is not None else
                                 ("*" if r.fixed is not None else ""))
                lab = r.label[0] if r.label and r.label[0] else ""
                words.append(w + (f" ({lab})" if lab else ""))
        out += _wrap(f"  {nm[lv]} BY", words, indent="  ")
    for r in rows:
        if r.op == "=~":
            continue
        v = _fixed(r)
        fix = f"@{_val(v)}" if v is not None else ""
        lab = f" ({r.label[0]})" if r.label and r.label[0] else ""
        if r.op == "~~":
            text = nm[r.lhs] if r.lhs == r.rhs else f"{nm[r.lhs]} WITH {nm[r.rhs]}"
        elif r.op == "~":
            text = f"{nm[r.lhs]} ON {nm[r.rhs]}"
        elif r.op == "~1":
            text = f"[{nm[r.lhs]}]"
        else:
            out.append(f"  ! not translated: {r.lhs} {r.op} {r.rhs}")
            continue
        out.append(f"  {text}{fix}{lab};")
    out += ["OUTPUT: STDYX;", ""]
    return "\n".join(out)


def write_syntax(out_dir: str | Path, form: str, model: str, data: pd.DataFrame, *,
                 estimator: str = "ML", ordered: Sequence[str] = (),
                 missing: str = "listwise", information: str = "expected",
                 parameterization: str = "delta") -> list[Path]:
    """Write ``<form>.lav``, ``<form>.inp`` and ``<form>_cfa.dat`` into ``out_dir``.

    ``data`` holds the responses the CFA was fitted to; only the model's observed variables
    are written (no identifiers), missing as -999.
    """
    rows = parse_syntax(model)
    lvs = {r.lhs for r in rows if r.op == "=~"}
    ov = list(dict.fromkeys(n for r in rows for n in (r.lhs, r.rhs)
                            if n and n not in lvs and r.op in ("=~", "~~", "~", "~1")))
    miss = [c for c in ov if c not in data.columns]
    if miss:
        raise ValueError(f"data lacks the model's variables: {', '.join(miss)}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dat = out / f"{form}_cfa.dat"
    x = data[ov].apply(pd.to_numeric, errors="raise")
    v = x.to_numpy(float)
    if ((v[~pd.isna(v)] % 1) == 0).all():
        x = x.astype("Int64")       # whole-number codes written as 1, 2, ... not 1.0, 2.0
    x.to_csv(dat, sep=" ", header=False, index=False, na_rep=str(MISSING_CODE))
    lav = out / f"{form}.lav"
    lav.write_text(lavaan_syntax(model, form=form, estimator=estimator, ordered=ordered,
                                 missing=missing, parameterization=parameterization, names=ov,
                                 data_file=dat.name))
    inp = out / f"{form}.inp"
    inp.write_text(mplus_input(model, names=ov, data_file=dat.name, form=form,
                               estimator=estimator, ordered=ordered, missing=missing,
                               information=information, parameterization=parameterization))
    return [lav, inp, dat]


def pipeline_stage(ctx: Mapping[str, Any]) -> dict:
    """The ``syntax`` stage of `instrument.pipeline.validate`: lavaan and Mplus files per form.

    Reads ``ctx["cfa_fits"]`` (form -> CFAResult) and ``ctx["cfa_data"]`` (form -> the
    responses the CFA was fitted to) and writes into ``ctx["out_dir"] / "syntax"``; the files
    are returned relative to ``ctx["out_dir"]`` (no machine paths in results).
    """
    out = Path(ctx["out_dir"]) / "syntax"
    files = {}
    for form, fit in ctx.get("cfa_fits", {}).items():
        opts = fit.meta.options or {}
        est = str(opts.get("estimator") or "ML")
        model = opts.get("model") or ctx["bank"].model_syntax(form=form)
        ordered = opts.get("ordered") or []
        if ordered is True or (est in CATEGORICAL_ESTIMATORS and not ordered):
            ordered = list(getattr(fit, "ov_names", None) or [])
        paths = write_syntax(out, form, model, ctx["cfa_data"][form], estimator=est,
                             ordered=list(ordered),
                             missing=str(opts.get("missing") or "listwise"),
                             information=str(opts.get("information") or "expected"),
                             parameterization=str(opts.get("parameterization") or "delta"))
        files[form] = [Path(p).relative_to(Path(ctx["out_dir"])).as_posix() for p in paths]
    return {"files": files}
