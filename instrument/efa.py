"""Exploratory factor analysis matching psych 2.2.9 ``fa()``, KMO, Bartlett and parallel analysis.

Extraction uses factor_analyzer 0.5.1 behind a compatibility shim (its ``check_array`` call
passes ``force_all_finite``, renamed ``ensure_all_finite`` in scikit-learn 1.8; its objective writes
into the correlation matrix, so it always gets a private writable copy). Everything factor_analyzer
gets wrong after an oblique rotation is done here instead (see /work/shared/LIBS.md):

* the factor correlation matrix Phi is reordered together with the loadings;
* communalities are ``diag(Lambda Phi Lambda')`` (rotation-invariant), uniquenesses ``1 - h2``;
* psych's ``Promax`` (varimax with Kaiser normalisation, then a power-4 target without it)
  replaces factor_analyzer's ``promax``;
* factors are signed and sorted as psych does (column sums positive; decreasing
  ``diag(Phi Lambda' Lambda)``), and named by extraction order (``MR1``, ``MR3``, ...).
"""
from __future__ import annotations

import contextlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import optimize, stats

from instrument.results import JSONResult, Meta, Table, from_jsonable, hash_frame, to_jsonable

__all__ = ["EFAResult", "efa", "kmo", "bartlett", "parallel_analysis", "ParallelResult"]

METHODS = ("minres", "ml")
ROTATIONS = ("oblimin", "geomin", "promax", "varimax", None)
_OBLIQUE = ("oblimin", "geomin", "promax")
_USE = ("pairwise", "listwise")
CORRELATIONS = ("pearson", "polychoric")


# --------------------------------------------------------------------------------------------
# factor_analyzer compatibility shim
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _factor_analyzer() -> Iterator[Any]:
    """Yield ``FactorAnalyzer`` with ``check_array(force_all_finite=)`` mapped for sklearn >= 1.8."""
    import factor_analyzer.factor_analyzer as fa_mod

    original = fa_mod.check_array

    def check_array(*args: Any, force_all_finite: Any = None, **kw: Any) -> Any:
        if force_all_finite is not None:
            try:
                return original(*args, ensure_all_finite=force_all_finite, **kw)
            except TypeError:  # scikit-learn < 1.6 knows only the old name
                return original(*args, force_all_finite=force_all_finite, **kw)
        return original(*args, **kw)

    fa_mod.check_array = check_array
    try:
        yield fa_mod.FactorAnalyzer
    finally:
        fa_mod.check_array = original


# --------------------------------------------------------------------------------------------
# input
# --------------------------------------------------------------------------------------------
def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name}= must be one of {', '.join(repr(a) for a in allowed)}; "
                         f"got {value!r}.")


