"""Score (Lagrange multiplier) tests of a fitted multi-group model: lavaan's ``lavTestScore`` for
its equality constraints (`score_test_equality`), and the score and unit information of the model
with chosen rows released (`score_information`), which `instrument.invariance.dif.release_tests`
uses to test releasing an item's restrictions. Both apply the one formula,
`instrument.sem.test.score.score_tests`.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from instrument.sem.test.score import equality_score_table

__all__ = ["score_test_equality", "score_information", "fit_state", "WLS_ESTIMATORS"]

WLS_ESTIMATORS = ("WLSMV", "ULSMV", "WLS", "DWLS", "ULS")


def fit_state(fit: Any) -> tuple[Any, np.ndarray, Any, str, str]:
    """``(model, x, sample statistics, estimator, weight)`` of a fitted model, rebuilt from its
    result (the WLS weight is "ML" for the likelihood estimators)."""
    est = str(fit.meta.options.get("estimator", "ML")).upper()
    if est in WLS_ESTIMATORS:
        from instrument.sem.estimators.categorical import model_state
        st = model_state(fit)
        return st["model"], st["x"], st["cstats"], est, st["weight"]
    model, x, sample = fit._rebuilt()
    return model, x, sample, est, "ML"


def score_information(model: Any, x: np.ndarray, sample: Any, estimator: str, weight: str
                      ) -> tuple[np.ndarray, np.ndarray, int]:
    """Score and unit information with respect to every free table row of ``model`` (rows
    that share a parameter counted apart) at ``x``, and the total N.

    Notes
    -----
    ML (and MLR, whose score tests lavaan also computes from the ML information): the score is
    the gradient of logl/N, ``g = Σ_g w_g (-1/2) Δ_g' ∂F_g/∂σ_g`` and the information
    ``I = Σ_g w_g Δ_g' W_g Δ_g`` (``w_g = n_g / N``; W_g the normal-theory weight of the
    moments). WLSMV/ULSMV: minus the gradient of lavaan's DWLS fit function,
    ``g = Σ_g w_g (n_g − 1)/n_g Δ_g' V_g (s_g − σ_g)`` and ``I = Σ_g w_g Δ_g' V_g Δ_g`` with
    V_g the diagonal weight. These are the ingredients of lavaan 0.6-14 ``lavTestScore``
    (``lav_model_gradient`` and ``lav_model_information`` with the constraints dropped).
    """
    k = len(model.free_rows)
    score, info = np.zeros(k), np.zeros((k, k))
    n = np.array([g.n for g in sample.groups], float)
    if estimator in WLS_ESTIMATORS:
        from instrument.sem.estimators.categorical import DWLSObjective
        obj = DWLSObjective(model, sample, weight)
        for f, ng, v, o, e, D in zip(n / n.sum(), n, obj.V, obj.obs, model.wls_est(x),
                                     model.wls_delta(x, wrt="free")):
            VD = v[:, None] * D
            score += f * (ng - 1) / ng * (VD.T @ (o - e))
            info += f * (D.T @ VD)
    else:
        from instrument.sem.estimators.ml import MLObjective
        grad, info = MLObjective(model, sample).gradient_and_information(x, wrt="free")
        score = -0.5 * grad
    return score, 0.5 * (info + info.T), int(n.sum())


def score_test_equality(fit: Any) -> pd.DataFrame:
    """lavaan's ``lavTestScore()`` for every equality constraint of a fitted model (ML, MLR,
    WLSMV).

    Returns
    -------
    DataFrame
        One row per constraint: ``lhs`` and ``rhs`` (lavaan's ``.pK.`` plabels of the two
        parameters), ``parameter`` (``group.partial`` spelling, e.g. ``x3~1``), ``lhs_group``,
        ``rhs_group``, ``X2``, ``df`` (1), ``pvalue`` and ``epc`` (expected change of the
        second parameter when the constraint is released). The total test is in
        ``.attrs["total"]`` as ``{"X2", "df", "pvalue"}``.

    Notes
    -----
    Constraints are written as lavaan writes them: the first parameter of each equality class
    against each other member. Score and information are `score_information`'s, for the model
    without the constraints evaluated at the constrained estimates; the statistics are
    `instrument.sem.test.score.score_tests`. For WLSMV these are the (unscaled) statistics
    lavaan's ``lavTestScore`` reports; use them to rank candidate releases.
    """
    model, x, sample, est, weight = fit_state(fit)
    if est not in WLS_ESTIMATORS and est != "ML":
        warnings.warn("score tests use the ML (standard) information; for "
                      f"{est} fits this is lavaan's fallback too.", stacklevel=2)
    g, info, n = score_information(model, x, sample, est, weight)
    return equality_score_table(g, info, model, fit.partable, n)
