"""`cfa()` for ordered indicators (estimator WLSMV or ULSMV): the data step.

The entry of `instrument.sem.cfa.ESTIMATORS` for ordered indicators (``ordered=`` given or the
estimator WLSMV/ULSMV); `instrument.sem.cfa.cfa` validates the options before it calls here.
The rows are selected by the engine's one data step (`instrument.sem.data.prepare`): with
``missing="pairwise"`` only rows whose every item is missing are removed before N is counted.
"""
from __future__ import annotations

from typing import Sequence

import pandas as pd

from instrument.sem.estimators.categorical import fit_categorical
from instrument.sem.polychoric import sample_stats_ordinal
from instrument.sem.partable import build_partable, model_variables
from instrument.results import Meta
from instrument.sem.data import prepare
from instrument.sem.syntax import parse_syntax

__all__ = ["cfa_ordinal", "ORDINAL_ESTIMATORS"]

ORDINAL_ESTIMATORS = ("WLSMV", "ULSMV")
# two-step sample statistics of recent calls, keyed by a hash of the data actually used (an
# invariance ladder refits the same data several times); a few entries only
_STATS_CACHE: dict = {}
_STATS_CACHE_SIZE = 4


def _sample_stats_cached(d, group, group_order, missing):
    key = (d.data_hash, tuple(d.ov), group,
           None if group_order is None else tuple(map(str, group_order)), missing)
    hit = _STATS_CACHE.get(key)
    if hit is None:
        hit = sample_stats_ordinal(d.frame, ov_names=list(d.ov), ordered=list(d.ov), group=group,
                                   group_order=group_order, missing=missing)
        if len(_STATS_CACHE) >= _STATS_CACHE_SIZE:
            _STATS_CACHE.pop(next(iter(_STATS_CACHE)))
        _STATS_CACHE[key] = hit
    return hit


def cfa_ordinal(model: str, data: pd.DataFrame, *, ordered: Sequence[str] | bool = True,
                estimator: str = "WLSMV", group: str | None = None,
                group_equal: Sequence[str] = (), group_partial: Sequence[str] = (),
                std_lv: bool = False, parameterization: str = "delta",
                missing: str = "pairwise", se: str = "robust.sem",
                group_order: Sequence | None = None, why: str = "", id_cat: str | None = None):
    """CFA with ordered indicators by WLSMV (lavaan ``cfa(..., ordered=, estimator="WLSMV")``).

    Parameters
    ----------
    model : str
        lavaan syntax; thresholds may be written ``x | t1 + t2`` (with labels/values); an
        element repeated within a statement has its modifiers merged as lavaan does
        (``measEq.syntax`` output works, `instrument.sem.partable.merge_repeated`).
    data : pandas.DataFrame
        Integer-coded (or ordered Categorical) items, NaN = missing.
    ordered : sequence of str or True
        The ordered indicators (True: every observed variable of the model). Every indicator
        must be ordered (mixed continuous/ordered models are not implemented).
    estimator : {"WLSMV", "ULSMV"}
        DWLS (``WLS.V`` weight) or ULS (identity weight); both with robust.sem standard errors
        and the scaled-shifted test.
    parameterization : {"delta", "theta"}
        delta: latent response variances fixed at 1/Delta^2 (Delta = ``x ~*~ x``, 1 in group 1),
        residual variances computed; theta: residual variances are parameters (1 in group 1).
    missing : {"pairwise", "listwise"}
        pairwise: thresholds from each item's observed values, each polychoric correlation from
        the rows complete on its pair (lavaan ``missing = "pairwise"``); listwise: complete rows.
    se : {"robust.sem", "none"}
    id_cat : {None, "Wu.Estabrook.2016"}
        Identification across groups: lavaan's (None) or Wu & Estabrook's (2016), see
        `instrument.sem.partable.build_partable`.

    Returns
    -------
    CFAResult
        ``meta.options`` records the estimator, parameterization, missing handling and why.

    Notes
    -----
    Two-step estimation (Muthen, 1984): sample thresholds, polychoric correlations and their
    asymptotic covariance (`instrument.sem.polychoric.sample_stats_ordinal`), then the
    model by DWLS (`instrument.sem.estimators.categorical`). lavaan 0.6-14's WLSMV.

    References
    ----------
    Muthen, B., du Toit, S. H. C., & Spisic, D. (1997). Robust inference using weighted least
    squares and quadratic estimating equations in latent variable modeling with categorical and
    continuous outcomes. Technical report.
    Rosseel, Y. (2012). lavaan: An R package for structural equation modeling. Journal of
    Statistical Software, 48(2), 1-36. https://doi.org/10.18637/jss.v048.i02
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame; got {type(data).__name__}")
    rows = parse_syntax(model)
    ov, _ = model_variables(rows)
    if ordered is True:
        ordered = list(ov)
    elif isinstance(ordered, str):
        ordered = [ordered]
    ordered = [v for v in ordered]
    d = prepare(rows, data, group=group, group_order=group_order, missing=missing,
                ordered=ordered, keeps="missing='pairwise'")
    unknown = [v for v in ordered if v not in data.columns]
    if unknown:
        raise ValueError(f"ordered= names {unknown} are not columns of the data")
    not_ord = [v for v in ov if v not in ordered]
    if not_ord:
        raise NotImplementedError(f"indicator(s) {not_ord} are not in ordered=; models mixing "
                                  "continuous and ordered indicators are not implemented")
    cstats = _sample_stats_cached(d, group, group_order, missing)
    pt = build_partable(rows, ngroups=cstats.ngroups,
                        group_labels=[str(g) if g is not None else "1"
                                      for g in cstats.group_labels],
                        ov_names=list(data.columns), meanstructure=True, std_lv=std_lv,
                        group_equal=tuple(group_equal), group_partial=tuple(group_partial),
                        ordered=tuple(ov),
                        nlevels=dict(zip(cstats.ordinal[0].ov_names, cstats.ordinal[0].nlevels)),
                        parameterization=parameterization, id_cat=id_cat)
    options = dict(estimator=estimator, group=group, model=model, group_equal=list(group_equal),
                   group_partial=list(group_partial), std_lv=bool(std_lv), meanstructure=True,
                   parameterization=parameterization, ordered=list(ordered), missing=missing,
                   se=se, test="scaled.shifted",
                   estimator_internal="DWLS" if estimator == "WLSMV" else "ULS",
                   group_labels=list(pt.group_labels), nobs_dropped=d.nobs_dropped,
                   **({} if id_cat is None else {"id_cat": id_cat}),
                   nobs_dropped_empty=d.nobs_empty,
                   why=why or (f"estimator {estimator} with {parameterization} parameterization "
                               f"and {missing} missing-data handling, as requested"))
    meta = Meta(options=options, data_hash=d.data_hash)
    return fit_categorical(pt, cstats, parameterization=parameterization, estimator=estimator,
                           se=se, meta=meta, extra_warnings=d.warnings)
