"""`cfa()`: confirmatory factor analysis by maximum likelihood, matching lavaan 0.6-14.

Flow (lavaan's): syntax -> parameter table -> sample statistics -> model matrices ->
Fisher scoring -> standard errors -> fit measures -> `CFAResult` (plain data).
"""
from __future__ import annotations

import warnings as _warnings
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from instrument.sem.result import CFAResult
from instrument.sem.estimators.ml import (MLObjective, optimize_reporting, expected_information, hessian_information,
                                    single_threaded_blas)
from instrument.sem.model import Model
from instrument.sem.post import standardized
from instrument.sem.samplestats import GroupStats, SampleStats, group_labels_in_order
from instrument.sem.fit import in_lavaan_order
from instrument.sem.fit import chisq as _chisq, info as _info
from instrument.sem.fit import other as _other, srmr as _srmr
from instrument.sem.fit.core import core_measures
from instrument.sem.partable import GROUP_EQUAL_TYPES, ParTable, build_partable, model_variables
from instrument.results import Meta, hash_frame
from instrument.sem.syntax import parse_syntax

__all__ = ["cfa", "fit_partable", "compute_fit_measures"]

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


def _data_warnings(stats: SampleStats, labels) -> list[str]:
    out = []
    for gs, lab in zip(stats.groups, labels):
        gname = f" in group {lab}" if len(stats.groups) > 1 else ""
        p = gs.cov.shape[0]
        const = [v for v, s in zip(gs.ov_names, np.diag(gs.cov)) if s <= 0]
        if const:
            out.append(f"variable(s) {const} have zero variance{gname}")
        if gs.n <= p:
            out.append(f"too few observations{gname}: n = {gs.n} <= number of variables p = {p}")
        ev = np.linalg.eigvalsh(gs.cov)
        if ev[0] <= 1e-10 * max(ev[-1], 1e-300):
            out.append(f"the sample covariance matrix{gname} is not positive definite "
                       f"(smallest eigenvalue {ev[0]:.3g})")
    return out


def fit_partable(pt: ParTable, stats: SampleStats, *, likelihood: str = "normal",
                 information: str = "expected", se: str = "standard",
                 meta: Meta | None = None, extra_warnings: Sequence[str] = (),
                 x0: np.ndarray | None = None, max_iter: int = 500) -> CFAResult:
    """Fit a prepared parameter table to sample statistics by ML and assemble the result.

    This is `cfa()` after the data step; invariance and other modules call it with tables they
    built themselves. BLAS runs single-threaded while fitting.
    """
    with single_threaded_blas():
        return _fit_partable(pt, stats, likelihood=likelihood, information=information, se=se,
                             meta=meta, extra_warnings=extra_warnings, x0=x0,
                             max_iter=max_iter)


