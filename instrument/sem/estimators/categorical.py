"""WLSMV / ULSMV for ordered indicators: thresholds as parameters, delta or theta
parameterization, DWLS estimation, robust.sem standard errors and the scaled-shifted test
(lavaan 0.6-14 ``cfa(..., ordered=, estimator = "WLSMV")``).

The continuous engine (`instrument.sem.model.Model`) supplies the latent-response moments
``mu* = nu + Lambda B alpha`` and ``Sigma* = Lambda B Psi B' Lambda' + Theta`` and their Jacobian;
this module maps them to lavaan's WLS moment vector ``[thresholds, correlations]`` per group:

    th_ik = s_i (tau_ik - mu*_i),     r_ij = s_i s_j Sigma*_ij  (i > j),

with ``s_i = Delta_i`` (the ``x ~*~ x`` scale parameter; delta parameterization, residual
variances *computed* as ``1/Delta_i^2 - diag(Lambda B Psi B' Lambda')_i``) or
``s_i = Sigma*_ii^(-1/2)`` (theta parameterization, residual variances are parameters).
"""
from __future__ import annotations

import math
import weakref
from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy import linalg as _la
from scipy import stats as _st

from instrument.sem.estimators.dwls import dwls_sandwich, dwls_vcov_robust
from instrument.sem.linalg import gram, sparse_if_sparse
from instrument.sem.optim import optimize_reporting
from instrument.sem.model import Model, with_defined_rows
from instrument.sem.post import estimates_frame, fitted_partable, row_se, standardized
from instrument.sem.samplestats import GroupStats, SampleStats
from instrument.sem.fit import in_lavaan_order
from instrument.sem.fit.measures import RobustStat, TestStat, fit_indices, scaled_test
from instrument.sem.fit import other as _other
from instrument.sem.partable import PARTABLE_COLUMNS, ParTable
from instrument.sem.test.scaled_shifted import (scaled_shifted, scaled_shifted_baseline,
                                                wgamma_traces)

