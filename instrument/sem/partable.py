"""The parameter table: the central structure every stage reads and writes (lavaan's partable).

`build_partable` turns parsed syntax rows into one table with lavaan's columns
``id lhs op rhs user block group free ustart exo label plabel start est se`` and lavaan's
defaults for `cfa()`: marker variables (or ``std_lv``), auto.var, auto.cov.lv.x, free
intercepts, latent means fixed at 0 (freed in groups 2..G when intercepts are equal), and
group-equality labels ``.pN.`` exactly as lavaan 0.6-14 writes them. Ordered indicators get
thresholds and scales, identified across groups by lavaan's rules or, with ``id_cat=``, by
Wu & Estabrook's (2016) as semTools writes them; both express equalities by the same labels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.sem.constraints import check_statement_labels
from instrument.sem.syntax import SyntaxRow, parse_syntax

__all__ = ["ParTable", "build_partable", "model_variables", "check_group_equal", "merge_repeated",
           "GROUP_EQUAL_TYPES", "PARTABLE_COLUMNS", "ID_CAT"]

GROUP_EQUAL_TYPES = ("loadings", "intercepts", "means", "residuals", "residual.covariances",
                     "lv.variances", "lv.covariances", "regressions", "thresholds")
# identifications of ordered indicators across groups besides lavaan's default (semTools'
# measEq.syntax ``ID.cat`` names)
ID_CAT = ("Wu.Estabrook.2016",)
PARTABLE_COLUMNS = ("id", "lhs", "op", "rhs", "user", "block", "group", "free", "ustart", "exo",
                    "label", "plabel", "start", "est", "se")


def check_group_equal(group_equal: Sequence[str] | str = (),
                      group_partial: Sequence[str] | str = (), *,
                      ordinal: bool = True) -> tuple[tuple, tuple]:
    """``group_equal`` and ``group_partial`` as tuples (a single string is one entry), checked
    against lavaan's ``group.equal`` types; ``"thresholds"`` only with ordinal indicators."""
    ge = (group_equal,) if isinstance(group_equal, str) else tuple(group_equal)
    gp = (group_partial,) if isinstance(group_partial, str) else tuple(group_partial)
    allowed = GROUP_EQUAL_TYPES if ordinal else tuple(t for t in GROUP_EQUAL_TYPES
                                                      if t != "thresholds")
    bad = [g for g in ge if g not in allowed]
    if bad:
        extra = (" ('thresholds' needs ordered indicators)" if "thresholds" in bad and not ordinal
                 else "")
        raise ValueError(f"group_equal= entries must be among {allowed}; got {bad}{extra}")
    return ge, gp


