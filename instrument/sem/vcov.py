"""Standard errors of ML fits (lavaan's ``lav_model_information`` and ``lav_model_vcov``): the
information matrix chosen by ``information=`` from `INFORMATION`, the covariance of the estimates
chosen by ``se=`` from `VCOV`.

Both registries take a `MLFitState`, the fitted model with its data, so that each entry is one
function of the same thing:

* `INFORMATION`: "expected" (``sum_g w_g Delta_g' W_g Delta_g``) and "observed" (the Hessian of
  ``-logl / N``: ``Delta' A1obs Delta`` plus the second-derivative term, analytic);
* `VCOV`: "standard" (``E^-1 / N``), "robust.huber.white" (the sandwich
  ``E^-1 B0 E^-1 / N`` with ``B0`` the first-order information of the casewise scores),
  "robust.cluster" (the same sandwich with the scores summed within clusters) and "none".

The categorical estimators' ``robust.sem`` covariance is `instrument.sem.estimators.categorical`'s
(it needs the polychoric asymptotic covariance, not casewise scores); FIML's observed information
and sandwich are `instrument.sem.estimators.fiml_fast`'s (they run over missing-data patterns).

References
----------
Huber (1967) and White (1982) for the sandwich (full references in
`instrument.sem.estimators.mlr`);
Yuan, K.-H., & Bentler, P. M. (2000). Three likelihood-based methods for mean and covariance
structure analysis with nonnormal missing data. Sociological Methodology, 30(1), 165-200.
https://doi.org/10.1111/0081-1750.00078
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from instrument.sem.estimators.fiml_fast import curvature_term
from instrument.sem.estimators.ml import MLObjective, _unvech
from instrument.sem.estimators.mlr import (MLRVcov, _cluster_sum, huber_white_vcov,
                                           ml_moment_gradient, mvnorm_scores)
from instrument.sem.model import Model
from instrument.sem.samplestats import SampleStats

__all__ = ["MLFitState", "INFORMATION", "VCOV", "ROBUST_SE", "observed_information",
           "sandwich", "invert_information"]


@dataclass
class MLFitState:
    """A fitted ML model and what its standard errors and tests are computed from.

    Attributes
    ----------
    model, x : the model and its estimates.
    stats : SampleStats
        The groups' moments; the raw rows (``GroupStats.data``) when a sandwich is asked for.
    objective : MLObjective
        The fit's objective (its weights, its S and means; wishart or normal).
    information : {"expected", "observed"}
        Which information `E` is (lavaan ``information=``).
    clusters : per group cluster labels (or None) for ``se = "robust.cluster"``.
    warnings : list
        Problems found on the way (a singular information matrix) are appended here.
    """

    model: Model
    x: np.ndarray
    stats: SampleStats
    objective: MLObjective
    information: str = "expected"
    clusters: Sequence[np.ndarray | None] | None = None
    warnings: list = field(default_factory=list)

    @functools.cached_property
    def E(self) -> np.ndarray:
        """The unit information matrix named by ``information`` (`INFORMATION`)."""
        return INFORMATION[self.information](self)

    @functools.cached_property
    def E_inv(self) -> np.ndarray:
        """``E^-1`` (`invert_information`: a singular E is noted in ``warnings``)."""
        return invert_information(self.E, self.warnings)

    @functools.cached_property
    def sandwich(self) -> MLRVcov:
        """The Huber-White pieces at the estimates (`sandwich`) with this state's ``E``."""
        return sandwich(self)


# --------------------------------------------------------------------------------------------
# information
# --------------------------------------------------------------------------------------------
def _expected_information(st: MLFitState) -> np.ndarray:
    """``sum_g w_g Delta_g' W_g Delta_g``, the objective's expected information (lavaan
    ``information = "expected"``)."""
    return st.objective.gradient_and_information(st.x)[1]


def observed_information(st: MLFitState) -> np.ndarray:
    """Unit observed information: the Hessian of ``-logl / N`` at the estimates (lavaan
    ``information = "observed"``, ``observed.information = "hessian"``), analytic.

    Notes
    -----
    ``sum_g w_g Delta_g' A1obs_g Delta_g`` without forming ``A1obs``: for directions (a, A) and
    (b, B) of (mu, Sigma), with ``P = Sigma^-1``, ``d = ybar - mu``, ``Q = P (S + d d') P``, the
    h1 part is ``a'Pb + a'PBPd + b'PAPd - tr(PAPB)/2 + tr(PAQB)``; the second-derivative part
    ``sum_g w_g sum_k g_gk d^2 m_gk / dx dx'`` is `curvature_term`. S, ybar and the weights are
    the objective's (divisor N - 1 and weights (n_g - 1)/(N - G) with the wishart likelihood).
    """
    model, x, obj = st.model, st.x, st.objective
    ms = model.meanstructure
    H = 0.0
    grads = []
    for w, imp, D, S, ybar in zip(obj.w, model.implied(x), model.delta(x), obj.S, obj.means):
        p = S.shape[0]
        P = np.linalg.inv(imp.sigma)
        P = 0.5 * (P + P.T)
        off = p if ms else 0
        d = ybar - imp.mu if ms else np.zeros(p)
        Q = P @ (S + np.outer(d, d)) @ P
        D = np.asarray(D)
        dS = _unvech(D[off:], p, model.vr, model.vc)
        PdS = P @ dS
        PA = PdS.reshape(D.shape[1], -1)
        QA = (Q @ dS).reshape(D.shape[1], -1)
        PAT = np.swapaxes(PdS, 1, 2).reshape(D.shape[1], -1)
        Hg = -0.5 * (PA @ PAT.T) + QA @ PAT.T
        if off:
            dmu = D[:off]
            Pm = P @ dmu
            cross = Pm.T @ (dS @ (P @ d)).T
            Hg = Hg + dmu.T @ Pm + cross + cross.T
        H = H + w * Hg
        grads.append(ml_moment_gradient(imp.sigma, imp.mu, S, ybar, meanstructure=ms))
    H = H + curvature_term(model, x, grads, list(obj.w))
    return 0.5 * (H + H.T)


