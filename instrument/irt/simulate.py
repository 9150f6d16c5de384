"""Simulated responses from graded and generalized partial credit models (for recovery studies)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from instrument.irt.mml import category_probs


def simulate_responses(a: np.ndarray, d: np.ndarray, theta: np.ndarray, *, model: str = "graded",
                       link: str = "logit", seed: int) -> pd.DataFrame:
    """Draw responses 0..m for each person (rows) and item (columns ``i01``...).

    ``a`` (I,), ``d`` (I, m) in the slope-intercept form of `instrument.irt.mml`; ``theta`` (N,).
    """
    rng = np.random.default_rng(seed)
    a = np.asarray(a, float)
    d = np.atleast_2d(np.asarray(d, float))
    P = category_probs(model, link, a, d, np.asarray(theta, float))           # I N K
    cum = np.cumsum(P, axis=2)
    u = rng.random((a.size, theta.size, 1))
    x = (u > cum[:, :, :-1]).sum(axis=2)
    return pd.DataFrame(x.T, columns=[f"i{j + 1:02d}" for j in range(a.size)])
