"""Score (Lagrange multiplier) tests for releasing equality constraints (lavaan's ``lavTestScore``).

`score_tests` is the formula; `equality_score_table` applies it to every equality constraint of a
fitted model, given the score and information of the model with the constraints released.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["score_tests", "equality_score_table", "param_name"]


def score_tests(score: np.ndarray, information: np.ndarray, K: np.ndarray, D: np.ndarray, n: int
                ) -> tuple[float, np.ndarray, np.ndarray]:
    """Total and univariate score (Lagrange multiplier) tests for releasing equality constraints.

    Parameters
    ----------
    score : (k,) array
        Gradient of the log-likelihood per observation with respect to the unconstrained
        parameters θ, at the constrained estimates (lavaan ``lavTech(fit, "gradient.logl")``).
    information : (k, k) array
        Unit expected information of θ at the same point.
    K : (k, q) array
        The constrained model: ``θ = K x`` (its columns span the constrained parameter space).
    D : (k, r) array
        One release direction per constraint: the change of θ that releasing only that
        constraint allows (for lavaan's ``.pA. == .pB.`` it is the unit vector of B).
    n : int
        Total sample size.

    Returns
    -------
    total : float
        ``N g' I⁺ g`` (lavaan's total test, on r df).
    univariate : (r,) array
        ``N (g'd)² / (d'Id − d'IK (K'IK)⁻¹ K'Id)`` per constraint.
    epc : (r,) array
        Expected change along d when the constraint is released: ``(g'd) / (that denominator)``.

    Notes
    -----
    lavaan 0.6-14 ``lavTestScore`` computes each univariate test as ``N g' Z⁺₁₁ g`` with Z the
    information bordered by all other constraints. The (1,1) block of that inverse is the
    covariance of the model with one constraint released, spanned by ``[K, d]``; since
    ``g'K = 0`` at the constrained optimum, ``g' Z⁺₁₁ g`` reduces to the expression above
    (the modification-index form), which needs one q x q inverse instead of one bordered
    inverse per constraint.

    References
    ----------
    Bentler, P. M., & Chou, C.-P. (1992). Some new covariance structure model improvement
    statistics. *Sociological Methods & Research, 21*(2), 259-282.
    https://doi.org/10.1177/0049124192021002006
    """
    total = float(n * score @ np.linalg.pinv(information) @ score)
    IK = information @ K
    A = np.linalg.inv(K.T @ IK)
    ID = information @ D
    den = np.einsum("ij,ij->j", D, ID) - np.einsum("ij,ij->j", (IK.T @ D), A @ (IK.T @ D))
    gd = score @ D
    return total, n * gd ** 2 / den, gd / den


def param_name(lhs: str, op: str, rhs: str) -> str:
    """lavaan's ``group.partial`` spelling of a parameter: ``x3~1``, ``visual=~x2``, ``x1~~x1``."""
    return f"{lhs}~1" if op == "~1" else f"{lhs}{op}{rhs}"


def equality_score_table(score: np.ndarray, info: np.ndarray, model: Any, partable: pd.DataFrame,
                         n: int) -> pd.DataFrame:
    """`score_tests` for every equality constraint of ``model``, as lavaan labels them.

    ``score`` and ``info`` are with respect to the model's free table rows (the constraints
    released). Each equality class (rows sharing one x) gives constraints first == other.
    """
    k = len(model.free_rows)
    dirs, meta_rows = [], []
    for col in range(model.nx):
        members = np.flatnonzero(model.x_col == col)
        for other in members[1:]:
            d = np.zeros(k)
            d[other] = 1.0
            dirs.append(d)
            a = partable.iloc[model.free_rows[members[0]]]
            b = partable.iloc[model.free_rows[other]]
            meta_rows.append({"lhs": f".p{int(a['id'])}.", "op": "==", "rhs": f".p{int(b['id'])}.",
                              "parameter": param_name(b["lhs"], b["op"], b["rhs"]),
                              "lhs_group": int(a["group"]), "rhs_group": int(b["group"])})
    if not dirs:
        raise ValueError("the model has no equality constraints to test.")
    total, uni, epc = score_tests(score, info, model.K, np.array(dirs).T, n)
    out = pd.DataFrame(meta_rows)
    out["X2"] = uni
    out["df"] = 1
    out["pvalue"] = stats.chi2.sf(uni, 1)
    out["epc"] = epc
    out.attrs["total"] = {"X2": total, "df": len(dirs),
                          "pvalue": float(stats.chi2.sf(total, len(dirs)))}
    return out
