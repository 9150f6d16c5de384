"""Locating non-invariant items: effect sizes (dMACS), score tests of releasing a step's
restrictions item by item, and the comparison of what was flagged with what was planted.

Every step of a ladder restricts some item parameters in groups 2..G, either by equating them
with group 1 (lavaan ``group.equal``) or, under Wu & Estabrook (2016) identification, by fixing
them (latent-response intercepts at 0, residual variances at 1). Both are handled the same way
here: the fitted, restricted model is embedded in an *extended* parameter table in which the
restricted rows of groups 2..G are free (lavaan's ``lavTestScore(add = ...)`` idea), so that

    theta_ext = K x   (K maps the restricted model's parameters to the extended free rows;
                       a fixed row has a zero row in K, an equated row shares its column).

For the block of rows ``D`` of one item, the score (Lagrange multiplier) test and the one-step
parameter change are

    den = D'ID - D'IK (K'IK)^-1 K'ID,    epc = den^+ D'g,    X2 = N g'D epc,  df = rank(den)
    change = D epc - K (K'IK)^-1 K'ID epc

with g the score of logl / N (or of lavaan's WLS fit function) and I the unit information at the
restricted estimates (Bentler & Chou, 1992; Sörbom, 1989). The change is one Fisher-scoring
step of the model with the block released; the item's effect size is computed at that point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from instrument.invariance.score import WLS_ESTIMATORS as _WLS, fit_state, score_information
from instrument.sem.test.score import score_tests


__all__ = ["dmacs_continuous", "dmacs_ordinal", "expected_score", "item_sds", "ReleaseTests",
           "release_tests", "item_effect_sizes", "item_of", "constraint_type",
           "compare_with_truth", "STEP_KIND"]

# the parameter type each step restricts (lavaan group.equal names)
STEP_KIND = {"thresholds": "thresholds", "metric": "loadings", "scalar": "intercepts",
             "strict": "residuals"}
THETA_FLOOR = 1e-8
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(61)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


# ---------------------------------------------------------------------------------------------
# dMACS
# ---------------------------------------------------------------------------------------------

def dmacs_continuous(nu_r: float, lam_r: float, nu_f: float, lam_f: float, mean_f: float,
                     var_f: float, sd: float) -> float:
    """dMACS of a continuous indicator (Nye & Drasgow, 2011, eq. 3).

    ``dMACS = sqrt(∫ [(ν_R − ν_F) + (λ_R − λ_F) η]² f_F(η) dη) / SD_pooled`` with
    ``η ~ N(mean_f, var_f)`` (the focal group's latent distribution); for the linear item
    function the integral is ``(Δν + Δλ μ_F)² + Δλ² ψ_F``.

    References
    ----------
    Nye, C. D., & Drasgow, F. (2011). Effect size indices for analyses of measurement
    equivalence: Understanding the practical importance of differences between groups.
    Journal of Applied Psychology, 96(5), 966-980. https://doi.org/10.1037/a0022955
    """
    dn, dl = nu_r - nu_f, lam_r - lam_f
    return math.sqrt((dn + dl * mean_f) ** 2 + dl * dl * var_f) / sd


def expected_score(eta: np.ndarray, tau: Sequence[float], nu: float, lam: float, theta: float,
                   codes: Sequence[float]) -> np.ndarray:
    """Expected item score of a probit latent-response item at the latent values ``eta``.

    ``E(X | η) = c_0 + Σ_k (c_k − c_{k−1}) Φ((ν + λη − τ_k) / √θ)`` for categories with codes
    ``c_0 < … < c_K`` and thresholds ``τ_1 < … < τ_K`` (theta parameterization: θ is the
    residual variance of the latent response). A one-step estimate can make θ negative; it is
    floored at `THETA_FLOOR` (the item function becomes a step at each threshold).
    """
    c = np.asarray(codes, float)
    z = (nu + lam * np.asarray(eta, float)[:, None] - np.asarray(tau, float)[None, :])
    return c[0] + special.ndtr(z / math.sqrt(max(theta, THETA_FLOOR))) @ np.diff(c)


def dmacs_ordinal(ref: Mapping[str, Any], foc: Mapping[str, Any], mean_f: float, var_f: float,
                  sd: float, codes: Sequence[float]) -> float:
    """dMACS on the expected item score of an ordered item (the ordinal analogue).

    ``ref`` and ``foc`` hold the item's ``tau`` (thresholds), ``nu``, ``lam`` and ``theta`` in the
    reference and the focal group; the squared difference of `expected_score` is integrated over
    the focal latent distribution ``N(mean_f, var_f)`` (61-point Gauss-Hermite) and its root is
    divided by the pooled SD of the observed item. This is Nye & Drasgow's (2011) dMACS with the
    item's expected score in place of the linear item function, as the dmacs R package computes it
    for categorical indicators (Dueber, D. M., dmacs: Measurement Nonequivalence Effect Size
    Calculator, ``item_dmacs(categorical = TRUE)``).
    """
    eta = mean_f + math.sqrt(max(var_f, 0.0)) * _NODES
    d = (expected_score(eta, ref["tau"], ref["nu"], ref["lam"], ref["theta"], codes)
         - expected_score(eta, foc["tau"], foc["nu"], foc["lam"], foc["theta"], codes))
    return math.sqrt(float(_WEIGHTS @ (d * d))) / sd


def item_sds(data: pd.DataFrame, items: Sequence[str], group: str,
             labels: Sequence[Any]) -> tuple[pd.DataFrame, dict[str, list[float]]]:
    """Per-group item SDs and counts (``sd``, ``n`` with columns = group labels, rows = items)
    and each item's observed codes (sorted), from the data the ladder was fitted to."""
    g = data[group].astype(str)
    sd = pd.DataFrame({str(lab): data.loc[g == str(lab), list(items)].std(ddof=1)
                       for lab in labels})
    n = pd.DataFrame({str(lab): data.loc[g == str(lab), list(items)].notna().sum()
                      for lab in labels})
    codes = {v: (np.unique(data[v].dropna().to_numpy(float)).tolist()
                 if pd.api.types.is_numeric_dtype(data[v])
                 else sorted(float(c) for c in pd.unique(data[v].dropna()))) for v in items}
    return pd.concat({"sd": sd, "n": n}, axis=1), codes


def pooled_sds(sds: pd.DataFrame | Mapping, labels: Sequence[str]) -> dict[tuple[str, int], float]:
    """Pooled SD of each item between group 1 and each group g >= 2 (the dMACS denominator),
    ``sqrt(((n1 − 1) s1² + (n2 − 1) s2²) / (n1 + n2 − 2))``, keyed by (item, g); a mapping
    already of that form is returned as is."""
    if not isinstance(sds, pd.DataFrame):
        return dict(sds)
    ref = str(labels[0])
    s1, n1 = sds[("sd", ref)].to_numpy(float), sds[("n", ref)].to_numpy(float)
    out = {}
    for g in range(2, len(labels) + 1):
        foc = str(labels[g - 1])
        s2, n2 = sds[("sd", foc)].to_numpy(float), sds[("n", foc)].to_numpy(float)
        pooled = np.sqrt(((n1 - 1) * s1 * s1 + (n2 - 1) * s2 * s2) / (n1 + n2 - 2))
        out.update({(str(v), g): float(x) for v, x in zip(sds.index, pooled)})
    return out


# ---------------------------------------------------------------------------------------------
# Parameters of one item in one group, read from a table's values
# ---------------------------------------------------------------------------------------------

class _Lookup:
    """Row index of ``(lhs, op, rhs, group)`` in a parameter table frame."""

    def __init__(self, frame: pd.DataFrame):
        cols = [frame[c].tolist() for c in ("lhs", "op", "rhs", "group")]
        self.row = {(lhs, op, rhs, int(g)): r for r, (lhs, op, rhs, g) in enumerate(zip(*cols))}
        self.factor = {}
        for lhs, op, rhs in zip(*cols[:3]):
            if op == "=~":
                self.factor.setdefault(rhs, lhs)

    def get(self, vals: np.ndarray, lhs: str, op: str, rhs: str, g: int, default: float) -> float:
        r = self.row.get((lhs, op, rhs, g))
        return default if r is None else float(vals[r])

    def item(self, vals: np.ndarray, v: str, g: int) -> dict:
        f = self.factor[v]
        tau, t = [], 1
        while (v, "|", f"t{t}", g) in self.row:
            tau.append(float(vals[self.row[(v, "|", f"t{t}", g)]]))
            t += 1
        return {"tau": tau, "nu": self.get(vals, v, "~1", "", g, 0.0),
                "lam": self.get(vals, f, "=~", v, g, 0.0),
                "theta": self.get(vals, v, "~~", v, g, 1.0),
                "mean": self.get(vals, f, "~1", "", g, 0.0),
                "var": self.get(vals, f, "~~", f, g, 1.0)}


def _gap(look: "_Lookup", vals: np.ndarray, v: str, g: int, eta: np.ndarray,
         codes: Sequence[float] | None) -> np.ndarray:
    """Reference minus focal (group g) expected score of item v at the latent values eta."""
    ref, foc = look.item(vals, v, 1), look.item(vals, v, g)
    if codes is None:
        return (ref["nu"] - foc["nu"]) + (ref["lam"] - foc["lam"]) * eta
    return (expected_score(eta, ref["tau"], ref["nu"], ref["lam"], ref["theta"], codes)
            - expected_score(eta, foc["tau"], foc["nu"], foc["lam"], foc["theta"], codes))


def item_effect_sizes(frame: pd.DataFrame | _Lookup, vals: np.ndarray, items: Sequence[str],
                      ngroups: int, labels: Sequence[str], sds: pd.DataFrame | Mapping,
                      codes: Mapping[str, Sequence[float]], ordinal: bool,
                      base: np.ndarray | None = None) -> dict[str, float]:
    """Largest dMACS of each item over the focal groups 2..G against group 1.

    ``vals`` are the values of every row of the parameter table ``frame``. Without ``base`` this
    is Nye & Drasgow's dMACS (`dmacs_ordinal` / `dmacs_continuous`): the root mean square,
    over the focal latent distribution, of the reference-minus-focal difference of the item's
    expected score, over the pooled item SD. With ``base`` (the values of a more restricted
    model) it is the same measure of the *change* of that difference from ``base`` to ``vals``:
    the part of the item's non-invariance that a restriction hides, so that a step is judged by
    the non-invariance it imposes rather than by differences other steps leave free.
    """
    look = frame if isinstance(frame, _Lookup) else _Lookup(frame)
    pooled = pooled_sds(sds, labels)
    out = {}
    for v in items:
        if v not in look.factor:
            continue
        best = 0.0
        for g in range(2, ngroups + 1):
            foc = look.item(vals, v, g)
            eta = foc["mean"] + math.sqrt(max(foc["var"], 0.0)) * _NODES
            c = codes[v] if ordinal else None
            d = _gap(look, vals, v, g, eta, c)
            if base is not None:
                d = d - _gap(look, base, v, g, eta, c)
            sd = pooled[(v, g)]
            best = max(best, math.sqrt(float(_WEIGHTS @ (d * d))) / sd)
        out[v] = best
    return out


# ---------------------------------------------------------------------------------------------
# Score tests of releasing each item's restrictions
# ---------------------------------------------------------------------------------------------

def _extended(model: Any, rows: np.ndarray, sample: Any, estimator: str) -> Any:
    """The model with table ``rows`` made free and untied (labels cleared)."""
    from dataclasses import replace

    f = model.pt.frame.copy()
    free = f["free"].to_numpy() > 0
    free[rows] = True
    lab = f["label"].to_numpy(object).copy()
    lab[rows] = ""
    f["label"] = lab
    f["free"] = np.where(free, np.cumsum(free), 0)
    us = f["ustart"].to_numpy(float).copy()
    us[rows] = np.nan
    f["ustart"] = us
    pt = replace(model.pt, frame=f)
    if estimator in _WLS:
        from instrument.sem.estimators.categorical import CategoricalModel
        return CategoricalModel(pt, sample, model.parameterization)
    from instrument.sem.model import Model
    return Model.from_partable(pt)


def _candidate_rows(frame: pd.DataFrame, kind: str, items: Sequence[str], x_col_of_row: np.ndarray
                    ) -> dict[str, list[int]]:
    """Rows of groups 2..G of each item that the step's ``kind`` restricts (fixed, or sharing
    a parameter with another group); rows already free on their own are skipped."""
    op, lhs, rhs, grp = (frame[c].tolist() for c in ("op", "lhs", "rhs", "group"))
    shared = pd.Series(x_col_of_row[x_col_of_row >= 0]).value_counts()
    out: dict[str, list[int]] = {}
    for r in range(len(frame)):
        if int(grp[r]) < 2:
            continue
        if kind == "thresholds" and op[r] == "|":
            v = lhs[r]
        elif kind == "loadings" and op[r] == "=~":
            v = rhs[r]
        elif kind == "intercepts" and op[r] == "~1":
            v = lhs[r]
        elif kind == "residuals" and op[r] == "~~" and lhs[r] == rhs[r]:
            v = lhs[r]
        else:
            continue
        if v not in items:
            continue
        c = x_col_of_row[r]
        if c < 0 or shared.get(c, 0) > 1:
            out.setdefault(v, []).append(r)
    return out


def constraint_type(parameter: str, ov_names: Sequence[str]) -> str:
    """The ``group.equal`` type a ``group.partial``-style parameter belongs to."""
    ov = set(ov_names)
    if "|" in parameter:
        return "thresholds"
    if "=~" in parameter:
        return "loadings"
    if parameter.endswith("~1"):
        return "intercepts" if parameter[:-2] in ov else "means"
    if "~~" in parameter:
        a, b = parameter.split("~~")
        if a in ov:
            return "residuals" if a == b else "residual.covariances"
        return "lv.variances" if a == b else "lv.covariances"
    return "regressions"


def item_of(parameter: str, items: Sequence[str]) -> str:
    """The item a ``group.partial`` spelling restricts: ``x|t2``, ``f=~x``, ``x~1``, ``x~~x``."""
    for v in items:
        if parameter.startswith(f"{v}|") or parameter in (f"{v}~1", f"{v}~~{v}") \
                or parameter.endswith(f"=~{v}"):
            return v
    return parameter


def _param_spelling(lhs: str, op: str, rhs: str) -> str:
    return f"{lhs}~1" if op == "~1" else f"{lhs}{op}{rhs}"


@dataclass(frozen=True)
class ReleaseTests:
    """Per-item tests of releasing one step's restrictions, and the item effect sizes.

    ``table`` columns: ``item``, ``parameters`` (``group.partial`` spellings, comma-joined),
    ``X2``, ``df``, ``pvalue``, ``pvalue.bonferroni`` (times the number of items tested),
    ``dmacs`` (at the one-step estimate with the item released). ``dmacs_released`` holds the
    dMACS of the items whose restrictions are already released, at the fitted estimates.
    """

    table: pd.DataFrame
    dmacs_released: dict[str, float]


def release_tests(fit: Any, kind: str, *, sds: pd.DataFrame, codes: Mapping[str, Sequence[float]],
                  released_items: Sequence[str] = ()) -> ReleaseTests:
    """Score tests and effect sizes of releasing, item by item, the restrictions of ``kind``
    ("thresholds", "loadings", "intercepts" or "residuals") in a fitted multi-group model.

    See the module docstring for the formulas. The model need not be identified with a block
    released (e.g. all thresholds of an item freed while its intercept stays free): the test
    then has ``df = rank(den)`` and the one-step change is the minimum-norm one.
    """
    model, x, sample, estimator, weight = fit_state(fit)
    ordinal = estimator in _WLS
    frame = model.pt.frame
    items = list(model.ov_names)
    row_x = np.full(len(frame), -1, int)
    row_x[model.free_rows] = model.x_col
    cand = _candidate_rows(frame, kind, items, row_x)
    labels = [str(g) for g in fit.meta.options.get("group_labels", range(1, model.ngroups + 1))]
    vals = model.x_to_partable(x)
    look = _Lookup(frame)
    sds = pooled_sds(sds, labels)
    lhs, op, rhs = (frame[c].tolist() for c in ("lhs", "op", "rhs"))
    released = item_effect_sizes(look, vals, [v for v in released_items if v not in cand],
                                 model.ngroups, labels, sds, codes, ordinal)
    cols = ["item", "parameters", "X2", "df", "pvalue", "pvalue.bonferroni", "dmacs"]
    if not cand:
        return ReleaseTests(pd.DataFrame(columns=cols), released)
    all_rows = np.array(sorted(r for rs in cand.values() for r in rs), int)
    ext = _extended(model, all_rows, sample, estimator)
    x_ext = ext.partable_to_x(vals)
    g, info, n = score_information(ext, x_ext, sample, estimator, weight)
    pos = {r: k for k, r in enumerate(ext.free_rows)}
    K = np.zeros((len(ext.free_rows), model.nx))
    for r, c in zip(model.free_rows, model.x_col):
        K[pos[r], c] = 1.0
    D = np.zeros((len(ext.free_rows), len(all_rows)))
    col = {r: j for j, r in enumerate(all_rows)}
    D[[pos[r] for r in all_rows], np.arange(len(all_rows))] = 1.0
    blocks = [[col[r] for r in rows] for rows in cand.values()]
    res = score_tests(g, info, K, D, n, blocks, total=False)
    out = []
    for (v, rows), x2, df, change in zip(cand.items(), res.X2, res.df, res.change):
        new = vals.copy()
        new[ext.free_rows] = ext.x_to_partable(x_ext)[ext.free_rows] + change
        d = item_effect_sizes(look, new, [v], ext.ngroups, labels, sds, codes, ordinal,
                              base=vals)
        spell = sorted({_param_spelling(lhs[r], op[r], rhs[r]) for r in rows})
        out.append({"item": v, "parameters": ",".join(spell), "X2": float(x2), "df": int(df),
                    "pvalue": float(stats.chi2.sf(x2, df)), "dmacs": d.get(v, math.nan)})
    t = pd.DataFrame(out, columns=[c for c in cols if c != "pvalue.bonferroni"])
    t.insert(5, "pvalue.bonferroni", np.minimum(t["pvalue"] * len(t), 1.0))
    return ReleaseTests(t.sort_values("X2", ascending=False, ignore_index=True), released)


# ---------------------------------------------------------------------------------------------
# Flagged against planted
# ---------------------------------------------------------------------------------------------

def compare_with_truth(released: Sequence[str], planted: pd.DataFrame, items: Sequence[str]
                       ) -> dict[str, Any]:
    """Compare released parameters with the DIF planted in simulated data.

    Parameters
    ----------
    released : parameters released by the search (``group.partial`` spellings).
    planted : DataFrame
        ``item_id``, ``threshold_shift`` and ``loading_diff`` of every item with planted DIF
        (empty when none was planted for this grouping).
    items : the model's items.

    Returns
    -------
    dict
        ``parameters``: one row per planted or released (item, type) with ``planted``,
        ``flagged`` and ``outcome`` ("hit", "miss", "false alarm"); ``items``: the same per
        item; ``counts``: hits, misses and false alarms for both. A uniform threshold shift is
        an intercept difference of the latent response (Wu & Estabrook, 2016), a loading
        difference a loading one.
    """
    want: set[tuple[str, str]] = set()
    for r in planted.itertuples(index=False):
        if abs(float(getattr(r, "threshold_shift", 0.0))) > 0:
            want.add((r.item_id, "intercepts"))
        if abs(float(getattr(r, "loading_diff", 0.0))) > 0:
            want.add((r.item_id, "loadings"))
    got: set[tuple[str, str]] = set()
    for p in released:
        kind = constraint_type(p, items)
        got.add((item_of(p, items), kind))

    def rows(a: set, b: set) -> list[dict]:
        return [{"item": k[0], **({"type": k[1]} if isinstance(k, tuple) and len(k) > 1 else {}),
                 "planted": k in a, "flagged": k in b,
                 "outcome": "hit" if k in a and k in b else "miss" if k in a else "false alarm"}
                for k in sorted(a | b)]

    par = rows(want, got)
    item_rows = [{k: v for k, v in r.items() if k != "type"} for r in rows(
        {(i,) for i, _ in want}, {(i,) for i, _ in got})]

    def count(rs):
        return {o: sum(r["outcome"] == o for r in rs) for o in ("hit", "miss", "false alarm")}

    return {"parameters": pd.DataFrame(par, columns=["item", "type", "planted", "flagged",
                                                     "outcome"]),
            "items": pd.DataFrame(item_rows, columns=["item", "planted", "flagged", "outcome"]),
            "counts": {"parameters": count(par), "items": count(item_rows)}}