@dataclass(frozen=True)
class ParTable:
    """A lavaan parameter table (frozen).

    Attributes
    ----------
    frame : pandas.DataFrame
        lavaan's columns ``id lhs op rhs user block group free ustart exo label plabel start
        est se``; ``free`` numbers the free parameters 1..k (0 = fixed), ``ustart`` holds the
        fixed value of fixed rows (NaN for free rows). ``est``/``se`` are NaN until filled.
    ov_names, lv_names : tuple of str
        Observed and latent variables in lavaan's order.
    ngroups : int
    group_labels : tuple of str
    meanstructure : bool
    constraints : tuple of (str, str)
        ``lhs == rhs`` equality constraints from the syntax (expressions of labels, as lavaan
        prints them; see `instrument.sem.constraints`).
    defined : tuple of (str, str)
        ``name := expression`` defined parameters, in syntax order.
    """

    frame: pd.DataFrame
    ov_names: tuple
    lv_names: tuple
    ngroups: int = 1
    group_labels: tuple = ()
    meanstructure: bool = False
    constraints: tuple = ()
    options: dict = field(default_factory=dict)
    defined: tuple = ()

    def col(self, name: str) -> np.ndarray:
        """Column ``name`` of `frame` as a NumPy array (strings as an object array), converted
        once per table: the model, its starting values, standardized solution and estimates
        table read the same columns, and pandas' string arrays convert on every access. The
        table is never modified in place (`with_values` returns a new one)."""
        cache = self.__dict__.setdefault("_columns", {})
        a = cache.get(name)
        if a is None:
            a = cache[name] = self.frame[name].to_numpy()
        return a

    def with_values(self, est: np.ndarray | None = None, se: np.ndarray | None = None,
                    start: np.ndarray | None = None) -> "ParTable":
        """Return a copy with the ``est`` / ``se`` / ``start`` columns replaced."""
        f = self.frame.copy()
        if est is not None:
            f["est"] = np.asarray(est, float)
        if se is not None:
            f["se"] = np.asarray(se, float)
        if start is not None:
            f["start"] = np.asarray(start, float)
        return ParTable(f, self.ov_names, self.lv_names, self.ngroups, self.group_labels,
                        self.meanstructure, self.constraints, dict(self.options), self.defined)

    def to_dict(self) -> dict:
        from instrument.results import to_jsonable
        return to_jsonable({"frame": self.frame, "ov_names": list(self.ov_names),
                            "lv_names": list(self.lv_names), "ngroups": self.ngroups,
                            "group_labels": list(self.group_labels),
                            "meanstructure": self.meanstructure,
                            "constraints": [list(c) for c in self.constraints],
                            "defined": [list(c) for c in self.defined],
                            "options": self.options})

    @classmethod
    def from_dict(cls, d: dict) -> "ParTable":
        from instrument.results import from_jsonable
        f = from_jsonable(d["frame"])
        for c in ("label", "plabel", "lhs", "op", "rhs"):
            f[c] = f[c].fillna("").astype(str)
        return cls(f, tuple(d["ov_names"]), tuple(d["lv_names"]), int(d["ngroups"]),
                   tuple(d["group_labels"]), bool(d["meanstructure"]),
                   tuple(tuple(c) for c in d.get("constraints", [])), dict(d.get("options", {})),
                   tuple(tuple(c) for c in d.get("defined", [])))


def model_variables(rows: Sequence[SyntaxRow]) -> tuple[list, list]:
    """Observed and latent variable names of parsed syntax, in lavaan's order: latent variables
    in order of their ``=~``; observed: indicators in ``=~`` order, then others as they appear."""
    lvs: list[str] = []
    for r in rows:
        if r.op == "=~" and r.lhs not in lvs:
            lvs.append(r.lhs)
    lvset = set(lvs)
    ovs: list[str] = []
    for r in rows:
        if r.op == "=~" and r.rhs not in lvset and r.rhs not in ovs:
            ovs.append(r.rhs)
    for r in rows:
        if r.op in ("==", ":="):
            continue
        cands = [r.lhs] + ([r.rhs] if r.op not in ("|", "~1") and r.rhs else [])
        for v in cands:
            if v not in lvset and v not in ovs:
                ovs.append(v)
    return ovs, lvs


def merge_repeated(rows: Sequence[SyntaxRow]) -> list[SyntaxRow]:
    """Merge an ``lhs op rhs`` element repeated within one statement (lavaan merges the
    modifiers: semTools' ``A =~ c(NA, NA)*A1 + c(l1, l2)*A1`` frees the loading with one term and
    labels it with the other); an element repeated in another statement is an error, as in
    lavaan ("duplicate model element")."""
    out: list[SyntaxRow] = []
    pos: dict[tuple, int] = {}
    for r in rows:
        key = (r.lhs, r.op, r.rhs)
        if r.op == "~~" and (r.rhs, r.op, r.lhs) in pos:
            key = (r.rhs, r.op, r.lhs)
        if r.op in ("==", ":=") or key not in pos:
            if r.op not in ("==", ":="):
                pos[key] = len(out)
            out.append(r)
            continue
        old = out[pos[key]]
        if old.line != r.line:
            raise ValueError(f"model syntax line {r.line}: {r.lhs} {r.op} {r.rhs} is given "
                             f"twice (first on line {old.line}); expected each element once, "
                             "or its modifiers in one statement")
        out[pos[key]] = replace(old, fixed=r.fixed if r.fixed is not None else old.fixed,
                                label=r.label if r.label is not None else old.label,
                                start=r.start if r.start is not None else old.start)
    return out