def _corr(df: pd.DataFrame, use: str,
          cor: str = "pearson") -> tuple[np.ndarray, list[str], int]:
    """Item correlations and the N they rest on.

    ``cor="pearson"``: pairwise-complete (or listwise) Pearson, psych ``cor(use=)``;
    ``cor="polychoric"``: lavaan's two-step polychoric correlations (`instrument.sem.polychoric`)
    with the same missing-data handling. N is the rows used: every row with ``use="pairwise"``
    (psych's ``n.obs = nrow(x)``), the complete rows with ``use="listwise"``.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df= must be a pandas DataFrame; got {type(df).__name__}.")
    bad = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise TypeError(f"df= column(s) {bad} are not numeric; pass item columns only.")
    _check_choice("use", use, _USE)
    _check_choice("cor", cor, CORRELATIONS)
    x = df.astype(float)
    if use == "listwise":
        x = x.dropna()
    if x.shape[1] < 3:
        raise ValueError(f"df= needs at least 3 item columns; got {x.shape[1]}.")
    flat = [c for c in x.columns if not (x[c].std() > 0)]
    if flat:
        raise ValueError(f"item(s) {flat} have no variance.")
    if cor == "polychoric":
        from instrument.sem.polychoric import polychoric
        R = polychoric(x, ordered=True, missing=use).to_numpy(dtype=float, copy=True)
    else:
        R = x.corr().to_numpy(copy=True)  # pairwise-complete Pearson, psych cor(use="pairwise")
    if np.isnan(R).any():
        raise ValueError("some item pairs have no complete rows; the correlation matrix has NaN.")
    return R, [str(c) for c in x.columns], int(len(x))


def _smc(R: np.ndarray) -> np.ndarray:
    return np.clip(1 - 1 / np.diag(np.linalg.pinv(R)), 0.0, 1.0)


# --------------------------------------------------------------------------------------------
# KMO and Bartlett
# --------------------------------------------------------------------------------------------
def kmo(df: pd.DataFrame, *, use: str = "pairwise") -> pd.Series:
    """Kaiser-Meyer-Olkin measure of sampling adequacy (overall and per item).

    Returns
    -------
    Series
        ``MSA`` (overall) followed by one ``MSA`` per item (index = item names).

    Notes
    -----
    With ``R`` the correlations and ``Q`` the partial correlations
    (``Q_ij = -R^-1_ij / sqrt(R^-1_ii R^-1_jj)``), off-diagonal sums:
    ``MSA = sum r^2 / (sum r^2 + sum q^2)``; ``MSA_i`` sums over row i. Matches psych ``KMO``.

    References
    ----------
    Kaiser, H. F. (1974). An index of factorial simplicity. Psychometrika, 39(1), 31-36.
    https://doi.org/10.1007/BF02291575
    """
    R, names, _ = _corr(df, use)
    Ri = np.linalg.inv(R)
    d = np.sqrt(np.diag(Ri))
    Q = -Ri / np.outer(d, d)
    np.fill_diagonal(Q, 0.0)
    R0 = R.copy()
    np.fill_diagonal(R0, 0.0)
    r2, q2 = R0 ** 2, Q ** 2
    msa = r2.sum() / (r2.sum() + q2.sum())
    msai = r2.sum(0) / (r2.sum(0) + q2.sum(0))
    return pd.Series([msa, *msai], index=["MSA", *names], name="KMO")


def bartlett(df: pd.DataFrame, *, use: str = "pairwise") -> dict[str, float]:
    """Bartlett's test of sphericity (H0: the correlation matrix is an identity).

    Returns
    -------
    dict
        ``chisq``, ``df``, ``p.value``, ``n``.

    Notes
    -----
    ``chisq = -(n - 1 - (2p + 5)/6) log|R|`` on ``p(p-1)/2`` df (psych ``cortest.bartlett``).

    References
    ----------
    Bartlett, M. S. (1951). The effect of standardization on a chi square approximation in factor
    analysis. Biometrika, 38(3/4), 337-344. https://doi.org/10.2307/2332580
    """
    R, _, n = _corr(df, use)
    p = R.shape[0]
    sign, logdet = np.linalg.slogdet(R)
    chisq = -(n - 1 - (2 * p + 5) / 6) * logdet
    dof = p * (p - 1) / 2
    return {"chisq": float(chisq), "df": float(dof), "p.value": float(stats.chi2.sf(chisq, dof)),
            "n": n}


# --------------------------------------------------------------------------------------------
# rotation (psych conventions)
# --------------------------------------------------------------------------------------------
def _rotate(L: np.ndarray, rotation: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    if rotation is None or L.shape[1] < 2:
        return L.copy(), None
    from factor_analyzer.rotator import Rotator

    if rotation == "varimax":  # stats::varimax (Kaiser normalisation), psych rotate = "varimax"
        return Rotator(method="varimax", normalize=True).fit_transform(L), None
    if rotation == "oblimin":  # GPArotation::oblimin, gam = 0
        r = Rotator(method="oblimin", gamma=0)
        out = r.fit_transform(L)
        return out, r.phi_
    if rotation == "geomin":  # GPArotation::geominQ, delta = .01
        r = Rotator(method="geomin_obl", delta=0.01)
        out = r.fit_transform(L)
        return out, r.phi_
    if rotation == "promax":  # psych::Promax (m = 4)
        V = Rotator(method="varimax", normalize=True).fit_transform(L)
        Qt = V * np.abs(V) ** 3
        U = np.linalg.lstsq(V, Qt, rcond=None)[0]
        U = U @ np.diag(np.sqrt(np.diag(np.linalg.inv(U.T @ U))))
        Ui = np.linalg.inv(U)
        return V @ U, Ui @ Ui.T
    raise ValueError(f"rotation= must be one of {ROTATIONS}; got {rotation!r}.")


def _fit_stats(R: np.ndarray, L: np.ndarray, Phi: np.ndarray | None, n: int) -> dict[str, float]:
    """psych ``fa.stats``: objective, STATISTIC, dof, rms, TLI, RMSEA (no smoothing applied)."""
    p, m = L.shape
    model = L @ (Phi if Phi is not None else np.eye(m)) @ L.T
    resid = R - model
    np.fill_diagonal(resid, 0.0)
    dof = p * (p - 1) / 2 - p * m + m * (m - 1) / 2
    rms = math.sqrt((resid ** 2).sum() / (p * (p - 1)))
    M = model.copy()
    np.fill_diagonal(M, 1.0)
    MiR = np.linalg.solve(M, R)
    obj = float(np.trace(MiR) - np.linalg.slogdet(MiR)[1] - p)
    nm = (n - 1) - (2 * p + 5) / 6 - 2 * m / 3
    chisq = max(obj * nm, 0.0)
    F0 = float(np.trace(R) - np.linalg.slogdet(R)[1] - p)
    M0 = F0 * 2 / (p * (p - 1))
    Mm = obj / dof if dof > 0 else np.nan
    tli = (M0 - Mm) / (M0 - 1 / nm)
    rmsea = math.sqrt(max(chisq / (dof * n) - 1 / (n - 1), 0.0)) if dof > 0 else np.nan
    return {"objective": obj, "STATISTIC": chisq, "dof": dof,
            "PVAL": float(stats.chi2.sf(chisq, dof)) if dof > 0 else np.nan,
            "rms": rms, "TLI": tli, "RMSEA": rmsea, "n.obs": float(n)}


# --------------------------------------------------------------------------------------------
# EFA
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EFAResult:
    """An EFA solution in psych's conventions.

    Attributes
    ----------
    loadings : DataFrame
        Items x factors (pattern matrix for oblique rotations); columns named by extraction order
        (``MR1``/``ML1`` ...) and sorted as psych sorts them.
    phi : DataFrame or None
        Factor correlations (oblique rotations), in the same order as ``loadings``.
    communalities, uniquenesses : Series
        ``h2 = diag(Lambda Phi Lambda')`` and ``1 - h2``.
    fit : dict
        psych ``fa.stats``: ``objective STATISTIC dof PVAL rms TLI RMSEA n.obs``.
    method, rotation : str
    n_factors : int
    converged : bool
    meta : Meta
    """

    loadings: pd.DataFrame
    phi: pd.DataFrame | None
    communalities: pd.Series
    uniquenesses: pd.Series
    fit: Mapping[str, float]
    method: str
    rotation: str | None
    n_factors: int
    converged: bool
    meta: Meta = field(default_factory=Meta)

    @property
    def structure(self) -> pd.DataFrame:
        """Structure matrix ``Lambda Phi`` (the loadings for orthogonal solutions)."""
        if self.phi is None:
            return self.loadings
        return self.loadings @ self.phi

    def to_dict(self) -> dict:
        return {"loadings": to_jsonable(self.loadings.reset_index(names="item")),
                "phi": None if self.phi is None else to_jsonable(self.phi.reset_index(names="factor")),
                "communalities": to_jsonable(self.communalities),
                "uniquenesses": to_jsonable(self.uniquenesses), "fit": to_jsonable(dict(self.fit)),
                "method": self.method, "rotation": self.rotation, "n_factors": self.n_factors,
                "converged": self.converged, "meta": self.meta.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EFAResult":
        L = from_jsonable(d["loadings"]).set_index("item").rename_axis(None)
        phi = None if d["phi"] is None else from_jsonable(d["phi"]).set_index("factor").rename_axis(None)
        fit = {k: (np.nan if v is None else v) for k, v in d["fit"].items()}
        return cls(loadings=L, phi=phi,
                   communalities=pd.Series(d["communalities"], dtype=float, name="h2"),
                   uniquenesses=pd.Series(d["uniquenesses"], dtype=float, name="u2"),
                   fit=fit, method=d["method"], rotation=d["rotation"],
                   n_factors=int(d["n_factors"]), converged=bool(d["converged"]),
                   meta=Meta.from_dict(d.get("meta", {})))

    def summary(self) -> Table:
        f = self.loadings.copy()
        f["h2"] = self.communalities
        f["u2"] = self.uniquenesses
        f = f.reset_index(names="item")
        notes = [f"{self.method} extraction, rotation {self.rotation}; chi2 = "
                 f"{self.fit['STATISTIC']:.3f} on {self.fit['dof']:g} df, RMSEA = "
                 f"{self.fit['RMSEA']:.3f}, TLI = {self.fit['TLI']:.3f}, rms = {self.fit['rms']:.4f}."]
        if self.phi is not None:
            notes.append("Factor correlations: " + "; ".join(
                f"{a}-{b} {self.phi.at[a, b]:.2f}" for i, a in enumerate(self.phi.index)
                for b in self.phi.columns[i + 1:]))
        return Table(f"Exploratory factor analysis ({self.n_factors} factors)", f, notes=notes)


def efa(df: pd.DataFrame, n_factors: int, *, method: str = "minres",
        rotation: str | None = "oblimin", use: str = "pairwise",
        cor: str = "pearson") -> EFAResult:
    """Exploratory factor analysis of item correlations (psych ``fa()``).

    Parameters
    ----------
    df : DataFrame
        Item scores (numeric columns only).
    n_factors : int
    method : {"minres", "ml"}
        Minimum residual (ULS) or maximum likelihood extraction.
    rotation : {"oblimin", "geomin", "promax", "varimax", None}
        ``oblimin`` = GPArotation quartimin (psych default), ``geomin`` = geominQ (delta .01),
        ``promax`` = psych ``Promax``, ``varimax`` = ``stats::varimax``.
    use : {"pairwise", "listwise"}
        Missing-data handling for the correlation matrix (psych's default is pairwise).
    cor : {"pearson", "polychoric"}
        Correlations analysed (psych ``fa(cor="cor"|"poly")``); polychoric for ordinal items,
        from lavaan's two-step estimator.

    Returns
    -------
    EFAResult

    Notes
    -----
    Matches psych 2.2.9 ``fa(r, nfactors, fm, rotate)`` with GPArotation 2022.10-2 (refs case i):
    loadings, Phi, communalities and fit statistics. ``n.obs`` is the number of rows used.
    psych smooths a non-positive-definite matrix (``cor.smooth``) before its fit statistics; this
    function does not and reports the statistics of the raw matrix.

    References
    ----------
    Harman, H. H., & Jones, W. H. (1966). Factor analysis by minimizing residuals (minres).
    Psychometrika, 31(3), 351-368. https://doi.org/10.1007/BF02289468

    Jennrich, R. I. (2002). A simple general method for oblique rotation. Psychometrika, 67(1),
    7-19. https://doi.org/10.1007/BF02294706

    Hendrickson, A. E., & White, P. O. (1964). Promax: A quick method for rotation to oblique
    simple structure. British Journal of Statistical Psychology, 17(1), 65-70.

    Examples
    --------
    >>> # In R: psych::fa(hs[, paste0("x", 1:9)], nfactors = 3, fm = "minres", rotate = "oblimin")
    """
    _check_choice("method", method, METHODS)
    _check_choice("rotation", rotation, ROTATIONS)
    R, names, n = _corr(df, use, cor)
    p = R.shape[0]
    if not isinstance(n_factors, (int, np.integer)) or not 1 <= n_factors < p:
        raise ValueError(f"n_factors= must be an integer from 1 to {p - 1}; got {n_factors!r}.")
    with warnings.catch_warnings(record=True) as caught, _single_thread_blas():
        warnings.simplefilter("always")
        with _factor_analyzer() as FactorAnalyzer:
            fa = FactorAnalyzer(n_factors=int(n_factors), method=method, rotation=None,
                                is_corr_matrix=True, use_smc=True, bounds=(0.005, 1))
            fa.fit(np.array(R, copy=True))
    converged = not any("converge" in str(w.message).lower() for w in caught)
    L0 = np.asarray(fa.loadings_, dtype=float)
    if n_factors > 1:  # psych signs the unrotated solution by column sums before rotating
        s = np.sign(L0.sum(0))
        s[s == 0] = 1
        L0 = L0 * s
    elif L0.sum() < 0:
        L0 = -L0
    h2 = np.sum(L0 ** 2, axis=1)
    L, Phi = _rotate(L0, rotation)
    s = np.sign(L.sum(0))
    s[s == 0] = 1
    L = L * s
    if Phi is not None:
        Phi = Phi * np.outer(s, s)
    prefix = {"minres": "MR", "ml": "ML"}[method]
    labels = [f"{prefix}{j + 1}" for j in range(int(n_factors))]
    if n_factors > 1:
        ev = np.diag((Phi if Phi is not None else np.eye(int(n_factors))) @ L.T @ L)
        order = np.argsort(-ev, kind="stable")
        L = L[:, order]
        labels = [labels[j] for j in order]
        if Phi is not None:
            Phi = Phi[np.ix_(order, order)]
    fitstats = _fit_stats(R, L, Phi, n)
    Ld = pd.DataFrame(L, index=names, columns=labels)
    phi = None if Phi is None else pd.DataFrame(Phi, index=labels, columns=labels)
    return EFAResult(loadings=Ld, phi=phi, communalities=pd.Series(h2, index=names, name="h2"),
                     uniquenesses=pd.Series(1 - h2, index=names, name="u2"), fit=fitstats,
                     method=method, rotation=rotation, n_factors=int(n_factors),
                     converged=converged,
                     meta=Meta(options={"method": method, "rotation": rotation, "use": use,
                                        "cor": cor, "n_factors": int(n_factors), "n_obs": n},
                               data_hash=hash_frame(df)))


# --------------------------------------------------------------------------------------------
# parallel analysis
# --------------------------------------------------------------------------------------------
def _single_thread_blas() -> contextlib.AbstractContextManager:
    """Limit BLAS to one thread (L-BFGS-B on tiny problems is ~25x slower with threads)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _minres_values(R: np.ndarray, n_factors: int = 1) -> np.ndarray:
    """Eigenvalues of ``R`` with communalities of an ``n_factors`` minres fit on the diagonal.

    Minres/ULS: minimise the sum of squared eigenvalues of ``R - Psi`` beyond the first
    ``n_factors`` over the uniquenesses ``Psi`` in [.005, 1] (L-BFGS-B, analytic gradient
    ``2 diag(L L' + Psi - R)``, start ``1 - SMC``), psych ``fa(..., fm = "minres")$values``.
    """
    p = R.shape[0]

    def fg(psi: np.ndarray) -> tuple[float, np.ndarray]:
        S = R - np.diag(psi)
        w, V = np.linalg.eigh(S)
        w, V = w[::-1], V[:, ::-1]
        lam = np.maximum(w[:n_factors], 0.0)
        L = V[:, :n_factors] * np.sqrt(lam)
        rest = S - L @ L.T
        return float((rest ** 2).sum()), 2 * np.diag(L @ L.T + np.diag(psi) - R)

    start = np.clip(1 - _smc(R), 0.005, 1.0)
    res = optimize.minimize(fg, start, jac=True, method="L-BFGS-B", bounds=[(0.005, 1.0)] * p,
                            options={"ftol": 1e-14, "gtol": 1e-10, "maxiter": 2000})
    S = R - np.diag(res.x)
    w, V = np.linalg.eigh(S)
    w, V = w[::-1], V[:, ::-1]
    L = V[:, :n_factors] * np.sqrt(np.maximum(w[:n_factors], 0.0))
    Rr = R.copy()
    np.fill_diagonal(Rr, np.sum(L ** 2, axis=1))
    return np.sort(np.linalg.eigvalsh(Rr))[::-1]


def _smc_values(R: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``R`` with squared multiple correlations on the diagonal (psych ``SMC=TRUE``)."""
    Rr = R.copy()
    np.fill_diagonal(Rr, _smc(R))
    return np.sort(np.linalg.eigvalsh(Rr))[::-1]


@dataclass(frozen=True)
class ParallelResult(JSONResult):
    """Horn's parallel analysis (psych ``fa.parallel(fa = "fa")``).

    Attributes
    ----------
    n_factors : int
        Number of leading observed eigenvalues above the simulated criterion.
    values : DataFrame
        ``factor observed sim.mean sim.quantile`` per position.
    n_iter, seed : int
    quant : float
        Quantile of the simulated eigenvalues used as the criterion (psych default .95).
    n_obs : int
    meta : Meta
    """

    n_factors: int
    values: pd.DataFrame
    n_iter: int
    seed: int
    quant: float
    n_obs: int
    meta: Meta = field(default_factory=Meta)

    def summary(self) -> Table:
        diag = "SMCs" if self.meta.options.get("smc") else "1-factor minres communalities"
        return Table(f"Parallel analysis: {self.n_factors} factor(s) suggested", self.values,
                     notes=(f"Eigenvalues of the reduced correlation matrix ({diag}) vs the {self.quant:.0%} quantile of {self.n_iter} "
                            f"random normal data sets of n = {self.n_obs} (seed {self.seed}).",))


def parallel_analysis(df: pd.DataFrame, *, n_iter: int = 20, seed: int, fm: str = "minres",
                      quant: float = 0.95, use: str = "pairwise",
                      smc: bool = False, cor: str = "pearson") -> ParallelResult:
    """Horn's parallel analysis for the number of common factors, as psych ``fa.parallel``.

    Parameters
    ----------
    df : DataFrame
        Item scores.
    n_iter : int
        Number of simulated data sets (psych default 20).
    seed : int
        Seed of ``numpy.random.default_rng``.
    fm : {"minres"}
        Extraction used for the eigenvalues (psych default).
    quant : float
        Quantile of the simulated eigenvalues that an observed eigenvalue must exceed.
    use : {"pairwise", "listwise"}
    cor : {"pearson", "polychoric"}
        Correlations of the observed data (psych ``fa.parallel(cor=)``); the simulated data
        are normal and use Pearson correlations, as in psych.
    smc : bool
        psych's ``SMC=`` argument: ``False`` (default) puts the communalities of a one-factor
        minres fit on the diagonal; ``True`` puts the squared multiple correlations there
        (the textbook "reduced correlation matrix").

    Returns
    -------
    ParallelResult

    Notes
    -----
    psych 2.2.9 ``fa.parallel(x, fa = "fa", fm = "minres")`` (default ``SMC = FALSE``):
    the observed values are the eigenvalues of the correlation matrix whose diagonal holds the
    communalities of a one-factor minres solution (``fa(R, 1)$values``); each replicate draws an
    ``n x p`` standard normal matrix and computes the same values from its correlations; the
    number of factors is the count of leading observed values that exceed the ``quant`` quantile
    (R type 7) of the simulated values at the same position (``which(!(obs > q))[1] - 1``).
    psych also resamples the data, which only matters for ``fa = "both"`` plots and is not done.

    References
    ----------
    Horn, J. L. (1965). A rationale and test for the number of factors in factor analysis.
    Psychometrika, 30(2), 179-185. https://doi.org/10.1007/BF02289447

    Revelle, W. (2022). psych (R package version 2.2.9), ``fa.parallel``.
    """
    _check_choice("fm", fm, ("minres",))
    if not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ValueError(f"n_iter= must be a positive integer; got {n_iter!r}.")
    if not 0 < quant < 1:
        raise ValueError(f"quant= must be in (0, 1); got {quant!r}.")
    R, names, n = _corr(df, use, cor)
    if use == "pairwise":
        n = int(len(df))  # psych: nsub = nrow(x)
    p = R.shape[0]
    rng = np.random.default_rng(seed)
    sims = np.empty((int(n_iter), p))
    if not isinstance(smc, bool):
        raise ValueError(f"smc= must be True or False; got {smc!r}.")
    values_of = _smc_values if smc else _minres_values
    with _single_thread_blas():  # many tiny problems: BLAS threads only add contention
        observed = values_of(R)
        for i in range(int(n_iter)):
            Z = rng.standard_normal((n, p))
            sims[i] = values_of(np.corrcoef(Z, rowvar=False))
    crit = np.quantile(sims, quant, axis=0)
    above = observed > crit
    nf = int(p if above.all() else np.argmin(above))
    values = pd.DataFrame({"factor": np.arange(1, p + 1), "observed": observed,
                           "sim.mean": sims.mean(axis=0), "sim.quantile": crit})
    return ParallelResult(n_factors=nf, values=values, n_iter=int(n_iter), seed=int(seed),
                          quant=float(quant), n_obs=n,
                          meta=Meta(options={"fm": fm, "quant": quant, "n_iter": int(n_iter),
                                             "use": use, "cor": cor, "smc": smc},
                                    seed=int(seed),
                                    data_hash=hash_frame(df)))
