"""MLR and FIML computed from a model that only offers ``implied(x)`` and ``delta(x)`` (the
`tiny_cfa.TinyCFA` stand-in), checked against lavaan in ``tests/test_robust_adapters.py``.

`cfa(estimator="MLR")` and `cfa(missing="fiml")` compute the same quantities through the engine's
own (faster) path; these functions restate them from the building blocks in
`instrument.sem.estimators.mlr`, `instrument.sem.estimators.fiml` and `instrument.sem.test`, so
the two routes serve as equality checks of each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from instrument.results import Table, to_jsonable
from instrument.sem.estimators.fiml import (FIMLObjective, fiml_baseline,
                                            fiml_h1_information_firstorder,
                                            fiml_h1_information_observed, fiml_mlr_vcov,
                                            srmr_bentler)
from instrument.sem.samplestats import H1Result, missing_patterns
from tests.reference.fiml_slow import (em_saturated, fiml_baseline_yuan_bentler,
                                       fiml_corrected, fiml_h1_trace)
from instrument.sem.estimators.mlr import MLRVcov
from tests.reference.mlr_slow import RobustGroup, mlr_vcov
from instrument.sem.fit import cfi as fcfi, rmsea as frmsea
from instrument.sem.fit.measures import fit_indices_scaled
from instrument.sem.test.yuan_bentler import (YuanBentlerResult, baseline_yuan_bentler_complete,
                                              h1_trace_complete, yuan_bentler_mplus)


def yuan_bentler_mplus_complete(groups: Sequence[RobustGroup], chisq: float, df: int, *,
                                mlr: MLRVcov, chisq_group: Sequence[float] | None = None
                                ) -> YuanBentlerResult:
    """The Yuan-Bentler test for complete data from `RobustGroup` s and an `MLRVcov` (which
    holds ``E^-1`` and ``B0_group``); the engine's route is
    `instrument.sem.test.yuan_bentler.yuan_bentler_fit_measures`."""
    traces, ndat = zip(*(h1_trace_complete(g.data, meanstructure=g.meanstructure,
                                           cluster=g.cluster) for g in groups))
    return yuan_bentler_mplus(chisq, df, h1_traces=traces, h1_ndat=ndat,
                              information_inv=mlr.information_inv, B0_group=mlr.B0_group,
                              nobs=[g.n for g in groups], chisq_group=chisq_group)


def _implied_pairs(model, x) -> list[tuple[np.ndarray, np.ndarray | None]]:
    out = []
    for imp in model.implied(np.asarray(x, dtype=float)):
        if hasattr(imp, "sigma"):
            out.append((np.asarray(imp.sigma), None if imp.mu is None else np.asarray(imp.mu)))
        else:
            out.append((np.asarray(imp[0]), None if imp[1] is None else np.asarray(imp[1])))
    return out


@dataclass(frozen=True)
class MLRFit:
    """Everything MLR adds to an ML fit: Huber-White vcov, the Yuan-Bentler test of the model and
    of the baseline, and the scaled/robust fit measures (lavaan names)."""

    vcov: MLRVcov
    test: object
    baseline: object
    fit_measures: dict

    def to_dict(self) -> dict:
        return {"vcov": self.vcov.to_dict(), "test": self.test.to_dict(),
                "baseline": self.baseline.to_dict(), "fit_measures": to_jsonable(self.fit_measures)}

    @classmethod
    def from_dict(cls, d: dict) -> "MLRFit":
        return cls(vcov=MLRVcov.from_dict(d["vcov"]), test=YuanBentlerResult.from_dict(d["test"]),
                   baseline=YuanBentlerResult.from_dict(d["baseline"]),
                   fit_measures={k: (float("nan") if v is None else v)
                                 for k, v in d["fit_measures"].items()})

    def summary(self):
        f = pd.DataFrame({"measure": list(self.fit_measures),
                          "value": [float(v) for v in self.fit_measures.values()]})
        return Table("MLR: scaled and robust fit measures (Yuan-Bentler, Mplus variant)", f,
                     digits=4)


def mlr_fit(model, x, data: Sequence[np.ndarray], *, chisq: float, df: int,
            clusters: Sequence[np.ndarray | None] | None = None,
            information: np.ndarray | None = None) -> MLRFit:
    """MLR for a fitted engine model (the short adapter for ``cfa(estimator="MLR")``).

    Parameters
    ----------
    model : object with ``implied(x) -> list`` of per-group (sigma, mu or None) (objects with
        ``.sigma``/``.mu`` or tuples) and ``delta(x) -> list`` of per-group Jacobians
        .
    x : the ML estimates (unique free parameters).
    data : per group complete (n_g, p) data, in the model's variable order.
    chisq, df : the ML chi-square (sum over groups) and its df.
    clusters : per group cluster labels (lavaan ``cluster=``) or None.
    information : optional precomputed unit observed information (Hessian of -logl/N);
        otherwise computed with the curvature term from ``model.delta``.

    Returns
    -------
    MLRFit
    """
    x = np.asarray(x, dtype=float)
    if len(data) == 0:
        raise ValueError("mlr_fit: data= must hold one array per group; got none.")
    clusters = list(clusters) if clusters is not None else [None] * len(data)
    imps, deltas = _implied_pairs(model, x), list(model.delta(x))
    if not (len(imps) == len(deltas) == len(data) == len(clusters)):
        raise ValueError(f"mlr_fit: {len(data)} data groups, {len(imps)} implied groups, "
                         f"{len(deltas)} Jacobians and {len(clusters)} cluster vectors; they "
                         "must agree.")
    groups = [RobustGroup(np.asarray(X, dtype=float), s, mu, np.asarray(D), cluster=cl)
              for X, (s, mu), D, cl in zip(data, imps, deltas, clusters)]
    v = mlr_vcov(groups, delta_fn=lambda xx: [np.asarray(D) for D in model.delta(xx)], x=x,
                 information=information)
    ms = groups[0].meanstructure
    h1 = [h1_trace_complete(g.data, meanstructure=ms, cluster=g.cluster) for g in groups]
    test = yuan_bentler_mplus(chisq, df, h1_traces=[t for t, _ in h1],
                              h1_ndat=[k for _, k in h1], information_inv=v.information_inv,
                              B0_group=v.B0_group, nobs=[g.n for g in groups])
    base = baseline_yuan_bentler_complete([g.data for g in groups], meanstructure=ms,
                                          clusters=clusters, h1_traces=[t for t, _ in h1])
    fm = fit_indices_scaled(chisq, df, base.chisq, base.df, scaling_factor=test.scaling_factor,
                            baseline_scaling_factor=base.scaling_factor, n=v.ntotal,
                            ngroups=len(groups))
    fm["scaling.factor.h1"] = test.scaling_factor_h1
    fm["scaling.factor.h0"] = test.scaling_factor_h0
    return MLRFit(vcov=v, test=test, baseline=base, fit_measures=fm)


@dataclass(frozen=True)
class FIMLFit:
    """What ``cfa(missing="fiml")`` needs beyond the estimates: vcov, h1 (EM) results and the fit
    measures (lavaan names), for ``estimator="ML"`` or ``"MLR"``.

    Attributes
    ----------
    vcov : ndarray (nx, nx) (observed information, or Huber-White for MLR).
    se : ndarray (nx,).
    fit_measures : dict of lavaan ``fitMeasures()`` names.
    h1 : tuple of H1Result (per group).
    estimator : "ML" or "MLR".
    """

    vcov: np.ndarray
    se: np.ndarray
    fit_measures: dict
    h1: tuple
    estimator: str

    def to_dict(self) -> dict:
        return {"vcov": to_jsonable(self.vcov), "se": to_jsonable(self.se),
                "fit_measures": to_jsonable(self.fit_measures),
                "h1": [h.to_dict() for h in self.h1], "estimator": self.estimator}

    @classmethod
    def from_dict(cls, d: dict) -> "FIMLFit":
        return cls(vcov=np.asarray(d["vcov"], float), se=np.asarray(d["se"], float),
                   fit_measures={k: (float("nan") if v is None else v)
                                 for k, v in d["fit_measures"].items()},
                   h1=tuple(H1Result.from_dict(h) for h in d["h1"]), estimator=d["estimator"])

    def summary(self):
        f = pd.DataFrame({"measure": list(self.fit_measures),
                          "value": [float(v) for v in self.fit_measures.values()]})
        return Table(f"FIML ({self.estimator}) fit measures", f, digits=4)


def fiml_fit(model, x, data: Sequence[np.ndarray], *, df: int, estimator: str = "ML",
             information: np.ndarray | None = None,
             clusters: Sequence[np.ndarray | None] | None = None) -> FIMLFit:
    """FIML fit measures and standard errors at the FIML estimates ``x`` of an engine model.

    Parameters
    ----------
    model : object with ``implied(x)`` (per group sigma and mu) and ``delta(x)`` (per group
        Jacobian of ``[mu, vech(sigma)]``).
    x : FIML estimates (e.g. from the engine's optimiser run on `FIMLObjective`).
    data : per group (n_g, p) arrays with NaN for missing values.
    df : model degrees of freedom.
    estimator : {"ML", "MLR"}
        "ML": observed-information SEs, standard test, FIML-corrected robust CFI/TLI/RMSEA (V6);
        "MLR": Huber-White SEs from FIML casewise scores, Yuan-Bentler (Mplus) scaled test and
        baseline, FIML-corrected robust indices (V3), as lavaan 0.6-14.

    Returns
    -------
    FIMLFit
        ``fit_measures`` keys (``npar``, AIC and BIC are left to the engine): ``chisq``,
        ``df``, ``pvalue``, ``fmin``, ``logl``, ``unrestricted.logl``, ``baseline.chisq``,
        ``baseline.df``, ``baseline.pvalue``, ``cfi``, ``tli``, ``rmsea``, ``rmsea.ci.lower``,
        ``rmsea.ci.upper``, ``srmr``, ``srmr_bentler_nomean``, ``cfi.robust``, ``tli.robust``,
        ``rmsea.robust``, ``rmsea.ci.lower.robust``, ``rmsea.ci.upper.robust``, and for MLR also
        the scaled measures of `instrument.sem.fit.measures.fit_indices_scaled`.
    """
    from scipy import stats

    if estimator not in ("ML", "MLR"):
        raise ValueError(f"estimator= must be one of 'ML', 'MLR'; got {estimator!r}.")
    x = np.asarray(x, dtype=float)
    pats = [missing_patterns(X) for X in data]
    obj = FIMLObjective(model.implied, model.delta, pats)
    imps = obj._implied(x)
    N, G = obj.ntotal, len(pats)
    h1 = tuple(em_saturated(pt) for pt in pats)
    logl = obj.loglik(x)
    logl_h1 = float(sum(h.logl for h in h1))
    chisq = 2.0 * (logl_h1 - logl)
    base = [fiml_baseline(pt) for pt in pats]
    chisq_b = 2.0 * (logl_h1 - sum(b["logl"] for b in base))
    df_b = sum(b["df"] for b in base)
    fm: dict[str, float] = {
        "chisq": chisq, "df": float(df),
        "pvalue": float(stats.chi2.sf(chisq, df)) if df > 0 else float("nan"),
        "fmin": chisq / (2 * N), "logl": logl, "unrestricted.logl": logl_h1,
        "baseline.chisq": chisq_b, "baseline.df": float(df_b),
        "baseline.pvalue": float(stats.chi2.sf(chisq_b, df_b)),
        "cfi": fcfi.cfi(chisq, df, chisq_b, df_b), "tli": fcfi.tli(chisq, df, chisq_b, df_b),
        "rmsea": frmsea.rmsea(chisq, df, N, ngroups=G)}
    fm["rmsea.ci.lower"], fm["rmsea.ci.upper"] = frmsea.rmsea_ci(chisq, df, N, ngroups=G)
    fm["srmr"] = sum(pt.n / N * srmr_bentler(h.cov, h.mean, s, m)
                     for pt, h, (s, m) in zip(pats, h1, imps))
    fm["srmr_bentler_nomean"] = sum(pt.n / N * srmr_bentler(h.cov, None, s, None)
                                    for pt, h, (s, m) in zip(pats, h1, imps))
    deltas = [np.asarray(D) for D in model.delta(x)]
    cl = list(clusters) if clusters is not None else [None] * G
    Wm = [fiml_h1_information_observed(pt, h.cov, h.mean) for pt, h in zip(pats, h1)]
    Jm = [fiml_h1_information_firstorder(pt, h.cov, h.mean, cluster=c) if estimator == "MLR"
          else None for pt, h, c in zip(pats, h1, cl)]
    E = obj.observed_information(x) if information is None else information
    if estimator == "ML":
        V = np.linalg.inv(E) / N
        V = 0.5 * (V + V.T)
        version = "V6"
    else:
        mv = fiml_mlr_vcov(obj, x, information=E, clusters=clusters)
        V = mv.vcov
        tr = [fiml_h1_trace(pt, h, A1=a, B1=j) for pt, h, a, j in zip(pats, h1, Wm, Jm)]
        test = yuan_bentler_mplus(chisq, df, h1_traces=[t for t, _ in tr],
                                  h1_ndat=[k for _, k in tr], information_inv=mv.information_inv,
                                  B0_group=mv.B0_group, nobs=[pt.n for pt in pats])
        bt = fiml_baseline_yuan_bentler(pats, list(h1), clusters=clusters,
                                        h1_traces=[t for t, _ in tr])
        fm.update(fit_indices_scaled(chisq, df, chisq_b, df_b, scaling_factor=test.scaling_factor,
                                     baseline_scaling_factor=bt.scaling_factor, n=N, ngroups=G))
        fm["scaling.factor.h1"] = test.scaling_factor_h1
        fm["scaling.factor.h0"] = test.scaling_factor_h0
        version = "V3"
    fc = fiml_corrected(pats, list(h1), imps, deltas, df, version=version,
                        h1_info=list(zip(Wm, Jm)))
    c3, c3n = fc["c.hat3"], fc["c.hat3.null"]
    fm["cfi.robust"] = fcfi.cfi(fc["XX3"], df, fc["XX3.null"], fc["df3.null"], c=c3, c_b=c3n)
    fm["tli.robust"] = fcfi.tli(fc["XX3"], df, fc["XX3.null"], fc["df3.null"], c=c3, c_b=c3n)
    fm["rmsea.robust"] = frmsea.rmsea(fc["XX3"], df, N, ngroups=G, c=c3)
    fm["rmsea.ci.lower.robust"], fm["rmsea.ci.upper.robust"] = frmsea.rmsea_ci(
        fc["XX3.scaled"], df, N, ngroups=G, c=c3)
    return FIMLFit(vcov=V, se=np.sqrt(np.clip(np.diag(V), 0, None)), fit_measures=fm, h1=h1,
                   estimator=estimator)
