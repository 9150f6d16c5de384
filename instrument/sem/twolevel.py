"""Two-level (random-intercept) CFA by full-information ML, as lavaan's ``level: 1 / level: 2``.

Teachers (level 1) are nested in schools (level 2). Every observed item y_ij of teacher i in
school j splits into a school part and a teacher part, y_ij = mu + b_j + w_ij, with
Cov(w) = Sigma_W(theta_W) (the *within* model, ``level: 1``) and Cov(b) = Sigma_B(theta_B),
E(y) = mu_B(theta_B) (the *between* model, ``level: 2``, which also carries the intercepts).
The functions here fit that model by exact ML (not the MUML approximation of
`instrument.multilevel.muml_covariances`), report lavaan's two-level fit measures and the
school-level (between) reliability of each construct.

Public API: `fit_twolevel` (the two-level entry of the estimator registry
`instrument.sem.cfa.ESTIMATORS`; users call ``cfa(model, data, cluster=)``), `TwoLevelResult`,
`twolevel_reliability`, `TwoLevelReliability`, `cluster_stats`, `twolevel_information`. The
likelihood, its expected information, the EM saturated model and the objective the engine's
optimiser minimises are in `instrument.sem.estimators.twolevel`.

Agreement with lavaan 0.6-14 (tests/test_twolevel.py): logl, h1 logl (EM replicated),
chisq, baseline chisq to ~1e-8 relative; CFI/TLI/RMSEA/SRMR within 1e-6; estimates within
2e-4 of lavaan's default fit (its nlminb stop; 3e-5 of its tightened refit) and SEs at lavaan's
own estimates to 1e-9 relative.
"""
from __future__ import annotations

import math
import warnings as _warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument.sem.optim import optimize_reporting
from instrument.sem.estimators.twolevel import (TwoLevelObjective, _CFAStructure, _Saturated,
                                                saturated_em, twolevel_loglik)
from instrument.sem.model import vech_indices
from instrument.sem.samplestats import ClusterStats, GroupStats, SampleStats, cluster_stats_from
from instrument.sem.fit.dist import Z975, norm_sf
from instrument.sem.fit.measures import TestStat, fit_indices, information_criteria
from instrument.sem.partable import ParTable, build_partable
from instrument.results import Meta, Table, from_jsonable, to_jsonable
from instrument.sem.data import data_warnings, select
from instrument.sem.syntax import ModelSyntaxError, parse_syntax, split_levels

__all__ = ["fit_twolevel", "TwoLevelResult", "twolevel_reliability", "TwoLevelReliability",
           "cluster_stats", "twolevel_information", "H1_METHODS"]

_LOG2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------- data
def cluster_stats(df: pd.DataFrame, variables: Sequence[str], cluster: str) -> ClusterStats:
    """Within SSCP and per-cluster-size moments of the cluster means (listwise complete rows).

    Parameters
    ----------
    df : DataFrame
    variables : sequence of str
        Observed variables in the model's order.
    cluster : str
        Column identifying the cluster (school).

    Returns
    -------
    ClusterStats
        Of the rows the engine's data step (`instrument.sem.data.select`, listwise) keeps.
    """
    if not isinstance(cluster, str) or not cluster:
        raise ValueError(f"cluster= must be the name of the cluster column; got {cluster!r}")
    return cluster_stats_from(select(df, variables, cluster=cluster, missing="listwise"))