__all__ = ["CategoricalModel", "DWLSObjective",
           "fit_categorical", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("delta", "theta")


class CategoricalModel(Model):
    """`Model` plus thresholds and scale factors, with lavaan's WLS moment vector.

    Public additions: `wls_est(x)` and `wls_delta(x)` (per group, in the order of
    ``SampleStats.ordinal[g].wls_obs``), `parameterization`.
    """

    def __init__(self, pt: ParTable, cstats: SampleStats, parameterization: str):
        super().__init__(pt, pt.ngroups, pt.ov_names, pt.lv_names, True)
        self.parameterization = parameterization
        ordered = set(pt.options.get("ordered", ()))
        ovi = {v: i for i, v in enumerate(self.ov_names)}
        for gs in cstats.ordinal:
            if tuple(gs.ov_names) != tuple(self.ov_names):
                raise ValueError("the sample statistics must use the model's observed "
                                 f"variables in order {self.ov_names}; got {gs.ov_names}")
            if any(t != "ordered" for t in gs.ov_types):
                raise NotImplementedError("WLSMV with a mix of ordered and continuous "
                                          "indicators is not implemented; declare every "
                                          "indicator in ordered=")
        self.ord_idx = np.array([ovi[v] for v in self.ov_names if v in ordered], int)
        f = pt.frame
        lhs, op, rhs = f["lhs"].to_numpy(), f["op"].to_numpy(), f["rhs"].to_numpy()
        grp = f["group"].to_numpy()
        freepos = {r: k for k, r in enumerate(self.free_rows)}
        vi, vc = self.vr, self.vc
        vech_pos = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(vi, vc))}
        self.th_rows, self.th_var, self.corr_vech, self.corr_ij = [], [], [], []
        self.scale_rows = []
        self.theta_rows = []
        rowkey = {(lhs[r], op[r], rhs[r], int(grp[r])): r for r in range(len(f))}
        for g, gs in enumerate(cstats.ordinal, start=1):
            th_r, th_v = [], []
            for nm, idx in zip(gs.th_names, gs.th_idx):
                v, t = nm.split("|")
                r = rowkey.get((v, "|", t, g))
                if r is None:
                    raise ValueError(f"threshold {nm} of group {g} is not in the model")
                th_r.append(r)
                th_v.append(idx - 1)
            self.th_rows.append(np.array(th_r, int))
            self.th_var.append(np.array(th_v, int))
            cij, cv = [], []
            for nm in gs.wls_obs_names[len(gs.th):]:
                a, b = nm.split("~~")
                i, j = ovi[b], ovi[a]           # names are "x_j~~x_i" with i > j
                cij.append((i, j))
                cv.append(vech_pos[(i, j)] if (i, j) in vech_pos else vech_pos[(j, i)])
            self.corr_ij.append(np.array(cij, int).reshape(-1, 2))
            self.corr_vech.append(np.array(cv, int))
            self.scale_rows.append(np.array([rowkey.get((v, "~*~", v, g), -1)
                                             for v in self.ov_names], int))
            self.theta_rows.append(np.array([rowkey.get((v, "~~", v, g), -1)
                                             for v in self.ov_names], int))
        # x column of every table row (-1 when fixed)
        self.row_xcol = np.full(len(f), -1, int)
        self.row_xcol[self.free_rows] = self.x_col
        self._freepos = freepos

    # -------------------------------------------------------------- matrices
    def matrices(self, x: np.ndarray) -> list[dict]:
        """Engine matrices; with the delta parameterization the residual variances of ordered
        indicators are set to ``1/Delta^2 - diag(Lambda B Psi B' Lambda')``."""
        mats = super().matrices(x)
        if self.parameterization != "delta":
            return mats
        vals = self.x_to_partable(x)
        for g, mt in enumerate(mats):
            M = mt["lambda_"] @ self._ibinv(mt["beta"])
            common = np.einsum("ij,jk,ik->i", M, mt["psi"], M)
            d = vals[self.scale_rows[g]]
            th = mt["theta"]
            oi = self.ord_idx
            if not np.all(d[oi] != 0):
                raise FloatingPointError("a scale parameter (~*~) is 0")
            th[oi, oi] = 1.0 / d[oi] ** 2 - common[oi]
        return mats

    def scales(self, x: np.ndarray) -> list[np.ndarray]:
        """s_g per group: Delta (delta) or diag(Sigma*)^-1/2 (theta).

        Raises
        ------
        FloatingPointError
            A latent response has a non-positive implied variance (theta): the point is outside
            the parameter space, which the objective treats as infeasible (value +inf).
        """
        if self.parameterization == "delta":
            vals = self.x_to_partable(x)
            return [vals[r] for r in self.scale_rows]
        var = [np.diag(imp.sigma) for imp in self.implied(x)]
        if not all(np.all(v > 0) for v in var):
            raise FloatingPointError("a latent response has a non-positive implied variance")
        return [1.0 / np.sqrt(v) for v in var]

    def wls_est(self, x: np.ndarray) -> list[np.ndarray]:
        """Model-implied ``[thresholds, correlations]`` per group (lavaan's ``wls.est``)."""
        vals = self.x_to_partable(x)
        out = []
        for g, (imp, s) in enumerate(zip(self.implied(x), self.scales(x))):
            tau = vals[self.th_rows[g]]
            iv = self.th_var[g]
            th = s[iv] * (tau - imp.mu[iv])
            i, j = self.corr_ij[g][:, 0], self.corr_ij[g][:, 1]
            r = s[i] * s[j] * imp.sigma[i, j]
            out.append(np.concatenate([th, r]))
        return out

    def wls_delta(self, x: np.ndarray, *, wrt: str = "x") -> list[np.ndarray]:
        """Jacobian of `wls_est` per group (lavaan's ``Delta``): with respect to x (default) or,
        ``wrt="free"``, to every free table row (equality constraints released)."""
        if wrt == "x" and not self.k_onehot:
            return [self.to_x(D) for D in self.wls_delta(x, wrt="free")]
        vals = self.x_to_partable(x)
        p = self.p
        if wrt == "free":
            colmap = np.full(self.nrows, -1, int)
            colmap[self.free_rows] = np.arange(len(self.free_rows))
            ncol = len(self.free_rows)
        else:
            colmap, ncol = self.row_xcol, self.nx
        out = []
        for g, (imp, s, D) in enumerate(zip(self.implied(x), self.scales(x),
                                            self.delta(x, wrt=wrt))):
            Dmu, Dsig = D[:p], D[p:]
            if self.parameterization == "delta":
                ds = np.zeros((p, ncol))
                cols = colmap[self.scale_rows[g]]
                ok = cols >= 0
                ds[np.flatnonzero(ok), cols[ok]] = 1.0
            else:
                diag_pos = np.array([self._vech_diag(i) for i in range(p)])
                ds = -0.5 * (s ** 3)[:, None] * Dsig[diag_pos]
            tau = vals[self.th_rows[g]]
            iv = self.th_var[g]
            dtau = np.zeros((len(tau), ncol))
            cols = colmap[self.th_rows[g]]
            ok = cols >= 0
            dtau[np.flatnonzero(ok), cols[ok]] = 1.0
            i, j = self.corr_ij[g][:, 0], self.corr_ij[g][:, 1]
            D_g = np.empty((len(tau) + len(i), ncol))       # [thresholds; correlations]
            Dth, Dr = D_g[:len(tau)], D_g[len(tau):]
            np.subtract(dtau, Dmu[iv], out=Dth)
            Dth *= s[iv][:, None]
            np.take(Dsig, self.corr_vech[g], axis=0, out=Dr)
            Dr *= (s[i] * s[j])[:, None]
            if ds.any():        # scales that are parameters (free, or functions of x)
                Dth += (tau - imp.mu[iv])[:, None] * ds[iv]
                sig = imp.sigma[i, j]
                Dr += sig[:, None] * (s[j][:, None] * ds[i] + s[i][:, None] * ds[j])
            out.append(D_g)
        return out

    def _vech_diag(self, i: int) -> int:
        # position of (i, i) in lavaan's vech (column by column, lower triangle)
        p = self.p
        return i * p - i * (i - 1) // 2


