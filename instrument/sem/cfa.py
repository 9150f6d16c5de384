"""`cfa()`: confirmatory factor analysis by maximum likelihood, matching lavaan 0.6-14.

Flow (lavaan's): syntax -> parameter table -> sample statistics -> model matrices ->
Fisher scoring -> standard errors -> fit measures -> `CFAResult` (plain data).
"""
from __future__ import annotations

import warnings as _warnings
from typing import Sequence

import pandas as pd

from instrument.results import Meta, hash_frame
from instrument.sem.ml_fit import fit_partable
from instrument.sem.partable import GROUP_EQUAL_TYPES, build_partable, model_variables
from instrument.sem.result import CFAResult
from instrument.sem.samplestats import GroupStats, SampleStats, group_labels_in_order
from instrument.sem.syntax import parse_syntax

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


def cfa(model: str, data: pd.DataFrame, *, estimator: str | None = None,
        group: str | None = None,
        group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
        std_lv: bool = False, meanstructure: bool | None = None, likelihood: str = "normal",
        information: str = "expected", se: str | None = None, missing: str | None = None,
        ordered: Sequence[str] | bool | None = None, cluster: str | None = None,
        group_order: Sequence | None = None, parameterization: str = "delta") -> CFAResult:
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
    cluster : str, optional
        Cluster column for cluster-robust SEs and test (with ``estimator="MLR"``).
    group_order : sequence, optional
        Order of the groups (default: order of first appearance in the data, lavaan's rule).

    Returns
    -------
    CFAResult
        Estimates (lavaan's ``parameterEstimates`` columns plus ``std.lv`` and ``std.all``),
        ``fit_measures`` (lavaan's ``fitMeasures()`` names), warnings and methods for residuals,
        modification indices and factor scores.

    Notes
    -----
    F_ML = sum_g (n_g/N)[log|Sigma_g| + tr(S_g Sigma_g^-1) - log|S_g| - p + (m_g - mu_g)'
    Sigma_g^-1 (m_g - mu_g)], S with divisor N; chisq = N F_ML. Minimised by Fisher scoring to a
    gradient below 1e-9. Standard errors from the inverse expected information divided by N
    (lavaan's default for ML). Matches lavaan 0.6-14 ``cfa()``.

    References
    ----------
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02

    Examples
    --------
    >>> fit = cfa("visual =~ x1 + x2 + x3", hs)                  # doctest: +SKIP
    >>> # In R: cfa("visual =~ x1 + x2 + x3", data = hs)
    """
    # --- ordered indicators (WLSMV/ULSMV, instrument.sem.cfa_ordinal): defaults that never collide
    if ordered is not None and ordered is not False and estimator in ("ML", "MLR"):
        raise ValueError(f"estimator={estimator!r} treats items as continuous and cannot be "
                         "combined with ordered=; use estimator='WLSMV' (or drop ordered= to "
                         "analyse the items as continuous).")
    if (ordered is not None and ordered is not False) or estimator in ("WLSMV", "ULSMV"):
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
        if missing == "listwise" and isinstance(data, pd.DataFrame):
            warn_dropped(data, model_variables(parse_syntax(model))[0], group,
                         "missing='pairwise'")
        if cluster is not None:
            raise NotImplementedError("cluster= is not implemented")
        if likelihood != "normal" or information != "expected":
            raise ValueError("likelihood= and information= apply to ML fits; WLSMV/ULSMV use "
                             "the DWLS/ULS expected information with robust.sem standard errors.")
        return cfa_ordinal(model, data, ordered=ordered, estimator=estimator, group=group,
                           group_equal=group_equal, group_partial=group_partial, std_lv=std_lv,
                           parameterization=parameterization, missing=missing,
                           se="robust.sem" if se in (None, "standard", "robust.sem") else se,
                           group_order=group_order, why="; ".join(why))
    estimator = "ML" if estimator is None else estimator
    missing = "listwise" if missing is None else missing
    se = "standard" if se is None else se
    _choice("estimator", estimator, _ESTIMATORS)
    _choice("likelihood", likelihood, _LIKELIHOODS)
    _choice("information", information, _INFORMATION)
    _choice("se", se, _SE)
    _choice("missing", missing, _MISSING)
    if estimator == "MLR" or missing == "fiml" or cluster is not None:
        from instrument.sem.cfa_robust import cfa_robust  # MLR / FIML / cluster= (issue 6)
        return cfa_robust(model, data, estimator=estimator, group=group, group_equal=group_equal,
                          group_partial=group_partial, std_lv=std_lv, meanstructure=meanstructure,
                          likelihood=likelihood, information=information, se=se, missing=missing,
                          ordered=ordered, cluster=cluster, group_order=group_order)
    if isinstance(group_equal, str):
        group_equal = (group_equal,)
    if isinstance(group_partial, str):
        group_partial = (group_partial,)
    bad = [g for g in group_equal if g not in GROUP_EQUAL_TYPES or g == "thresholds"]
    if bad:
        raise ValueError(f"group_equal= entries must be among {GROUP_EQUAL_TYPES[:-1]}; got {bad}")
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    rows = parse_syntax(model)
    if any(r.op == "|" for r in rows):
        raise NotImplementedError("thresholds (x | t1) need ordered indicators, which the ML "
                                  "engine does not estimate")
    if group is not None and group not in data.columns:
        raise ValueError(f"group={group!r} is not a column of the data")
    # observed variables of the model (without building groups yet)
    ov, _ = model_variables(rows)
    missing_cols = [v for v in ov if v not in data.columns]
    if missing_cols:
        raise ValueError(f"observed variable(s) {missing_cols} of the model are not columns of "
                         f"the data (columns: {list(data.columns)})")
    non_num = [v for v in ov if not pd.api.types.is_numeric_dtype(data[v])]
    if non_num:
        raise ValueError(f"column(s) {non_num} must be numeric")
    cols = ov + ([group] if group is not None else [])
    df = data[cols]
    if missing == "listwise":
        warn_dropped(data, ov, group, "missing='fiml'")
    keep = df.notna().all(axis=1).to_numpy()
    df = df.loc[keep]
    warn: list[str] = []
    n_dropped = int((~keep).sum())
    if group is not None:
        labels = group_labels_in_order(df[group], group_order)
        blocks = [df.loc[df[group] == g, ov].to_numpy(float) for g in labels]
        group_labels = [str(g) for g in labels]
    else:
        blocks = [df[ov].to_numpy(float)]
        group_labels = ["1"]
    ngroups = len(blocks)
    if meanstructure is None:
        meanstructure = ngroups > 1
    pt = build_partable(rows, ngroups=ngroups, group_labels=group_labels,
                        ov_names=list(data.columns), meanstructure=bool(meanstructure),
                        std_lv=std_lv, group_equal=tuple(group_equal),
                        group_partial=tuple(group_partial))
    stats = SampleStats([GroupStats.from_data(b, ov) for b in blocks])
    options = dict(estimator="ML", group=group, model=model, group_equal=list(group_equal),
                   group_partial=list(group_partial), std_lv=bool(std_lv),
                   meanstructure=bool(pt.meanstructure), likelihood=likelihood,
                   information=information, se=se, missing=missing,
                   group_labels=group_labels, nobs_dropped_listwise=n_dropped)
    meta = Meta(options=options, data_hash=hash_frame(data[cols]))
    return fit_partable(pt, stats, likelihood=likelihood, information=information, se=se,
                        meta=meta, extra_warnings=warn)


def warn_dropped(data: pd.DataFrame, ov: Sequence[str], group: str | None, instead: str) -> int:
    """Warn (with counts) when listwise deletion drops rows; returns the number dropped.

    lavaan drops such rows silently apart from a line of its summary; here the count, the share
    and the option that keeps the rows are said at fit time.
    """
    cols = [c for c in (*ov, *([group] if group else [])) if c in data.columns]
    n = len(data)
    dropped = int((~data[cols].notna().all(axis=1)).sum()) if n else 0
    if dropped:
        _warnings.warn(f"{dropped} of {n} rows ({100 * dropped / n:.0f}%) have a missing value on "
                      f"a model variable{' or the group' if group else ''} and were dropped "
                      f"(missing='listwise', lavaan's default); {instead} keeps them.",
                      UserWarning, stacklevel=3)
    return dropped
