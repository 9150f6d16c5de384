"""The one optimiser of the engine (lavaan's ``lav_optim``) and its numerical derivatives.

`optimize` minimises any objective with ``value(x)``, ``gradient(x)`` and
``expected_information(x)`` (or ``gradient_and_information(x)``) by Fisher scoring with step
halving: ML, FIML, DWLS/ULS and two-level ML all run through it, and `optimize_reporting` turns
non-convergence into a warning beside the numbers. `hessian_information` and `gradient_jacobian`
give observed information from an analytic gradient. `single_threaded_blas` limits BLAS to one
thread while fitting.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

__all__ = ["OptimResult", "optimize", "optimize_reporting", "single_threaded_blas",
           "single_threaded", "hessian_information", "gradient_jacobian"]


def single_threaded_blas():
    """Context limiting BLAS to one thread while fitting.

    The matrices of a CFA are small (p up to a few hundred), so BLAS threads only add overhead,
    and on a shared machine they oversubscribe the cores (measured: 30x slower under load).
    lavaan's reference timings also used single-threaded BLAS.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER = ThreadpoolController()   # scans the loaded libraries once
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            _CONTROLLER = False
    if _CONTROLLER is False:
        import contextlib
        return contextlib.nullcontext()
    return _CONTROLLER.limit(limits=1, user_api="blas")


_CONTROLLER = None