class DWLSObjective:
    """F(x) = sum_g w_g (s_g - sigma_g(x))' W_g (s_g - sigma_g(x)), W_g diagonal.

    ``weight="DWLS"`` uses lavaan's ``WLS.V`` (1/diag NACOV), ``"ULS"`` the identity;
    ``w_g = (n_g - 1) / (N - G)``. lavaan's ``fx_g = (n_g - 1)/(2 n_g) F_g``,
    ``fx = sum_g (n_g / N) fx_g`` and ``chisq = 2 N fx = sum_g (n_g - 1) F_g = (N - G) F``.
    """

    def __init__(self, model: CategoricalModel, cstats: SampleStats,
                 weight: str = "DWLS"):
        self.model, self.cstats = model, cstats
        n = np.array([g.n for g in cstats.ordinal], float)
        self.N = float(n.sum()) - len(n)
        self.w = (n - 1) / self.N
        self.obs = [g.wls_obs for g in cstats.ordinal]
        self.V = [g.WLS_VD if weight == "DWLS" else np.ones(len(g.wls_obs))
                  for g in cstats.ordinal]

    def group_values(self, x):
        return np.array([float(v @ (o - e) ** 2)
                         for v, o, e in zip(self.V, self.obs, self.model.wls_est(x))])

    def value(self, x):
        try:
            return float(self.w @ self.group_values(x))
        except (FloatingPointError, np.linalg.LinAlgError, ValueError):
            return math.inf

    def gradient_and_information(self, x):
        g = np.zeros(self.model.nx)
        info = np.zeros((self.model.nx, self.model.nx))
        for w, v, o, e, D in zip(self.w, self.V, self.obs, self.model.wls_est(x),
                                 self.model.wls_delta(x)):
            sv = np.sqrt(v)
            D *= sv[:, None]                                  # V^1/2 D (D is a fresh array)
            X = sparse_if_sparse(D)
            g -= 2.0 * w * (X.T @ (sv * (o - e)))            # D' V (o - e)
            info += w * gram(X)                              # D' V D
        return g, 0.5 * (info + info.T)

    def gradient(self, x):
        return self.gradient_and_information(x)[0]

    def expected_information(self, x):
        return self.gradient_and_information(x)[1]


def start_values(model: CategoricalModel, cstats: SampleStats) -> np.ndarray:
    """Engine starting values on the polychoric matrix, sample thresholds, scales 1."""
    ss = SampleStats([GroupStats(g.n, g.cor, np.zeros(len(g.ov_names)), None,
                                 tuple(g.ov_names)) for g in cstats.ordinal])
    x0 = model.start_x(ss)
    f = model.pt.frame
    user_start = f["start"].to_numpy(float)
    for g, gs in enumerate(cstats.ordinal):
        for r, t in zip(model.th_rows[g], gs.th):
            c = model.row_xcol[r]
            if c >= 0 and np.isnan(user_start[r]):
                x0[c] = t
        if model.parameterization == "delta":
            for r in model.scale_rows[g]:
                c = model.row_xcol[r]
                if c >= 0:
                    x0[c] = 1.0
        else:
            for r in model.theta_rows[g][model.ord_idx]:
                c = model.row_xcol[r] if r >= 0 else -1
                if c >= 0 and np.isnan(user_start[r]):
                    x0[c] = 1.0
    # latent variances of later groups free (e.g. Wu-Estabrook): start at 1, not at 0.05
    op, lhs, rhs = f["op"].to_numpy(), f["lhs"].to_numpy(), f["rhs"].to_numpy()
    grp = f["group"].to_numpy()
    # sign: lavaan's starting loadings make the first indicator's loading positive (a factor
    # with all loadings free, e.g. std.lv, keeps that orientation)
    for lv in model.lv_names:
        rows = [r for r in range(len(f)) if op[r] == "=~" and lhs[r] == lv and grp[r] == 1]
        if not rows:
            continue
        c0 = model.row_xcol[rows[0]]
        if c0 >= 0 and x0[c0] < 0:
            cols = {model.row_xcol[r] for r in range(len(f))
                    if op[r] == "=~" and lhs[r] == lv and model.row_xcol[r] >= 0}
            for c in cols:
                x0[c] = -x0[c]
    lvs = set(model.lv_names)
    for r in model.free_rows:
        if op[r] == "~~" and lhs[r] == rhs[r] and lhs[r] in lvs and np.isnan(user_start[r]):
            c = model.row_xcol[r]
            if x0[c] < 0.2:
                x0[c] = 1.0
    return x0


