"""`cfa()` with robust ML (MLR), full-information ML for missing data (FIML) and cluster-robust
inference, matching lavaan 0.6-14.

`instrument.sem.cfa.cfa` hands over to `cfa_robust` when ``estimator="MLR"``, ``missing="fiml"`` or
``cluster=`` is given. The pieces:

* **MLR, complete data**: ML estimates (`instrument.sem.ml_fit.fit_partable`), Huber-White standard
  errors with the observed information (`instrument.sem.estimators.mlr.mlr_vcov`), the Yuan-Bentler
  (Mplus) scaled test of the model and of the baseline
  (`instrument.sem.test.yuan_bentler`), and the scaled/robust fit indices
  (`instrument.sem.fit.measures.fit_indices`).
* **FIML** (lavaan ``missing = "ml"``): the FIML objective
  (`instrument.sem.estimators.fiml.FIMLObjective`) minimised by the engine's Fisher-scoring
  optimiser (`instrument.sem.optim.optimize`), observed-information standard errors, the
  saturated model by EM for ``chisq``, ``unrestricted.logl`` and SRMR, the FIML baseline, lavaan's
  FIML-corrected robust CFI/TLI/RMSEA (Zhang & Savalei) and a missing-data summary.
* **cluster=** (single-level model): cluster-robust first-order information (scores summed
  within clusters) in the sandwich and in the Yuan-Bentler traces (lavaan
  ``se = "robust.cluster"``).
"""
from __future__ import annotations

import dataclasses
import warnings as _warnings
from typing import Sequence

import numpy as np
import pandas as pd

from instrument.sem.result import CFAResult
from instrument.sem.estimators.fiml import (FIMLObjective, fiml_baseline, fiml_loglik,
                                            fiml_mlr_vcov, missing_summary, srmr_bentler)
from instrument.sem.estimators.fiml_fast import (FIMLObjectiveCached, baseline_yuan_bentler_fast,
                                           curvature_term, em_saturated_fast, fast_delta_fn,
                                           h1_information_observed_fast,
                                           fiml_corrected_fast, h1_trace_fast,
                                           observed_information_fast)
from instrument.sem.estimators.ml import MLObjective, weighted_delta
from instrument.sem.optim import optimize_reporting
from instrument.sem.estimators.mlr import RobustGroup, ml_moment_gradient, vech_indices
from instrument.sem.model import Model, with_defined_rows
from instrument.sem.post import (estimates_frame, fitted_partable, row_se, solution_warnings,
                                 standardized)
from instrument.sem.ml_fit import fit_partable
from instrument.sem.data import data_warnings, prepare, require_pd_covariance
from instrument.sem.samplestats import GroupStats, SampleStats, missing_patterns
from instrument.sem.fit.measures import (RobustStat, TestStat, fit_indices, fit_indices_scaled,
                                         information_criteria, scaled_test)
from instrument.sem.partable import build_partable
from instrument.results import Meta
from instrument.sem.syntax import parse_syntax
from instrument.sem.test.yuan_bentler import (baseline_yuan_bentler_complete, yuan_bentler_mplus,
                                              yuan_bentler_mplus_complete)

__all__ = ["cfa_robust",
           "observed_information_delta",
           "mlr_vcov_delta"]


# --------------------------------------------------------------------------------------------
# data step
# --------------------------------------------------------------------------------------------
def _estimates_with_vcov(res: CFAResult, model: Model, vcov_x: np.ndarray) -> dict:
    """The estimates table, partable se and vcov frame of ``res`` with a new vcov of x."""
    se_rows = row_se(model, vcov_x, len(res.partable))
    e = res.estimates.iloc[:len(res.partable)]
    vals = e["est"].to_numpy(float)
    est = estimates_frame(res.partable, vals, se_rows, e["std.lv"].to_numpy(float),
                          e["std.all"].to_numpy(float))
    est = with_defined_rows(est, model, model.partable_to_x(vals), vcov_x)
    ptf = res.partable.copy()
    ptf["se"] = se_rows
    names = list(res.vcov["name"])
    vc = pd.DataFrame(vcov_x, columns=names)
    vc.insert(0, "name", names)
    return dict(estimates=est, partable=ptf, vcov=vc)


