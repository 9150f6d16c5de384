"""Post-estimation quantities from a fitted model: standardized solution, R², residuals,
modification indices and factor scores. Pure functions of (model, x, sample statistics)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from instrument.sem.fit.dist import Z975, norm_sf
from instrument.sem.estimators.ml import gamma_nt, moment_weight
from instrument.sem.model import Model
from instrument.sem.samplestats import SampleStats
from instrument.sem.partable import ParTable

__all__ = ["standardized", "r2", "residuals", "modindices", "factor_scores", "row_se",
           "estimates_frame", "fitted_partable", "solution_warnings"]


def row_se(model: Model, vcov_x: np.ndarray | None, nrows: int) -> np.ndarray:
    """Standard error of every table row: 0 on fixed rows, sqrt(diag(K V K')) on the free rows
    (``theta_free = K x + k0``; rows that share one parameter share its SE), NaN on free rows
    without a vcov."""
    se = np.zeros(nrows)
    if vcov_x is None:
        se[model.free_rows] = np.nan
    else:
        var = (np.diag(vcov_x)[model.x_col] if model.k_onehot
               else np.einsum("ij,jk,ik->i", model.K, vcov_x, model.K))
        se[model.free_rows] = np.sqrt(np.clip(var, 0, None))
    return se


def estimates_frame(frame: pd.DataFrame, est: np.ndarray, se: np.ndarray, std_lv: np.ndarray,
                    std_all: np.ndarray) -> pd.DataFrame:
    """lavaan's ``parameterEstimates()`` columns: lhs op rhs group label est se z pvalue
    ci.lower ci.upper (Wald, 95%), plus std.lv and std.all; z and p only for free rows."""
    z = np.full(len(frame), np.nan)
    free = frame["free"].to_numpy() > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z[free] = est[free] / se[free]
    q = Z975
    return pd.DataFrame({
        "lhs": frame["lhs"].array, "op": frame["op"].array,
        "rhs": frame["rhs"].array, "group": frame["group"].to_numpy(),
        "label": frame["label"].array, "est": est, "se": se, "z": z,
        "pvalue": 2.0 * norm_sf(np.abs(z)), "ci.lower": est - q * se,
        "ci.upper": est + q * se, "std.lv": std_lv, "std.all": std_all})


def fitted_partable(frame: pd.DataFrame, est: np.ndarray, se: np.ndarray,
                    start: np.ndarray) -> pd.DataFrame:
    """The parameter table with the ``est``, ``se`` and ``start`` columns filled in."""
    out = frame.copy()
    out["est"] = est
    out["se"] = se
    out["start"] = start
    return out


def solution_warnings(model: Model, x: np.ndarray, group_labels) -> list[str]:
    """lavaan's post-estimation checks, one message each: negative observed (Heywood) or latent
    variances, latent or implied covariance matrices that are not positive definite."""
    out = []
    implied = model.implied(x)
    lv_cov = model.lv_cov(x) if model.m else None
    for g, mt in enumerate(model.matrices(x)):
        gname = f" in group {group_labels[g]}" if len(group_labels) > 1 else ""
        neg_ov = [v for i, v in enumerate(model.ov_names) if mt["theta"][i, i] < 0]
        if neg_ov:
            out.append(f"some estimated ov variances are negative{gname} (Heywood case): "
                       f"{neg_ov}")
        neg_lv = [v for i, v in enumerate(model.lv_names) if mt["psi"][i, i] < 0]
        if neg_lv:
            out.append(f"some estimated lv variances are negative{gname}: {neg_lv}")
        elif lv_cov is not None and np.linalg.eigvalsh(lv_cov[g])[0] <= 0:
            out.append(f"the covariance matrix of the latent variables{gname} is not positive "
                       "definite")
        if np.linalg.eigvalsh(implied[g].sigma)[0] <= 0:
            out.append(f"the model-implied covariance matrix{gname} is not positive definite")
    return out


def _group_sds(model: Model, x: np.ndarray):
    imps = model.implied(x)
    mats = model.matrices(x)
    lvc = model.lv_cov(x)
    out = []
    for imp, mt, lc in zip(imps, mats, lvc):
        out.append(dict(ov=np.sqrt(np.abs(np.diag(imp.sigma))), lv=np.sqrt(np.abs(np.diag(lc))),
                        th=np.sqrt(np.abs(np.diag(mt["theta"]))),
                        ps=np.sqrt(np.abs(np.diag(mt["psi"])))))
    return out


def standardized(model: Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """std.lv and std.all of every table row (lavaan ``standardizedSolution``, cov.std = TRUE).

    Notes
    -----
    With sd_lv the model-implied latent SDs and sd_ov the implied observed SDs:
    loadings lambda sd_lv (std.lv) and lambda sd_lv / sd_ov (std.all); latent (co)variances
    psi_kl / (sd_k sd_l) (residual SDs for covariances, total for variances); residual
    variances theta_ii / sigma_ii and residual covariances theta_ij / sqrt(theta_ii theta_jj)
    (std.all only); intercepts nu / sd_ov; latent means alpha / sd_lv; regressions
    beta sd_rhs / sd_lhs.
    """
    f = model.pt.frame
    vals = model.x_to_partable(x)
    sds = _group_sds(model, x)
    ovi = {v: i for i, v in enumerate(model.ov_names)}
    lvi = {v: i for i, v in enumerate(model.lv_names)}
    slv = np.full(len(f), np.nan)
    sall = np.full(len(f), np.nan)
    cols = (model.pt.col(c).tolist() for c in ("lhs", "op", "rhs", "group"))
    for r, (lhs, op, rhs, g) in enumerate(zip(*cols)):
        s = sds[int(g) - 1]
        v = vals[r]
        if op == "=~":
            a = s["lv"][lvi[lhs]]
            slv[r] = v * a
            if rhs in lvi:
                slv[r] = v * a / s["lv"][lvi[rhs]]
                sall[r] = slv[r]
            else:
                sall[r] = v * a / s["ov"][ovi[rhs]]
        elif op == "~":
            if lhs in lvi and rhs in lvi:
                slv[r] = sall[r] = v * s["lv"][lvi[rhs]] / s["lv"][lvi[lhs]]
            else:
                slv[r] = v * s["lv"][lvi[rhs]]
                sall[r] = slv[r] / s["ov"][ovi[lhs]]
        elif op == "~~":
            if lhs in lvi:
                i, j = lvi[lhs], lvi[rhs]
                if i == j:
                    slv[r] = sall[r] = v / s["lv"][i] ** 2
                else:
                    slv[r] = sall[r] = v / (s["ps"][i] * s["ps"][j])
            else:
                i, j = ovi[lhs], ovi[rhs]
                slv[r] = v
                if i == j:
                    sall[r] = v / s["ov"][i] ** 2
                else:
                    sall[r] = v / (s["th"][i] * s["th"][j])
        elif op == "~1":
            if lhs in lvi:
                slv[r] = sall[r] = v / s["lv"][lvi[lhs]]
            else:
                slv[r] = v
                sall[r] = v / s["ov"][ovi[lhs]]
    return slv, sall


def r2(model: Model, x: np.ndarray) -> list[dict]:
    """R² per group: 1 - theta_ii / sigma_ii for observed and 1 - psi_kk / var_k for endogenous
    latent variables (lavaan ``lavInspect(fit, "r2")``)."""
    out = []
    endo = set()
    pt = model.pt
    for lhs, op, rhs in zip(pt.col("lhs").tolist(), pt.col("op").tolist(), pt.col("rhs").tolist()):
        if op == "~" and lhs in model.lv_names:
            endo.add(lhs)
        if op == "=~" and rhs in model.lv_names:
            endo.add(rhs)
    for imp, mt, lc in zip(model.implied(x), model.matrices(x), model.lv_cov(x)):
        d = {v: 1.0 - mt["theta"][i, i] / imp.sigma[i, i] for i, v in enumerate(model.ov_names)}
        for k, v in enumerate(model.lv_names):
            if v in endo:
                d[v] = 1.0 - mt["psi"][k, k] / lc[k, k]
        out.append(d)
    return out


def residuals(model: Model, x: np.ndarray, stats: SampleStats, *, type: str = "raw",
              vcov_x: np.ndarray | None = None, ntotal: float | None = None) -> list[dict]:
    """Residual moments per group: ``{"cov": (p,p), "mean": (p,) or None}``.

    Parameters
    ----------
    type : {"raw", "cor.bentler", "cor.bollen", "standardized"}
        ``raw``: S - Sigma (and m - mu); ``cor.bentler``: raw / sqrt(s_ii s_jj) with sample SDs;
        ``cor.bollen``: cor(S) - cor(Sigma); ``standardized``: raw / SE(raw), where
        ACOV(raw) = Q Gamma_NT(S) Q' / n_g with Q = I - (n_g/N) Delta A0^-1 Delta' W(Sigma),
        A0 the unit expected information and W the (structured) h1 information at Sigma-hat
        (Ogasawara, 2001; lavaan ``lav_residuals_acov``, z.type = "standardized").
    """
    imps = model.implied(x)
    out = []
    deltas = model.delta(x) if type == "standardized" else None
    for g, (gs, imp) in enumerate(zip(stats.groups, imps)):
        S, m = gs.cov, gs.mean
        rc = S - imp.sigma
        rm = (m - imp.mu) if imp.mu is not None else None
        if type == "raw":
            out.append(dict(cov=rc, mean=rm))
        elif type == "cor.bentler":
            sd = np.sqrt(np.diag(S))
            out.append(dict(cov=rc / np.outer(sd, sd), mean=None if rm is None else rm / sd))
        elif type == "cor.bollen":
            sd = np.sqrt(np.diag(S))
            sdh = np.sqrt(np.diag(imp.sigma))
            out.append(dict(cov=S / np.outer(sd, sd) - imp.sigma / np.outer(sdh, sdh),
                            mean=None if rm is None else m / sd - imp.mu / sdh))
        elif type == "standardized":
            if vcov_x is None or ntotal is None:
                raise ValueError("standardized residuals need vcov_x and ntotal")
            ms = imp.mu is not None
            D = deltas[g]
            gw = gs.n / stats.ntotal
            acov_obs = gamma_nt(S, ms, model.vr, model.vc) / gs.n
            A1 = moment_weight(imp.sigma, ms, model.vr, model.vc)
            A0inv = vcov_x * ntotal            # inverse unit expected information
            Q = np.eye(D.shape[0]) - gw * (D @ A0inv @ D.T) @ A1
            acov = Q @ acov_obs @ Q.T
            se = np.sqrt(np.clip(np.diag(acov), 0, None))
            p = model.p
            off = p if ms else 0
            vec = rc[model.vr, model.vc]
            sec = se[off:]
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(sec > 1e-12 * max(1.0, sec.max()), vec / sec, np.nan)
            Z = np.zeros((p, p))
            Z[model.vr, model.vc] = z
            Z[model.vc, model.vr] = z
            zm = None
            if ms:
                with np.errstate(divide="ignore", invalid="ignore"):
                    zm = np.where(se[:p] > 1e-12, rm / se[:p], np.nan)
            out.append(dict(cov=Z, mean=zm))
        else:
            raise ValueError("type= must be one of 'raw', 'cor.bentler', 'cor.bollen', "
                             f"'standardized'; got {type!r}")
    return out


def modindices(model: Model, x: np.ndarray, stats: SampleStats, *,
               likelihood: str = "normal") -> pd.DataFrame:
    """Modification indices for fixed-to-zero parameters (lavaan ``modindices()``).

    Candidates (per group): every loading of every observed variable on every factor and every
    covariance between two observed variables that is not free in the model, and every fixed
    parameter of the table (marker loadings, fixed latent variances and means, ...), released
    at its fixed value. Candidates whose release is not
    identified (V ~ 0, e.g. a marker loading in a single group) are dropped, as lavaan's
    ``na.remove = TRUE`` does.

    Returns
    -------
    DataFrame with columns ``lhs op rhs group mi epc sepc.lv sepc.all sepc.nox``.

    Notes
    -----
    With the expected unit information I over (free x, candidates c), the score
    s_c = -(1/2) dF/dc and V = I_cc - I_cx I_xx^-1 I_xc: mi = N s_c^2 / V, epc = s_c / V
    (univariate score test; Sorbom, 1989). sepc.lv scales by the latent SD, sepc.all also by the
    implied observed SD (loadings) or by sqrt(theta_ii theta_jj) (residual covariances).

    References
    ----------
    Sorbom, D. (1989). Model modification. Psychometrika, 54, 371-384.
    https://doi.org/10.1007/BF02294623
    """
    f = model.pt.frame
    ngroups = model.ngroups
    ov, lv = model.ov_names, model.lv_names
    have = set(zip(f["lhs"], f["op"], f["rhs"], f["group"]))
    new = []
    for g in range(1, ngroups + 1):
        for a in lv:
            for v in ov:
                if (a, "=~", v, g) not in have:
                    new.append((a, "=~", v, g))
        for i in range(len(ov)):
            for j in range(i + 1, len(ov)):
                a, b = ov[i], ov[j]
                if (a, "~~", b, g) not in have and (b, "~~", a, g) not in have:
                    new.append((a, "~~", b, g))
    from instrument.sem.estimators.ml import MLObjective
    vals = model.x_to_partable(x)
    ext = f.copy()
    ext["est"] = vals
    # fixed loadings and (co)variances of the table are candidates too (freed at their value)
    fixed_cand = (ext["free"].to_numpy() == 0) & ext["op"].isin(["=~", "~~", "~1", "~"]).to_numpy()
    add = pd.DataFrame([dict(lhs=a, op=o, rhs=b, user=0, block=g, group=g, free=1, ustart=np.nan,
                             exo=0, label="", plabel="", start=np.nan, est=0.0, se=np.nan)
                        for a, o, b, g in new])
    ext.loc[fixed_cand, "free"] = 1
    ext.loc[fixed_cand, "label"] = ""
    ext = pd.concat([ext, add], ignore_index=True) if len(add) else ext
    ext["id"] = np.arange(1, len(ext) + 1)
    is_cand = np.concatenate([fixed_cand, np.ones(len(add), bool)])
    ext["free"] = np.where(ext["free"] > 0, np.cumsum(ext["free"] > 0), 0)
    pt2 = ParTable(ext, model.pt.ov_names, model.pt.lv_names, model.pt.ngroups,
                   model.pt.group_labels, model.pt.meanstructure, model.pt.constraints)
    m2 = Model.from_partable(pt2)
    x2 = m2.partable_to_x(ext["est"].to_numpy(float))
    cand_col = np.zeros(m2.nx, bool)
    cand_col[m2.x_col[is_cand[m2.free_rows]]] = True
    kx, kc = np.flatnonzero(~cand_col), np.flatnonzero(cand_col)
    rows_c = m2.x_rows[kc]
    e_l, e_o, e_r, e_g = (ext[c].to_numpy() for c in ("lhs", "op", "rhs", "group"))
    cands = [(e_l[r], e_o[r], e_r[r], int(e_g[r])) for r in rows_c]
    nc = len(cands)
    obj = MLObjective(m2, stats, likelihood)
    grad, info = obj.gradient_and_information(x2)
    Ixx, Ixc, Icc = info[np.ix_(kx, kx)], info[np.ix_(kx, kc)], info[np.ix_(kc, kc)]
    V = np.diag(Icc) - np.einsum("ij,ij->j", Ixc, np.linalg.solve(Ixx, Ixc))
    score = -0.5 * grad[kc]
    N = obj.N
    with np.errstate(divide="ignore", invalid="ignore"):
        V = np.where(V > 1e-8 * np.maximum(np.diag(Icc), 1e-300), V, np.nan)
        mi = N * score ** 2 / V
        epc = score / V
    sds = _group_sds(model, x)
    ovi = {v: i for i, v in enumerate(ov)}
    lvi = {v: i for i, v in enumerate(lv)}
    slv, sall = np.empty(nc), np.empty(nc)
    for t, (a, o, b, g) in enumerate(cands):
        s = sds[g - 1]
        e = epc[t]
        if o == "=~" and b in ovi:
            slv[t] = e * s["lv"][lvi[a]]
            sall[t] = slv[t] / s["ov"][ovi[b]]
        elif o == "=~":
            slv[t] = sall[t] = e * s["lv"][lvi[a]] / s["lv"][lvi[b]]
        elif o == "~":
            slv[t] = sall[t] = e * s["lv"][lvi[b]] / s["lv"][lvi[a]]
        elif o == "~1":
            if a in lvi:
                slv[t] = sall[t] = e / s["lv"][lvi[a]]
            else:
                slv[t], sall[t] = e, e / s["ov"][ovi[a]]
        elif a in lvi:
            i, j = lvi[a], lvi[b]
            slv[t] = sall[t] = e / (s["lv"][i] ** 2 if i == j else s["ps"][i] * s["ps"][j])
        else:
            i, j = ovi[a], ovi[b]
            slv[t] = e
            sall[t] = e / (s["ov"][i] ** 2 if i == j else s["th"][i] * s["th"][j])
    out = pd.DataFrame({"lhs": [c[0] for c in cands], "op": [c[1] for c in cands],
                        "rhs": [c[2] for c in cands], "group": [c[3] for c in cands],
                        "mi": mi, "epc": epc, "sepc.lv": slv, "sepc.all": sall,
                        "sepc.nox": sall})
    # lavaan's na.remove: candidates whose release is not identified (V ~ 0) are dropped
    return out[np.isfinite(out["mi"].to_numpy())].reset_index(drop=True)


def factor_scores(model: Model, x: np.ndarray, data_groups: list[np.ndarray],
                  stats: SampleStats, *, method: str = "regression") -> list[np.ndarray]:
    """Factor scores per group (lavaan ``lavPredict``).

    Notes
    -----
    regression: f = alpha* + Phi Lambda' Sigma^-1 (y - mu); Bartlett:
    f = alpha* + (Lambda' Theta^-1 Lambda)^-1 Lambda' Theta^-1 (y - mu), with Phi the implied
    latent covariance, alpha* = B alpha and mu the implied means (the sample means without a
    mean structure). A row with missing values is scored from its answered variables o
    (Lambda_o, Sigma_oo, Theta_oo, mu_o), as lavaan's ``lavPredict`` does for FIML fits; a
    row with no answer stays NaN.

    References
    ----------
    Bartlett, M. S. (1937). The statistical conception of mental factors. British Journal of
    Psychology, 28, 97-104. Thomson, G. H. (1935). The definition and measurement of "g".
    """
    out = []
    for y, mt, imp, lc, gs in zip(data_groups, model.matrices(x), model.implied(x),
                                  model.lv_cov(x), stats.groups):
        L = mt["lambda_"]
        Bi = Model._ibinv(mt["beta"])
        a = Bi @ mt["alpha"]
        mu = imp.mu if imp.mu is not None else gs.mean
        yc = np.asarray(y, float) - mu
        if method not in ("regression", "Bartlett"):
            raise ValueError(f"method= must be one of 'regression', 'Bartlett'; got {method!r}")
        f = np.full((len(yc), L.shape[1]), np.nan)
        # one weight matrix per pattern of answered variables (a single pattern without NaN)
        obs = np.isfinite(yc)
        patterns, inverse = np.unique(obs, axis=0, return_inverse=True)
        for k, o in enumerate(patterns):
            rows = np.flatnonzero(inverse.ravel() == k)
            if not o.any():
                continue
            Lo = L[o]
            if method == "regression":
                A = lc @ Lo.T @ np.linalg.inv(imp.sigma[np.ix_(o, o)])
            else:
                Ti = np.linalg.inv(mt["theta"][np.ix_(o, o)])
                A = np.linalg.solve(Lo.T @ Ti @ Lo, Lo.T @ Ti)
            f[rows] = yc[np.ix_(rows, o)] @ A.T + a
        out.append(f)
    return out


def standardized_se(model: Model, x: np.ndarray, vcov_x: np.ndarray, *,
                    type: str = "std.all") -> tuple[np.ndarray, np.ndarray]:
    """Standardized estimates of every table row and their delta-method standard errors.

    Notes
    -----
    SE = sqrt(diag(J V J')) with J = d std / d x (central differences of the closed-form
    standardization, Richardson-extrapolated) and V the covariance of x; lavaan's
    ``standardizedSolution()`` (``lav_standardize_*`` with its analytic Jacobian).
    """
    if type not in ("std.all", "std.lv"):
        raise ValueError(f"type= must be one of 'std.lv', 'std.all'; got {type!r}")
    k = 1 if type == "std.all" else 0
    est = standardized(model, x)[k]
    J = np.zeros((len(est), len(x)))
    for i in range(len(x)):
        h = 1e-5 * max(1.0, abs(x[i]))
        e = np.zeros(len(x))
        e[i] = h
        d1 = (standardized(model, x + e)[k] - standardized(model, x - e)[k]) / (2 * h)
        d2 = (standardized(model, x + 2 * e)[k] - standardized(model, x - 2 * e)[k]) / (4 * h)
        J[:, i] = (4 * d1 - d2) / 3
    var = np.einsum("ij,jk,ik->i", J, vcov_x, J)
    se = np.sqrt(np.clip(var, 0, None))
    se[se < 1e-9] = 0.0       # constant after standardization (e.g. std.lv variances): 0
    return est, se