def _per_group(vals: tuple | None, ngroups: int, row: SyntaxRow, what: str) -> list:
    if vals is None:
        return [None] * ngroups
    if len(vals) == 1:
        return list(vals) * ngroups
    if len(vals) != ngroups:
        raise ValueError(f"model syntax line {row.line}: {what} for {row.lhs}{row.op}{row.rhs} "
                         f"has {len(vals)} values but there are {ngroups} groups")
    return list(vals)


def _partial_key(spec: str) -> tuple[str, str, str]:
    s = spec.replace(" ", "")
    for op in ("=~", "~~", "~1", "|", "~"):
        if op == "~1" and s.endswith("~1"):
            return s[:-2], "~1", ""
        if op != "~1" and op in s:
            lhs, rhs = s.split(op, 1)
            return lhs, op, rhs
    raise ValueError(f"group_partial entry {spec!r} is not of the form 'lhs op rhs' "
                     "(e.g. 'x3~1', 'visual=~x2', 'x1~~x1')")


def _equal_type(op: str, lhs: str, rhs: str, lvs: set) -> str | None:
    if op == "=~":
        return "loadings"
    if op == "~1":
        return "means" if lhs in lvs else "intercepts"
    if op == "|":
        return "thresholds"
    if op == "~":
        return "regressions"
    if op == "~~":
        if lhs in lvs:
            return "lv.variances" if lhs == rhs else "lv.covariances"
        return "residuals" if lhs == rhs else "residual.covariances"
    return None


