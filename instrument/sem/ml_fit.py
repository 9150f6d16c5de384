"""Maximum-likelihood fit of a prepared parameter table to sample statistics (lavaan's stages after
the data step: model -> optimiser -> vcov -> test -> fit measures -> result)."""
from __future__ import annotations

import warnings as _warnings
from typing import Sequence

import numpy as np

from instrument.results import Meta
from instrument.sem.estimators.ml import MLObjective
from instrument.sem.fit import chisq as _chisq, in_lavaan_order, info as _info
from instrument.sem.fit import other as _other, srmr as _srmr
from instrument.sem.fit.measures import TestStat, fit_indices, information_criteria
from instrument.sem.optim import optimize_reporting, single_threaded_blas
from instrument.sem.model import Model, with_defined_rows
from instrument.sem.partable import ParTable
from instrument.sem.post import (estimates_frame, fitted_partable, row_se, solution_warnings,
                                 standardized)
from instrument.sem.result import CFAResult
from instrument.sem.data import data_warnings
from instrument.sem.samplestats import SampleStats
from instrument.sem.test import TESTS
from instrument.sem.vcov import VCOV, MLFitState

__all__ = ["fit_partable", "compute_fit_measures"]


def fit_partable(pt: ParTable, stats: SampleStats, *, likelihood: str = "normal",
                 information: str = "expected", se: str = "standard", test: str = "standard",
                 clusters: Sequence[np.ndarray | None] | None = None,
                 meta: Meta | None = None, extra_warnings: Sequence[str] = (),
                 x0: np.ndarray | None = None, max_iter: int = 500) -> CFAResult:
    """Fit a prepared parameter table to sample statistics by ML and assemble the result.

    This is `cfa()` after the data step; invariance and other modules call it with tables they
    built themselves. The stages after the optimiser are looked up by name: the information
    matrix in `instrument.sem.vcov.INFORMATION` (``information=``), the covariance of the
    estimates in `instrument.sem.vcov.VCOV` (``se=``) and the test in
    `instrument.sem.test.TESTS` (``test=``). A sandwich (``se = "robust.huber.white"`` or
    ``"robust.cluster"``, with ``clusters=`` per group) and the Yuan-Bentler test need the raw
    rows in ``stats`` (``GroupStats.from_data(..., keep_data=True)``). BLAS runs single-threaded
    while fitting.
    """
    with single_threaded_blas():
        return _fit_partable(pt, stats, likelihood=likelihood, information=information, se=se,
                             test=test, clusters=clusters, meta=meta,
                             extra_warnings=extra_warnings, x0=x0, max_iter=max_iter)


def _fit_partable(pt: ParTable, stats: SampleStats, *, likelihood: str, information: str,
                  se: str, test: str, clusters, meta: Meta | None,
                  extra_warnings: Sequence[str], x0: np.ndarray | None,
                  max_iter: int) -> CFAResult:
    warn = list(extra_warnings) + data_warnings(stats, pt.group_labels)
    model = Model.from_partable(pt, stats)
    obj = MLObjective(model, stats, likelihood)
    if x0 is None:
        x0 = model.start_x(stats)
    x, converged, iters = optimize_reporting(obj, x0, warn, max_iter=max_iter)
    state = MLFitState(model, x, stats, obj, information=information, clusters=clusters,
                       warnings=warn)
    vcov_x = None
    try:
        vcov_x = VCOV[se](state)
    except np.linalg.LinAlgError:
        warn.append("could not compute standard errors: the information matrix could not "
                    "be inverted")
    vals = model.x_to_partable(x)
    f = pt.frame
    se_rows = row_se(model, vcov_x, len(f))
    slv, sall = standardized(model, x)
    warn.extend(solution_warnings(model, x, pt.group_labels))
    fm, srmr_groups = compute_fit_measures(model, x, stats, likelihood=likelihood, objective=obj)
    if test != "standard" and obj.sample_pd:
        fm = in_lavaan_order({**fm, **TESTS[test](state, fm)})
    est = with_defined_rows(estimates_frame(f, vals, se_rows, slv, sall), model, x,
                            vcov_x)
    ptf = fitted_partable(f, vals, se_rows, model.x_to_partable(x0))
    vc = model.vcov_frame(vcov_x)
    implied = [dict(cov=imp.sigma, mean=imp.mu) for imp in model.implied(x)]
    sample = [dict(n=gs.n, cov=gs.cov, mean=gs.mean) for gs in stats.groups]
    if meta is None:
        meta = Meta(options=dict(estimator="ML", likelihood=likelihood, information=information,
                                 se=se, test=test, meanstructure=pt.meanstructure,
                                 group_labels=list(pt.group_labels)))
    for w in warn:
        _warnings.warn(w, stacklevel=3)
    return CFAResult(partable=ptf, fit_measures=fm, estimates=est, converged=bool(converged),
                     iterations=int(iters), warnings=tuple(warn), meta=meta, implied=implied,
                     sample=sample, vcov=vc, ov_names=tuple(pt.ov_names),
                     lv_names=tuple(pt.lv_names), group_labels=tuple(pt.group_labels),
                     constraints=tuple(pt.constraints), defined=tuple(pt.defined),
                     srmr_group=tuple(srmr_groups))