def fit_categorical(pt: ParTable, cstats: SampleStats, *,
                    parameterization: str = "delta", estimator: str = "WLSMV",
                    se: str = "robust.sem", meta=None, extra_warnings: Sequence[str] = (),
                    max_iter: int = 500):
    """Fit a categorical parameter table by DWLS (WLSMV) or ULS (ULSMV); see `cfa`.

    Returns
    -------
    CFAResult

    Notes
    -----
    Estimates minimise F_DWLS (`DWLSObjective`) by Fisher scoring; ``chisq = (N - G) F``;
    standard errors ``E^-1 Delta' W Gamma W Delta E^-1 / (N - G)`` (`dwls_vcov_robust`) and the
    scaled-shifted test (`instrument.sem.test.scaled_shifted.scaled_shifted`) with lavaan's names; fit indices as lavaan 0.6-14
    ``fitMeasures()`` for categorical data: RMSEA with N - G, SRMR over the off-diagonal
    correlation residuals with divisor p(p+1)/2.
    """
    import warnings as _warnings
    from instrument.sem.result import CFAResult
    from instrument.results import Meta

    warn = list(extra_warnings)
    for gs in cstats.ordinal:
        warn.extend(gs.warnings)
    model = CategoricalModel(pt, cstats, parameterization)
    weight = "DWLS" if estimator == "WLSMV" else "ULS"
    obj = DWLSObjective(model, cstats, weight)
    x0 = start_values(model, cstats)
    x, converged, iters = optimize_reporting(obj, x0, warn, max_iter=max_iter)
    deltas = model.wls_delta(x)
    # the sample statistics with the estimator's weight: WLS_V (DWLS) or the identity (ULS)
    st = cstats if weight == "DWLS" else _uls_stats(cstats)
    try:
        sandwich = dwls_sandwich(deltas, st)
    except np.linalg.LinAlgError:
        sandwich = None
    vcov_x = None
    if se != "none":
        if sandwich is None:
            warn.append("could not compute standard errors: the information matrix is singular")
        else:
            vcov_x = dwls_vcov_robust(deltas, st, sandwich=sandwich)
    # ----- fit
    F = obj.value(x)
    chisq = obj.N * F
    nstat = sum(len(g.wls_obs) for g in cstats.ordinal)
    df = nstat - model.nx
    fm = _fit_measures(model, x, cstats, st, chisq, df, deltas, sandwich)
    # ----- table
    f = pt.frame
    vals = model.x_to_partable(x)
    mats = model.matrices(x)
    # computed scales (theta) and residual variances (delta)
    if parameterization == "theta":
        for g, sc in enumerate(model.scales(x)):
            for i in model.ord_idx:
                r = model.scale_rows[g][i]
                if r >= 0:
                    vals[r] = sc[i]
    if parameterization == "delta":
        free = f["free"].to_numpy()
        for g, mt in enumerate(mats):
            for i in model.ord_idx:
                r = model.theta_rows[g][i]
                if r >= 0 and free[r] == 0:
                    vals[r] = mt["theta"][i, i]
    for g, mt in enumerate(mats):
        gname = f" in group {pt.group_labels[g]}" if pt.ngroups > 1 else ""
        neg = [v for i, v in enumerate(model.ov_names) if mt["theta"][i, i] < 0]
        if neg:
            warn.append(f"some (computed) residual variances of the latent responses are "
                        f"negative{gname} (Heywood case): {neg}")
        if model.m and np.linalg.eigvalsh(model.lv_cov(x)[g])[0] <= 0:
            warn.append(f"the covariance matrix of the latent variables{gname} is not positive "
                        "definite")
    se_rows = row_se(model, vcov_x, len(f))
    slv, sall = standardized(model, x)
    sds = np.array([np.sqrt(np.diag(imp.sigma)) for imp in model.implied(x)])
    ovi = {v: i for i, v in enumerate(model.ov_names)}
    ops = f["op"].to_numpy()
    lhs, rhs = f["lhs"].to_numpy(), f["rhs"].to_numpy()
    grp = f["group"].to_numpy().astype(int) - 1
    lhs_i = np.array([ovi.get(v, -1) for v in lhs], int)
    th = np.flatnonzero(ops == "|")
    slv[th] = vals[th]
    sall[th] = vals[th] / sds[grp[th], lhs_i[th]]
    sc = np.flatnonzero(ops == "~*~")
    slv[sc], sall[sc] = vals[sc], 1.0       # lavaan: the standardized scale is 1
    ov_var = np.flatnonzero((ops == "~~") & (lhs == rhs) & (lhs_i >= 0))
    slv[ov_var] = vals[ov_var]
    sall[ov_var] = vals[ov_var] / sds[grp[ov_var], lhs_i[ov_var]] ** 2
    est = with_defined_rows(estimates_frame(f, vals, se_rows, slv, sall), model, x,
                            vcov_x)
    ptf = fitted_partable(f, vals, se_rows, model.x_to_partable(x0))
    vc = model.vcov_frame(vcov_x)
    implied, sample = [], []
    for g, (gs, e) in enumerate(zip(cstats.ordinal, model.wls_est(x))):
        R = np.eye(model.p)
        ij = model.corr_ij[g]
        R[ij[:, 0], ij[:, 1]] = e[len(gs.th):]
        R[ij[:, 1], ij[:, 0]] = e[len(gs.th):]
        # th: in the order of the model's observed variables, t1, t2, ... within each
        implied.append(dict(cov=R, mean=np.zeros(model.p), th=e[:len(gs.th)]))
        sample.append(dict(n=gs.n, cov=gs.cor, mean=np.zeros(model.p), th=gs.th))
    srmr_groups = fm.pop("_srmr_groups")
    test_info = fm.pop("_test")
    if meta is None:
        meta = Meta(options=dict(estimator=estimator, parameterization=parameterization))
    meta = replace(meta, options={**dict(meta.options), "test_info": test_info})
    for w in warn:
        _warnings.warn(w, stacklevel=3)
    out = CFAResult(partable=ptf, fit_measures=fm, estimates=est, converged=bool(converged),
                    iterations=int(iters), warnings=tuple(warn), meta=meta, implied=implied,
                    sample=sample, vcov=vc, ov_names=tuple(pt.ov_names),
                    lv_names=tuple(pt.lv_names), group_labels=tuple(pt.group_labels),
                    constraints=tuple(pt.constraints), defined=tuple(pt.defined),
                    srmr_group=tuple(srmr_groups), categorical_stats=cstats)
    return out


