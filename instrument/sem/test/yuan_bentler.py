"""Yuan-Bentler scaled chi-square, Mplus variant (lavaan ``test = "yuan.bentler.mplus"``, MLR).

Notes
-----
lavaan 0.6-14 (``lav_test_yuan_bentler`` / ``lav_test_yuan_bentler_mplus_trace``):

.. math::

   \\mathrm{tr}(U\\Gamma) = \\sum_g \\Big[\\mathrm{tr}(B_{1g} A_{1g}^{-1})
        - \\frac{n_g}{N} \\mathrm{tr}(B_{0g} E^{-1})\\Big],\\qquad
   c = \\mathrm{tr}(U\\Gamma) / df,\\qquad T_{scaled} = T / c

* ``A1`` and ``B1`` are the h1 (saturated-model) observed and first-order information matrices,
  always **unstructured** for this test (evaluated at the sample moments; for FIML at the EM
  estimates);
* ``B0_g = Delta_g' B1_g^{structured} Delta_g`` (unweighted) and ``E`` the model's unit observed
  information, both as used for the Huber-White standard errors (`instrument.sem.estimators.mlr`);
* ``scaling.factor.h1 = sum_g tr(B1 A1^-1) / sum_g ndat_g`` and
  ``scaling.factor.h0 = sum_g (n_g/N) tr(B0_g E^-1) / npar``.

For complete data the h1 trace needs no matrices: with ``q_i = (x_i - ybar)' S^-1 (x_i - ybar)``,
``tr(B1 A1^-1) = mean_i [q_i^2 / 2 - q_i + p / 2] (+ mean_i q_i with a meanstructure)``, i.e. it is
Mardia's multivariate kurtosis in disguise; this is what makes the robust test cheap here.

The baseline (independence) model has free variances (and free means with a meanstructure) and
zero covariances in every group; its information is diagonal, so its scaling factor is
``c_b = [sum_g tr(B1_g A1_g^-1) - sum_g tr(B0b_g Eb_g^-1)] / df_b`` in O(n p) operations.

References
----------
Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and covariance
structure analysis with nonnormal missing data. Sociological Methodology, 30(1), 165-200.
https://doi.org/10.1111/0081-1750.00078
Muthen, L. K., & Muthen, B. O. (1998-2017). Mplus user's guide (8th ed.), MLR chi-square.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from instrument.sem.estimators.mlr import (_cluster_sum, _sym_inv,
                                          h1_information_firstorder, h1_information_observed,
                                          sample_moments)

__all__ = ["YuanBentlerResult", "h1_trace_complete", "yuan_bentler_mplus",
           "yuan_bentler_fit_measures", "scaling_factors", "baseline_chisq_complete",
           "baseline_yuan_bentler_complete"]


@dataclass(frozen=True)
class YuanBentlerResult:
    """A Yuan-Bentler (Mplus) scaled test, with lavaan's names (``lavInspect(fit, "test")``).

    Attributes
    ----------
    chisq, df : the unscaled test and its df.
    scaling_factor : ``c`` (lavaan ``chisq.scaling.factor``).
    chisq_scaled, pvalue_scaled : ``chisq / c`` and its upper-tail chi-square p-value.
    trace_UGamma : ``c * df``.
    scaling_factor_h1, scaling_factor_h0 : the h1 and h0 parts (lavaan ``scaling.factor.h1/h0``).
    chisq_group : per-group unscaled statistics.
    """

    chisq: float
    df: int
    scaling_factor: float
    chisq_scaled: float
    pvalue_scaled: float
    trace_UGamma: float
    scaling_factor_h1: float
    scaling_factor_h0: float
    chisq_group: tuple = ()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["chisq_group"] = list(self.chisq_group)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "YuanBentlerResult":
        d = dict(d)
        d["chisq_group"] = tuple(d.get("chisq_group", ()))
        return cls(**d)

    def summary(self):
        from instrument.results import Table
        f = pd.DataFrame({"statistic": ["chisq", "df", "chisq.scaling.factor", "chisq.scaled",
                                        "pvalue.scaled"],
                          "value": [self.chisq, float(self.df), self.scaling_factor,
                                    self.chisq_scaled, self.pvalue_scaled]})
        return Table("Yuan-Bentler scaled chi-square (Mplus variant)", f, digits=4)


def h1_trace_complete(X: np.ndarray, *, meanstructure: bool,
                      cluster: np.ndarray | None = None) -> tuple[float, int]:
    """``tr(B1 A1^-1)`` of the unstructured h1 model for complete data, and ``ndat``.

    Without clusters: ``mean_i [q_i^2/2 - q_i + p/2 (+ q_i)]`` (see the module notes). With
    clusters, the first-order matrix is built from cluster-summed scores (times
    ``sqrt(C/(C-1))``) and the trace taken explicitly.
    """
    X = np.asarray(X, dtype=float)
    n, p = X.shape
    ybar, S = sample_moments(X)
    ndat = p * (p + 1) // 2 + (p if meanstructure else 0)
    if cluster is None:
        P = _sym_inv(S)
        Xc = X - ybar
        q = np.einsum("ij,jk,ik->i", Xc, P, Xc)
        t = 0.5 * q * q - q + 0.5 * p
        if meanstructure:
            t = t + q
        return float(t.mean()), ndat
    A1 = h1_information_observed(S, ybar, S, ybar, meanstructure=meanstructure)
    B1 = h1_information_firstorder(X, S, ybar, meanstructure=meanstructure, cluster=cluster)
    return float(np.sum(B1 * np.linalg.inv(A1).T)), ndat


def yuan_bentler_mplus(chisq: float, df: int, *, h1_traces: Sequence[float],
                       h1_ndat: Sequence[int], information_inv: np.ndarray,
                       B0_group: Sequence[np.ndarray], nobs: Sequence[int],
                       chisq_group: Sequence[float] | None = None) -> YuanBentlerResult:
    """Yuan-Bentler (Mplus variant) scaled test from its ingredients (see module notes).

    Parameters
    ----------
    chisq, df : the unscaled (ML or FIML) test statistic and its degrees of freedom.
    h1_traces, h1_ndat : per group ``tr(B1 A1^-1)`` of the unstructured h1 model and the number
        of sample moments (`h1_trace_complete`, or
        `instrument.sem.estimators.fiml_fast.h1_trace_fast`).
    information_inv : ``E^-1``, the inverse unit observed information of the model.
    B0_group : per group unweighted ``Delta_g' B1_g Delta_g`` (structured).
    nobs : per group sample sizes.

    Returns
    -------
    YuanBentlerResult
        ``scaling_factor`` is NaN when ``df == 0`` or the trace is negative (lavaan).
    """
    if df < 0:
        raise ValueError(f"yuan_bentler_mplus: df= must be >= 0; got {df}.")
    nobs = [int(n) for n in nobs]
    ntot = sum(nobs)
    cg = tuple(float(c) for c in (chisq_group if chisq_group is not None else [chisq]))
    h0 = [n / ntot * float(np.sum(B * information_inv.T)) for n, B in zip(nobs, B0_group)]
    tr = float(sum(h1_traces) - sum(h0))
    npar = information_inv.shape[0]
    sf_h1 = float(sum(h1_traces) / sum(h1_ndat))
    sf_h0 = float(sum(h0) / npar)
    if df == 0:
        c = float("nan")
    else:
        c = tr / df
        if c < 0:
            c = float("nan")
    scaled = chisq / c if c == c else float("nan")
    pval = float(stats.chi2.sf(scaled, df)) if (c == c and df > 0) else float("nan")
    return YuanBentlerResult(chisq=float(chisq), df=int(df), scaling_factor=c, chisq_scaled=scaled,
                             pvalue_scaled=pval, trace_UGamma=tr, scaling_factor_h1=sf_h1,
                             scaling_factor_h0=sf_h0, chisq_group=cg)


def scaling_factors(yb: YuanBentlerResult, nx: int, nfree_rows: int) -> dict:
    """``scaling.factor.h1`` and ``scaling.factor.h0`` of a Yuan-Bentler (Mplus) test; lavaan
    divides the h0 trace by the number of free table rows (``nfree_rows``; equality-constrained
    ones counted separately), where `yuan_bentler_mplus` divided by the ``nx`` unique ones."""
    return {"scaling.factor.h1": yb.scaling_factor_h1,
            "scaling.factor.h0": yb.scaling_factor_h0 * nx / nfree_rows}


def yuan_bentler_fit_measures(st, fm: dict) -> dict:
    """The fit measures that ``test = "yuan.bentler.mplus"`` adds to a complete-data ML fit
    (lavaan's ``*.scaled`` and ``*.robust`` measures, the scaling factors), from a
    `instrument.sem.vcov.MLFitState` and the fit's standard measures ``fm``.

    Notes
    -----
    ``E^-1`` and ``B0_g`` are those of the state's sandwich, so the test uses the information
    named by ``information=`` (lavaan: "observed" for MLR, "expected" with ``se = "standard"``).
    """
    from instrument.sem.fit.measures import fit_indices_scaled
    model, stats, obj = st.model, st.stats, st.objective
    clusters = st.clusters if st.clusters is not None else [None] * stats.ngroups
    data = [gs.data for gs in stats.groups]
    ms = model.meanstructure
    chisq, df = float(fm["chisq"]), int(fm["df"])
    traces, ndat = zip(*(h1_trace_complete(X, meanstructure=ms, cluster=cl)
                         for X, cl in zip(data, clusters)))
    sw = st.sandwich
    cg = [float(n * F) for n, F in zip(obj.n, obj.group_values(st.x))]
    yb = yuan_bentler_mplus(chisq, df, h1_traces=traces, h1_ndat=ndat,
                            information_inv=sw.information_inv, B0_group=sw.B0_group,
                            nobs=[gs.n for gs in stats.groups], chisq_group=cg)
    bl = baseline_yuan_bentler_complete(data, meanstructure=ms, clusters=clusters,
                                        h1_traces=traces)
    out = fit_indices_scaled(chisq, df, bl.chisq, bl.df, scaling_factor=yb.scaling_factor,
                             baseline_scaling_factor=bl.scaling_factor, n=stats.ntotal,
                             ngroups=stats.ngroups, trace_ugamma=yb.trace_UGamma)
    out.update(scaling_factors(yb, model.nx, len(model.free_rows)))
    return out


def baseline_chisq_complete(data: Sequence[np.ndarray]) -> tuple[float, int, tuple]:
    """Independence-model chi-square for complete data: ``sum_g n_g (sum log s_ii - log|S_g|)``.

    Returns ``(chisq, df, chisq_group)`` with ``df = G p(p-1)/2`` (the means, when present, are
    saturated in both models, so they do not change df).
    """
    out = []
    for X in data:
        X = np.asarray(X, dtype=float)
        _, S = sample_moments(X)
        out.append(X.shape[0] * (np.sum(np.log(np.diag(S))) - np.linalg.slogdet(S)[1]))
    p = np.asarray(data[0]).shape[1]
    return float(sum(out)), len(data) * p * (p - 1) // 2, tuple(float(v) for v in out)


def _baseline_h0_trace(X: np.ndarray, *, meanstructure: bool,
                       cluster: np.ndarray | None) -> float:
    """``tr(B0b Eb^-1)`` of the independence model in one group (unweighted by n_g/N)."""
    n = X.shape[0]
    ybar, S = sample_moments(X)
    v = np.diag(S)
    Xc = X - ybar
    sc_var = 0.5 * (Xc * Xc / v**2 - 1.0 / v)
    inv_diag = [2.0 * v**2]
    cols = [sc_var]
    if meanstructure:
        cols.insert(0, Xc / v)
        inv_diag.insert(0, v)
    sc = np.concatenate(cols, axis=1)
    einv = np.concatenate(inv_diag)
    if cluster is not None:
        sc = _cluster_sum(sc, cluster)
    return float(np.sum(sc * sc * einv) / n)


def baseline_yuan_bentler_complete(data: Sequence[np.ndarray], *, meanstructure: bool,
                                   clusters: Sequence[np.ndarray | None] | None = None,
                                   h1_traces: Sequence[float] | None = None
                                   ) -> YuanBentlerResult:
    """Yuan-Bentler (Mplus) test of the baseline (independence) model, complete data.

    Parameters
    ----------
    data : per group (n_g, p) complete data.
    meanstructure : whether the fitted model (and so the baseline) has a meanstructure.
    clusters : per group cluster labels or None.
    h1_traces : the h1 traces already computed for the target model (they are the same).

    Returns
    -------
    YuanBentlerResult
        ``chisq`` = ``baseline.chisq``, ``scaling_factor`` = ``baseline.chisq.scaling.factor``,
        ``chisq_scaled`` = ``baseline.chisq.scaled``.

    Notes
    -----
    Independence model: ``Sigma_g = diag(S_g)``, ``mu_g = ybar_g``; its unit observed information
    is diagonal (``(n_g/N) / v`` for means, ``(n_g/N) / (2 v^2)`` for variances) and the
    first-order blocks come from the scores ``(x - ybar)/v`` and ``((x - ybar)^2/v^2 - 1/v)/2``.
    """
    data = [np.asarray(X, dtype=float) for X in data]
    clusters = list(clusters) if clusters is not None else [None] * len(data)
    if h1_traces is None:
        h1 = [h1_trace_complete(X, meanstructure=meanstructure, cluster=c)
              for X, c in zip(data, clusters)]
        h1_traces = [t for t, _ in h1]
    p = data[0].shape[1]
    ndat = p * (p + 1) // 2 + (p if meanstructure else 0)
    chisq, df, cg = baseline_chisq_complete(data)
    h0 = [_baseline_h0_trace(X, meanstructure=meanstructure, cluster=c)
          for X, c in zip(data, clusters)]
    tr = float(sum(h1_traces) - sum(h0))
    npar = len(data) * (2 * p if meanstructure else p)
    c = tr / df if df > 0 else float("nan")
    scaled = chisq / c
    return YuanBentlerResult(chisq=chisq, df=df, scaling_factor=c, chisq_scaled=scaled,
                             pvalue_scaled=float(stats.chi2.sf(scaled, df)), trace_UGamma=tr,
                             scaling_factor_h1=float(sum(h1_traces) / (ndat * len(data))),
                             scaling_factor_h0=float(sum(h0) / npar), chisq_group=cg)