def single_threaded(fn):
    """Decorator: run ``fn`` under `single_threaded_blas`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return fn(*args, **kwargs)
    return wrapper


def gradient_jacobian(gradient, x: np.ndarray, *, h: float = 1e-5,
                      richardson: bool = True) -> np.ndarray:
    """Symmetrised Jacobian of an analytic gradient (the Hessian), by central differences with
    step ``h max(1, |x_i|)``; ``richardson=True`` adds the half-step extrapolation (error O(h^4),
    the 4-point stencil of lavaan's ``lav_model_hessian``)."""
    x = np.asarray(x, float)
    k = len(x)
    H = np.zeros((k, k))
    for i in range(k):
        e = np.zeros(k)
        step = h * max(1.0, abs(x[i]))
        e[i] = step
        g1 = (gradient(x + e) - gradient(x - e)) / (2 * step)
        if richardson:
            g2 = (gradient(x + 2 * e) - gradient(x - 2 * e)) / (4 * step)
            g1 = (4 * g1 - g2) / 3
        H[:, i] = g1
    return 0.5 * (H + H.T)


def hessian_information(objective, x: np.ndarray, *, h: float = 1e-5) -> np.ndarray:
    """Observed information per observation: half the Hessian of the objective, from central
    differences of its analytic gradient (Richardson-extrapolated, error O(h^4)).

    Notes
    -----
    lavaan's ``information = "observed"`` with ``observed.information = "hessian"``
    (``lav_model_hessian``, also numerical, of the same objective).
    """
    return 0.5 * gradient_jacobian(objective.gradient, x, h=h)


@dataclass(frozen=True)
class OptimResult:
    """Outcome of `optimize`: x, objective value, iterations, convergence flag, max |gradient|."""

    x: np.ndarray
    value: float
    iterations: int
    converged: bool
    grad_max: float
    message: str = ""


# nonlinear == constraints: rounds of linearisation and the gap |lhs - rhs| that ends them
NONLINEAR_MAX_ROUNDS = 50
NONLINEAR_GAP_TOL = 1e-10


def optimize(objective, x0: np.ndarray, *, max_iter: int = 500, gtol: float = 1e-9,
             xtol: float = 1e-12, secant: bool = True) -> OptimResult:
    """Minimise ``objective`` by Fisher scoring with a structured secant correction and step
    halving.

    Parameters
    ----------
    objective : object
        Needs ``value(x)``, ``gradient(x)`` and ``expected_information(x)`` (E[Hessian]/2 per
        observation); ``gradient_and_information(x)``, when present, is used instead of the
        last two.
    x0 : ndarray
    max_iter : int
    gtol : float
        Converged when max |gradient| < gtol (or when steps stall with max |gradient| < 1e-6).
    secant : bool
        Add the structured symmetric-rank-one correction C (below); False gives plain Fisher
        scoring.

    Returns
    -------
    OptimResult

    Notes
    -----
    Step: x_new = x - a (2 I(x) + C)^-1 g(x), a = 1, 1/2, 1/4, ... until F decreases. Fisher
    scoring alone converges linearly when the model misfits (the observed Hessian differs from
    2 I by a residual term); C learns that term from successive gradients: with s the step and
    r = (g_new - g_old - 2 I(x_new) s) - C s, C += r r' / (r's) (Dennis, Gay & Welsch, 1981,
    structured secant update for nonlinear least squares). C is dropped whenever 2 I + C is not
    positive definite or its step does not decrease F. The final gradient is checked, which is
    tighter than lavaan's nlminb default.

    With nonlinear ``==`` constraints (``objective.model.nonlinear``) the minimisation is repeated
    with the constraints linearised at each solution (``model.relinearize``) until
    max |lhs - rhs| <= `NONLINEAR_GAP_TOL`; the iterations of all rounds are counted.

    References
    ----------
    Dennis, J. E., Gay, D. M., & Welsch, R. E. (1981). An adaptive nonlinear least-squares
    algorithm. ACM Transactions on Mathematical Software, 7(3), 348-368.
    https://doi.org/10.1145/355958.355965
    """
    model = getattr(objective, "model", None)
    if not getattr(model, "nonlinear", False):
        return _scoring(objective, x0, max_iter=max_iter, gtol=gtol, xtol=xtol, secant=secant)
    x, total, gap = np.asarray(x0, float), 0, np.inf
    for _ in range(NONLINEAR_MAX_ROUNDS):
        res = _scoring(objective, x, max_iter=max_iter, gtol=gtol, xtol=xtol, secant=secant)
        total += res.iterations
        vals = model.x_to_partable(res.x)
        gap = model.constraint_gap(vals)
        x = model.partable_to_x(vals)          # relinearises at vals
        if gap <= NONLINEAR_GAP_TOL or not res.converged:
            break
    ok = res.converged and gap <= NONLINEAR_GAP_TOL
    message = res.message if not res.converged else (
        "" if ok else f"the nonlinear equality constraints still differ by {gap:.3g}")
    return OptimResult(x, float(objective.value(x)), total, ok, res.grad_max, message)


def _scoring(objective, x0: np.ndarray, *, max_iter: int, gtol: float, xtol: float,
             secant: bool) -> OptimResult:
    """The Fisher-scoring loop of `optimize` (no constraint handling)."""
    x = np.asarray(x0, float).copy()
    f = objective.value(x)
    if not np.isfinite(f):
        raise FloatingPointError("the objective is not finite at the starting values")
    it = 0
    converged = False
    gmax = np.inf
    message = ""
    stall = 0
    C = np.zeros((len(x), len(x)))
    prev = None          # (step, gradient) of the previous iteration
    for it in range(1, max_iter + 1):
        if hasattr(objective, "gradient_and_information"):
            g, info = objective.gradient_and_information(x)
        else:
            g, info = objective.gradient(x), objective.expected_information(x)
        gmax = float(np.max(np.abs(g))) if len(g) else 0.0
        if gmax < gtol:
            converged = True
            it -= 1
            break
        H0 = 2.0 * info
        if secant and prev is not None:
            sp, gp = prev
            r = (g - gp - H0 @ sp) - C @ sp
            rs = float(r @ sp)
            if abs(rs) > 1e-8 * np.linalg.norm(r) * np.linalg.norm(sp):
                C = C + np.outer(r, r) / rs
        step = None
        if secant and C.any():
            try:
                step = cho_solve(cho_factor(H0 + C), g)
            except np.linalg.LinAlgError:
                C[:] = 0.0
        if step is None:
            try:
                step = np.linalg.solve(H0, g)
            except np.linalg.LinAlgError:
                step = np.linalg.lstsq(H0, g, rcond=None)[0]
        if not np.all(np.isfinite(step)):
            message = "singular information during optimisation"
            break
        a = 1.0
        for _ in range(40):
            xn = x - a * step
            fn = objective.value(xn)
            if np.isfinite(fn) and fn <= f + 1e-14 * max(1.0, abs(f)):
                break
            a *= 0.5
            if a < 0.25 and C.any():
                # the secant model misleads: restart from the Fisher step
                C[:] = 0.0
                step = np.linalg.lstsq(H0, g, rcond=None)[0]
                a = 1.0
        else:
            message = "step halving failed"
            break
        small = np.max(np.abs(a * step)) < xtol * max(1.0, np.max(np.abs(x)))
        prev = (-a * step, g)
        x, fprev, f = xn, f, fn
        if small or abs(fprev - f) <= 1e-16 * max(1.0, abs(f)):
            stall += 1
            if stall >= 3:
                g = objective.gradient(x)
                gmax = float(np.max(np.abs(g))) if len(g) else 0.0
                converged = gmax < 1e-6
                message = "" if converged else "no further decrease"
                break
        else:
            stall = 0
    else:
        message = f"no convergence after {max_iter} iterations"
    return OptimResult(x, float(f), it, converged, gmax, message)


def optimize_reporting(objective, x0: np.ndarray, warnings: list, *, max_iter: int = 500,
                       what: str = "model") -> tuple[np.ndarray, bool, int]:
    """`optimize`, with non-convergence (or a numerical failure) appended to ``warnings``
    instead of raised, naming ``what`` was fitted ("model", "baseline model", ...); returns
    ``(x, converged, iterations)`` (``x0`` after a failure)."""
    try:
        res = optimize(objective, x0, max_iter=max_iter)
    except (FloatingPointError, np.linalg.LinAlgError) as e:
        warnings.append(f"the {what} did not converge: {e}")
        return x0, False, 0
    if not res.converged:
        warnings.append(f"the {what} did not converge ({res.message or 'unknown reason'}; "
                        f"max |gradient| = {res.grad_max:.3g})")
    return res.x, res.converged, res.iterations