# ---------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class TwoLevelResult:
    """A two-level CFA fitted by exact (full-information) ML.

    Attributes
    ----------
    estimates : DataFrame
        lavaan's ``parameterEstimates`` columns plus ``level`` and ``std.all``: ``lhs op rhs
        level block label est se z pvalue ci.lower ci.upper std.all`` (level 1 = within,
        level 2 = between; fixed rows have se 0 and NaN z/pvalue like lavaan).
    fit_measures : dict
        lavaan's names: npar, fmin, chisq, df, pvalue, baseline.chisq, baseline.df,
        baseline.pvalue, cfi, tli, nnfi, rfi, nfi, pnfi, ifi, rni, logl, unrestricted.logl,
        aic, bic, ntotal, bic2, rmsea, rmsea.ci.lower, rmsea.ci.upper, rmsea.ci.level,
        rmsea.pvalue, rmsea.close.h0, rmsea.notclose.pvalue, rmsea.notclose.h0, srmr,
        srmr_within, srmr_between: the same names, in the same order, as lavaan 0.6-14's
        ``fitMeasures()`` of a two-level fit.
    implied, h1 : dict
        ``{"within": {"cov": DataFrame}, "between": {"cov": DataFrame, "mean": list}}`` of the
        model and of the saturated (h1) two-level model.
    vcov : DataFrame
        Covariance matrix of the free parameters (inverse observed information).
    N, J : int
        Teachers and schools.
    converged : bool
    iterations : int
    cluster : str
    cluster_sizes : tuple of int
        Size of every cluster (no data values; used by `twolevel_reliability`).
    warnings : tuple of str
        Non-convergence, negative variances (Heywood cases) and an EM h1 that ends below the
        model's log-likelihood (chisq then 0, as in lavaan).
    meta : Meta
    """

    estimates: pd.DataFrame
    fit_measures: Mapping[str, float]
    implied: Mapping[str, Any]
    h1: Mapping[str, Any]
    vcov: pd.DataFrame
    N: int
    J: int
    converged: bool
    iterations: int
    cluster: str
    cluster_sizes: tuple = ()
    warnings: tuple = ()
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return to_jsonable({"estimates": self.estimates, "fit_measures": dict(self.fit_measures),
                            "implied": _mom_to_json(self.implied), "h1": _mom_to_json(self.h1),
                            "vcov": self.vcov.reset_index(names="par"), "N": self.N, "J": self.J,
                            "converged": self.converged, "iterations": self.iterations,
                            "cluster": self.cluster, "cluster_sizes": list(self.cluster_sizes),
                            "warnings": list(self.warnings), "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TwoLevelResult":
        est = from_jsonable(d["estimates"])
        for c in ("lhs", "op", "rhs", "label"):
            est[c] = est[c].fillna("").astype(str)
        return cls(estimates=est, fit_measures=dict(d["fit_measures"]),
                   implied=_mom_from_json(d["implied"]), h1=_mom_from_json(d["h1"]),
                   vcov=from_jsonable(d["vcov"]).set_index("par").rename_axis(None),
                   N=int(d["N"]), J=int(d["J"]), converged=bool(d["converged"]),
                   iterations=int(d["iterations"]), cluster=str(d["cluster"]),
                   cluster_sizes=tuple(int(v) for v in d.get("cluster_sizes", ())),
                   warnings=tuple(d.get("warnings", ())),
                   meta=Meta.from_dict(d.get("meta", {})))

    def summary(self) -> Table:
        fm = self.fit_measures
        cols = ["lhs", "op", "rhs", "level", "est", "se", "z", "pvalue", "std.all"]
        e = self.estimates
        e = e[~((e["op"] == "~1") & (e["level"] == 1))][cols]
        notes = (f"Two-level ML (exact, all clusters): N = {self.N} in J = {self.J} clusters "
                 f"of {self.cluster}; chisq = {fm['chisq']:.3f}, df = {fm['df']:.0f}, "
                 f"p = {fm['pvalue']:.4f}, CFI = {fm['cfi']:.3f}, TLI = {fm['tli']:.3f}, "
                 f"RMSEA = {fm['rmsea']:.3f}, SRMR within = {fm['srmr_within']:.3f}, "
                 f"SRMR between = {fm['srmr_between']:.3f}.",
                 "Level 1 = within clusters, level 2 = between clusters (intercepts are at "
                 "level 2); SEs from the observed information, as lavaan 0.6-14.",
                 *(f"Warning: {w}" for w in self.warnings))
        return Table("Two-level CFA parameter estimates", e.reset_index(drop=True), notes=notes)


def _mom_to_json(m):
    out = {}
    for lev, d in m.items():
        out[lev] = {"cov": d["cov"].reset_index(names="var"), "mean": list(d["mean"])}
    return out


def _mom_from_json(m):
    return {lev: {"cov": from_jsonable(d["cov"]).set_index("var").rename_axis(None),
                  "mean": [float(v) for v in d["mean"]]} for lev, d in m.items()}


# ---------------------------------------------------------------------------------- fitting
def _level_partable(text: str, level: int, ov_names: Sequence[str], std_lv: bool = False
                    ) -> ParTable:
    rows = parse_syntax(text)
    if not rows:
        raise ModelSyntaxError(f"the level {level} block is empty", 1, 1, "")
    if any(r.op not in ("=~", "~~", "~1") for r in rows):
        bad = next(r for r in rows if r.op not in ("=~", "~~", "~1"))
        raise NotImplementedError(f"two-level CFA supports =~, ~~ and ~1 statements; line "
                                  f"{bad.line} has {bad.op!r}")
    if level == 1 and any(r.op == "~1" for r in rows):
        bad = next(r for r in rows if r.op == "~1")
        raise NotImplementedError(f"line {bad.line}: intercepts ({bad.lhs} ~ 1) belong to level 2 "
                                  "in a random-intercept model; remove them from level 1")
    pt = build_partable(rows, ov_names=ov_names, meanstructure=True, std_lv=std_lv)
    f = pt.frame.copy()
    f["block"] = level
    f["group"] = 1
    if level == 1:
        # lavaan: observed intercepts live at level 2; the within intercepts are fixed at 0
        m = (f["op"] == "~1") & (f["user"] == 0)
        f.loc[m, "free"] = 0
        f.loc[m, "ustart"] = 0.0
        f["free"] = np.where(f["free"] > 0, np.cumsum(f["free"] > 0), 0)
    return ParTable(f, pt.ov_names, pt.lv_names, 1, pt.group_labels, True, pt.constraints,
                    dict(pt.options))


def _srmr_level(S: np.ndarray, sigma: np.ndarray) -> float:
    """lavaan's two-level SRMR of one level: rms of vech(cov2cor(S) - cov2cor(Sigma))."""
    def c2c(M):
        with np.errstate(invalid="ignore", divide="ignore"):
            d = 1.0 / np.sqrt(np.diag(M))
        return M * np.outer(d, d)
    R = c2c(S) - c2c(sigma)
    vr, vc = vech_indices(S.shape[0])
    return float(np.sqrt(np.mean(R[vr, vc] ** 2)))


#: how the saturated two-level model is fitted: lavaan 0.6-14's EM, or maximised exactly
H1_METHODS = ("em", "exact")


def fit_twolevel(model: str, data: pd.DataFrame, *, cluster: str, std_lv: bool = False,
                 h1: str = "em", baseline: bool = True) -> TwoLevelResult:
    """Fit a two-level CFA by full-information ML (lavaan ``cfa(model, data, cluster=)``).

    The two-level entry of the estimator registry (`instrument.sem.cfa`): call it through
    ``cfa(model, data, cluster=...)`` (or its alias ``twolevel_cfa``), which validates the options.

    Parameters
    ----------
    model : str
        lavaan syntax with ``level: 1`` and ``level: 2`` blocks, e.g.::

            level: 1
              fw =~ y1 + y2 + y3 + y4 + y5 + y6
            level: 2
              fb =~ y1 + y2 + y3 + y4 + y5 + y6

        Defaults as lavaan's ``cfa()``: first loading fixed at 1, residual and latent
        (co)variances free, observed intercepts free at level 2 and fixed at 0 at level 1,
        latent means 0. Every observed variable must appear at both levels (within-only or
        between-only variables are not supported).
    data : DataFrame
        One row per level-1 unit (teacher); rows with a missing item are dropped (listwise).
    cluster : str
        The cluster column (school id).
    std_lv : bool
        Identify every factor (both levels) by fixing its variance at 1 and freeing all
        loadings (lavaan's ``std.lv = TRUE``) instead of the first loading.
    h1 : {"em", "exact"}
        How the saturated two-level model is fitted. ``"em"`` (default) follows lavaan
        0.6-14 (`saturated_em`: EM from identity matrices, stopped when logl gains < 1e-4), so
        chisq, baseline.chisq, CFI/TLI/RMSEA and SRMR equal lavaan's. ``"exact"`` maximises
        the h1 likelihood to convergence (the engine's optimiser); lavaan's EM stops short of that maximum, so
        its chisq is then larger (here by ~5e-4, chisq relative 3e-6) and SRMR differs by ~1e-4.
    baseline : bool
        Fit the baseline (independence at both levels, free means) for CFI/TLI.

    Returns
    -------
    TwoLevelResult

    Notes
    -----
    The log-likelihood is `twolevel_loglik`; the estimates maximise it with the engine's
    optimiser (`instrument.sem.optim.optimize`: Fisher scoring on the analytic gradient
    and the expected information `twolevel_expected_information`, with the structured secant
    correction and step halving, to max |d logl/dx| < 1e-9 N; one convergence report). SEs are sqrt(diag(H^-1)) with H the observed information (Hessian of -logl), lavaan 0.6-14's
    default for two-level data (``information = "observed"``). The test compares the model with
    the saturated two-level model (Sigma_W, Sigma_B, mu unrestricted; h1, fitted by the same
    optimiser): chisq = 2 (logl_h1 - logl), df = p(p+1) + p - npar. CFI/TLI use the
    baseline with diagonal Sigma_W and Sigma_B and free means (df = p(p+1) + p - 3p).
    RMSEA uses N = number of level-1 units. SRMR (lavaan's ``lav_fit_srmr_twolevel``): per level
    rms of vech(cov2cor(S_h1) - cov2cor(Sigma_hat)) including the (zero) diagonal, with
    srmr = srmr_within + srmr_between. fmin = -logl/N - p/2 log(2 pi), as lavaan prints.

    References
    ----------
    McDonald, R. P., & Goldstein, H. (1989). British Journal of Mathematical and Statistical
    Psychology, 42(2), 215-232. https://doi.org/10.1111/j.2044-8317.1989.tb00911.x
    Muthen, B. O. (1994). Multilevel covariance structure analysis. Sociological Methods &
    Research, 22(3), 376-398. https://doi.org/10.1177/0049124194022003006
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
    """
    wtext, btext = split_levels(model)
    pt_w = _level_partable(wtext, 1, list(data.columns), std_lv)
    pt_b = _level_partable(btext, 2, list(data.columns), std_lv)
    if set(pt_w.ov_names) != set(pt_b.ov_names):
        raise NotImplementedError(
            "every observed variable must appear at both levels; within only: "
            f"{sorted(set(pt_w.ov_names) - set(pt_b.ov_names))}, between only: "
            f"{sorted(set(pt_b.ov_names) - set(pt_w.ov_names))}")
    lw = {x for x in pt_w.frame["label"] if x}
    lb = {x for x in pt_b.frame["label"] if x}
    if lw & lb:
        raise NotImplementedError(f"labels shared across levels ({sorted(lw & lb)}) are not "
                                  "supported (no cross-level constraints)")
    if cluster in pt_w.ov_names:
        raise ValueError(f"cluster={cluster!r} is also an observed variable of the model")
    ov = list(pt_w.ov_names)
    p = len(ov)
    d = select(data, ov, cluster=cluster, missing="listwise")
    stats = SampleStats([GroupStats.from_data(d.blocks[0], ov, cluster=cluster_stats_from(d))])
    cs = stats.groups[0].cluster
    warns = list(d.warnings) + data_warnings(stats, ["1"])
    st = _CFAStructure(pt_w, pt_b, ov)
    obj = TwoLevelObjective(st, cs)
    x, conv, iters = optimize_reporting(obj, st.start(cs), warns)
    logl = twolevel_loglik(cs, *st.moments(x))
    try:
        V = np.linalg.inv(obj.observed_information(x))
    except np.linalg.LinAlgError:
        V = np.full((st.nx, st.nx), np.nan)
    se_x = np.sqrt(np.where(np.diag(V) > 0, np.diag(V), np.nan))
    sat = _Saturated(p)
    if h1 == "exact":
        xs, logl1, conv1 = _maximum(sat, cs, warns, "saturated (h1)")
        HW, HB, hmu = sat.moments(xs)
    else:
        HW, HB, hmu, logl1, _ = saturated_em(cs)
        conv1 = True
    npar = st.nx
    df = sat.nx - npar
    chisq = max(2.0 * (logl1 - logl), 0.0)
    if 2.0 * (logl1 - logl) < 0:
        warns.append("the saturated model's EM (lavaan's rule: stop when logl gains < 1e-4) ends "
                     "below the fitted model's log-likelihood, so chisq is set to 0 as lavaan "
                     "does; h1='exact' gives the exact test.")
    base = None
    if baseline:
        bmod = _Saturated(p, diagonal=True)
        _, loglb, _ = _maximum(bmod, cs, warns, "baseline")
        base = TestStat(max(2.0 * (logl1 - loglb), 0.0), sat.nx - bmod.nx)
    fm: dict[str, float] = {"npar": npar, "fmin": -logl / cs.N - p / 2 * _LOG2PI}
    fm.update(fit_indices(TestStat(chisq, df), base, n=cs.N, ngroups=1,
                          likelihood=information_criteria(logl, logl1, npar, cs.N)))
    SW, SB, mu = st.moments(x)
    if np.any(np.diag(SW) <= 0) or np.any(np.diag(SB) < 0) or any(
            np.any(np.diag(m.matrices(xx)[0][k]) < 0) for m, xx in zip((st.mw, st.mb), st.split(x))
            for k in ("theta", "psi")):
        warns.append("some estimated variances are negative (Heywood case).")
    for w in warns:
        _warnings.warn(w, stacklevel=3)
    sw, sb = _srmr_level(HW, SW), _srmr_level(HB, SB)
    fm.update({"srmr": sw + sb, "srmr_within": sw, "srmr_between": sb})
    # parameter table
    est = _estimates(st, pt_w, pt_b, x, se_x)
    names = [f"{r.lhs}{r.op}{r.rhs}@{lev}" for lev, m in ((1, st.mw), (2, st.mb))
             for r in m.pt.frame.iloc[m.x_rows].itertuples()]
    mk = lambda M: pd.DataFrame(M, index=ov, columns=ov)  # noqa: E731
    return TwoLevelResult(
        estimates=est, fit_measures=fm,
        implied={"within": {"cov": mk(SW), "mean": [0.0] * p},
                 "between": {"cov": mk(SB), "mean": list(mu)}},
        h1={"within": {"cov": mk(HW), "mean": [0.0] * p},
            "between": {"cov": mk(HB), "mean": list(hmu)}},
        vcov=pd.DataFrame(V, index=names, columns=names), N=cs.N, J=cs.J,
        converged=bool(conv and conv1), iterations=iters, cluster=cluster,
        cluster_sizes=tuple(int(v) for v in cs.cluster_sizes), warnings=tuple(warns),
        meta=Meta(options={"estimator": "ML", "information": "observed", "cluster": cluster,
                           "h1": h1, "std_lv": std_lv, "model": model,
                           "method": "exact two-level ML"},
                  data_hash=d.data_hash))


def _maximum(struct, cs: ClusterStats, warns: list, what: str) -> tuple[np.ndarray, float, bool]:
    """Maximise the two-level likelihood of an auxiliary structure (h1, baseline) with the
    engine's optimiser; non-convergence is reported in ``warns`` under ``what``."""
    x, converged, _ = optimize_reporting(TwoLevelObjective(struct, cs), struct.start(cs), warns,
                                         what=f"{what} model")
    return x, twolevel_loglik(cs, *struct.moments(x)), converged


def twolevel_information(model: str, data: pd.DataFrame, *, cluster: str,
                         estimates: pd.DataFrame, std_lv: bool = False) -> pd.DataFrame:
    """Observed information (Hessian of -logl) of a two-level CFA at given parameter values.

    Parameters
    ----------
    model, data, cluster, std_lv
        As `fit_twolevel`.
    estimates : DataFrame
        Columns ``lhs op rhs level est`` (e.g. lavaan's ``parameterEstimates``) holding a
        value for every free parameter.

    Returns
    -------
    DataFrame (npar x npar), rows/columns named ``lhs op rhs @level``; its inverse is the
    covariance matrix of the estimates (lavaan's ``vcov`` when evaluated at lavaan's values).

    Notes
    -----
    Central differences (step 1e-6 max(1, |x|)) of the analytic gradient of `twolevel_loglik`.
    """
    wtext, btext = split_levels(model)
    pt_w = _level_partable(wtext, 1, list(data.columns), std_lv)
    pt_b = _level_partable(btext, 2, list(data.columns), std_lv)
    ov = list(pt_w.ov_names)
    st = _CFAStructure(pt_w, pt_b, ov)
    cs = cluster_stats(data, ov, cluster)
    e = estimates.assign(rhs=estimates["rhs"].fillna("").astype(str))
    key = {(r.lhs, r.op, r.rhs, int(r.level)): float(r.est) for r in e.itertuples()}
    x, names = [], []
    for lev, m in ((1, st.mw), (2, st.mb)):
        for r in m.pt.frame.iloc[m.x_rows].itertuples():
            k = (r.lhs, r.op, r.rhs, lev)
            if k not in key:
                raise ValueError(f"estimates= has no row for {r.lhs} {r.op} {r.rhs} at level {lev}")
            x.append(key[k])
            names.append(f"{r.lhs}{r.op}{r.rhs}@{lev}")
    H = TwoLevelObjective(st, cs).observed_information(np.array(x))
    return pd.DataFrame(H, index=names, columns=names)


def _estimates(st: _CFAStructure, pt_w, pt_b, x, se_x) -> pd.DataFrame:
    z975 = Z975
    xw, xb = st.split(x)
    sew, seb = st.split(se_x)
    recs = []
    for lev, m, xx, ss in ((1, st.mw, xw, sew), (2, st.mb, xb, seb)):
        vals = m.x_to_partable(xx)
        ses = np.zeros(m.nrows)
        ses[m.free_rows] = ss[m.x_col]
        imp = m.implied(xx)[0]
        with np.errstate(invalid="ignore"):
            sd_ov = np.sqrt(np.diag(imp.sigma))
            sd_lv = np.sqrt(np.diag(m.lv_cov(xx)[0]))
        ovi = {v: i for i, v in enumerate(m.ov_names)}
        lvi = {v: i for i, v in enumerate(m.lv_names)}
        for r, row in enumerate(m.pt.frame.itertuples()):
            est, se = float(vals[r]), float(ses[r])
            free = row.free > 0
            z = est / se if free and se > 0 else math.nan
            pv = 2 * norm_sf(abs(z)) if free and se > 0 else math.nan

            def sd(v):
                return sd_ov[ovi[v]] if v in ovi else sd_lv[lvi[v]]
            if row.op == "=~":
                std = est * sd(row.lhs) / sd(row.rhs)
            elif row.op == "~~" and row.lhs != row.rhs and row.lhs in ovi:
                # lavaan: residual covariances are scaled by the residual variances
                th = np.diag(m.matrices(xx)[0]["theta"])
                std = est / math.sqrt(th[ovi[row.lhs]] * th[ovi[row.rhs]])
            elif row.op == "~~":
                std = est / (sd(row.lhs) * sd(row.rhs))
            elif row.op == "~1":
                s = sd(row.lhs)
                std = est / s if s > 0 else math.nan
            else:
                std = math.nan
            recs.append({"lhs": row.lhs, "op": row.op, "rhs": row.rhs, "level": lev,
                         "block": lev, "label": row.label, "est": est, "se": se, "z": z,
                         "pvalue": pv, "ci.lower": est - z975 * se, "ci.upper": est + z975 * se,
                         "std.all": std})
    return pd.DataFrame(recs)


# ---------------------------------------------------------------------------------- reliability
@dataclass(frozen=True)
class TwoLevelReliability:
    """Level-specific and school-mean reliability of the factors of a two-level CFA.

    Attributes
    ----------
    table : DataFrame
        One row per factor and level: ``level`` (1 within, 2 between), ``factor``, ``items``,
        ``omega`` (level-specific omega: Geldhof et al., 2014), and for level-2 factors
        ``omega_B_shared`` and ``IRR`` (Lai, 2021, a shared school construct measured by the
        school mean of the items), ``icc`` (model-implied ICC of the unit-weighted composite),
        ``n_harmonic`` and ``school_mean_reliability`` (ICC(2) of that composite at
        ``n_harmonic``); NaN where not defined (level 1).
    meta : Meta
    """

    table: pd.DataFrame
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return to_jsonable({"table": self.table, "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TwoLevelReliability":
        t = from_jsonable(d["table"])
        return cls(t, Meta.from_dict(d.get("meta", {})))

    def between(self, factor: str | None = None) -> pd.Series:
        """The row of a level-2 factor (the first one when ``factor`` is None)."""
        b = self.table[self.table["level"] == 2]
        if factor is not None:
            b = b[b["factor"] == factor]
        if not len(b):
            raise KeyError(f"no level-2 factor {factor!r}; factors: {list(self.table['factor'])}")
        return b.iloc[0]

    def summary(self) -> Table:
        src = "unrestricted (h1)" if self.meta.options.get("obs_var", True) else "model-implied"
        return Table("Level-specific and school-level reliability from the two-level CFA",
                     self.table,
                     notes=(f"omega: (sum lambda)^2 psi / 1'Sigma_level 1 with the {src} "
                            "level covariance (Geldhof, Preacher & Zyphur, 2014); "
                            "omega_B_shared and IRR: reliability of the observed school mean of "
                            "the items for a shared construct (Lai, 2021), with Sigma_W / "
                            "n_harmonic in the denominator.",))


def twolevel_reliability(fit: TwoLevelResult, *, cluster_sizes: Sequence[int] | None = None,
                         obs_var: bool = True) -> TwoLevelReliability:
    """Level-specific omega and between-level (school) reliability of a two-level CFA.

    Parameters
    ----------
    fit : TwoLevelResult
    cluster_sizes : sequence of int, optional
        Sizes of the clusters whose means are scored (their harmonic mean ñ enters Lai's
        coefficients and the school-mean reliability); default: the fitted data's clusters.
    obs_var : bool
        Denominators from the unrestricted (h1) Sigma_W / Sigma_B (True, semTools'
        ``compRelSEM(obs.var = TRUE)`` default) or from the model-implied ones (False; then,
        with uncorrelated residuals, ``omega`` is Geldhof et al.'s formula exactly).

    Returns
    -------
    TwoLevelReliability

    Notes
    -----
    For factor f at level l with loadings lambda on its k items, variance psi, and the level's
    covariance Sigma_l of those items (h1 or model-implied, see ``obs_var``):

    * omega_l = (1'lambda)^2 psi / 1'Sigma_l 1 (Geldhof, Preacher & Zyphur, 2014, eq. 9-10;
      with model-implied Sigma_l and diagonal Theta this is (1'lambda)^2 psi /
      ((1'lambda)^2 psi + 1'Theta 1)): the reliability of the *latent* level-l composite;
      for level 2 the school-level reliability of the construct.
    * For a level-2 (shared) factor, the reliability of the *observed* school mean of the
      items (Lai, 2021): omega_B = (1'lambda_B)^2 psi_B / (1'Sigma_B 1 + 1'Sigma_W 1 / ñ) and
      IRR = 1'Sigma_B 1 / (1'Sigma_B 1 + 1'Sigma_W 1 / ñ), ñ the harmonic mean cluster size
      (semTools ``compRelSEM(shared=)``).
    * icc = 1'Sigma_B 1 / (1'Sigma_B 1 + 1'Sigma_W 1) of the unit-weighted composite (model-
      implied) and its school-mean reliability ñ icc / (1 + (ñ - 1) icc) (ICC(2),
      Spearman-Brown); with ``obs_var=False``, IRR equals it.

    Tested against semTools 0.5-6 ``compRelSEM`` (level-specific omega, omega_B, IRR, with
    obs.var TRUE and FALSE).

    References
    ----------
    Geldhof, G. J., Preacher, K. J., & Zyphur, M. J. (2014). Reliability estimation in a
    multilevel confirmatory factor analysis framework. Psychological Methods, 19(1), 72-91.
    https://doi.org/10.1037/a0032138
    Lai, M. H. C. (2021). Composite reliability of multilevel data: It's about observed scores
    and construct meanings. Psychological Methods, 26(1), 90-102.
    https://doi.org/10.1037/met0000287
    """
    if not isinstance(fit, TwoLevelResult):
        raise TypeError(f"fit= must be a TwoLevelResult; got {type(fit).__name__}")
    if not isinstance(obs_var, bool):
        raise TypeError(f"obs_var= must be True or False; got {obs_var!r}")
    cz = np.asarray(fit.cluster_sizes if cluster_sizes is None else cluster_sizes, float)
    if cz.ndim != 1 or len(cz) == 0 or np.any(cz < 1):
        raise ValueError("cluster_sizes= must be a non-empty sequence of sizes >= 1")
    nh = float(len(cz) / np.sum(1.0 / cz))
    src = fit.h1 if obs_var else fit.implied
    S = {1: src["within"]["cov"], 2: src["between"]["cov"]}
    IW, IB = fit.implied["within"]["cov"], fit.implied["between"]["cov"]
    e = fit.estimates
    rows = []
    for lev in (1, 2):
        b = e[e["level"] == lev]
        for f in dict.fromkeys(b.loc[b["op"] == "=~", "lhs"]):
            lam = b[(b["op"] == "=~") & (b["lhs"] == f)]
            items = list(lam["rhs"])
            psi = float(b[(b["op"] == "~~") & (b["lhs"] == f) & (b["rhs"] == f)]["est"].iloc[0])
            true = float(lam["est"].sum()) ** 2 * psi
            tot = float(S[lev].loc[items, items].to_numpy().sum())
            row = {"level": lev, "factor": f, "items": " + ".join(items), "omega": true / tot,
                   "omega_B_shared": math.nan, "IRR": math.nan, "icc": math.nan,
                   "n_harmonic": math.nan, "school_mean_reliability": math.nan}
            if lev == 2:
                sb = tot
                sw = float(S[1].loc[items, items].to_numpy().sum())
                ib = float(IB.loc[items, items].to_numpy().sum())
                iw = float(IW.loc[items, items].to_numpy().sum())
                icc = ib / (ib + iw)
                row.update({"omega_B_shared": true / (sb + sw / nh), "IRR": sb / (sb + sw / nh),
                            "icc": icc, "n_harmonic": nh,
                            "school_mean_reliability": nh * icc / (1 + (nh - 1) * icc)})
            rows.append(row)
    return TwoLevelReliability(pd.DataFrame(rows),
                               Meta(options={"obs_var": obs_var, "n_harmonic": nh,
                                             "cluster_sizes": "fit" if cluster_sizes is None
                                             else "given"}))
