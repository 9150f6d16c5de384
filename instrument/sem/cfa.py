"""`cfa()`: confirmatory factor analysis by maximum likelihood, matching lavaan 0.6-14.

Flow (lavaan's): syntax -> parameter table -> sample statistics -> model matrices ->
Fisher scoring -> standard errors -> fit measures -> `CFAResult` (plain data).
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import pandas as pd

from instrument.results import Meta
from instrument.sem.data import prepare, require_pd_covariance
from instrument.sem.estimators.ml import single_threaded
from instrument.sem.ml_fit import fit_partable
from instrument.sem.partable import build_partable, check_group_equal
from instrument.sem.result import CFAResult
from instrument.sem.samplestats import GroupStats, SampleStats
from instrument.sem.syntax import has_levels, parse_syntax
from instrument.sem.twolevel import TwoLevelResult, twolevel_cfa

__all__ = ["cfa"]

_ESTIMATORS = ("ML", "MLR", "WLSMV", "ULSMV")
_LIKELIHOODS = ("normal", "wishart")
_INFORMATION = ("expected", "observed")
_SE = ("standard", "none")
_MISSING = ("listwise", "fiml")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}= must be one of {', '.join(repr(a) for a in allowed)}; "
                         f"got {value!r}.")


def _refuse_unidentified(fit: Any) -> Any:
    """The fit, unless the model is not identified: df < 0 (more free parameters than sample
    moments) or a singular information matrix. Such a model has no unique solution, so its
    estimates, standard errors and fit indices are refused rather than reported."""
    df = (getattr(fit, "fit_measures", None) or {}).get("df")
    if df is not None and np.isfinite(df) and df < 0:
        npar = fit.fit_measures.get("npar", float("nan"))
        raise ValueError(f"the model is not identified: df = {df:g} ({npar:g} free parameters "
                         "for fewer sample moments); expected df >= 0: fix, equate or drop "
                         "parameters.")
    warns = list(getattr(fit, "warnings", ()) or ())
    singular = [w for w in warns if "information matrix is singular" in w]
    if singular:
        others = [w for w in warns if w not in singular]
        raise ValueError(f"the model is not identified: {singular[0]}"
                         + (f" (the data: {'; '.join(others)})" if others else "")
                         + "; expected an identified model (each factor needs a scale: a marker "
                         "loading or std_lv=True; at least three indicators, or two with "
                         "correlated factors) and data with variance in every variable.")
    return fit


@single_threaded
def _fit_cfa(model: str, data: pd.DataFrame, *, estimator: str | None = None,
        group: str | None = None,
        group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
        std_lv: bool = False, meanstructure: bool | None = None, likelihood: str = "normal",
        information: str = "expected", se: str | None = None, missing: str | None = None,
        ordered: Sequence[str] | bool | None = None, cluster: str | None = None,
        group_order: Sequence | None = None, parameterization: str = "delta",
        id_cat: str | None = None) -> CFAResult | TwoLevelResult:
    """Fit a confirmatory factor model by maximum likelihood (lavaan's ``cfa()``).

    Parameters
    ----------
    model : str
        lavaan model syntax (``f =~ x1 + x2 + x3``; see `instrument.sem.syntax`).
    data : pandas.DataFrame
        One row per respondent; the model's observed variables must be numeric columns.
    estimator : {"ML", "MLR", "WLSMV", "ULSMV"}, optional
        Default "ML", or "WLSMV" when `ordered` is given (ordered items with "ML"/"MLR" is an
        error: drop ordered= to treat them as continuous). "WLSMV"/"ULSMV" need `ordered`.
        "MLR": robust (Huber-White) SEs and the Yuan-Bentler scaled test (see
        `instrument.sem.cfa_robust`).
    group : str, optional
        Column defining groups (multiple-group CFA; mean structure switched on).
    group_equal : sequence of str
        Parameter types equal across groups: "loadings", "intercepts", "residuals",
        "residual.covariances", "means", "lv.variances", "lv.covariances", "regressions".
    group_partial : sequence of str
        Parameters freed from `group_equal`, e.g. ``["x3~1", "visual=~x2"]``.
    std_lv : bool
        Fix latent variances to 1 and free all loadings (default: marker variables).
    meanstructure : bool, optional
        Model the means (default: True with groups, else False).
    likelihood : {"normal", "wishart"}
        "wishart" uses the N - 1 covariance and N - G in chi-square and RMSEA.
    information : {"expected", "observed"}
        Information matrix for standard errors.
    se : {"standard", "none"}
    missing : {"listwise", "pairwise", "fiml"}, optional
        Default "listwise" (rows with a missing model variable or group are dropped), lavaan's
        default for every estimator; a warning gives the count whenever rows are dropped.
        "pairwise" (ordered items): each polychoric correlation from the rows complete on its
        pair, as Mplus does for WLSMV. "fiml": full information ML (lavaan ``missing = "ml"``,
        see `instrument.sem.cfa_robust`); with ordered items it is an error that names the
        alternatives.
    ordered : sequence of str or True, optional
        Ordered (ordinal) indicators: the fit is done by `instrument.sem.cfa_ordinal.cfa_ordinal`
        (default estimator "WLSMV", missing "pairwise", ``se="robust.sem"``; see there).
    parameterization : {"delta", "theta"}
        Only with ordered indicators.
    id_cat : {None, "Wu.Estabrook.2016"}
        Only with ordered indicators and groups: how the latent responses are identified across
        groups. None (default) is lavaan's own rule (``group_equal=["thresholds"]`` frees the
        scales and latent means in groups 2..G). "Wu.Estabrook.2016" is Wu & Estabrook's (2016)
        identification as semTools writes it (``measEq.syntax(ID.fac = "std.lv", ID.cat =
        "Wu.Estabrook.2016", parameterization = "theta")``; needs ``std_lv=True``,
        ``parameterization="theta"`` and a model of ``=~`` lines): which intercepts, residual
        variances, latent means and variances are free in groups 2..G follows from which sets
        are in `group_equal` (see `instrument.sem.partable.build_partable`). The ordinal
        invariance ladder fits every rung this way.
    cluster : str, optional
        Cluster column: cluster-robust SEs and test (with ``estimator="MLR"``), or the level-2
        unit of a two-level model (syntax with ``level: 1`` / ``level: 2`` blocks, fitted by
        `instrument.sem.twolevel.twolevel_cfa`, as lavaan does).
    group_order : sequence, optional
        Order of the groups (default: order of first appearance in the data, lavaan's rule).

    Returns
    -------
    CFAResult
        Estimates (lavaan's ``parameterEstimates`` columns plus ``std.lv`` and ``std.all``),
        ``fit_measures`` (lavaan's ``fitMeasures()`` names), warnings and methods for residuals,
        modification indices and factor scores. A two-level model gives a
        `instrument.sem.twolevel.TwoLevelResult`.

    Notes
    -----
    F_ML = sum_g (n_g/N)[log|Sigma_g| + tr(S_g Sigma_g^-1) - log|S_g| - p + (m_g - mu_g)'
    Sigma_g^-1 (m_g - mu_g)], S with divisor N; chisq = N F_ML. Minimised by Fisher scoring to a
    gradient below 1e-9. Standard errors from the inverse expected information divided by N
    (lavaan's default for ML). Matches lavaan 0.6-14 ``cfa()``. All stages run with
    single-threaded BLAS: the matrices are small, so threads only add overhead and oversubscribe
    a shared machine.

    References
    ----------
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02

    Examples
    --------
    >>> fit = cfa("visual =~ x1 + x2 + x3", hs)                  # doctest: +SKIP
    >>> # In R: cfa("visual =~ x1 + x2 + x3", data = hs)
    """
    if has_levels(model):
        # lavaan: a model with level: blocks is a two-level model, fitted with cluster=
        if cluster is None:
            raise ValueError("a model with 'level:' blocks is a two-level model and needs "
                             "cluster= (the column of level-2 units)")
        other = {"estimator": estimator not in (None, "ML"), "group": group is not None,
                 "ordered": ordered not in (None, False), "missing": missing not in
                 (None, "listwise"), "group_equal": bool(group_equal),
                 "id_cat": id_cat is not None}
        bad = [k for k, v in other.items() if v]
        if bad:
            raise NotImplementedError(f"two-level models are fitted by ML with listwise deletion "
                                      f"and one group; {', '.join(bad)}= is not implemented")
        return twolevel_cfa(model, data, cluster=cluster, std_lv=std_lv)
    ordinal = (ordered is not None and ordered is not False) or estimator in ("WLSMV", "ULSMV")
    group_equal, group_partial = check_group_equal(group_equal, group_partial, ordinal=ordinal)
    # --- ordered indicators (WLSMV/ULSMV, instrument.sem.cfa_ordinal): defaults that never collide
    if ordered is not None and ordered is not False and estimator in ("ML", "MLR"):
        raise ValueError(f"estimator={estimator!r} treats items as continuous and cannot be "
                         "combined with ordered=; use estimator='WLSMV' (or drop ordered= to "
                         "analyse the items as continuous).")
    if ordinal:
        from instrument.sem.cfa_ordinal import cfa_ordinal
        if ordered is None or ordered is False:
            raise ValueError(f"estimator={estimator!r} needs ordered= (the ordinal items, or "
                             "True for all); continuous WLSMV is not implemented.")
        why = []
        if estimator is None:
            estimator = "WLSMV"
            why.append("ordered= was given without estimator=, so WLSMV (lavaan's default for "
                       "ordered indicators) was used")
        if missing is None:
            missing = "listwise"
        if cluster is not None:
            raise NotImplementedError("cluster= is not implemented")
        if likelihood != "normal" or information != "expected":
            raise ValueError("likelihood= and information= apply to ML fits; WLSMV/ULSMV use "
                             "the DWLS/ULS expected information with robust.sem standard errors.")
        return cfa_ordinal(model, data, ordered=ordered, estimator=estimator, group=group,
                           group_equal=group_equal, group_partial=group_partial, std_lv=std_lv,
                           parameterization=parameterization, missing=missing,
                           se="robust.sem" if se in (None, "standard", "robust.sem") else se,
                           group_order=group_order, why="; ".join(why), id_cat=id_cat)
    if id_cat is not None:
        raise ValueError(f"id_cat={id_cat!r} identifies ordered indicators; give ordered= (or "
                         "drop id_cat= to treat the items as continuous).")
    estimator = "ML" if estimator is None else estimator
    missing = "listwise" if missing is None else missing
    se = "standard" if se is None else se
    _choice("estimator", estimator, _ESTIMATORS)
    _choice("likelihood", likelihood, _LIKELIHOODS)
    _choice("information", information, _INFORMATION)
    _choice("se", se, _SE)
    _choice("missing", missing, _MISSING)
    if estimator == "MLR" or missing == "fiml" or cluster is not None:
        from instrument.sem.cfa_robust import cfa_robust  # MLR / FIML / cluster=
        return cfa_robust(model, data, estimator=estimator, group=group, group_equal=group_equal,
                          group_partial=group_partial, std_lv=std_lv, meanstructure=meanstructure,
                          likelihood=likelihood, information=information, se=se, missing=missing,
                          ordered=ordered, cluster=cluster, group_order=group_order)
    rows = parse_syntax(model)
    if any(r.op == "|" for r in rows):
        raise NotImplementedError("thresholds (x | t1) need ordered indicators, which the ML "
                                  "engine does not estimate")
    d = prepare(rows, data, group=group, group_order=group_order, missing=missing,
                keeps="missing='fiml'")
    ov, blocks, group_labels = d.ov, d.blocks, d.group_labels
    ngroups = len(blocks)
    if meanstructure is None:
        meanstructure = ngroups > 1
    pt = build_partable(rows, ngroups=ngroups, group_labels=group_labels,
                        ov_names=list(data.columns), meanstructure=bool(meanstructure),
                        std_lv=std_lv, group_equal=tuple(group_equal),
                        group_partial=tuple(group_partial))
    stats = SampleStats([GroupStats.from_data(b, ov) for b in blocks])
    require_pd_covariance(stats, group_labels)
    options = dict(estimator="ML", group=group, model=model, group_equal=list(group_equal),
                   group_partial=list(group_partial), std_lv=bool(std_lv),
                   meanstructure=bool(pt.meanstructure), likelihood=likelihood,
                   information=information, se=se, missing=missing,
                   group_labels=group_labels, nobs_dropped_listwise=d.nobs_dropped)
    meta = Meta(options=options, data_hash=d.data_hash)
    return fit_partable(pt, stats, likelihood=likelihood, information=information, se=se,
                        meta=meta, extra_warnings=d.warnings)


@functools.wraps(_fit_cfa)
def cfa(model: str, data: pd.DataFrame, **options: Any) -> CFAResult | TwoLevelResult:
    return _refuse_unidentified(_fit_cfa(model, data, **options))
