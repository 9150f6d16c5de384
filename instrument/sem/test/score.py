"""Score (Lagrange multiplier) tests for releasing equality constraints (lavaan's ``lavTestScore``).

`score_tests` is the formula; `equality_score_table` applies it to every equality constraint of a
fitted model, given the score and information of the model with the constraints released.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["score_tests", "ScoreTests", "equality_score_table", "param_name"]


class ScoreTests(NamedTuple):
    """What `score_tests` returns: the total test, and per block of release directions its
    statistic, expected parameter change, degrees of freedom and one-step change of θ."""

    total: float
    X2: np.ndarray
    epc: list
    df: np.ndarray
    change: list


def score_tests(score: np.ndarray, information: np.ndarray, K: np.ndarray, D: np.ndarray, n: int,
                blocks: Sequence[Sequence[int]] | None = None, *, total: bool = True
                ) -> ScoreTests:
    """Total and per-block score (Lagrange multiplier) tests for releasing restrictions.

    Parameters
    ----------
    score : (k,) array
        Gradient of the log-likelihood per observation (or minus that of a WLS fit function)
        with respect to the unrestricted parameters θ, at the restricted estimates (lavaan
        ``lavTech(fit, "gradient.logl")``).
    information : (k, k) array
        Unit expected information of θ at the same point.
    K : (k, q) array
        The restricted model: ``θ = K x`` (its columns span the restricted parameter space; a
        parameter fixed in the restricted model has a zero row, an equated one shares a column).
    D : (k, r) array
        One release direction per restriction: the change of θ that releasing only that
        restriction allows (for lavaan's ``.pA. == .pB.`` it is the unit vector of B).
    n : int
        Total sample size.
    blocks : sequence of sequences of column indices of D, optional
        Restrictions tested jointly (e.g. every threshold of one item); default: each column
        alone (lavaan's univariate tests).
    total : bool
        Compute the total test ``N g' I⁺ g`` (NaN otherwise).

    Returns
    -------
    ScoreTests
        ``total``; per block ``X2``, ``epc`` (array of the block's expected changes along its
        directions), ``df`` (the rank of the block's information) and ``change`` (the one-step
        change of θ with the block released).

    Notes
    -----
    For a block ``D_b`` with ``den = D_b'ID_b − D_b'IK (K'IK)⁻¹ K'ID_b``:
    ``epc = den⁺ D_b'g``, ``X2 = N g'D_b epc`` on ``rank(den)`` df and
    ``change = D_b epc − K (K'IK)⁻¹ K'ID_b epc`` (one Fisher-scoring step of the model with the
    block released; minimum-norm when the block is not identified). For a single direction
    this is ``N (g'd)² / den``, the modification-index form. lavaan 0.6-14 ``lavTestScore``
    computes each univariate test as ``N g' Z⁺₁₁ g`` with Z the information bordered by all
    other constraints; since ``g'K = 0`` at the restricted optimum the two agree, and this
    form needs one q x q inverse instead of one bordered inverse per test.

    References
    ----------
    Bentler, P. M., & Chou, C.-P. (1992). Some new covariance structure model improvement
    statistics. *Sociological Methods & Research, 21*(2), 259-282.
    https://doi.org/10.1177/0049124192021002006
    Sörbom, D. (1989). Model modification. *Psychometrika, 54*(3), 371-384.
    https://doi.org/10.1007/BF02294623
    """
    tot = float(n * score @ np.linalg.pinv(information) @ score) if total else float("nan")
    IK = information @ K
    A = np.linalg.inv(K.T @ IK)
    ID = information @ D
    KID = IK.T @ D
    if blocks is None:
        blocks = [[j] for j in range(D.shape[1])]
    x2, df, epcs, changes = [], [], [], []
    gD_all = score @ D
    for b in blocks:
        b = list(b)
        den = D[:, b].T @ ID[:, b] - KID[:, b].T @ A @ KID[:, b]
        den = 0.5 * (den + den.T)
        gD = gD_all[b]
        if len(b) == 1:
            epc = gD / den[0] if den[0, 0] != 0 else np.zeros(1)
            rank = 1
        else:
            epc = np.linalg.pinv(den, rcond=1e-8, hermitian=True) @ gD
            rank = int(np.linalg.matrix_rank(den, tol=1e-8 * max(np.abs(den).max(), 1e-300)))
        x2.append(float(n * gD @ epc))
        df.append(max(rank, 1))
        epcs.append(epc)
        changes.append(D[:, b] @ epc - K @ (A @ (KID[:, b] @ epc)))
    return ScoreTests(tot, np.array(x2), epcs, np.array(df), changes)


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
    res = score_tests(score, info, model.K, np.array(dirs).T, n)
    total, uni = res.total, res.X2
    epc = np.array([e[0] for e in res.epc])
    out = pd.DataFrame(meta_rows)
    out["X2"] = uni
    out["df"] = 1
    out["pvalue"] = stats.chi2.sf(uni, 1)
    out["epc"] = epc
    out.attrs["total"] = {"X2": total, "df": len(dirs),
                          "pvalue": float(stats.chi2.sf(total, len(dirs)))}
    return out
