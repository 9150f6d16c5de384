"""`cfa()`: confirmatory factor analysis, matching lavaan 0.6-14.

Flow (lavaan's): options (validated once, `_validate`) -> the estimator chosen from `ESTIMATORS`
(by data kind, estimator and missing-data method) -> syntax -> parameter table -> sample
statistics -> model matrices -> the engine's optimiser -> standard errors -> test -> fit
measures -> result (plain data).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from instrument.results import Meta
from instrument.sem.cfa_ordinal import ORDINAL_ESTIMATORS, cfa_ordinal
from instrument.sem.cfa_fiml import cfa_fiml
from instrument.sem.data import prepare, require_pd_covariance
from instrument.sem.estimators.categorical import PARAMETERIZATIONS
from instrument.sem.optim import single_threaded
from instrument.sem.ml_fit import fit_partable
from instrument.sem.partable import build_partable, check_group_equal
from instrument.sem.result import CFAResult
from instrument.sem.samplestats import GroupStats, SampleStats
from instrument.sem.syntax import has_levels, parse_syntax
from instrument.sem.test import TESTS
from instrument.sem.twolevel import H1_METHODS, TwoLevelResult, fit_twolevel
from instrument.sem.vcov import ROBUST_SE, VCOV

__all__ = ["cfa", "twolevel_cfa", "ESTIMATORS", "CFAOptions"]

_ESTIMATORS = ("ML", "MLR", "WLSMV", "ULSMV")
_LIKELIHOODS = ("normal", "wishart")
_INFORMATION = ("expected", "observed")
_MISSING = ("listwise", "fiml")
_MISSING_ORDINAL = ("pairwise", "listwise")
_SE_ORDINAL = ("robust.sem", "none")


def _choice(name: str, value, allowed, where: str = "") -> None:
    """Refuse ``value`` unless it is one of ``allowed`` (``where``: the condition, e.g. "with
    ordered indicators", appended to the message)."""
    if value not in allowed:
        raise ValueError(f"{name}= must be one of {', '.join(repr(a) for a in allowed)}"
                         f"{' ' + where if where else ''}; got {value!r}.")


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


@dataclass(frozen=True)
class CFAOptions:
    """The options of one `cfa` call after validation, with lavaan's defaults filled in.

    ``kind`` is the data kind that, with ``estimator`` and ``missing``, selects the fitting
    function from `ESTIMATORS`: "continuous", "clustered" (single-level model with
    ``cluster=``: cluster-robust inference), "ordinal" (``ordered=``) or "twolevel"
    (``level:`` blocks in the syntax). ``why`` explains a default that was chosen for the user.
    """

    kind: str
    estimator: str
    missing: str
    group: str | None = None
    group_equal: tuple = ()
    group_partial: tuple = ()
    std_lv: bool = False
    meanstructure: bool | None = None
    likelihood: str = "normal"
    information: str = "expected"
    se: str = "standard"
    test: str = "standard"
    ordered: Sequence[str] | bool | None = None
    cluster: str | None = None
    group_order: Sequence | None = None
    parameterization: str = "delta"
    h1: str = "em"
    baseline: bool = True
    id_cat: str | None = None
    why: str = ""


def _validate(model: str, *, estimator: str | None = None, group: str | None = None,
              group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
              std_lv: bool = False, meanstructure: bool | None = None,
              likelihood: str = "normal", information: str | None = None,
              se: str | None = None, test: str | None = None,
              missing: str | None = None, ordered: Sequence[str] | bool | None = None,
              cluster: str | None = None, group_order: Sequence | None = None,
              parameterization: str = "delta", id_cat: str | None = None, h1: str = "em",
              baseline: bool = True) -> CFAOptions:
    """Check every option of `cfa` once and fill in lavaan's defaults (see `cfa`)."""
    if not isinstance(std_lv, (bool, np.bool_)):
        raise TypeError(f"std_lv= must be True or False; got {std_lv!r}")
    if not isinstance(baseline, (bool, np.bool_)):
        raise TypeError(f"baseline= must be True or False; got {baseline!r}")
    _choice("h1", h1, H1_METHODS)
    if has_levels(model):
        # lavaan: a model with level: blocks is a two-level model, fitted with cluster=
        if cluster is None:
            raise ValueError("a model with 'level:' blocks is a two-level model and needs "
                             "cluster= (the column of level-2 units)")
        if not isinstance(cluster, str) or not cluster:
            raise ValueError(f"cluster= must be the name of the cluster column; got {cluster!r}")
        other = {"estimator": estimator not in (None, "ML"), "group": group is not None,
                 "se": se is not None, "test": test is not None,
                 "ordered": ordered not in (None, False), "missing": missing not in
                 (None, "listwise"), "group_equal": bool(group_equal),
                 "id_cat": id_cat is not None}
        bad = [k for k, v in other.items() if v]
        if bad:
            raise NotImplementedError(f"two-level models are fitted by ML with listwise deletion "
                                      f"and one group; {', '.join(bad)}= is not implemented")
        return CFAOptions("twolevel", "ML", "listwise", std_lv=bool(std_lv), cluster=cluster,
                          information="observed", h1=h1, baseline=bool(baseline))
    if h1 != "em" or not baseline:
        raise NotImplementedError("h1= and baseline= apply to two-level models ('level:' "
                                  "blocks) only")
    is_ordered = ordered is not None and ordered is not False
    ordinal = is_ordered or estimator in ORDINAL_ESTIMATORS
    group_equal, group_partial = check_group_equal(group_equal, group_partial, ordinal=ordinal)
    common = dict(group=group, group_equal=group_equal, group_partial=group_partial,
                  std_lv=bool(std_lv), group_order=group_order)
    if is_ordered and estimator in ("ML", "MLR"):
        raise ValueError(f"estimator={estimator!r} treats items as continuous and cannot be "
                         "combined with ordered=; use estimator='WLSMV' (or drop ordered= to "
                         "analyse the items as continuous).")
    if ordinal:
        if not is_ordered:
            raise ValueError(f"estimator={estimator!r} needs ordered= (the ordinal items, or "
                             "True for all); continuous WLSMV is not implemented.")
        why = ""
        if estimator is None:
            estimator = "WLSMV"
            why = ("ordered= was given without estimator=, so WLSMV (lavaan's default for "
                   "ordered indicators) was used")
        missing = "listwise" if missing is None else missing
        if cluster is not None:
            raise NotImplementedError("cluster= is not implemented")
        if likelihood != "normal" or information not in (None, "expected"):
            raise ValueError("likelihood= and information= apply to ML fits; WLSMV/ULSMV use "
                             "the DWLS/ULS expected information with robust.sem standard errors.")
        if test not in (None, "scaled.shifted"):
            raise ValueError(f"test={test!r} is not available with ordered indicators: "
                             f"{estimator} uses the scaled-shifted test (test='scaled.shifted').")
        se = "robust.sem" if se in (None, "standard", "robust.sem") else se
        _choice("estimator", estimator, ORDINAL_ESTIMATORS, "for ordered indicators")
        _choice("parameterization", parameterization, PARAMETERIZATIONS)
        if missing == "fiml":
            raise ValueError("missing='fiml' is not available with ordered indicators: use "
                             "estimator='WLSMV' with missing='pairwise' (the default), or treat "
                             "the items as continuous with estimator='ML'/'MLR' and "
                             "missing='fiml' (drop ordered=).")
        _choice("missing", missing, _MISSING_ORDINAL, "with ordered indicators")
        _choice("se", se, _SE_ORDINAL, "with ordered indicators")
        return CFAOptions("ordinal", estimator, missing, ordered=ordered, se=se,
                          parameterization=parameterization, id_cat=id_cat, why=why, **common)
    if id_cat is not None:
        raise ValueError(f"id_cat={id_cat!r} identifies ordered indicators; give ordered= (or "
                         "drop id_cat= to treat the items as continuous).")
    estimator = "ML" if estimator is None else estimator
    missing = "listwise" if missing is None else missing
    _choice("estimator", estimator, _ESTIMATORS)
    _choice("likelihood", likelihood, _LIKELIHOODS)
    _choice("missing", missing, _MISSING)
    # lavaan's option rules (lav_options_set): MLR means se = "robust.huber.white" (or
    # "robust.cluster" with cluster=) and test = "yuan.bentler.mplus" unless given; a robust se
    # and FIML take the observed information unless information= is given
    robust = estimator == "MLR"
    if se is None:
        se = ("robust.cluster" if cluster is not None else "robust.huber.white") if robust \
            else "standard"
    elif se == "robust.huber.white" and cluster is not None:
        se = "robust.cluster"
    test = ("yuan.bentler.mplus" if robust else "standard") if test is None else test
    _choice("se", se, tuple(VCOV))
    _choice("test", test, tuple(TESTS))
    if information is None:
        information = "observed" if se in ROBUST_SE or missing == "fiml" else "expected"
    _choice("information", information, _INFORMATION)
    if robust and test == "standard":
        raise ValueError("estimator='MLR' is ML with the Yuan-Bentler test; for robust standard "
                         "errors with the standard test use estimator='ML', "
                         "se='robust.huber.white'.")
    if cluster is not None and estimator != "MLR":
        raise ValueError("cluster= needs estimator='MLR' (cluster-robust standard errors and "
                         "Yuan-Bentler test, lavaan's se='robust.cluster'); got "
                         f"estimator={estimator!r}.")
    if cluster is not None and se not in ("robust.cluster", "none"):
        raise ValueError(f"se={se!r} ignores cluster=; use se='robust.cluster' (the default "
                         "with cluster=).")
    if se == "robust.cluster" and cluster is None:
        raise ValueError("se='robust.cluster' needs cluster= (the column of clusters).")
    if likelihood != "normal" and (se in ROBUST_SE or test != "standard" or missing == "fiml"):
        raise ValueError(f"likelihood={likelihood!r} cannot be combined with se={se!r}, "
                         f"test={test!r}, missing={missing!r}; use likelihood='normal'.")
    if missing == "fiml" and information != "observed":
        raise NotImplementedError("missing='fiml' uses the observed information (lavaan's "
                                  "default); information='expected' is not implemented with it.")
    return CFAOptions("clustered" if cluster is not None else "continuous", estimator, missing,
                      meanstructure=meanstructure, likelihood=likelihood,
                      information=information, se=se, test=test, cluster=cluster, **common)


def _fit_ml(model: str, data: pd.DataFrame, o: CFAOptions) -> CFAResult:
    """Complete-data ML (listwise): the data step, the parameter table, the moments (with the raw
    rows when a sandwich or a scaled test needs them) and `instrument.sem.ml_fit.fit_partable`,
    which looks up ``information=``, ``se=`` and ``test=`` in the vcov and test registries."""
    rows = parse_syntax(model)
    if any(r.op == "|" for r in rows):
        raise NotImplementedError("thresholds (x | t1) need ordered indicators, which the ML "
                                  "engine does not estimate")
    d = prepare(rows, data, group=o.group, group_order=o.group_order, cluster=o.cluster,
                missing=o.missing, keeps="missing='fiml'")
    ov, blocks, group_labels = d.ov, d.blocks, d.group_labels
    ngroups = len(blocks)
    # lavaan: a mean structure with groups, and with cluster= (lav_options_set)
    meanstructure = ((ngroups > 1 or o.cluster is not None) if o.meanstructure is None
                     else o.meanstructure)
    pt = build_partable(rows, ngroups=ngroups, group_labels=group_labels,
                        ov_names=list(data.columns), meanstructure=bool(meanstructure),
                        std_lv=o.std_lv, group_equal=o.group_equal,
                        group_partial=o.group_partial)
    casewise = o.se in ROBUST_SE or o.test != "standard"
    stats = SampleStats([GroupStats.from_data(b, ov, keep_data=casewise) for b in blocks])
    require_pd_covariance(stats, group_labels)
    options = dict(estimator=o.estimator, group=o.group, model=model,
                   group_equal=list(o.group_equal), group_partial=list(o.group_partial),
                   std_lv=o.std_lv, meanstructure=bool(pt.meanstructure),
                   likelihood=o.likelihood, information=o.information, se=o.se, test=o.test,
                   missing=o.missing, group_labels=group_labels,
                   nobs_dropped_listwise=d.nobs_dropped)
    if casewise:
        options.update(h1_information="structured", cluster=o.cluster)
    meta = Meta(options=options, data_hash=d.data_hash)
    return fit_partable(pt, stats, likelihood=o.likelihood, information=o.information, se=o.se,
                        test=o.test, clusters=d.clusters, meta=meta, extra_warnings=d.warnings)


def _fit_fiml(model: str, data: pd.DataFrame, o: CFAOptions) -> CFAResult:
    return cfa_fiml(model, data, group=o.group, group_equal=o.group_equal,
                    group_partial=o.group_partial, std_lv=o.std_lv, se=o.se, test=o.test,
                    cluster=o.cluster, group_order=o.group_order, estimator=o.estimator)


def _fit_ordinal(model: str, data: pd.DataFrame, o: CFAOptions) -> CFAResult:
    return cfa_ordinal(model, data, ordered=o.ordered, estimator=o.estimator, group=o.group,
                       group_equal=o.group_equal, group_partial=o.group_partial,
                       std_lv=o.std_lv, parameterization=o.parameterization, missing=o.missing,
                       se=o.se, group_order=o.group_order, why=o.why, id_cat=o.id_cat)


def _fit_twolevel(model: str, data: pd.DataFrame, o: CFAOptions) -> TwoLevelResult:
    return fit_twolevel(model, data, cluster=o.cluster, std_lv=o.std_lv, h1=o.h1,
                        baseline=o.baseline)


#: The estimator registry: (data kind, estimator, missing) -> fitting function
#: ``f(model, data, options: CFAOptions)``; `cfa` validates the options and looks the fit up here.
ESTIMATORS: dict[tuple[str, str, str], Callable[[str, pd.DataFrame, CFAOptions], Any]] = {
    ("continuous", "ML", "listwise"): _fit_ml,                # ML (lavaan's default)
    ("continuous", "ML", "fiml"): _fit_fiml,                  # FIML (lavaan missing = "ml")
    ("continuous", "MLR", "listwise"): _fit_ml,               # Huber-White SEs, Yuan-Bentler test
    ("continuous", "MLR", "fiml"): _fit_fiml,
    ("clustered", "MLR", "listwise"): _fit_ml,                # se = "robust.cluster"
    ("clustered", "MLR", "fiml"): _fit_fiml,
    **{("ordinal", e, m): _fit_ordinal                        # DWLS / ULS, two-step
       for e in ORDINAL_ESTIMATORS for m in _MISSING_ORDINAL},
    ("twolevel", "ML", "listwise"): _fit_twolevel,            # exact two-level ML
}


@single_threaded
def _fit_cfa(model: str, data: pd.DataFrame, *, estimator: str | None = None,
             group: str | None = None, group_equal: Sequence[str] = (),
             group_partial: Sequence[str] = (), std_lv: bool = False,
             meanstructure: bool | None = None, likelihood: str = "normal",
             information: str | None = None, se: str | None = None, test: str | None = None,
             missing: str | None = None,
             ordered: Sequence[str] | bool | None = None, cluster: str | None = None,
             group_order: Sequence | None = None, parameterization: str = "delta",
             id_cat: str | None = None, h1: str = "em", baseline: bool = True
             ) -> CFAResult | TwoLevelResult:
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
        `instrument.sem.cfa_fiml`).
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
    information : {"expected", "observed"}, optional
        Information matrix behind the standard errors (and a scaled test), looked up in
        `instrument.sem.vcov.INFORMATION`. Default as lavaan: "observed" with a robust ``se``
        (so with MLR) and with FIML, else "expected". Two-level fits use the observed one.
    se : {"standard", "robust.huber.white", "robust.cluster", "none"}, optional
        Standard errors, looked up in `instrument.sem.vcov.VCOV`: from the inverse information,
        its Huber-White sandwich, the sandwich with scores summed within ``cluster=`` clusters,
        or none. Default "standard"; MLR's is "robust.huber.white" ("robust.cluster" with
        ``cluster=``); ordered indicators always use "robust.sem".
    test : {"standard", "yuan.bentler.mplus"}, optional
        Model test, looked up in `instrument.sem.test.TESTS`: the likelihood-ratio chi-square,
        or with it the Yuan-Bentler (Mplus) scaled test and lavaan's ``*.scaled`` and
        ``*.robust`` measures. Default "standard"; MLR's is "yuan.bentler.mplus"; ordered
        indicators use "scaled.shifted". As in lavaan, ``estimator="ML", se="robust.huber.white",
        test="yuan.bentler.mplus"`` is MLR, and MLR with ``se="standard"`` keeps its scaled
        test (with the expected information).
    missing : {"listwise", "pairwise", "fiml"}, optional
        Default "listwise" (rows with a missing model variable or group are dropped), lavaan's
        default for every estimator; a warning gives the count whenever rows are dropped.
        "pairwise" (ordered items): each polychoric correlation from the rows complete on its
        pair, as Mplus does for WLSMV. "fiml": full information ML (lavaan ``missing = "ml"``,
        see `instrument.sem.cfa_fiml`); with ordered items it is an error that names the
        alternatives.
    ordered : sequence of str or True, optional
        Ordered (ordinal) indicators: the fit is done by `instrument.sem.cfa_ordinal.cfa_ordinal`
        (default estimator "WLSMV", missing "pairwise", ``se="robust.sem"``; see there).
    parameterization : {"delta", "theta"}
        Only with ordered indicators.
    id_cat : {None, "Wu.Estabrook.2016"}
        Only with ordered indicators and groups: how the latent responses are identified across
        groups. None (default) is lavaan's own rule (``group_equal=["thresholds"]`` frees the
        scales (delta) or residual variances (theta) and the latent means in groups 2..G).
        "Wu.Estabrook.2016" is Wu & Estabrook's (2016) identification as semTools writes it
        (``measEq.syntax(ID.fac = "std.lv", ID.cat = "Wu.Estabrook.2016")``; needs
        ``std_lv=True`` and a model of ``=~`` lines): which intercepts, residual variances or
        scales, latent means and variances are free in groups 2..G follows from which sets are
        in `group_equal` and `group_partial` (see `instrument.sem.partable.build_partable`). The
        ordinal invariance ladder fits every rung this way, with ``parameterization="theta"``.
    cluster : str, optional
        Cluster column: cluster-robust SEs and test (with ``estimator="MLR"``), or the level-2
        unit of a two-level model (syntax with ``level: 1`` / ``level: 2`` blocks, fitted by
        exact two-level ML, `instrument.sem.twolevel.fit_twolevel`, as lavaan does).
    group_order : sequence, optional
        Order of the groups (default: order of first appearance in the data, lavaan's rule).
    h1 : {"em", "exact"}
        Two-level models only: the saturated model by lavaan 0.6-14's EM (default, so the
        test and SRMR equal lavaan's) or maximised exactly (see
        `instrument.sem.twolevel.fit_twolevel`).
    baseline : bool
        Two-level models only: fit the baseline model for CFI/TLI (default True).

    Returns
    -------
    CFAResult
        Estimates (lavaan's ``parameterEstimates`` columns plus ``std.lv`` and ``std.all``),
        ``fit_measures`` (lavaan's ``fitMeasures()`` names), warnings and methods for residuals,
        modification indices and factor scores. A two-level model gives a
        `instrument.sem.twolevel.TwoLevelResult`.

    Notes
    -----
    The options are validated once (`CFAOptions`) and the fit is looked up in `ESTIMATORS` by
    data kind (continuous, clustered, ordinal, two-level), estimator and missing-data method.
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
    o = _validate(model, estimator=estimator, group=group, group_equal=group_equal,
                  group_partial=group_partial, std_lv=std_lv, meanstructure=meanstructure,
                  likelihood=likelihood, information=information, se=se, test=test,
                  missing=missing,
                  ordered=ordered, cluster=cluster, group_order=group_order,
                  parameterization=parameterization, id_cat=id_cat, h1=h1, baseline=baseline)
    return ESTIMATORS[(o.kind, o.estimator, o.missing)](model, data, o)


@functools.wraps(_fit_cfa)
def cfa(model: str, data: pd.DataFrame, **options: Any) -> CFAResult | TwoLevelResult:
    return _refuse_unidentified(_fit_cfa(model, data, **options))


def twolevel_cfa(model: str, data: pd.DataFrame, *, cluster: str, std_lv: bool = False,
                 h1: str = "em", baseline: bool = True) -> TwoLevelResult:
    """`cfa` of a model with ``level: 1`` / ``level: 2`` blocks (an alias; see `cfa` and
    `instrument.sem.twolevel.fit_twolevel` for the estimator)."""
    if not has_levels(model):
        raise ValueError("twolevel_cfa() needs a model with 'level: 1' and 'level: 2' blocks; "
                         "use cfa() for a single-level model")
    return cfa(model, data, cluster=cluster, std_lv=std_lv, h1=h1, baseline=baseline)
