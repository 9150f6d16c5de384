"""LISREL (all-y) representation of a CFA derived from the parameter table.

Per group: Lambda (p x m), Theta (p x p), Psi (m x m), Beta (m x m), nu (p), alpha (m);
Sigma = Lambda B Psi B' Lambda' + Theta and mu = nu + Lambda B alpha with B = (I - Beta)^-1
(lavaan's ``computeSigmaHat`` / ``computeMuHat``). The optimiser works on x, the vector of
*unique* free parameters: theta_free = K @ x, where rows sharing a label (or an explicit
``==`` constraint) share one column of K.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from instrument.sem.fit.dist import Z975, norm_sf
from instrument.sem.samplestats import SampleStats
from instrument.sem.partable import ParTable
from instrument.sem.constraints import (DefinedParameters, is_linear, linear_reduction,
                                        parse_expression)

__all__ = ["Model", "Implied", "vech_indices", "with_defined_rows"]

_LAMBDA, _THETA, _PSI, _BETA, _NU, _ALPHA = range(6)


def vech_indices(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of lavaan's ``lav_matrix_vech`` (lower triangle, column by column):
    the upper triangle row by row, transposed."""
    c, r = np.triu_indices(p)
    return r.astype(int), c.astype(int)


@dataclass(frozen=True)
class Implied:
    """Model-implied moments of one group: ``sigma`` (p x p) and ``mu`` (p,) or None."""

    sigma: np.ndarray
    mu: np.ndarray | None


class _GroupSpec:
    """Index arrays locating the table rows of one group in its matrices."""

    def __init__(self, p: int, m: int):
        self.p, self.m = p, m
        # for each matrix type: arrays (row_index_in_table, i, j) of entries
        self.entries = {k: ([], [], []) for k in range(6)}

    def freeze(self):
        self.entries = {k: tuple(np.array(a, dtype=int) for a in v) for k, v in self.entries.items()}