def _fit_partable(pt: ParTable, stats: SampleStats, *, likelihood: str = "normal",
                 information: str = "expected", se: str = "standard",
                 meta: Meta | None = None, extra_warnings: Sequence[str] = (),
                 x0: np.ndarray | None = None, max_iter: int = 500) -> CFAResult:
    warn = list(extra_warnings) + _data_warnings(stats, pt.group_labels)
    model = Model.from_partable(pt, stats)
    obj = MLObjective(model, stats, likelihood)
    if x0 is None:
        x0 = model.start_x(stats)
    x, converged, iters = optimize_reporting(obj, x0, warn, max_iter=max_iter)
    # standard errors
    N_eff = obj.N
    vcov_x = None
    if se != "none":
        try:
            if information == "expected":
                info = expected_information(model, x, stats, likelihood=likelihood)
            else:
                info = hessian_information(obj, x)
            ev = np.linalg.eigvalsh(info)
            if ev[0] <= 1e-10 * max(abs(ev[-1]), 1e-300):
                warn.append("the information matrix is singular (smallest eigenvalue "
                            f"{ev[0]:.3g}): the model may not be identified; standard errors "
                            "are not reliable")
                vcov_x = np.linalg.pinv(info) / N_eff
            else:
                vcov_x = np.linalg.inv(info) / N_eff
        except np.linalg.LinAlgError:
            warn.append("could not compute standard errors: the information matrix could not "
                        "be inverted")
    vals = model.x_to_partable(x)
    f = pt.frame
    se_rows = np.zeros(len(f))
    if vcov_x is not None:
        v = np.sqrt(np.clip(np.diag(vcov_x), 0, None))
        se_rows[model.free_rows] = v[model.x_col]
    else:
        se_rows[model.free_rows] = np.nan
    slv, sall = standardized(model, x)
    # problems in the solution
    mats = model.matrices(x)
    for g, mt in enumerate(mats):
        gname = f" in group {pt.group_labels[g]}" if pt.ngroups > 1 else ""
        neg_ov = [v for i, v in enumerate(model.ov_names) if mt["theta"][i, i] < 0]
        if neg_ov:
            warn.append(f"some estimated ov variances are negative{gname} (Heywood case): "
                        f"{neg_ov}")
        neg_lv = [v for i, v in enumerate(model.lv_names) if mt["psi"][i, i] < 0]
        if neg_lv:
            warn.append(f"some estimated lv variances are negative{gname}: {neg_lv}")
        elif model.m and np.linalg.eigvalsh(model.lv_cov(x)[g])[0] <= 0:
            warn.append(f"the covariance matrix of the latent variables{gname} is not positive "
                        "definite")
        if np.linalg.eigvalsh(model.implied(x)[g].sigma)[0] <= 0:
            warn.append(f"the model-implied covariance matrix{gname} is not positive definite")
    fm, srmr_groups = compute_fit_measures(model, x, stats, likelihood=likelihood)
    # estimates table
    z = np.full(len(f), np.nan)
    free_mask = f["free"].to_numpy() > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z[free_mask] = vals[free_mask] / se_rows[free_mask]
    pval = 2.0 * _st.norm.sf(np.abs(z))
    q = _st.norm.ppf(0.975)
    est = pd.DataFrame({
        "lhs": f["lhs"].to_numpy(), "op": f["op"].to_numpy(), "rhs": f["rhs"].to_numpy(),
        "group": f["group"].to_numpy(), "label": f["label"].to_numpy(), "est": vals,
        "se": se_rows, "z": z, "pvalue": pval,
        "ci.lower": vals - q * se_rows, "ci.upper": vals + q * se_rows,
        "std.lv": slv, "std.all": sall})
    ptf = f.copy()
    ptf["est"] = vals
    ptf["se"] = se_rows
    ptf["start"] = model.x_to_partable(x0)
    vc = model.vcov_frame(vcov_x)
    implied = [dict(cov=imp.sigma, mean=imp.mu) for imp in model.implied(x)]
    sample = [dict(n=gs.n, cov=gs.cov, mean=gs.mean) for gs in stats.groups]
    if meta is None:
        meta = Meta(options=dict(estimator="ML", likelihood=likelihood, information=information,
                                 se=se, meanstructure=pt.meanstructure,
                                 group_labels=list(pt.group_labels)))
    for w in warn:
        _warnings.warn(w, stacklevel=3)
    return CFAResult(partable=ptf, fit_measures=fm, estimates=est, converged=bool(converged),
                     iterations=int(iters), warnings=tuple(warn), meta=meta, implied=implied,
                     sample=sample, vcov=vc, ov_names=tuple(pt.ov_names),
                     lv_names=tuple(pt.lv_names), group_labels=tuple(pt.group_labels),
                     constraints=tuple(pt.constraints), srmr_group=tuple(srmr_groups))


def compute_fit_measures(model: Model, x: np.ndarray, stats: SampleStats, *,
                         likelihood: str = "normal") -> tuple[dict, list]:
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
    `instrument.sem.fit`.
    """
    obj = MLObjective(model, stats, likelihood)
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
    fm = core_measures(chisq, df, bl, df_b, logl=logl, logl_h1=logl_h1, npar=nx,
                       ntotal=ntotal, n_rmsea=n_rmsea, ngroups=G, fmin=F / 2.0)
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