def _uls_stats(cstats):
    """`cstats` with the ULS weight: ``WLS_V`` the identity."""
    return replace(cstats, groups=tuple(
        replace(g, ordinal=replace(g.ordinal, WLS_V=np.eye(len(g.ordinal.wls_obs))))
        for g in cstats.groups))


def _fit_measures(model, x, cstats, st, chisq, df, deltas, sandwich):
    """Fit measures of a DWLS/ULS fit; `st` is `cstats` with the estimator's weight and
    `sandwich` its `dwls_sandwich` at the estimates (None when E is singular)."""
    N, G = cstats.ntotal, cstats.ngroups
    traces = wgamma_traces(st)
    ok = df > 0 and sandwich is not None
    ss = scaled_shifted(chisq, df, deltas, st, sandwich=sandwich, traces=traces) if ok else None
    # lavaan's baseline: thresholds free in every group, correlations 0 (they fit exactly)
    df_b = sum(len(g.wls_obs) - g.nth for g in st.ordinal)
    chisq_b = _baseline_chisq(st)
    bl = scaled_shifted_baseline(chisq_b, df_b, traces)
    nr = N - G          # lavaan: N - G for the RMSEA of DWLS / ULS
    std, base = TestStat(chisq, df), TestStat(chisq_b, df_b)
    sc = None if ss is None else TestStat(
        ss["chisq.scaled"], df, test="scaled.shifted", scaling_factor=ss["chisq.scaling.factor"],
        shift_parameter=ss["chisq.shift.parameters"], trace_ugamma=ss["trace.UGamma"])
    bsc = scaled_test(base, bl["chisq.scaling.factor"], test="scaled.shifted",
                      shift_parameter=bl["chisq.shift.parameters"])
    rob = _catml_robust(model, x, cstats, deltas, st, sandwich) if ok else None
    if rob is not None:
        XX3, df3, c3, XXb, _, cb = rob
        rob = RobustStat(xx3=XX3, df3=df3, c_hat3=c3, c_hat=c3, xx3_scaled=XX3 / c3,
                         xx3_null=XXb, c_hat_null=cb)
    fm = {"npar": model.nx, "fmin": chisq / (2 * N), "ntotal": N}
    fm.update(fit_indices(std, base, n=nr, ngroups=G, scaled=sc, baseline_scaled=bsc, robust=rob))
    # SRMR: off-diagonal correlation residuals, divisor p(p+1)/2, groups weighted n_g / N
    # (crmr: divisor p(p-1)/2; the "with means" variants add the standardized threshold
    # residuals and their count; rmr = srmr_bentler here, all on the correlation metric)
    p = model.p
    fam = {k: [] for k in ("sr", "srm", "cr", "crm", "gfi")}
    for g, (gs, e) in enumerate(zip(cstats.ordinal, model.wls_est(x))):
        nth = len(gs.th)
        res = gs.wls_obs[nth:] - e[nth:]
        rt = gs.wls_obs[:nth] - e[:nth]
        r2, t2 = float(res @ res), float(rt @ rt)
        fam["sr"].append(math.sqrt(r2 / (p * (p + 1) / 2)))
        fam["srm"].append(math.sqrt((r2 + t2) / (p * (p + 1) / 2 + nth)))
        fam["cr"].append(math.sqrt(r2 / (p * (p - 1) / 2)))
        fam["crm"].append(math.sqrt((r2 + t2) / (p * (p - 1) / 2 + nth)))
        v = np.diag(st.ordinal[g].WLS_V)
        d = gs.wls_obs - e
        fam["gfi"].append(1.0 - float(d @ (v * d)) / float(gs.wls_obs @ (v * gs.wls_obs)))
    n = np.array([g.n for g in cstats.ordinal], float)
    wts = n / n.sum()
    agg = {k: float(wts @ np.array(v)) for k, v in fam.items()}
    sr = fam["sr"]
    srmr = agg["sr"]
    nstat = sum(len(g.wls_obs) for g in cstats.ordinal)
    fm.update({"rmr": agg["srm"], "rmr_nomean": srmr, "srmr": srmr,
               "srmr_bentler": agg["srm"], "srmr_bentler_nomean": srmr,
               "crmr": agg["crm"], "crmr_nomean": agg["cr"],
               "cn_05": _other.hoelter_cn(chisq, df, nr, alpha=0.05),
               "cn_01": _other.hoelter_cn(chisq, df, nr, alpha=0.01),
               "gfi": agg["gfi"], "agfi": _other.agfi(agg["gfi"], nstat, df),
               "pgfi": _other.pgfi(agg["gfi"], nstat, df), "mfi": _other.mfi(chisq, df, nr),
               "wrmr": math.sqrt(chisq / nstat)})
    out = in_lavaan_order(fm)
    out["_srmr_groups"] = sr
    # scaled-shifted details (lavaan's test list names) kept outside the fitMeasures names
    out["_test"] = {} if ss is None else {
        "test": "scaled.shifted", "scaling.factor": ss["chisq.scaling.factor"],
        "shift.parameter": ss["chisq.shift.parameters"], "trace.UGamma": ss["trace.UGamma"],
        "trace.UGamma2": ss["trace.UGamma2"]}
    return out