class Model:
    """The CFA model of a `ParTable`, with implied moments and their Jacobian.

    Build with `Model.from_partable`. Public pieces other estimators rely on: `nx`, `K`,
    `x_to_partable`, `partable_to_x`, `implied`, `delta`, `matrices`, `start_x`.
    """

    def __init__(self, pt: ParTable, ngroups: int, ov_names, lv_names, meanstructure: bool):
        self.pt = pt
        self.ngroups = ngroups
        self.ov_names = tuple(ov_names)
        self.lv_names = tuple(lv_names)
        self.meanstructure = bool(meanstructure)
        self.p, self.m = len(self.ov_names), len(self.lv_names)
        self.nrows = len(pt.frame)
        free = pt.col("free") > 0
        self.free_rows = np.flatnonzero(free)   # table rows that are free
        self.fixed_values = np.where(free, 0.0, np.nan_to_num(pt.col("ustart").astype(float)))
        self.vr, self.vc = vech_indices(self.p)
        self._build_K(pt)
        self._build_specs(pt)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_partable(cls, pt: ParTable, sample_stats: SampleStats | None = None) -> "Model":
        """Derive the matrices of `pt`. ``sample_stats`` is only checked for the group count."""
        if sample_stats is not None and sample_stats.ngroups != pt.ngroups:
            raise ValueError(f"the table has {pt.ngroups} groups, the data {sample_stats.ngroups}")
        return cls(pt, pt.ngroups, pt.ov_names, pt.lv_names, pt.meanstructure)

    def _build_K(self, pt: ParTable):
        """The map from x to the free table rows, ``theta_free = K x + k0``.

        Rows sharing a label (or a plain ``label1 == label2`` constraint, or ``.pN.`` labels)
        form one class; other ``==`` constraints must be linear and are removed by
        `instrument.sem.constraints.linear_reduction`. ``x_col`` gives the x column of every free
        row that equals one element of x (-1 for rows eliminated by a constraint) and
        ``x_rows`` the first such row of each x (its name)."""
        labels, plabels = pt.col("label"), pt.col("plabel")
        free_arr = pt.col("free") > 0
        parent: dict = {}

        def find(a):
            while parent.setdefault(a, a) != a:
                a = parent[a]
            return a

        # every name a constraint may use: labels and plabels, each to the key of its class
        key_of_name: dict = {}
        fixed_values: dict = {}
        for r in range(self.nrows):
            key = ("L", labels[r]) if labels[r] else ("R", r)
            for name in (labels[r], plabels[r]):
                if not name:
                    continue
                if free_arr[r]:
                    key_of_name.setdefault(name, key)
                else:
                    fixed_values.setdefault(name, float(self.fixed_values[r]))
        general = []
        for a, b in self.pt.constraints:
            if a in key_of_name and b in key_of_name:
                parent[find(key_of_name[a])] = find(key_of_name[b])
            else:
                general.append((a, b))
        col_of, cls = {}, []
        for r in self.free_rows:
            key = find(("L", labels[r]) if labels[r] else ("R", r))
            if key not in col_of:
                col_of[key] = len(col_of)
            cls.append(col_of[key])
        ncls = len(col_of)
        nfree = len(self.free_rows)
        K0 = np.zeros((nfree, ncls))
        K0[np.arange(nfree), cls] = 1.0
        self._K0, self._cls = K0, np.array(cls, dtype=int)
        self._class_of = {n: col_of[find(k)] for n, k in key_of_name.items()}
        self._fixed_named = fixed_values
        self._general = [(parse_expression(a), parse_expression(b)) for a, b in general]
        self.nonlinear = any(not is_linear(a, b) for a, b in self._general)
        self.k_onehot = not general
        self._pivots = None
        est = pt.col("est").astype(float)
        start = pt.col("start").astype(float)
        point = np.where(np.isfinite(est), est, np.where(np.isfinite(start), start, 1.0))
        self._reduce(np.where(free_arr, point, self.fixed_values))
        # defined parameters (:=): every label and plabel names one row
        label_rows = {}
        for r in range(self.nrows):
            for name in (labels[r], plabels[r]):
                if name:
                    label_rows.setdefault(name, r)
        self.defined = DefinedParameters(
            [(name, parse_expression(expr), 0) for name, expr in self.pt.defined], label_rows)

    def _reduce(self, values: np.ndarray) -> None:
        """Set K, k0 and the x bookkeeping from the constraints, nonlinear ones linearised at
        the table ``values`` (`instrument.sem.constraints.linear_reduction`)."""
        ncls = self._K0.shape[1]
        self._k_version = getattr(self, "_k_version", 0) + 1      # invalidates `implied`
        if self._general:
            cval = np.zeros(ncls)
            cval[self._cls] = np.asarray(values, float)[self.free_rows]
            point = {n: cval[c] for n, c in self._class_of.items()}
            K1, k1, kept, self._pivots = linear_reduction(
                self._general, self._class_of, ncls, self._fixed_named, point=point,
                pivots=self._pivots)
            self.K = self._K0 @ K1
            self.k0 = self._K0 @ k1
        else:
            kept = list(range(ncls))
            self.K, self.k0 = self._K0, np.zeros(len(self.free_rows))
        self.nx = len(kept)
        col_of_class = np.full(ncls, -1, dtype=int)
        col_of_class[kept] = np.arange(len(kept))
        self.x_col = col_of_class[self._cls]       # x index of each free row (-1: eliminated)
        first = {}
        for k, c in enumerate(self.x_col):
            if c >= 0:
                first.setdefault(c, self.free_rows[k])
        self.x_rows = np.array([first[c] for c in range(self.nx)], dtype=int)
        if hasattr(self, "group_cols"):
            self.group_K = [self.K[c] for c in self.group_cols]

    def relinearize(self, values: np.ndarray) -> None:
        """Linearise the nonlinear ``==`` constraints at the table ``values`` (x keeps its
        meaning: the values of the classes that stay free)."""
        self._reduce(values)

    def constraint_gap(self, values: np.ndarray) -> float:
        """max |lhs - rhs| over the ``==`` constraints at the table ``values``."""
        names = self.defined.label_rows
        gap = 0.0
        for a, b in self._general:
            env = {n: values[names[n]] for n in a.names + b.names}
            gap = max(gap, abs(a.evaluate(env) - b.evaluate(env)))
        return gap

    def _build_specs(self, pt: ParTable):
        ovi = {v: i for i, v in enumerate(self.ov_names)}
        lvi = {v: i for i, v in enumerate(self.lv_names)}
        self.specs = [_GroupSpec(self.p, self.m) for _ in range(self.ngroups)]
        self.has_beta = False
        cols = (pt.col(c).tolist() for c in ("lhs", "op", "rhs", "group"))
        for r, (lhs, op, rhs, g) in enumerate(zip(*cols)):
            s = self.specs[int(g) - 1]
            if op == "=~":
                if rhs in lvi:
                    k, i, j = _BETA, lvi[rhs], lvi[lhs]
                    self.has_beta = True
                else:
                    k, i, j = _LAMBDA, ovi[rhs], lvi[lhs]
            elif op == "~~":
                if lhs in lvi and rhs in lvi:
                    k, i, j = _PSI, lvi[lhs], lvi[rhs]
                elif lhs in ovi and rhs in ovi:
                    k, i, j = _THETA, ovi[lhs], ovi[rhs]
                else:
                    raise NotImplementedError(f"covariance between an observed and a latent "
                                              f"variable ({lhs} ~~ {rhs}) is not supported")
            elif op == "~":
                if lhs in lvi and rhs in lvi:
                    k, i, j = _BETA, lvi[lhs], lvi[rhs]
                    self.has_beta = True
                elif lhs in ovi and rhs in lvi:
                    k, i, j = _LAMBDA, ovi[lhs], lvi[rhs]
                else:
                    raise NotImplementedError(f"regression {lhs} ~ {rhs} on an observed predictor "
                                              "is not supported by the CFA engine")
            elif op == "~1":
                if lhs in lvi:
                    k, i, j = _ALPHA, lvi[lhs], 0
                else:
                    k, i, j = _NU, ovi[lhs], 0
            else:  # thresholds etc.: not part of the continuous model
                continue
            e = s.entries[k]
            e[0].append(r)
            e[1].append(i)
            e[2].append(j)
        for s in self.specs:
            s.freeze()
        # per group: for each free row of the group, (type, i, j, x-col via K)
        freepos = {r: k for k, r in enumerate(self.free_rows)}
        self.group_free = []
        self.group_cols = []   # global free-row positions of each group's local columns
        for s in self.specs:
            d = {}
            glob = sorted(freepos[r] for rows, _, _ in s.entries.values() for r in rows
                          if r in freepos)
            loc = {c: t for t, c in enumerate(glob)}
            for k, (rows, ii, jj) in s.entries.items():
                sel = [t for t, r in enumerate(rows) if r in freepos]
                d[k] = (np.array([loc[freepos[rows[t]]] for t in sel], dtype=int),
                        ii[sel] if len(sel) else np.zeros(0, int),
                        jj[sel] if len(sel) else np.zeros(0, int))
            self.group_free.append(d)
            self.group_cols.append(np.array(glob, dtype=int))
        self.lambda_nonzeros = [self._lambda_nonzeros(*d[_LAMBDA]) for d in self.group_free]
        # K restricted to each group's columns
        self.group_K = [self.K[c] for c in self.group_cols]

    def _lambda_nonzeros(self, cols: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple:
        """Where ``d vech(Sigma) / d lambda`` is not structurally zero, for `delta_compact`:
        ``d sigma_rc / d lambda_ij = [r=i] G_cj + [c=i] G_rj`` is ``G_oj`` (o the other index of
        (r, c)) when exactly one of r, c is i and ``2 G_ij`` when both are. Returns (vech row,
        local column, o, j, factor 1 or 2), one entry per nonzero."""
        vr, vc = self.vr, self.vc
        r, t = np.nonzero((vr[:, None] == i[None, :]) | (vc[:, None] == i[None, :]))
        other = np.where(vr[r] == i[t], vc[r], vr[r])
        return r, cols[t], other, j[t], np.where(vr[r] == vc[r], 2.0, 1.0)

    # ------------------------------------------------------------------ parameters
    def x_to_partable(self, x: np.ndarray) -> np.ndarray:
        """Values of every table row (fixed rows keep ``ustart``): theta_free = K x + k0."""
        vals = self.fixed_values.copy()
        if self.k_onehot:
            vals[self.free_rows] = np.asarray(x, float)[self.x_col]
        else:
            vals[self.free_rows] = self.K @ np.asarray(x, float) + self.k0
        return vals

    def to_x(self, D_free: np.ndarray) -> np.ndarray:
        """A Jacobian with respect to the free table rows (columns) as one with respect to x:
        ``D_free K``."""
        return D_free @ self.K

    def vcov_free(self, vcov_x: np.ndarray) -> np.ndarray:
        """Covariance of the free table rows, ``K V K'`` for V the covariance of x."""
        return self.K @ vcov_x @ self.K.T

    def defined_rows(self, x: np.ndarray, vcov_x: np.ndarray | None) -> pd.DataFrame:
        """lavaan's ``parameterEstimates()`` rows of the ``:=`` parameters (group 0): the
        defined value with delta-method se ``sqrt(J V J')``, ``J = d def / d x`` (lavaan
        ``lav_model_vcov_se``), z, p and 95% Wald interval. (``==`` rows are not listed, as
        lavaan's default ``remove.eq = TRUE``.)
        """
        vals = self.x_to_partable(x)
        recs = []
        if self.defined.defined:
            est = self.defined.values(vals)
            se = np.full(len(est), np.nan)
            if vcov_x is not None:
                Jr = self.defined.jacobian_rows(vals)
                dr = np.zeros((len(self.defined.rows_used), self.nx))
                freepos = {r: k for k, r in enumerate(self.free_rows)}
                for k, r in enumerate(self.defined.rows_used):
                    if r in freepos:
                        dr[k] = self.K[freepos[r]]
                J = Jr @ dr
                se = np.sqrt(np.clip(np.einsum("ij,jk,ik->i", J, vcov_x, J), 0, None))
            q = Z975
            for (name, expr), e, s in zip(self.pt.defined, est, se):
                z = e / s if s > 0 else np.nan
                recs.append(dict(lhs=name, op=":=", rhs=expr, group=0, label=name, est=e, se=s,
                                 z=z, pvalue=2.0 * norm_sf(abs(z)) if s > 0 else np.nan,
                                 **{"ci.lower": e - q * s, "ci.upper": e + q * s}))
        cols = ["lhs", "op", "rhs", "group", "label", "est", "se", "z", "pvalue", "ci.lower",
                "ci.upper", "std.lv", "std.all"]
        out = pd.DataFrame(recs, columns=cols[:-2])
        out["std.lv"] = np.nan
        out["std.all"] = np.nan
        return out

    def x_names(self) -> list[str]:
        """Name of each unique free parameter: ``lhs op rhs`` of its first table row, with
        ``.gK`` for groups K > 1 (the row and column names of `CFAResult.vcov`)."""
        lhs, op, rhs, grp = (self.pt.col(c) for c in ("lhs", "op", "rhs", "group"))
        return [f"{lhs[r]}{op[r]}{rhs[r]}" + (f".g{grp[r]}" if grp[r] > 1 else "")
                for r in self.x_rows]

    def vcov_frame(self, vcov_x: np.ndarray | None):
        """`CFAResult.vcov`: a ``name`` column, then one column per unique free parameter
        (NaN when no standard errors were computed)."""
        names = self.x_names()
        vc = pd.DataFrame(vcov_x if vcov_x is not None else np.full((self.nx, self.nx), np.nan),
                          columns=names)
        vc.insert(0, "name", names)
        return vc

    def partable_to_x(self, values: np.ndarray) -> np.ndarray:
        """x from full table values (the first row of each equality class is used). With
        nonlinear constraints the model is linearised at ``values`` first, so that
        ``x_to_partable(partable_to_x(v))`` gives ``v`` back and K is the Jacobian there."""
        if self.nonlinear:
            self.relinearize(values)
        return np.asarray(values, float)[self.x_rows]

    def matrices(self, x: np.ndarray) -> list[dict]:
        """Per group dict of ``lambda theta psi beta nu alpha`` for parameter vector ``x``."""
        vals = self.x_to_partable(x)
        out = []
        p, m = self.p, self.m
        for s in self.specs:
            L = np.zeros((p, m))
            T = np.zeros((p, p))
            P = np.zeros((m, m))
            B = np.zeros((m, m))
            nu = np.zeros(p)
            al = np.zeros(m)
            for k, M in ((_LAMBDA, L), (_THETA, T), (_PSI, P), (_BETA, B)):
                rows, i, j = s.entries[k]
                if len(rows):
                    M[i, j] = vals[rows]
                    if k in (_THETA, _PSI):
                        M[j, i] = vals[rows]
            for k, v in ((_NU, nu), (_ALPHA, al)):
                rows, i, _ = s.entries[k]
                if len(rows):
                    v[i] = vals[rows]
            out.append(dict(lambda_=L, theta=T, psi=P, beta=B, nu=nu, alpha=al))
        return out

    @staticmethod
    def _ibinv(B: np.ndarray) -> np.ndarray:
        return np.linalg.inv(np.eye(B.shape[0]) - B) if B.any() else np.eye(B.shape[0])

    def implied(self, x: np.ndarray) -> list[Implied]:
        """Implied moments per group: Sigma = L B Psi B' L' + Theta, mu = nu + L B alpha.

        The optimiser asks for the same x several times (objective, gradient, information):
        the moments of the last x are kept (keyed by x and the current K) and handed out as
        copies."""
        key = (np.asarray(x, float).tobytes(), self._k_version)
        hit = getattr(self, "_implied_last", None)
        if hit is None or hit[0] != key:
            out = []
            for mats in self.matrices(x):
                L, Bi = mats["lambda_"], self._ibinv(mats["beta"])
                M = L @ Bi
                sigma = M @ mats["psi"] @ M.T + mats["theta"]
                mu = mats["nu"] + M @ mats["alpha"] if self.meanstructure else None
                out.append(Implied(sigma, mu))
            hit = self._implied_last = (key, out)
        return [Implied(i.sigma.copy(), None if i.mu is None else i.mu.copy()) for i in hit[1]]

    def lv_cov(self, x: np.ndarray) -> list[np.ndarray]:
        """Model-implied covariance of the latent variables per group: B Psi B'."""
        out = []
        for mats in self.matrices(x):
            Bi = self._ibinv(mats["beta"])
            out.append(Bi @ mats["psi"] @ Bi.T)
        return out

    def nstat(self) -> int:
        """Length of the moment vector per group: p(p+1)/2 (+ p with a mean structure)."""
        return self.p * (self.p + 1) // 2 + (self.p if self.meanstructure else 0)

    def delta(self, x: np.ndarray, *, wrt: str = "x") -> list[np.ndarray]:
        """Jacobian of the moment vector per group (see `delta_compact` for the formulas)."""
        out = []
        for g, Dc in enumerate(self.delta_compact(x)):
            if wrt == "free":
                D = np.zeros((Dc.shape[0], len(self.free_rows)))
                D[:, self.group_cols[g]] = Dc
                out.append(D)
            else:
                cols = self._k_selection()[g]
                if cols is None:
                    out.append(Dc @ self.group_K[g])
                elif len(cols) == self.nx and np.array_equal(cols, np.arange(self.nx)):
                    out.append(Dc)      # K is the identity
                else:       # K only selects: place the columns (the same values as Dc K)
                    D = np.zeros((Dc.shape[0], self.nx))
                    D[:, cols] = Dc
                    out.append(D)
        return out

    def _k_selection(self) -> list:
        """Per group, the x column of each of the group's free rows when every row of
        ``group_K[g]`` is a unit vector and no two share a column (None otherwise); cached
        until K changes (``_k_version``, as `implied`)."""
        if getattr(self, "_ksel_version", None) != self._k_version:
            sel = []
            for K in self.group_K:
                ok = (K.size and np.all((K == 0.0) | (K == 1.0))
                      and np.all(K.sum(axis=1) == 1.0))
                cols = K.argmax(axis=1) if ok else None
                sel.append(cols if cols is not None and len(np.unique(cols)) == len(cols)
                           else None)
            self._ksel, self._ksel_version = sel, self._k_version
        return self._ksel

    def delta_compact(self, x: np.ndarray) -> list[np.ndarray]:
        """Jacobian of the moment vector per group with respect to x.

        Compact form: per group only the columns of the free table rows of that group
        (``model.group_cols[g]`` gives their positions among all free rows; ``model.group_K[g]``
        maps them to x). `delta` expands it: ``wrt="x"`` (default) gives d m_g / d x,
        ``wrt="free"`` the derivative with respect to every free table row.

        Returns
        -------
        list of ndarray, per group shape (p* [+ p], n_free_in_group)
            Rows are ``[mu (only with a mean structure), vech(Sigma)]`` with lavaan's vech order
            (lower triangle column by column); lavaan's ``computeDelta``.

        Notes
        -----
        With G = Lambda B Psi B', M = Lambda B, H = B Psi B' Lambda' and a = B alpha:
        d sigma_rc / d lambda_ij = [r=i] G_cj + [c=i] G_rj;
        d sigma_rc / d psi_kl = M_rk M_cl + M_rl M_ck (k != l), M_rk M_ck (k = l);
        d sigma_rc / d theta_kl = indicator of (r, c) in {(k, l), (l, k)};
        d sigma_rc / d beta_kl = M_rk H_lc + M_ck H_lr;
        d mu_r / d nu_k = [r=k], d mu_r / d alpha_k = M_rk, d mu_r / d lambda_ij = [r=i] a_j,
        d mu_r / d beta_kl = M_rk a_l.
        """
        x = np.asarray(x, float)
        vr, vc = self.vr, self.vc
        ps = len(vr)
        p = self.p
        off = p if self.meanstructure else 0
        out = []
        for mats, gf, gc, lnz in zip(self.matrices(x), self.group_free, self.group_cols,
                                     self.lambda_nonzeros):
            D = np.zeros((off + ps, len(gc)))
            L, Bi = mats["lambda_"], self._ibinv(mats["beta"])
            M = L @ Bi
            A = Bi @ mats["psi"] @ Bi.T
            G = L @ A
            a = Bi @ mats["alpha"]
            rows, cols, o, j, fac = lnz          # the lambda columns' nonzeros only
            if len(rows):
                D[off + rows, cols] = G[o, j] * fac
            cols, k, l = gf[_PSI]
            if len(cols):
                t = M[vr][:, k] * M[vc][:, l]
                t2 = M[vr][:, l] * M[vc][:, k]
                D[off:, cols] = np.where((k == l)[None, :], t, t + t2)
            cols, k, l = gf[_THETA]
            if len(cols):
                D[off:, cols] = (((vr[:, None] == k[None, :]) & (vc[:, None] == l[None, :]))
                                 | ((vr[:, None] == l[None, :]) & (vc[:, None] == k[None, :])))
            cols, k, l = gf[_BETA]
            if len(cols):
                H = A @ L.T
                D[off:, cols] = M[vr][:, k] * H[l][:, vc].T + M[vc][:, k] * H[l][:, vr].T
            if off:
                D[:p] = self._mean_rows(gf, len(gc), M, a)
            out.append(D)
        return out

    def delta_mean(self, x: np.ndarray) -> list[np.ndarray]:
        """The mean rows of `delta_compact` per group, shape (p, n_free_in_group); requires a
        mean structure."""
        out = []
        for mats, gf, gc in zip(self.matrices(x), self.group_free, self.group_cols):
            M = mats["lambda_"] @ self._ibinv(mats["beta"])
            out.append(self._mean_rows(gf, len(gc), M, self._ibinv(mats["beta"]) @ mats["alpha"]))
        return out

    def _mean_rows(self, gf, ncol: int, M: np.ndarray, a: np.ndarray) -> np.ndarray:
        """d mu / d x for one group's free rows (the formulas of `delta_compact`)."""
        p = self.p
        D = np.zeros((p, ncol))
        cols, i, j = gf[_LAMBDA]
        if len(cols):
            D[:, cols] = (np.arange(p)[:, None] == i[None, :]) * a[j][None, :]
        cols, k, l = gf[_BETA]
        if len(cols):
            D[:, cols] = M[:, k] * a[l][None, :]
        cols, k, _ = gf[_NU]
        if len(cols):
            D[:, cols] = (np.arange(p)[:, None] == k[None, :])
        cols, k, _ = gf[_ALPHA]
        if len(cols):
            D[:, cols] = M[:, k]
        return D

    def delta_factors(self, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rank-2 factors of each compact Delta column: dSigma_t = a_t b_t' + b_t a_t'.

        Returns
        -------
        list of (a, b), per group two arrays (p, n_free_in_group); columns of mean parameters
        (nu, alpha) are zero. Used to apply the normal-theory weight in O(p^2) per column
        (see `instrument.sem.estimators.ml.factored_information`).

        Notes
        -----
        lambda_ij: a = e_i, b = G_.j; psi_kl: a = M_.k, b = M_.l (b = M_.k / 2 if k = l);
        theta_kl: a = e_k, b = e_l (e_k / 2 if k = l); beta_kl: a = M_.k, b = H_l. (notation of
        `delta_compact`).
        """
        x = np.asarray(x, float)
        p = self.p
        eye = np.eye(p)
        out = []
        for mats, gf, gc in zip(self.matrices(x), self.group_free, self.group_cols):
            fa = np.zeros((p, len(gc)))
            fb = np.zeros((p, len(gc)))
            L, Bi = mats["lambda_"], self._ibinv(mats["beta"])
            M = L @ Bi
            A = Bi @ mats["psi"] @ Bi.T
            cols, i, j = gf[_LAMBDA]
            if len(cols):
                fa[:, cols] = eye[:, i]
                fb[:, cols] = (L @ A)[:, j]
            cols, k, l = gf[_PSI]
            if len(cols):
                fa[:, cols] = M[:, k]
                fb[:, cols] = M[:, l] * np.where(k == l, 0.5, 1.0)
            cols, k, l = gf[_THETA]
            if len(cols):
                fa[:, cols] = eye[:, k]
                fb[:, cols] = eye[:, l] * np.where(k == l, 0.5, 1.0)
            cols, k, l = gf[_BETA]
            if len(cols):
                fa[:, cols] = M[:, k]
                fb[:, cols] = (A @ L.T)[l].T
            out.append((fa, fb))
        return out

    # ------------------------------------------------------------------ starting values
    def start_x(self, stats: SampleStats) -> np.ndarray:
        """Starting values: one-factor principal-axis loadings per factor (scaled to the marker),
        residual variances from the sample, latent covariances from the indicators'
        cross-covariances (`_lv_cov_start`), other covariances zero, sample means as intercepts.

        Only the starting point differs from lavaan's ("simple"/fabin); the ML solution does not.
        """
        pt = self.pt
        vals = self.fixed_values.copy()
        user_start = pt.col("start").astype(float)
        lhs_a, op_a, rhs_a = pt.col("lhs"), pt.col("op"), pt.col("rhs")
        grp_a, free_a = pt.col("group"), pt.col("free")
        ust_a = pt.col("ustart").astype(float)
        ovi = {v: i for i, v in enumerate(self.ov_names)}
        lvi = {v: i for i, v in enumerate(self.lv_names)}
        for g, gs in enumerate(stats.groups):
            S, mean = gs.cov, gs.mean
            rows_g = np.flatnonzero(grp_a == g + 1)
            lam, psi, lv_ind = {}, {}, {}
            comm = np.zeros(self.p)
            inds = []
            ind_of: dict = {}     # the group's loading rows of each factor, in table order
            for r in rows_g.tolist():
                if op_a[r] == "=~" and rhs_a[r] in ovi:
                    ind_of.setdefault(lhs_a[r], []).append(r)
            for lv in self.lv_names:
                ind = ind_of.get(lv, [])
                if ind:
                    inds.append((lv, ind, [ovi[rhs_a[r]] for r in ind]))
            loadings = _first_factor_loadings(S, [idx for _, _, idx in inds])
            for (lv, ind, idx), l1 in zip(inds, loadings):
                fixed_k = [k for k, r in enumerate(ind) if free_a[r] == 0]
                c = 1.0
                if fixed_k:
                    k0 = fixed_k[0]
                    fv = ust_a[ind[k0]]
                    if abs(l1[k0]) > 1e-8 and fv != 0:
                        c = l1[k0] / fv
                psi[lv] = c * c
                for k, r in enumerate(ind):
                    lam[r] = l1[k] / c
                comm[idx] += l1 ** 2
                lv_ind[lv] = (idx, l1 / c)
            for r in rows_g:
                if free_a[r] == 0:
                    continue
                op, lhs = op_a[r], lhs_a[r]
                if not np.isnan(user_start[r]):
                    vals[r] = user_start[r]
                elif op == "=~":
                    vals[r] = lam.get(r, 1.0)
                elif op == "~~" and lhs == rhs_a[r] and lhs in ovi:
                    i = ovi[lhs]
                    vals[r] = max(S[i, i] - comm[i], 0.1 * S[i, i]) if S[i, i] > 0 else 1.0
                elif op == "~~" and lhs == rhs_a[r] and lhs in lvi:
                    vals[r] = psi.get(lhs, 0.05)
                elif op == "~1" and lhs in ovi:
                    vals[r] = mean[ovi[lhs]]
                elif op == "~~" and lhs in lv_ind and rhs_a[r] in lv_ind:
                    vals[r] = _lv_cov_start(S, *lv_ind[lhs], *lv_ind[rhs_a[r]],
                                            psi.get(lhs, 1.0), psi.get(rhs_a[r], 1.0))
                else:
                    vals[r] = 0.0
        if self.nonlinear:
            self.relinearize(vals)
        # equality classes: average over the rows of a class (rows eliminated by a constraint
        # follow from the others)
        x = np.zeros(self.nx)
        cnt = np.zeros(self.nx)
        keep = self.x_col >= 0
        np.add.at(x, self.x_col[keep], vals[self.free_rows][keep])
        np.add.at(cnt, self.x_col[keep], 1.0)
        return x / np.maximum(cnt, 1)



def _first_factor_loadings(S: np.ndarray, idx_list: list) -> list:
    """One-factor principal-axis loadings of each indicator set of ``S``: communalities start at
    the squared multiple correlations (clipped to [0.05, 0.95] of the variance) and are updated
    ten times from the first eigenvector; a single indicator gets sqrt(var / 2). Sets of equal
    size are done as one batch of eigen decompositions."""
    out: list = [None] * len(idx_list)
    diag = np.diag(S)
    by_size: dict = {}
    for k, idx in enumerate(idx_list):
        if len(idx) >= 2:
            by_size.setdefault(len(idx), []).append(k)
        else:
            out[k] = np.sqrt(np.maximum(diag[idx] * 0.5, 1e-8))
    for m, ks in by_size.items():
        Sf = np.stack([S[np.ix_(idx_list[k], idx_list[k])] for k in ks])
        d = np.stack([diag[idx_list[k]] for k in ks])
        h = np.empty_like(d)
        for b in range(len(ks)):
            try:
                h[b] = 1.0 - 1.0 / np.diag(np.linalg.inv(Sf[b])) / d[b]
            except np.linalg.LinAlgError:
                h[b] = 0.5
        R = Sf.copy()
        di = np.arange(m)
        R[:, di, di] = np.clip(h, 0.05, 0.95) * d
        for _ in range(10):
            w, V = np.linalg.eigh(R)
            l1 = V[:, :, -1] * np.sqrt(np.maximum(w[:, -1], 1e-8))[:, None]
            R[:, di, di] = np.clip(l1 ** 2, 0.05 * d, 0.95 * d)
        for b, k in enumerate(ks):
            out[k] = -l1[b] if l1[b].sum() < 0 else l1[b]
    return out

def _lv_cov_start(S: np.ndarray, ia: list, la: np.ndarray, ib: list, lb: np.ndarray,
                  psi_a: float, psi_b: float) -> float:
    """Least-squares start for cov(F_a, F_b) from the indicators' cross-covariances:
    ``sum S_ij l_i l_j / sum l_i^2 l_j^2`` (S_ij = l_i l_j cov for simple structure), kept
    inside a correlation of +-0.95 (starting point only; the ML solution is unaffected)."""
    w = np.outer(la, lb)
    den = float(np.sum(w * w))
    if den <= 0:
        return 0.0
    cov = float(np.sum(S[np.ix_(ia, ib)] * w) / den)
    bound = 0.95 * np.sqrt(max(psi_a * psi_b, 0.0))
    return float(np.clip(cov, -bound, bound))


def with_defined_rows(est: pd.DataFrame, model: Model, x: np.ndarray,
                         vcov_x: np.ndarray | None) -> pd.DataFrame:
    """The estimates table followed by the ``:=`` rows (`Model.defined_rows`)."""
    if not model.defined.defined:
        return est
    extra = model.defined_rows(x, vcov_x)
    return est if extra.empty else pd.concat([est, extra], ignore_index=True)