def _scaling_factors(yb, model) -> dict:
    """``scaling.factor.h1`` and ``scaling.factor.h0`` of a Yuan-Bentler (Mplus) test; lavaan
    divides the h0 trace by the number of free table rows (equality-constrained ones counted
    separately)."""
    return {"scaling.factor.h1": yb.scaling_factor_h1,
            "scaling.factor.h0": yb.scaling_factor_h0 * model.nx / len(model.free_rows)}


def _check_information(E: np.ndarray, warn: list) -> None:
    ev = np.linalg.eigvalsh(E)
    if ev[0] <= 1e-10 * max(abs(ev[-1]), 1e-300):
        warn.append("the information matrix is singular (smallest eigenvalue "
                    f"{ev[0]:.3g}): the model may not be identified; standard errors "
                    "are not reliable")


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------
def cfa_robust(model: str, data: pd.DataFrame, *, estimator: str = "MLR",
               group: str | None = None, group_equal: Sequence[str] = (),
               group_partial: Sequence[str] = (), std_lv: bool = False,
               meanstructure: bool | None = None, missing: str = "listwise",
               cluster: str | None = None, group_order: Sequence | None = None) -> CFAResult:
    """CFA by robust ML (MLR), FIML for missing data, or with cluster-robust inference.

    The entry of `instrument.sem.cfa.ESTIMATORS` for MLR, FIML and ``cluster=``: call it through
    `instrument.sem.cfa.cfa`, which validates the options (likelihood "normal", se "standard",
    ``cluster=`` only with MLR, no ordered indicators).

    Parameters
    ----------
    estimator : {"ML", "MLR"}
        "MLR": ML estimates with Huber-White (sandwich) standard errors and the Yuan-Bentler
        (Mplus) scaled test (lavaan ``estimator = "MLR"``).
    missing : {"listwise", "fiml"}
        "fiml" is lavaan's ``missing = "ml"``: all rows with at least one observed model
        variable are used; a mean structure is always modelled.
    cluster : str, optional
        Column of cluster labels (single-level model): cluster-robust standard errors and test
        (lavaan ``cluster = ``, ``se = "robust.cluster"``); needs ``estimator = "MLR"``.
    MLR and FIML always use the observed information (lavaan's default for both,
    ``h1.information = "structured"``).
    Other parameters as `instrument.sem.cfa.cfa`.

    Returns
    -------
    CFAResult
        ``chisq`` stays the unscaled (ML or FIML) statistic; MLR adds lavaan's ``*.scaled`` and
        ``*.robust`` fit measures; FIML fits carry ``missing_data`` (patterns, coverage).

    Notes
    -----
    MLR: ``vcov = E^-1 B0 E^-1 / N`` with E the observed information (Hessian of -logl/N) and
    ``B0 = sum_g (n_g/N) Delta_g' B1_g Delta_g`` the first-order information of the casewise
    scores at the implied moments; ``chisq.scaled = chisq / c`` with
    ``c = [sum_g tr(B1_g A1_g^-1) - sum_g (n_g/N) tr(B0_g E^-1)] / df`` (h1 parts unstructured).
    With clusters the scores are summed within clusters and multiplied by sqrt(C/(C-1)).
    FIML: ``-logl(x)/N`` minimised by Fisher scoring with the complete-data expected
    information as the metric (the step is shorter than Newton's, so it is safe; the objective
    and its gradient are the exact FIML ones, so the optimum is the FIML estimate);
    ``chisq = 2 (logl_h1 - logl)`` with the EM saturated model; SEs from the observed
    information, the 4-point numeric Hessian of the analytic gradient as lavaan's
    ``lav_model_hessian``.

    References
    ----------
    Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and covariance
    structure analysis with nonnormal missing data. Sociological Methodology, 30(1), 165-200.
    https://doi.org/10.1111/0081-1750.00078
    Arbuckle, J. L. (1996). Full information estimation in the presence of incomplete data. In
    G. A. Marcoulides & R. E. Schumacker (Eds.), Advanced structural equation modeling
    (pp. 243-277). Erlbaum.
    Zhang, X., & Savalei, V. (2023). New computations for RMSEA and CFI following FIML and TS
    estimation with missing data. Psychological Methods, 28(2), 263-283.
    https://doi.org/10.1037/met0000445
    """
    rows = parse_syntax(model)
    if any(r.op == "|" for r in rows):
        raise NotImplementedError("thresholds (x | t1) need ordered indicators, which the ML "
                                  "engine does not estimate")
    d = prepare(rows, data, group=group, group_order=group_order, cluster=cluster,
                missing=missing, keeps="missing='fiml'")
    ov, blocks, clusters, group_labels, warn = (d.ov, d.blocks, d.clusters, d.group_labels,
                                                list(d.warnings))
    G = len(blocks)
    fiml = missing == "fiml"
    if fiml:
        meanstructure = True
    elif meanstructure is None:
        # lavaan: a mean structure with groups, and with cluster= (lav_options_set)
        meanstructure = G > 1 or cluster is not None
    pt = build_partable(rows, ngroups=G, group_labels=group_labels,
                        ov_names=list(data.columns), meanstructure=bool(meanstructure),
                        std_lv=std_lv, group_equal=tuple(group_equal),
                        group_partial=tuple(group_partial))
    se_name = ("robust.cluster" if cluster is not None else
               "robust.huber.white" if estimator == "MLR" else "standard")
    options = dict(estimator=estimator, group=group, group_equal=list(group_equal),
                   group_partial=list(group_partial), std_lv=bool(std_lv),
                   meanstructure=bool(pt.meanstructure), likelihood="normal",
                   information="observed", h1_information="structured", se=se_name,
                   test="yuan.bentler.mplus" if estimator == "MLR" else "standard",
                   missing=missing, cluster=cluster, group_labels=group_labels)
    if missing == "listwise":
        options["nobs_dropped_listwise"] = d.nobs_dropped
    meta = Meta(options=options, data_hash=d.data_hash)
    if fiml:
        return _fit_fiml(pt, ov, blocks, clusters, estimator=estimator, meta=meta, warn=warn)
    return _fit_mlr_complete(pt, ov, blocks, clusters, meta=meta, warn=warn)


