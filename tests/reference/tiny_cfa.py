"""A tiny LISREL CFA for the robust/FIML reference tests, independent of the engine.

Sigma = Lambda Psi Lambda' + Theta and mu = nu, built from lavaan's own parameter table
(rows with lhs, op, rhs, est and whether the parameter is free); Delta by central differences
along one coordinate at a time, which is exact up to rounding because every implied moment is at
most quadratic in any single parameter.
"""
from __future__ import annotations

import numpy as np

from instrument.sem.estimators.mlr import vech


class TinyCFA:
    def __init__(self, rows, ov_names, *, meanstructure=False):
        self.ov = list(ov_names)
        self.lv = []
        for r in rows:
            if r["op"] == "=~" and r["lhs"] not in self.lv:
                self.lv.append(r["lhs"])
        self.meanstructure = meanstructure
        self.rows = [r for r in rows if r["op"] in ("=~", "~~", "~1")]
        self.free_rows = [r for r in self.rows if r["free"]]
        self.x0 = np.array([float(r["est"]) for r in self.free_rows])
        self.names = [f"{r['lhs']}{r['op']}{r['rhs']}" for r in self.free_rows]

    def _mats(self, x):
        p, m = len(self.ov), len(self.lv)
        L = np.zeros((p, m)); Psi = np.zeros((m, m)); Th = np.zeros((p, p)); nu = np.zeros(p)
        val = {id(r): float(r["est"]) for r in self.rows}
        for r, v in zip(self.free_rows, x):
            val[id(r)] = v
        for r in self.rows:
            v = val[id(r)]
            if r["op"] == "=~":
                L[self.ov.index(r["rhs"]), self.lv.index(r["lhs"])] = v
            elif r["op"] == "~~":
                if r["lhs"] in self.ov:
                    i, j = self.ov.index(r["lhs"]), self.ov.index(r["rhs"])
                    Th[i, j] = Th[j, i] = v
                else:
                    i, j = self.lv.index(r["lhs"]), self.lv.index(r["rhs"])
                    Psi[i, j] = Psi[j, i] = v
            elif r["op"] == "~1" and r["lhs"] in self.ov:
                nu[self.ov.index(r["lhs"])] = v
        return L, Psi, Th, nu

    def implied(self, x):
        L, Psi, Th, nu = self._mats(np.asarray(x, dtype=float))
        return L @ Psi @ L.T + Th, nu

    def moments(self, x):
        s, mu = self.implied(x)
        return np.concatenate([mu, vech(s)]) if self.meanstructure else vech(s)

    def delta_numeric(self, x, h=1e-3):
        x = np.asarray(x, dtype=float)
        cols = []
        for j in range(x.size):
            e = np.zeros(x.size); e[j] = h
            cols.append((self.moments(x + e) - self.moments(x - e)) / (2 * h))
        return np.column_stack(cols)

    def delta(self, x):
        """Analytic Jacobian of [mu, vech(Sigma)] w.r.t. the free parameters."""
        L, Psi, Th, nu = self._mats(np.asarray(x, dtype=float))
        p = len(self.ov)
        LP = L @ Psi
        cols = []
        for r in self.free_rows:
            dS = np.zeros((p, p)); dm = np.zeros(p)
            if r["op"] == "=~":
                i, k = self.ov.index(r["rhs"]), self.lv.index(r["lhs"])
                dS[i, :] += LP[:, k]
                dS[:, i] += LP[:, k]
            elif r["op"] == "~~" and r["lhs"] in self.ov:
                i, j = self.ov.index(r["lhs"]), self.ov.index(r["rhs"])
                dS[i, j] = dS[j, i] = 1.0
            elif r["op"] == "~~":
                k, l = self.lv.index(r["lhs"]), self.lv.index(r["rhs"])
                dS = np.outer(L[:, k], L[:, l])
                if k != l:
                    dS = dS + dS.T
            elif r["op"] == "~1":
                dm[self.ov.index(r["lhs"])] = 1.0
            cols.append(np.concatenate([dm, vech(dS)]) if self.meanstructure else vech(dS))
        return np.column_stack(cols)


def ref_rows(records, group=1):
    """lavaan parTable/parameterEstimates records of one group -> rows with a `free` flag."""
    out = []
    for r in records:
        if r.get("group", 1) != group or r["op"] not in ("=~", "~~", "~1"):
            continue
        free = r["free"] > 0 if "free" in r else (r.get("se") not in (None, 0, 0.0))
        out.append({"lhs": r["lhs"], "op": r["op"], "rhs": r["rhs"], "est": r["est"],
                    "free": bool(free), "se": r.get("se")})
    return out


_MEMO: dict = {}


def memo(key, thunk):
    """Compute an expensive test quantity once per test session (e.g. a numeric Hessian)."""
    if key not in _MEMO:
        _MEMO[key] = thunk()
    return _MEMO[key]