def compute_fit_measures(model: Model, x: np.ndarray, stats: SampleStats, *,
                         likelihood: str = "normal",
                         objective: MLObjective | None = None) -> tuple[dict, list]:
    """lavaan's ``fitMeasures()`` for an ML fit (names in `instrument.sem.fit.FIT_MEASURE_NAMES`).

    Returns
    -------
    (dict, list)
        The fit measures and the per-group SRMR values.

    Notes
    -----
    chisq = N F (N - G with wishart); df = G p*(+p) - npar; npar counts unique free parameters
    (equality constraints removed). Baseline: independence model (free variances and means).
    logl uses the divisor-N moments; AIC/BIC/SABIC from logl and npar; RMSEA/CFI/TLI/SRMR per
    `instrument.sem.fit`. ``objective``: the fit's `MLObjective` (of the same model, data and
    likelihood), when the caller has it.
    """
    obj = MLObjective(model, stats, likelihood) if objective is None else objective
    G = stats.ngroups
    p = model.p
    nx = model.nx
    if not obj.sample_pd:
        # log|S| undefined: the likelihood-ratio measures do not exist
        nan = float("nan")
        fm = {"npar": nx, "df": G * model.nstat() - nx, "ntotal": stats.ntotal}
        for k in ("fmin", "chisq", "pvalue", "baseline.chisq", "baseline.pvalue", "cfi", "tli",
                  "nnfi", "rfi", "nfi", "pnfi", "ifi", "rni", "logl", "unrestricted.logl", "aic",
                  "bic", "bic2", "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.pvalue",
                  "rmsea.notclose.pvalue", "srmr", "srmr_bentler", "srmr_bentler_nomean",
                  "rmr", "rmr_nomean", "crmr", "crmr_nomean", "srmr_mplus", "srmr_mplus_nomean",
                  "cn_05", "cn_01", "gfi", "agfi", "pgfi", "mfi", "ecvi"):
            fm[k] = nan
        fm["baseline.df"] = G * (p * (p - 1) // 2)
        return in_lavaan_order(fm), [nan] * G
    Fg = obj.group_values(x)
    F = float(obj.w @ Fg)
    N_eff = obj.N
    ntotal = stats.ntotal
    chisq = N_eff * F
    nstat = G * model.nstat()
    df = nstat - nx
    bl = _chisq.baseline_chisq(obj.S, obj.n)
    df_b = G * (p * (p - 1) // 2)
    imps = model.implied(x)
    logl = 0.0
    logl_h1 = 0.0
    for gs, imp in zip(stats.groups, imps):
        if likelihood == "wishart":
            # lavaan: N-1 covariance, but the N weight
            Sw = gs.cov * gs.n / (gs.n - 1)
            logl += _info.loglik_group(gs.n, Sw, imp.sigma, gs.mean, imp.mu)
            logl_h1 += _info.loglik_group(gs.n, Sw, Sw)
        else:
            logl += _info.loglik_group(gs.n, gs.cov, imp.sigma, gs.mean, imp.mu)
            logl_h1 += _info.loglik_group(gs.n, gs.cov, gs.cov)
    n_rmsea = N_eff
    sr, srn = [], []
    for gs, imp, S in zip(stats.groups, imps, obj.S):
        a, b = _srmr.srmr_group(S, imp.sigma, gs.mean if imp.mu is not None else None, imp.mu)
        sr.append(a)
        srn.append(b)
    ns = [gs.n for gs in stats.groups]
    srmr = _srmr.srmr(sr, ns)
    other = {}
    for name, fn in (("rmr", _other.rmr_group), ("crmr", _other.crmr_group),
                     ("srmr_mplus", _other.srmr_mplus_group)):
        vals = [fn(S, imp.sigma, gs.mean if imp.mu is not None else None, imp.mu)
                for gs, imp, S in zip(stats.groups, imps, obj.S)]
        other[name] = _srmr.srmr([v[0] for v in vals], ns)
        other[name + "_nomean"] = _srmr.srmr([v[1] for v in vals], ns)
    gfis = []
    for gs, imp, S in zip(stats.groups, imps, obj.S):
        a, b = _other.gfi_group(S, imp.sigma, gs.mean if imp.mu is not None else None, imp.mu)
        gfis.append(1.0 - a / b)
    gfi = _srmr.srmr(gfis, ns)
    fm = {"npar": nx, "fmin": F / 2.0}
    fm.update(fit_indices(TestStat(chisq, df), TestStat(bl, df_b), n=n_rmsea, ngroups=G,
                          likelihood=information_criteria(logl, logl_h1, nx, ntotal)))
    fm.update({
        "rmr": other["rmr"], "rmr_nomean": other["rmr_nomean"],
        "srmr": srmr, "srmr_bentler": srmr,
        "srmr_bentler_nomean": _srmr.srmr(srn, ns),
        "crmr": other["crmr"], "crmr_nomean": other["crmr_nomean"],
        "srmr_mplus": other["srmr_mplus"], "srmr_mplus_nomean": other["srmr_mplus_nomean"],
        "cn_05": _other.hoelter_cn(chisq, df, N_eff, alpha=0.05),
        "cn_01": _other.hoelter_cn(chisq, df, N_eff, alpha=0.01),
        "gfi": gfi, "agfi": _other.agfi(gfi, nstat, df), "pgfi": _other.pgfi(gfi, nstat, df),
        "mfi": _other.mfi(chisq, df, N_eff), "ecvi": _other.ecvi(chisq, nx, N_eff),
    })
    return in_lavaan_order(fm), sr