def build_partable(rows: Sequence[SyntaxRow] | str, *, ngroups: int = 1,
                   group_labels: Sequence[str] | None = None,
                   ov_names: Sequence[str] | None = None, meanstructure: bool = False,
                   std_lv: bool = False, group_equal: Sequence[str] = (),
                   group_partial: Sequence[str] = (), ordered: Sequence[str] = (),
                   nlevels: Mapping[str, int] | None = None, parameterization: str = "delta",
                   auto_cov_lv: bool = True, id_cat: str | None = None) -> ParTable:
    """Build lavaan's parameter table for a CFA from parsed syntax.

    Parameters
    ----------
    rows : list of SyntaxRow or str
        Output of `parse_syntax` (a string is parsed first).
    ngroups : int
        Number of groups; every parameter is repeated per group (block).
    group_labels : sequence of str, optional
        Names of the groups in order.
    ov_names : sequence of str, optional
        Columns available in the data; every observed variable of the model must be one.
    meanstructure : bool
        Add intercepts (``~1``) for observed variables (free) and latent means (fixed 0).
    std_lv : bool
        Identify by fixing latent variances to 1 and freeing all loadings.
    group_equal : sequence of str
        Parameter types held equal across groups (`GROUP_EQUAL_TYPES`).
    group_partial : sequence of str
        Parameters exempt from `group_equal`, as ``"x3~1"``, ``"visual=~x2"``.
    ordered : sequence of str
        Ordered observed variables (kept in the table; ML estimation rejects them).
    nlevels : mapping of str to int, optional
        Number of categories of each ordered variable (from the sample statistics): adds the
        rows of ordered indicators (thresholds ``|``, scales ``~*~``; mean structure on).
    parameterization : {"delta", "theta"}
        With `nlevels`: whether the scales (delta) or the residual variances (theta) identify
        the latent responses in groups 2..G.
    id_cat : {None, "Wu.Estabrook.2016"}
        With `nlevels`: None is lavaan's identification of ordered indicators across groups;
        "Wu.Estabrook.2016" is Wu & Estabrook's (2016), as semTools writes it (see Notes).

    Returns
    -------
    ParTable

    Notes
    -----
    Row order follows lavaan 0.6-14 ``lavaanify()``: user rows in syntax order, then the
    residual variances of the observed variables, the latent variances, the latent covariances
    (``auto.cov.lv.x``), the intercepts and the latent means, all repeated per group. A parameter
    held equal by `group_equal` gets the label ``.pN.`` where N is the ``id`` of its group-1 row,
    in every group. Latent means are fixed at 0 unless ``"intercepts"`` is in `group_equal` and
    ``"means"`` is not; then they are free in groups 2..G. Likewise with ``std_lv`` the latent
    variances are fixed at 1 unless ``"loadings"`` is in `group_equal`; then they are free in
    groups 2..G.

    With ordered indicators (`nlevels`; mean structure on) every ordered indicator gets, per
    group: thresholds ``x | t1 .. t(K-1)`` after the user's rows (free; labelled equal across
    groups with ``group_equal="thresholds"`` like any other type), its residual variance
    ``x ~~ x`` fixed (delta: computed from the model; theta: 1), the scale ``x ~*~ x`` fixed at
    1 after the latent covariances, and its intercept ``x ~ 1`` fixed at 0. With thresholds held
    equal, lavaan frees in groups 2..G the scales (delta) or the residual variances (theta) and
    the latent means. Rows the user wrote are kept as written. Order, plabels, fixed values and
    free rows are lavaan 0.6-14's.

    With ``id_cat="Wu.Estabrook.2016"`` (``std_lv``, a model of ``=~`` lines only) the latent
    responses are identified by Wu & Estabrook's (2016) rules instead: intercepts fixed at 0
    and residual variances (theta) or scales (delta) at 1 in group 1; in groups 2..G an item's
    intercept is free once one of its thresholds is held equal, its residual variance (scale)
    once two are (or one and the intercept), each fixed again (0, 1) when ``"intercepts"`` /
    ``"residuals"`` (theta only) are in `group_equal` (unless the item's ``x~1`` / ``x~~x`` is
    in `group_partial`; a threshold in `group_partial` does not count as equal). Latent means are
    free in groups 2..G only with equal intercepts, latent variances only with equal loadings.
    The rows are ordered as semTools writes them (per group loadings, thresholds, intercepts,
    residual variances or scales, latent means, variances and covariances, then the rows lavaan
    adds); the table is the one lavaan builds from semTools 0.5-6
    ``measEq.syntax(ID.fac = "std.lv", ID.cat = "Wu.Estabrook.2016", parameterization = ...)``,
    with the equalities written as ``.pN.`` labels as `group_equal` writes them everywhere.

    References
    ----------
    Wu, H., & Estabrook, R. (2016). Identification of confirmatory factor analysis models of
    different levels of invariance for ordered categorical outcomes. Psychometrika, 81(4),
    1014-1045. https://doi.org/10.1007/s11336-016-9506-0
    """
    if isinstance(rows, str):
        rows = parse_syntax(rows)
    group_equal, group_partial = check_group_equal(group_equal, group_partial)
    if id_cat is not None:
        _check_id_cat(id_cat, rows, nlevels=nlevels, std_lv=std_lv,
                      parameterization=parameterization, group_equal=group_equal)
    if ngroups < 1:
        raise ValueError(f"ngroups= must be >= 1; got {ngroups}")
    if ngroups > 1 or any(r.op == "~1" for r in rows):
        meanstructure = True    # lavaan: groups or user intercepts switch the mean structure on
    group_labels = tuple(group_labels) if group_labels is not None else tuple(
        str(g + 1) for g in range(ngroups))
    statements = [r for r in rows if r.op in ("==", ":=")]
    constraints = tuple((r.lhs, r.rhs) for r in statements if r.op == "==")
    defined = tuple((r.lhs, r.rhs) for r in statements if r.op == ":=")
    rows = merge_repeated([r for r in rows if r.op not in ("==", ":=")])
    for r in rows:
        if r.op == "~*~" and (nlevels is None or r.lhs != r.rhs or r.lhs not in set(ordered)):
            raise ValueError(f"model syntax line {r.line}: {r.lhs} ~*~ {r.rhs} is a scale, which "
                             "only an ordered indicator has (x ~*~ x, with ordered=)")
    ovs, lvs = model_variables(rows)
    lvset = set(lvs)
    if ov_names is not None:
        missing = [v for v in ovs if v not in set(ov_names)]
        if missing:
            raise ValueError(f"observed variable(s) {missing} of the model are not columns of the "
                             f"data (columns: {list(ov_names)})")
    # endogenous latent variables (lhs of a regression among latents, or indicated by a latent)
    reg_y = {r.lhs for r in rows if r.op == "~" and r.lhs in lvset}
    endo = reg_y | {r.rhs for r in rows if r.op == "=~" and r.rhs in lvset}
    marker_of: dict[str, str] = {}
    for r in rows:
        if r.op == "=~" and r.lhs not in marker_of:
            marker_of[r.lhs] = r.rhs

    ordinal = nlevels is not None
    ordset = set(ordered)
    if ordinal:
        meanstructure = True
        nlev = dict(nlevels)
        th_equal = "thresholds" in group_equal
        partial = {_partial_key(s) for s in group_partial}
        we = id_cat == "Wu.Estabrook.2016"
        free_nu, free_var = _wu_estabrook_free(ovs, ordset, nlev, group_equal, partial) \
            if we else ({}, {})
        # the parameter that identifies a latent response's variance in groups 2..G: the
        # residual variance (theta) or the scale (delta); free with equal thresholds (lavaan)
        # or by id_cat's rules
        var_free = {v: free_var[v] if we else th_equal for v in ovs if v in ordset}
    recs: list[dict] = []

    def add(lhs, op, rhs, user, g, free, ustart, label="", start=math.nan):
        recs.append(dict(lhs=lhs, op=op, rhs=rhs, user=user, block=g + 1, group=g + 1,
                         free=1 if free else 0, ustart=(math.nan if free else ustart),
                         exo=0, label=label, start=start))

    for g in range(ngroups):
        have = set()
        for r in rows:
            fixed = _per_group(r.fixed, ngroups, r, "c()")[g]
            label = _per_group(r.label, ngroups, r, "c()")[g] or ""
            start = _per_group(r.start, ngroups, r, "start()")[g]
            key = (r.lhs, r.op, r.rhs)
            if r.op == "~~" and r.lhs != r.rhs and (r.rhs, "~~", r.lhs) in have:
                raise ValueError(f"model syntax line {r.line}: {r.lhs} ~~ {r.rhs} is given twice")
            if key in have:
                raise ValueError(f"model syntax line {r.line}: {r.lhs} {r.op} {r.rhs} is given twice")
            have.add(key)
            if fixed is not None and not math.isnan(fixed):
                free, ustart = False, fixed
            elif fixed is not None:  # NA: explicitly free
                free, ustart = True, math.nan
            elif r.op == "=~" and marker_of.get(r.lhs) == r.rhs and not std_lv:
                free, ustart = False, 1.0
            elif r.op == "~~" and std_lv and r.lhs == r.rhs and r.lhs in lvset:
                free, ustart = False, 1.0
            elif r.op == "~1" and r.lhs in lvset:
                free, ustart = True, math.nan  # user-given latent mean: free
            else:
                free, ustart = True, math.nan
            add(r.lhs, r.op, r.rhs, 1, g, free, ustart, label, math.nan if start is None else start)
        if ordinal:
            for v in ovs:
                if v in ordset:
                    for t in range(1, nlev[v]):
                        if (v, "|", f"t{t}") not in have:
                            add(v, "|", f"t{t}", 0, g, True, math.nan)
        for v in ovs:
            if (v, "~~", v) not in have and v not in ordset:
                add(v, "~~", v, 0, g, True, math.nan)
            elif (v, "~~", v) not in have and ordinal:
                # theta: 1 (free as var_free says); delta: computed from the model
                add(v, "~~", v, 0, g, g > 0 and parameterization == "theta" and var_free[v],
                    1.0)
        # std.lv with equal loadings: latent variances stay 1 in group 1 only (lavaan 0.6)
        free_lv_var = not std_lv or (g > 0 and "loadings" in group_equal)
        for f in lvs:
            if (f, "~~", f) not in have:
                add(f, "~~", f, 0, g, free_lv_var, 1.0)
        if auto_cov_lv:
            # auto.cov.lv.x among exogenous latents; auto.cov.y among latents that are the
            # dependent variable of a regression; none for latents indicated by latents
            lv_y = [f for f in lvs if f in reg_y]
            for blockset in ([f for f in lvs if f not in endo], lv_y):
                for i in range(len(blockset)):
                    for j in range(i + 1, len(blockset)):
                        a, b = blockset[i], blockset[j]
                        if (a, "~~", b) not in have and (b, "~~", a) not in have:
                            add(a, "~~", b, 0, g, True, math.nan)
        if ordinal:
            for v in ovs:
                if v in ordset and (v, "~*~", v) not in have:
                    # delta: 1 (free as var_free says); theta: reported (computed as
                    # diag(Sigma*)^-1/2), never free
                    add(v, "~*~", v, 0, g, g > 0 and parameterization == "delta" and var_free[v],
                        1.0)
        if meanstructure:
            for v in ovs:
                if (v, "~1", "") not in have and v not in ordset:
                    add(v, "~1", "", 0, g, True, math.nan)
                elif (v, "~1", "") not in have and ordinal:
                    add(v, "~1", "", 0, g, g > 0 and free_nu.get(v, False), 0.0)
            # latent means: free in groups 2..G once intercepts are equal, and with ordered
            # indicators (lavaan's rule, not id_cat's) once thresholds are equal
            identified = "intercepts" in group_equal or (ordinal and th_equal and not we)
            free_means = g > 0 and identified and "means" not in group_equal
            for f in lvs:
                if (f, "~1", "") not in have:
                    add(f, "~1", "", 0, g, free_means, 0.0)
    if ordinal and we:
        # the order of semTools' syntax: per group loadings, thresholds, intercepts, residual
        # variances (theta) or scales (delta), latent means, variances, covariances, then the
        # rows lavaan adds (scales, theta; residual variances, delta)
        order = _WE_ORDER[parameterization]
        recs.sort(key=lambda r: (r["group"], order[_we_kind(r["op"], r["lhs"], r["rhs"], lvset)]))
    for k, rec in enumerate(recs):
        rec["id"] = k + 1
        rec["plabel"] = f".p{k + 1}."
    # group equality labels (on the records: fast for large multi-group tables)
    if ngroups > 1 and group_equal:
        partial = {_partial_key(s) for s in group_partial}
        first = {(r["lhs"], r["op"], r["rhs"]): k for k, r in enumerate(recs) if r["group"] == 1}
        orig_label = [r["label"] for r in recs]
        for i, r in enumerate(recs):
            key = (r["lhs"], r["op"], r["rhs"])
            t = _equal_type(r["op"], r["lhs"], r["rhs"], lvset)
            if t not in group_equal or key in partial:
                continue
            j = first.get(key)
            if j is None or i == j:
                continue
            rj = recs[j]
            if rj["free"] == 0:
                # equal to a fixed group-1 value (latent means 0, std.lv variances 1): fixed
                if r["free"] and not orig_label[i]:
                    r["free"] = 0
                    r["ustart"] = rj["ustart"]
                continue
            if r["free"] == 0 or orig_label[i] or orig_label[j]:
                continue
            r["label"] = rj["label"] = rj["plabel"]
    is_free = np.array([r["free"] for r in recs]) > 0
    nan = np.full(len(recs), np.nan)
    computed = {"free": np.where(is_free, np.cumsum(is_free), 0), "est": nan, "se": nan.copy()}
    frame = pd.DataFrame({c: computed[c] if c in computed else [r[c] for r in recs]
                          for c in PARTABLE_COLUMNS})
    if statements:
        check_statement_labels(statements, set(frame["label"]) | set(frame["plabel"]))
    options = {"std_lv": std_lv, "group_equal": list(group_equal),
               "group_partial": list(group_partial)}
    if ordinal:
        options.update(ordered=list(ordered), parameterization=parameterization)
        if id_cat is not None:
            options["id_cat"] = id_cat
    return ParTable(frame, tuple(ovs), tuple(lvs), ngroups, group_labels, bool(meanstructure),
                    constraints, options, defined)