def _baseline_chisq(st):
    """Baseline chisq = sum_g (n_g - 1) sum_{i<j} v_ij r_ij^2 (thresholds fit exactly; v the
    weights of `st`)."""
    tot = 0.0
    for g in st.ordinal:
        r = g.wls_obs[g.nth:]
        tot += (g.n - 1) * float(g.WLS_VD[g.nth:] @ r ** 2)
    return tot


# ------------------------------------------------------------------------------------------
# nested-model difference test (lavaan lavTestLRT for WLSMV fits: method "satorra.2000")
# ------------------------------------------------------------------------------------------

_MODEL_STATES: dict[int, dict] = {}      # id(result) -> its model_state, while the result lives


def model_state(fit) -> dict:
    """The fitted model of a WLSMV/ULSMV result, rebuilt from its table and sample statistics:
    ``model`` (CategoricalModel), ``x``, ``cstats`` and ``weight`` ("DWLS" or "ULS").

    Built once per result and kept while the result lives (difference tests, group χ² and
    score tests all ask for it); callers read it and never change it."""
    state = _MODEL_STATES.get(id(fit))
    if state is None:
        state = _rebuild_state(fit)
        try:
            weakref.finalize(fit, _MODEL_STATES.pop, id(fit), None)
        except TypeError:           # an object without weak references is not kept
            return state
        _MODEL_STATES[id(fit)] = state
    return state


def _rebuild_state(fit) -> dict:
    cstats = fit.categorical_stats
    if cstats is None:
        raise ValueError("this result carries no categorical sample statistics (it is not a "
                         "WLSMV/ULSMV fit)")
    opts = fit.meta.options
    pt = ParTable(fit.partable[list(PARTABLE_COLUMNS)].copy(), tuple(fit.ov_names),
                  tuple(fit.lv_names), len(fit.group_labels), tuple(fit.group_labels), True,
                  tuple(fit.constraints), {"ordered": list(opts.get("ordered", fit.ov_names))},
                  tuple(fit.defined))
    parameterization = opts.get("parameterization", "delta")
    model = CategoricalModel(pt, cstats, parameterization)
    x = model.partable_to_x(fit.partable["est"].to_numpy(float))
    weight = "ULS" if str(opts.get("estimator", "WLSMV")).upper() == "ULSMV" else "DWLS"
    return dict(model=model, x=x, cstats=cstats, weight=weight)