# --------------------------------------------------------------------------------------------
# complete-data MLR pieces in parameter space (no (p*, p*) h1 matrices)
# --------------------------------------------------------------------------------------------
def _unvech_cols(D: np.ndarray, p: int) -> np.ndarray:
    """Columns of D (vech of symmetric matrices, lavaan order) -> (k, p, p)."""
    r, c = vech_indices(p)
    out = np.zeros((D.shape[1], p, p))
    out[:, r, c] = D.T
    out[:, c, r] = D.T
    return out


def observed_information_delta(groups: Sequence[RobustGroup]) -> np.ndarray:
    """``sum_g (n_g/N) Delta_g' A1obs_g Delta_g`` without forming ``A1obs`` (equals
    `instrument.sem.estimators.mlr.observed_information` without ``delta_fn``).

    Notes
    -----
    For directions (a, A) and (b, B) of (mu, Sigma), with ``P = Sigma^-1``, ``d = ybar - mu``,
    ``Q = P (S + d d') P``: ``a'Pb + a'PBPd + b'PAPd - tr(PAPB)/2 + tr(PAQB)``.
    """
    N = sum(g.n for g in groups)
    H = 0.0
    for g in groups:
        ybar, S = g.moments()
        p = S.shape[0]
        P = np.linalg.inv(g.sigma)
        P = 0.5 * (P + P.T)
        off = p if g.meanstructure else 0
        d = ybar - g.mu if g.meanstructure else np.zeros(p)
        Q = P @ (S + np.outer(d, d)) @ P
        D = np.asarray(g.delta)
        dS = _unvech_cols(D[off:], p)
        PA = (P @ dS).reshape(D.shape[1], -1)
        QA = (Q @ dS).reshape(D.shape[1], -1)
        PAT = np.swapaxes(P @ dS, 1, 2).reshape(D.shape[1], -1)
        Hg = -0.5 * (PA @ PAT.T) + QA @ PAT.T
        if off:
            dmu = D[:off]
            Pm = P @ dmu
            cross = Pm.T @ (dS @ (P @ d)).T
            Hg = Hg + dmu.T @ Pm + cross + cross.T
        H = H + (g.n / N) * Hg
    return 0.5 * (H + H.T)