def _check_id_cat(id_cat: str, rows: Sequence[SyntaxRow], *, nlevels, std_lv: bool,
                  parameterization: str, group_equal: Sequence[str]) -> None:
    """One-line errors for an ``id_cat`` the table cannot build."""
    if id_cat not in ID_CAT:
        raise ValueError(f"id_cat= must be one of {', '.join(map(repr, ID_CAT))} (or None for "
                         f"lavaan's identification); got {id_cat!r}.")
    if nlevels is None:
        raise ValueError(f"id_cat={id_cat!r} identifies ordered indicators; give ordered=.")
    if not std_lv:
        raise ValueError(f"id_cat={id_cat!r} identifies the factors by std_lv=True (semTools "
                         "ID.fac='std.lv'); got std_lv=False.")
    if parameterization == "delta" and "residuals" in group_equal:
        raise ValueError(f"with id_cat={id_cat!r} and parameterization='delta' the residual "
                         "variances are not parameters, so group_equal='residuals' cannot hold "
                         "them equal (semTools refuses it too); use parameterization='theta'.")
    other = sorted({f"{r.lhs} {r.op} {r.rhs}".strip() for r in rows if r.op != "=~"})
    if other:
        raise ValueError(f"with id_cat={id_cat!r} the model may only hold '=~' lines (the rest "
                         f"is written by the identification rules); got {other[:3]}.")


