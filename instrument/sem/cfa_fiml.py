"""`cfa()` with full-information ML for missing data (lavaan ``missing = "ml"``), matching
lavaan 0.6-14.

`instrument.sem.cfa.cfa` hands over to `cfa_fiml` when ``missing="fiml"``:

* the FIML objective (`instrument.sem.estimators.fiml.FIMLObjective`) minimised by the engine's
  Fisher-scoring optimiser (`instrument.sem.optim.optimize`);
* the observed information over the missing-data patterns and, by ``se=``, standard
  (``E^-1 / N``) or Huber-White (``"robust.huber.white"``; ``"robust.cluster"`` with
  ``cluster=``) standard errors (`instrument.sem.estimators.fiml.fiml_mlr_vcov`);
* the saturated model by EM for ``chisq``, ``unrestricted.logl`` and SRMR, the FIML baseline and,
  by ``test=``, the Yuan-Bentler (Mplus) scaled test over the patterns;
* lavaan's FIML-corrected robust CFI/TLI/RMSEA (Zhang & Savalei) and a missing-data summary.

Complete-data ML, MLR and cluster-robust fits run through `instrument.sem.ml_fit.fit_partable`
with the registries `instrument.sem.vcov.VCOV` and `instrument.sem.test.TESTS`; FIML needs its own
pieces because every quantity is a sum over missing-data patterns.
"""
from __future__ import annotations

import warnings as _warnings
from typing import Sequence

import numpy as np
import pandas as pd

from instrument.sem.result import CFAResult
from instrument.sem.estimators.fiml import (FIMLObjective, fiml_baseline, fiml_loglik,
                                            fiml_mlr_vcov, missing_summary, srmr_bentler)
from instrument.sem.estimators.fiml_fast import (FIMLObjectiveCached, baseline_yuan_bentler_fast,
                                                 em_saturated_fast, fast_delta_fn,
                                                 h1_information_observed_fast,
                                                 fiml_corrected_fast, h1_trace_fast,
                                                 observed_information_fast)
from instrument.sem.estimators.ml import weighted_delta
from instrument.sem.optim import optimize_reporting
from instrument.sem.model import Model, with_defined_rows
from instrument.sem.post import (estimates_frame, fitted_partable, row_se, solution_warnings,
                                 standardized)
from instrument.sem.data import data_warnings, prepare
from instrument.sem.samplestats import GroupStats, SampleStats, missing_patterns
from instrument.sem.fit.measures import (RobustStat, TestStat, fit_indices,
                                         information_criteria, scaled_test)
from instrument.sem.partable import build_partable
from instrument.results import Meta
from instrument.sem.syntax import parse_syntax
from instrument.sem.test.yuan_bentler import scaling_factors, yuan_bentler_mplus
from instrument.sem.vcov import ROBUST_SE, invert_information

__all__ = ["cfa_fiml"]