def _orth_complement(H: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Orthonormal basis (columns) of the orthogonal complement of the column space of H."""
    u, s, _ = np.linalg.svd(H, full_matrices=True)
    rank = int(np.sum(s > tol * max(s.max() if s.size else 0.0, 1.0)))
    return u[:, rank:]


def satorra2000_diff(fit_h1, fit_h0) -> dict:
    """Scaled-shifted chi-square difference test of two nested WLSMV fits (Satorra, 2000).

    Parameters
    ----------
    fit_h1 : CFAResult
        The less restricted model (fewer df), fitted by `instrument.sem.cfa.cfa` with ordered=.
    fit_h0 : CFAResult
        The more restricted model.

    Returns
    -------
    dict
        ``chisq.diff`` (scaled-shifted), ``df.diff``, ``pvalue``, ``a``, ``b``,
        ``trace.UGamma``, ``trace.UGamma2``, ``chisq.diff.unscaled``.

    Notes
    -----
    With Delta_1 (Delta_0) the stacked Jacobians of the H1 (H0) model at its estimates,
    ``A`` the orthogonal complement of ``H = (Delta_1' Delta_1)^-1 Delta_1' Delta_0`` (the
    restrictions, lavaan's ``A.method = "delta"``), ``P = sum_g f_g Delta_1g' W_g Delta_1g``
    (f_g = n_g/N) and ``Q = P^-1 A' (A P^-1 A')^+ A P^-1``:
    ``tr1 = sum_g f_g tr(W_g Gamma_g W_g Delta_1g Q Delta_1g')``,
    ``tr2 = tr((V Delta_1 Q Delta_1' V Gamma_f)^2)`` with ``V = bdiag(W_g)`` and
    ``Gamma_f = bdiag(f_g Gamma_g)``; ``a = sqrt(m / tr2)``, ``b = m - a tr1`` and
    ``T = a (T_0 - T_1) + b`` on ``m = df_0 - df_1`` degrees of freedom (lavaan 0.6-14
    ``lav_test_diff_Satorra2000`` with ``scaled.shifted = TRUE``, the default of ``lavTestLRT``
    for WLSMV fits). With ``m = 0`` (models with equal df, e.g. the configural and thresholds
    rungs of a Wu-Estabrook ladder whose items all have three categories) there is nothing to
    test: ``chisq.diff`` is ``T_0 - T_1`` and ``pvalue`` NaN, as lavaan's ``lavTestLRT`` reports.

    References
    ----------
    Satorra, A. (2000). Scaled and adjusted restricted tests in multi-sample analysis of moment
    structures. In R. D. H. Heijmans, D. S. G. Pollock, & A. Satorra (Eds.), Innovations in
    multivariate statistical analysis (pp. 233-247). Kluwer.
    """
    s1, s0 = model_state(fit_h1), model_state(fit_h0)
    fm1, fm0 = fit_h1.fit_measures, fit_h0.fit_measures
    m = int(fm0["df"] - fm1["df"])
    T = float(fm0["chisq"] - fm1["chisq"])
    if m < 0:
        raise ValueError(f"the second model must be more restricted (more df): df {fm1['df']} "
                         f"vs {fm0['df']}.")
    if m == 0:
        # equal df: nothing to test (lavaan reports the unscaled difference and no p-value)
        nan = float("nan")
        return {"chisq.diff": T, "df.diff": 0, "pvalue": nan, "a": nan, "b": nan,
                "trace.UGamma": nan, "trace.UGamma2": nan, "chisq.diff.unscaled": T}
    cst = s1["cstats"] if s1["weight"] == "DWLS" else _uls_stats(s1["cstats"])
    D1 = s1["model"].wls_delta(s1["x"])
    D0 = s0["model"].wls_delta(s0["x"])
    D1a, D0a = np.vstack(D1), np.vstack(D0)
    # lavaan's H = (D1'D1)^-1 D1'D0 (least squares through the normal equations); a D1 of less
    # than full column rank: the minimum-norm least-squares solution
    try:
        H = _la.solve(D1a.T @ D1a, D1a.T @ D0a, assume_a="pos", check_finite=False)
    except _la.LinAlgError:
        H = _la.lstsq(D1a, D0a, lapack_driver="gelsy", check_finite=False)[0]
    A = _orth_complement(H).T
    n = np.array([g.n for g in cst.ordinal], float)
    fg = n / n.sum()
    Wd = [g.WLS_VD for g in cst.ordinal]
    P = sum(f * (D.T * w) @ D for f, D, w in zip(fg, D1, Wd))
    Pi = np.linalg.inv(P)
    APA = A @ Pi @ A.T
    keep = ~((np.abs(APA.sum(0)) < 1.5e-8) & (np.abs(APA.sum(1)) < 1.5e-8))
    A = A[keep]
    Q = Pi @ A.T @ np.linalg.pinv(A @ Pi @ A.T) @ A @ Pi
    # tr1 = sum_g f_g tr(W Gamma W D Q D') = tr(Q M), tr2 = tr((U Gamma_f)^2) = tr((Q M)^2)
    # with M = sum_g f_g (W_g D_g)' Gamma_g (W_g D_g): parameter-sized algebra
    M = np.zeros_like(Q)
    for f, D, w, g in zip(fg, D1, Wd, cst.ordinal):
        WD = w[:, None] * D
        M += f * (WD.T @ (g.NACOV @ WD))
    QM = Q @ M
    tr1 = float(np.trace(QM))
    tr2 = float(np.sum(QM * QM.T))
    a = math.sqrt(m / tr2)
    b = m - a * tr1
    stat = T * a + b
    return {"chisq.diff": stat, "df.diff": m, "pvalue": float(_st.chi2.sf(stat, m)), "a": a,
            "b": b, "trace.UGamma": tr1, "trace.UGamma2": tr2, "chisq.diff.unscaled": T}


def group_chisq_wls(fit) -> list[float]:
    """Each group's contribution ``(n_g - 1) F_g`` to a WLSMV chi-square (lavaan's
    ``stat.group``); NaN when the fit carries no model state."""
    if fit.categorical_stats is None:
        return [float("nan")] * len(fit.sample)
    st = model_state(fit)
    obj = DWLSObjective(st["model"], st["cstats"], st["weight"])
    Fg = obj.group_values(st["x"])
    return [float((g.n - 1) * F) for g, F in zip(st["cstats"].groups, Fg)]


def _catml_robust(model, x, cstats, deltas, st, sandwich):
    """Ingredients of lavaan's robust CFI/TLI/RMSEA for categorical data (Savalei, 2021).

    Returns ``(XX3, df3, c3, XX3_null, df3_null, c3_null)`` or None when a polychoric matrix is
    not positive definite or thresholds/intercepts are held equal across groups (lavaan 0.6-14
    reports NA then).

    Notes
    -----
    "catML": the normal-theory ML discrepancy between the polychoric matrix R_g and the implied
    correlation matrix at the WLSMV estimates, ``XX3 = sum_g n_g F_ML(R_g, P_g)`` on
    ``df3 = G p(p-1)/2 - (npar - n(thresholds, intercepts, means))``; its scaling
    ``c3 = tr(A' V A Gamma) / df3`` with ``A = I - Delta E^-1 Delta' W`` over the correlation
    rows (Delta of the WLSMV model, E its information, W = f_g WLS_V, V = f_g times the ML
    weight of the correlations at P_g, Gamma = NACOV_g / f_g). Baseline: ``XX3_null =
    -sum_g n_g log|R_g|`` on ``G p(p-1)/2`` df with ``c3_null = tr(Gamma)/df``. lavaan 0.6-14
    ``lav_fit_catml_dwls``; robust CFI ``1 - max(XX3 - c3 df3, 0) / max(XX3 - c3 df3,
    XX3_null - c3_null df3_null, 0)``, RMSEA ``sqrt(max(XX3 - c3 df3, 0) / ((N - G) df3)) sqrt(G)``.

    References
    ----------
    Savalei, V. (2021). Improving fit indices in structural equation modeling with categorical
    data. Multivariate Behavioral Research, 56(3), 390-407.
    https://doi.org/10.1080/00273171.2020.1717922
    """
    from instrument.sem.estimators.ml import moment_weight

    n = np.array([g.n for g in cstats.ordinal], float)
    fg = n / n.sum()
    for g in cstats.ordinal:
        if np.linalg.eigvalsh(g.cor)[0] < np.sqrt(np.finfo(float).eps):
            return None
    W_all = [g.WLS_VD for g in st.ordinal]
    Einv, gwd = sandwich.E_inv, sandwich.gamma_wd
    p = model.p
    XX3 = 0.0
    XXb = 0.0
    Wb, Db, GWb, VDb = [], [], [], []
    trVG = trG = 0.0
    for g, (gs, e) in enumerate(zip(cstats.ordinal, model.wls_est(x))):
        nth = len(gs.th)
        P = np.eye(p)
        ij = model.corr_ij[g]
        P[ij[:, 0], ij[:, 1]] = e[nth:]
        P[ij[:, 1], ij[:, 0]] = e[nth:]
        Pi = np.linalg.inv(P)
        ldR = np.linalg.slogdet(gs.cor)[1]
        XX3 += gs.n * (np.linalg.slogdet(P)[1] + np.sum(gs.cor * Pi) - ldR - p)
        XXb += -gs.n * ldR
        idx = model.corr_vech[g]
        # V_g = f_g T_g (T the ML weight at P) and Gamma_g = NACOV_g / f_g over the correlation
        # rows: f_g cancels in tr(V Gamma) and in Gamma W Delta
        T = moment_weight(P, False, model.vr[idx], model.vc[idx])
        Gcc = gs.NACOV[nth:, nth:]
        trVG += float(np.einsum("ij,ij->", T, Gcc))        # both symmetric
        trG += float(np.trace(Gcc)) / fg[g]
        Wb.append(fg[g] * W_all[g][nth:])
        Db.append(deltas[g][nth:])
        # Gamma W Delta over the correlation rows: the caller's NACOV W Delta less the
        # threshold rows' share
        WD = W_all[g][:, None] * deltas[g]
        GWb.append(gwd[g][nth:] - (sparse_if_sparse(WD[:nth]).T @ gs.NACOV[:nth, nth:]).T)
        # V Delta = f_g T Delta (T symmetric; Delta mostly zeros)
        VDb.append(fg[g] * (sparse_if_sparse(Db[-1]).T @ T).T)
    # ks = tr(A' V A Gamma), A = I - Dl E^-1 Dl' W, with parameter-sized algebra:
    # tr(V Gamma) - 2 tr(E^-1 Dl' W Gamma V Dl) + tr(E^-1 Dl' V Dl E^-1 Dl' W Gamma W Dl)
    k = Einv.shape[0]
    S1, S2, S3 = np.zeros((k, k)), np.zeros((k, k)), np.zeros((k, k))
    for wg, Dg, GWD, VD in zip(Wb, Db, GWb, VDb):
        WD = wg[:, None] * Dg
        S1 += GWD.T @ VD
        S2 += sparse_if_sparse(Dg).T @ VD
        S3 += sparse_if_sparse(WD).T @ GWD
    ks = trVG - 2.0 * float(np.sum(Einv * S1.T)) + float(np.sum((Einv @ S2) * (Einv @ S3).T))
    G = cstats.ngroups
    # the catML model drops the thresholds and the intercepts/means (lavaan removes "|" and "~1")
    ops = model.pt.frame["op"].to_numpy()
    drop = {int(c) for c, o in zip(model.row_xcol, ops) if c >= 0 and o in ("|", "~1")}
    # lavaan's catML refit fails (NA) when dropped rows carry equality constraints
    cols_dropped = [int(c) for c, o in zip(model.row_xcol, ops) if c >= 0 and o in ("|", "~1")]
    if len(cols_dropped) != len(drop):
        return None
    df3 = G * p * (p - 1) // 2 - (model.nx - len(drop))
    dfb = G * p * (p - 1) // 2
    return XX3, df3, ks / df3, XXb, dfb, trG / dfb