# Row order of a Wu & Estabrook table within a group, by parameterization: semTools'
# measEq.syntax order, then the rows lavaan adds to that syntax.
_WE_ORDER = {p: {k: i for i, k in enumerate(("loading", "threshold", "intercept", var, "mean",
                                              "variance", "covariance", added))}
             for p, var, added in (("theta", "residual", "scale"),
                                   ("delta", "scale", "residual"))}


def _we_kind(op: str, lhs: str, rhs: str, lvs: set) -> str:
    if op == "~*~":
        return "scale"
    if op == "=~":
        return "loading"
    if op == "|":
        return "threshold"
    if op == "~1":
        return "mean" if lhs in lvs else "intercept"
    if lhs in lvs:
        return "variance" if lhs == rhs else "covariance"
    return "residual"


def _wu_estabrook_free(ovs: Sequence[str], ordset: set, nlev: Mapping[str, int],
                       group_equal: Sequence[str], partial: set) -> tuple[dict, dict]:
    """Which ordered items have their latent-response intercept / variance parameter (residual
    variance, theta; scale, delta) free in groups 2..G under Wu & Estabrook (2016): one equal
    threshold identifies the intercept; two, or one with the intercept held equal, the variance;
    each is fixed again when it is held equal itself (``"intercepts"``, ``"residuals"``;
    semTools 0.5-6 measEq.syntax's rules). A threshold, intercept or residual variance
    (``x~~x``) in `group_partial` does not count as equal."""
    free_nu, free_var = {}, {}
    for v in ovs:
        if v not in ordset:
            continue
        n_equal = sum("thresholds" in group_equal and (v, "|", f"t{t}") not in partial
                      for t in range(1, nlev[v]))
        nu_equal = "intercepts" in group_equal and (v, "~1", "") not in partial
        res_equal = "residuals" in group_equal and (v, "~~", v) not in partial
        free_nu[v] = n_equal >= 1 and not nu_equal
        free_var[v] = (n_equal >= 2 or (n_equal >= 1 and nu_equal)) and not res_equal
    return free_nu, free_var