def _projected_scores(X: np.ndarray, sigma: np.ndarray, mu: np.ndarray, delta: np.ndarray,
                      meanstructure: bool, chunk: int = 256) -> np.ndarray:
    """Casewise scores times Delta, ``mvnorm_scores(X, sigma, mu) @ delta`` (n x nx), built in
    row chunks so that the (n x p*) score matrix is never held at once."""
    from instrument.sem.estimators.mlr import vech_weights
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    r, c = vech_indices(p)
    w = vech_weights(p)
    P = np.linalg.inv(sigma)
    P = 0.5 * (P + P.T)
    Pv = P[r, c]
    off = p if meanstructure else 0
    Dm, Dc = delta[:off], delta[off:]
    Z = (X - mu) @ P
    out = np.empty((n, delta.shape[1]))
    for i in range(0, n, chunk):
        Zc = Z[i:i + chunk]
        sc = Zc[:, r] * Zc[:, c]
        sc -= Pv
        sc *= w
        o = sc @ Dc
        if off:
            o += Zc @ Dm
        out[i:i + chunk] = o
    return out


def mlr_vcov_delta(groups: Sequence[RobustGroup], E: np.ndarray):
    """Huber-White vcov with ``B0_g = (S_g Delta_g)'(S_g Delta_g)/n_g`` from the casewise scores
    projected on the parameters first (cluster sums of the projected scores with clusters);
    equals `instrument.sem.estimators.mlr.mlr_vcov` given ``information=E``."""
    from instrument.sem.estimators.mlr import MLRVcov, _cluster_sum, huber_white_vcov
    N = sum(g.n for g in groups)
    E_inv = np.linalg.inv(E)
    E_inv = 0.5 * (E_inv + E_inv.T)
    B0, per = 0.0, []
    for g in groups:
        ybar, _ = g.moments()
        mu = g.mu if g.meanstructure else ybar
        SD = _projected_scores(g.data, g.sigma, mu, np.asarray(g.delta), g.meanstructure)
        if g.cluster is not None:
            SD = _cluster_sum(SD, g.cluster)
        b = SD.T @ SD / g.n
        per.append(b)
        B0 = B0 + (g.n / N) * b
    V = huber_white_vcov(E_inv, B0, N)
    return MLRVcov(vcov=V, se=np.sqrt(np.clip(np.diag(V), 0, None)), information=E,
                   information_inv=E_inv, B0=B0, B0_group=tuple(per), ntotal=N)



# --------------------------------------------------------------------------------------------
# MLR, complete data
# --------------------------------------------------------------------------------------------
def _fit_mlr_complete(pt, ov, blocks, clusters, *, meta: Meta, warn: list) -> CFAResult:
    stats = SampleStats([GroupStats.from_data(b, ov) for b in blocks])
    require_pd_covariance(stats, pt.group_labels)
    base = fit_partable(pt, stats, likelihood="normal", information="observed", se="none",
                        meta=meta, extra_warnings=warn)
    model = Model.from_partable(pt, stats)
    x = model.partable_to_x(base.partable["est"].to_numpy(float))
    warn2 = list(base.warnings)
    ms = pt.meanstructure
    imps = model.implied(x)
    groups = [RobustGroup(b, imp.sigma, imp.mu if ms else None, D, cluster=cl)
              for b, imp, D, cl in zip(blocks, imps, model.delta(x), clusters)]
    # observed information: Delta' A1 Delta plus the exact curvature term
    N = stats.ntotal
    grads = []
    for g in groups:
        ybar, S = g.moments()
        grads.append(ml_moment_gradient(g.sigma, g.mu, S, ybar, meanstructure=g.meanstructure))
    E = observed_information_delta(groups) + curvature_term(model, x, grads,
                                                            [g.n / N for g in groups])
    E = 0.5 * (E + E.T)
    _check_information(E, warn2)
    v = mlr_vcov_delta(groups, E)
    fm = dict(base.fit_measures)
    chisq, df = float(fm["chisq"]), int(fm["df"])
    obj = MLObjective(model, stats)
    cg = [float(n * F) for n, F in zip(obj.n, obj.group_values(x))]
    yb = yuan_bentler_mplus_complete(groups, chisq, df, mlr=v, chisq_group=cg)
    bl = baseline_yuan_bentler_complete(blocks, meanstructure=ms, clusters=clusters)
    fm.update(fit_indices_scaled(chisq, df, bl.chisq, bl.df, scaling_factor=yb.scaling_factor,
                                 baseline_scaling_factor=bl.scaling_factor, n=N,
                                 ngroups=stats.ngroups, trace_ugamma=yb.trace_UGamma))
    fm.update(_scaling_factors(yb, model))
    new = [w for w in warn2 if w not in base.warnings]
    for w in new:
        _warnings.warn(w, stacklevel=4)
    return dataclasses.replace(base, fit_measures=fm, warnings=tuple(warn2),
                               **_estimates_with_vcov(base, model, v.vcov))