#: information= -> the unit information matrix of a `MLFitState`
INFORMATION: dict[str, Callable[[MLFitState], np.ndarray]] = {
    "expected": _expected_information,
    "observed": observed_information,
}


def invert_information(E: np.ndarray, warnings: list) -> np.ndarray:
    """``E^-1``; a singular E (smallest eigenvalue <= 1e-10 of the largest) is noted in
    ``warnings`` and pseudo-inverted, as the model may then not be identified."""
    ev = np.linalg.eigvalsh(E)
    if ev[0] <= 1e-10 * max(abs(ev[-1]), 1e-300):
        warnings.append("the information matrix is singular (smallest eigenvalue "
                        f"{ev[0]:.3g}): the model may not be identified; standard errors "
                        "are not reliable")
        Ei = np.linalg.pinv(E)
    else:
        Ei = np.linalg.inv(E)
    return 0.5 * (Ei + Ei.T)


# --------------------------------------------------------------------------------------------
# sandwich
# --------------------------------------------------------------------------------------------
def _projected_scores(X: np.ndarray, sigma: np.ndarray, mu: np.ndarray, delta: np.ndarray,
                      meanstructure: bool, chunk: int = 256) -> np.ndarray:
    """Casewise scores times Delta, ``mvnorm_scores(X, sigma, mu) @ delta`` (n x nx), in row
    chunks so that the (n x p*) score matrix is never held at once."""
    X = np.asarray(X, dtype=float)
    P = np.linalg.inv(sigma)
    P = 0.5 * (P + P.T)
    out = np.empty((X.shape[0], delta.shape[1]))
    for i in range(0, X.shape[0], chunk):
        out[i:i + chunk] = mvnorm_scores(X[i:i + chunk], sigma, mu, meanstructure=meanstructure,
                                         sigma_inv=P) @ delta
    return out


def sandwich(st: MLFitState) -> MLRVcov:
    """Huber-White covariance ``E^-1 B0 E^-1 / N`` with ``B0 = sum_g (n_g/N) B0_g``,
    ``B0_g = (S_g Delta_g)'(S_g Delta_g) / n_g`` from the casewise scores projected on the
    parameters first; with clusters the projected scores are summed within clusters and
    multiplied by ``sqrt(C/(C-1))`` (lavaan ``se = "robust.huber.white"`` /
    ``"robust.cluster"``; equals the score-matrix version in ``tests/reference/mlr_slow.py``).

    Without a mean structure the scores are taken at the sample means, as lavaan does.
    """
    model, x, stats = st.model, st.x, st.stats
    clusters = st.clusters if st.clusters is not None else [None] * stats.ngroups
    N = stats.ntotal
    E, E_inv = st.E, st.E_inv
    B0, per = 0.0, []
    for gs, imp, D, cl in zip(stats.groups, model.implied(x), model.delta(x), clusters):
        if gs.data is None:
            raise ValueError("a sandwich (robust) covariance needs the raw rows: build the "
                             "groups with GroupStats.from_data(..., keep_data=True)")
        mu = imp.mu if model.meanstructure else gs.mean
        SD = _projected_scores(gs.data, imp.sigma, mu, np.asarray(D), model.meanstructure)
        if cl is not None:
            SD = _cluster_sum(SD, cl)
        b = SD.T @ SD / gs.n
        per.append(b)
        B0 = B0 + (gs.n / N) * b
    V = huber_white_vcov(E_inv, B0, N)
    return MLRVcov(vcov=V, se=np.sqrt(np.clip(np.diag(V), 0, None)), information=E,
                   information_inv=E_inv, B0=B0, B0_group=tuple(per), ntotal=N)


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------
def _vcov_standard(st: MLFitState) -> np.ndarray:
    return st.E_inv / st.objective.N


def _vcov_sandwich(st: MLFitState) -> np.ndarray:
    return st.sandwich.vcov


#: se= -> the covariance matrix of x of a `MLFitState` (None: no standard errors)
VCOV: dict[str, Callable[[MLFitState], np.ndarray | None]] = {
    "standard": _vcov_standard,
    "robust.huber.white": _vcov_sandwich,
    "robust.cluster": _vcov_sandwich,
    "none": lambda st: None,
}

#: the se= values that need the raw rows (casewise scores)
ROBUST_SE = ("robust.huber.white", "robust.cluster")