def cfa_fiml(model: str, data: pd.DataFrame, *, group: str | None = None,
             group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
             std_lv: bool = False, se: str = "standard", test: str = "standard",
             cluster: str | None = None, group_order: Sequence | None = None,
             estimator: str = "ML") -> CFAResult:
    """CFA by full-information ML (lavaan ``missing = "ml"``).

    The entry of `instrument.sem.cfa.ESTIMATORS` for ``missing="fiml"``: call it through
    `instrument.sem.cfa.cfa`, which validates the options (likelihood "normal", information
    "observed", ``se`` and ``test`` filled in from the estimator as lavaan does).

    Parameters
    ----------
    se : {"standard", "robust.huber.white", "robust.cluster", "none"}
        Standard errors from the observed information, or its Huber-White sandwich (with the
        scores summed within ``cluster=`` clusters for "robust.cluster").
    test : {"standard", "yuan.bentler.mplus"}
    estimator : {"ML", "MLR"}
        Recorded in the result's options ("MLR" is ML with the robust se and test).
    Other parameters as `instrument.sem.cfa.cfa`; a mean structure is always modelled and every
    row with at least one observed model variable is used.

    Returns
    -------
    CFAResult
        ``chisq`` is the FIML likelihood-ratio statistic against the EM saturated model; a scaled
        test adds lavaan's ``*.scaled`` and ``*.robust`` measures; ``missing_data`` holds the
        patterns and coverage.

    Notes
    -----
    ``-logl(x)/N`` is minimised by Fisher scoring with the complete-data expected information as
    the metric (the step is shorter than Newton's, so it is safe; the objective and its gradient
    are the exact FIML ones, so the optimum is the FIML estimate); ``chisq = 2 (logl_h1 - logl)``
    with the EM saturated model; SEs from the observed information, the 4-point numeric Hessian
    of the analytic gradient as lavaan's ``lav_model_hessian``; the sandwich and the Yuan-Bentler
    traces as for complete data, with the h1 parts at the EM estimates.

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
                missing="fiml", keeps="missing='fiml'")
    G = len(d.blocks)
    pt = build_partable(rows, ngroups=G, group_labels=d.group_labels,
                        ov_names=list(data.columns), meanstructure=True, std_lv=std_lv,
                        group_equal=tuple(group_equal), group_partial=tuple(group_partial))
    options = dict(estimator=estimator, group=group, group_equal=list(group_equal),
                   group_partial=list(group_partial), std_lv=bool(std_lv), meanstructure=True,
                   likelihood="normal", information="observed", h1_information="structured",
                   se=se, test=test, missing="fiml", cluster=cluster,
                   group_labels=d.group_labels)
    meta = Meta(options=options, data_hash=d.data_hash)
    return _fit_fiml(pt, d.ov, d.blocks, d.clusters, se=se, test=test, meta=meta,
                     warn=list(d.warnings))


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


def _fit_fiml(pt, ov, blocks, clusters, *, se: str, test: str, meta: Meta,
              warn: list) -> CFAResult:
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
        E_inv = invert_information(E, warn)
        if se in ROBUST_SE or test == "yuan.bentler.mplus":
            vmlr = fiml_mlr_vcov(obj, x, information=E, information_inv=E_inv, clusters=clusters)
        if se in ROBUST_SE:
            vcov_x = vmlr.vcov
        elif se == "standard":
            vcov_x = E_inv / obj.ntotal
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
    if test == "yuan.bentler.mplus" and vmlr is not None:
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
        scaling = scaling_factors(yb, model.nx, len(model.free_rows))
    # lavaan's FIML-corrected robust CFI/TLI/RMSEA (V6 with the standard test, V3 when scaled)
    if df > 0:
        fc = fiml_corrected_fast(pats, h1s, [(imp.sigma, imp.mu) for imp in imps], deltas, df,
                                 version="V6" if test == "standard" else "V3", clusters=clusters,
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
    if vcov_x is None:
        vcov_x = np.full((nx, nx), np.nan)
    f = pt.frame
    vals = model.x_to_partable(x)
    se_rows = row_se(model, vcov_x, len(f))
    slv, sall = standardized(model, x)
    warn.extend(solution_warnings(model, x, pt.group_labels))
    est = with_defined_rows(estimates_frame(f, vals, se_rows, slv, sall), model, x, vcov_x)
    ptf = fitted_partable(f, vals, se_rows, model.x_to_partable(x0))
    implied = [dict(cov=imp.sigma, mean=imp.mu) for imp in imps]
    sample = [dict(n=gs.n, cov=gs.cov, mean=gs.mean) for gs in stats.groups]
    md = []
    for b, pat in zip(blocks, pats):
        s = missing_summary(b, list(ov))
        cov = s.coverage.reset_index(names="variable")
        md.append({"patterns": s.patterns, "items": s.items, "coverage": cov,
                   "npatterns": int(pat.npatterns), "n_empty": int(pat.n_empty)})
    for w in warn:
        _warnings.warn(w, stacklevel=4)
    return CFAResult(partable=ptf, fit_measures=fm, estimates=est, converged=bool(converged),
                     iterations=int(iters), warnings=tuple(warn), meta=meta, implied=implied,
                     sample=sample, vcov=model.vcov_frame(vcov_x), ov_names=tuple(pt.ov_names),
                     lv_names=tuple(pt.lv_names), group_labels=tuple(pt.group_labels),
                     constraints=tuple(pt.constraints), defined=tuple(pt.defined),
                     srmr_group=tuple(sr), missing_data=tuple(md))