# --------------------------------------------------------------------------------------------
# FIML
# --------------------------------------------------------------------------------------------
class _FIMLScoring:
    """FIML objective on the scale the engine's `optimize` expects (F = -2 logl / N + const),
    with the complete-data expected information at the current x as the scoring metric."""

    def __init__(self, obj: FIMLObjective, model: Model, stats: SampleStats):
        self.obj, self.model, self.stats = obj, model, stats
        n = np.array([g.n for g in stats.groups], float)
        self.w = n / n.sum()

    def value(self, x):
        return 2.0 * self.obj.value(x)

    def gradient(self, x):
        return 2.0 * self.obj.gradient(x)

    def expected_information(self, x):
        # sum_g (n_g/N) Delta_g' W_g Delta_g (= instrument.sem.estimators.ml.expected_information)
        info = 0.0
        for wg, D, imp in zip(self.w, self.obj.delta_fn(x), self.model.implied(x)):
            info = info + wg * (D.T @ weighted_delta(self.model, imp.sigma, D))
        return 0.5 * (info + info.T)


def _fit_fiml(pt, ov, blocks, clusters, *, estimator: str, meta: Meta, warn: list) -> CFAResult:
    pats = [missing_patterns(b) for b in blocks]
    h1s = [em_saturated_fast(p) for p in pats]
    for h, lab in zip(h1s, pt.group_labels):
        if not h.converged:
            warn.append(f"the EM algorithm for the saturated (h1) model did not converge"
                        f"{' in group ' + lab if len(h1s) > 1 else ''}")
    stats = SampleStats([GroupStats(p.n, h.cov, h.mean, None, tuple(ov), lab, patterns=p, h1=h)
                         for p, h, lab in zip(pats, h1s, pt.group_labels)], missing="fiml")
    warn = list(warn) + data_warnings(stats, pt.group_labels)
    model = Model.from_partable(pt, stats)
    delta_fn = fast_delta_fn(model)
    obj = FIMLObjectiveCached(FIMLObjective(model.implied, delta_fn,
                                            [g.patterns for g in stats.groups]))
    x0 = model.start_x(stats)
    x, converged, iters = optimize_reporting(_FIMLScoring(obj, model, stats), x0, warn,
                                             max_iter=1000)
    N, G, p = obj.ntotal, len(pats), model.p
    vcov_x = None
    vmlr = None
    try:
        E = observed_information_fast(obj, x, model=model)
        _check_information(E, warn)
        if estimator == "MLR":
            vmlr = fiml_mlr_vcov(obj, x, information=E, clusters=clusters)
            vcov_x = vmlr.vcov
        else:
            vcov_x = obj.vcov(x, information=E)
    except np.linalg.LinAlgError:
        warn.append("could not compute standard errors: the information matrix could not be "
                    "inverted")
    imps = model.implied(x)
    deltas = delta_fn(x)
    # ---- fit measures
    logl_g = [fiml_loglik(pt_, imp.sigma, imp.mu) for pt_, imp in zip(pats, imps)]
    logl, logl_h1 = float(sum(logl_g)), float(sum(h.logl for h in h1s))
    cg = [2.0 * (h.logl - lg) for h, lg in zip(h1s, logl_g)]
    chisq = float(sum(cg))
    nx = model.nx
    df = G * model.nstat() - nx
    bls = [fiml_baseline(pt_) for pt_ in pats]
    bl = float(sum(2.0 * (h.logl - b["logl"]) for h, b in zip(h1s, bls)))
    df_b = G * (p * (p - 1) // 2)
    ns = [pt_.n for pt_ in pats]
    sr = [srmr_bentler(h.cov, h.mean, imp.sigma, imp.mu) for h, imp in zip(h1s, imps)]
    srn = [srmr_bentler(h.cov, None, imp.sigma, None) for h, imp in zip(h1s, imps)]
    srmr = float(np.dot(ns, sr) / N)
    std, base = TestStat(chisq, df), TestStat(bl, df_b)
    sc = bsc = rob = None
    scaling = {}
    # unit observed h1 information at the EM estimates (corrected robust indices, MLR traces)
    A1_em = [h1_information_observed_fast(pt_, h.cov, h.mean) for pt_, h in zip(pats, h1s)]
    if estimator == "MLR" and vmlr is not None:
        traces = [h1_trace_fast(pt_, h, cluster=cl, A1=a)
                  for pt_, h, cl, a in zip(pats, h1s, clusters, A1_em)]
        yb = yuan_bentler_mplus(chisq, df, h1_traces=[t for t, _ in traces],
                                h1_ndat=[d for _, d in traces],
                                information_inv=vmlr.information_inv, B0_group=vmlr.B0_group,
                                nobs=ns, chisq_group=cg)
        byb = baseline_yuan_bentler_fast(pats, h1s, clusters=clusters, h1_traces=traces)
        sc = scaled_test(std, yb.scaling_factor, trace_ugamma=yb.trace_UGamma)
        bsc = scaled_test(base, byb.scaling_factor)
        rob = RobustStat.from_tests(std, sc, base, bsc)
        scaling = _scaling_factors(yb, model)
    # lavaan's FIML-corrected robust CFI/TLI/RMSEA (V6 with the standard test, V3 when scaled)
    if df > 0:
        fc = fiml_corrected_fast(pats, h1s, [(imp.sigma, imp.mu) for imp in imps], deltas, df,
                                 version="V3" if estimator == "MLR" else "V6", clusters=clusters,
                                 h1_information=A1_em)
        if fc.get("singular"):
            warn.append("the robust CFI, TLI and RMSEA (FIML-corrected) could not be computed: "
                        "the information matrix of the saturated (h1) model is singular; they "
                        "are NA, as in lavaan")
        rob = RobustStat(xx3=fc["XX3"], df3=fc["df3"], c_hat3=fc["c.hat3"], c_hat=fc["c.hat3"],
                         xx3_scaled=fc["XX3.scaled"], xx3_null=fc["XX3.null"],
                         c_hat_null=fc["c.hat3.null"])
    fm = {"npar": nx, "fmin": chisq / (2.0 * N)}
    fm.update(fit_indices(std, base, n=N, ngroups=G, scaled=sc, baseline_scaled=bsc, robust=rob,
                          likelihood=information_criteria(logl, logl_h1, nx, N)))
    fm.update({"srmr": srmr, "srmr_bentler": srmr,
               "srmr_bentler_nomean": float(np.dot(ns, srn) / N)})
    fm.update(scaling)
    # ---- assemble
    f = pt.frame
    vals = model.x_to_partable(x)
    se_rows = row_se(model, vcov_x, len(f))
    slv, sall = standardized(model, x)
    warn.extend(solution_warnings(model, x, pt.group_labels))
    est = estimates_frame(f, vals, se_rows, slv, sall)
    ptf = fitted_partable(f, vals, se_rows, model.x_to_partable(x0))
    vc0 = pd.DataFrame({"name": model.x_names()})
    implied = [dict(cov=imp.sigma, mean=imp.mu) for imp in imps]
    sample = [dict(n=gs.n, cov=gs.cov, mean=gs.mean) for gs in stats.groups]
    md = []
    for b, pat in zip(blocks, pats):
        s = missing_summary(b, list(ov))
        cov = s.coverage.reset_index(names="variable")
        md.append({"patterns": s.patterns, "items": s.items, "coverage": cov,
                   "npatterns": int(pat.npatterns), "n_empty": int(pat.n_empty)})
    base = CFAResult(partable=ptf, fit_measures=fm, estimates=est, converged=bool(converged),
                     iterations=int(iters), warnings=tuple(warn), meta=meta, implied=implied,
                     sample=sample, vcov=vc0, ov_names=tuple(pt.ov_names),
                     lv_names=tuple(pt.lv_names), group_labels=tuple(pt.group_labels),
                     constraints=tuple(pt.constraints), defined=tuple(pt.defined),
                     srmr_group=tuple(sr),
                     missing_data=tuple(md))
    for w in warn:
        _warnings.warn(w, stacklevel=4)
    if vcov_x is None:
        vcov_x = np.full((nx, nx), np.nan)
    return dataclasses.replace(base, **_estimates_with_vcov(base, model, vcov_x))
