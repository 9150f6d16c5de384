"""Internal consistency: Cronbach's alpha (psych conventions) and McDonald's omega from a CFA.

Two layers, as in lavaan's ``lav_fit_*`` files:

* formula functions on plain arrays (`omega`, `feldt_ci`, `reverse_items`), with no checking of a
  fitted model, and
* data-level functions (`alpha`, `reliability`) that validate their input once.

Reverse-keyed items must be recoded (``min + max - x``) before any of this: alpha and omega on mixed
keying are meaningless (a CFA on raw coding only flips loading signs, and omega's ``(sum lambda)^2``
then cancels true variance).

Not here (they need polychoric correlations, built elsewhere): computing ordinal alpha from data
(`alpha_from_matrix` applies the formula once a polychoric matrix is available) and categorical
omega (Green & Yang 2009, ``compRelSEM`` on a WLSMV fit, which needs thresholds and the model).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from instrument.results import JSONResult, Meta, Table, hash_frame

__all__ = ["AlphaResult", "alpha", "alpha_from_matrix", "feldt_ci", "reliability", "reverse_items", "omega",
           "omega_from_estimates", "lisrel_from_estimates", "bootstrap_ci"]

_USE = ("pairwise", "listwise")


# --------------------------------------------------------------------------------------------
# input helpers
# --------------------------------------------------------------------------------------------
def _numeric_items(df: pd.DataFrame, items: Sequence[str], what: str = "df") -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{what}= must be a pandas DataFrame; got {type(df).__name__}.")
    items = list(items)
    missing = [c for c in items if c not in df.columns]
    if missing:
        raise KeyError(f"{what}= has no column(s) {missing}; available: {list(df.columns)}.")
    out = df.loc[:, items]
    bad = [c for c in items if not pd.api.types.is_numeric_dtype(out[c])]
    if bad:
        raise TypeError(f"{what}= column(s) {bad} are not numeric; expected item scores "
                        "(recode text answers first).")
    return out.astype(float)


def _check_choice(name: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}= must be one of {', '.join(repr(a) for a in allowed)}; "
                         f"got {value!r}.")


def _check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level= must be a number strictly between 0 and 1; got {level!r}.")


def reverse_items(df: pd.DataFrame, reverse: Sequence[str], *,
                  score_range: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
                  items: Sequence[str] | None = None) -> pd.DataFrame:
    """Copy of ``df`` with reverse-keyed items recoded as ``min + max - x``.

    Parameters
    ----------
    df : DataFrame
        Item scores; missing values stay missing.
    reverse : sequence of str
        Columns to recode.
    score_range : (min, max) or mapping item -> (min, max), optional
        The response scale (e.g. ``(1, 4)``). When omitted, the observed minimum and maximum over
        ``items`` (default: the reversed columns) are used, which is psych's rule
        (``psych::alpha(keys=)``: ``max.item + min.item - x`` over all items of the scale). Give the
        range whenever an extreme category may be unobserved.
    items : sequence of str, optional
        The scale's items, used for the observed range.

    Returns
    -------
    DataFrame
        A copy; other columns are unchanged.
    """
    reverse = list(reverse)
    if not reverse:
        return df.copy()
    x = _numeric_items(df, reverse, "df")
    out = df.copy()
    for it in reverse:
        if score_range is None:
            pool = _numeric_items(df, list(items) if items is not None else reverse, "df")
            lo, hi = np.nanmin(pool.to_numpy()), np.nanmax(pool.to_numpy())
        elif isinstance(score_range, Mapping):
            if it not in score_range:
                raise KeyError(f"score_range= has no entry for reversed item {it!r}.")
            lo, hi = score_range[it]
        else:
            lo, hi = score_range
        if not hi > lo:
            raise ValueError(f"score_range for {it!r} must be (min, max) with max > min; got "
                             f"({lo}, {hi}).")
        col = x[it]
        outside = col[(col < lo) | (col > hi)]
        if len(outside):
            raise ValueError(f"column {it!r}, row {outside.index[0]!r}: value {outside.iloc[0]} is "
                             f"outside the score range [{lo}, {hi}].")
        out[it] = lo + hi - col
    return out


# --------------------------------------------------------------------------------------------
# alpha
# --------------------------------------------------------------------------------------------
def feldt_ci(alpha_value: float, n: int, k: int, level: float = 0.95) -> tuple[float, float]:
    """Feldt (1965) confidence interval for coefficient alpha.

    Notes
    -----
    ``lower = 1 - (1 - a) F_{1-p/2}(n-1, (n-1)(k-1))``, ``upper = 1 - (1 - a) F_{p/2}(...)`` with
    ``p = 1 - level``; psych ``alpha.ci`` (used by ``psych::alpha``), with ``n`` the number of rows.

    References
    ----------
    Feldt, L. S., Woodruff, D. J., & Salih, F. A. (1987). Statistical inference for coefficient
    alpha. Applied Psychological Measurement, 11(1), 93-103. https://doi.org/10.1177/014662168701100107
    """
    p = 1.0 - level
    d1, d2 = n - 1, (n - 1) * (k - 1)
    return (1 - (1 - alpha_value) * stats.f.ppf(1 - p / 2, d1, d2),
            1 - (1 - alpha_value) * stats.f.ppf(p / 2, d1, d2))


def alpha_from_matrix(m: pd.DataFrame | np.ndarray) -> float:
    """Coefficient alpha of a covariance or correlation matrix: ``k/(k-1) (1 - tr M / 1'M1)``.

    On a correlation matrix this is standardized alpha ``k rbar / (1 + (k-1) rbar)``; on a
    polychoric matrix of reverse-keyed items it is ordinal alpha (Zumbo, Gadermann & Zeisser,
    2007). Computing polychorics is not part of this module.

    References
    ----------
    Zumbo, B. D., Gadermann, A. M., & Zeisser, C. (2007). Ordinal versions of coefficients alpha
    and theta for Likert rating scales. Journal of Modern Applied Statistical Methods, 6(1), 21-29.
    https://doi.org/10.22237/jmasm/1177992180
    """
    M = np.asarray(m, dtype=float)
    if M.ndim != 2 or M.shape[0] != M.shape[1] or M.shape[0] < 2:
        raise ValueError(f"m= must be a square matrix of at least 2 items; got shape {M.shape}.")
    if not np.allclose(M, M.T, atol=1e-10):
        raise ValueError("m= must be symmetric.")
    k = M.shape[0]
    return float(k / (k - 1) * (1 - np.trace(M) / M.sum()))


def _alpha_parts(C: np.ndarray, R: np.ndarray) -> dict[str, float]:
    """psych's ``alpha.1``: raw/std alpha, G6, average r, S/N and Duhachek's Q."""
    k = C.shape[0]
    sC, trC = C.sum(), np.trace(C)
    sR = R.sum()
    raw = (1 - trC / sC) * k / (k - 1)
    std = (1 - k / sR) * k / (k - 1)
    av_r = (sR - k) / (k * (k - 1))
    smc = _smc(R)
    g6 = 1 - (k - smc.sum()) / sR
    CC = C @ C
    Q = (2 * k ** 2 / ((k - 1) ** 2 * sC ** 3)) * (sC * (np.trace(CC) + trC ** 2) - 2 * trC * CC.sum())
    return {"raw_alpha": raw, "std.alpha": std, "G6(smc)": g6, "average_r": av_r,
            "S/N": k * av_r / (1 - av_r), "Q": Q}


def _smc(R: np.ndarray) -> np.ndarray:
    """Squared multiple correlations ``1 - 1/diag(R^-1)`` (psych ``smc``, clipped to [0, 1])."""
    return np.clip(1 - 1 / np.diag(np.linalg.pinv(R)), 0.0, 1.0)


@dataclass(frozen=True)
class AlphaResult(JSONResult):
    """Cronbach's alpha with psych ``alpha()`` companions.

    Attributes
    ----------
    raw_alpha, std_alpha : float
        Alpha from covariances and from correlations.
    g6 : float
        Guttman's lambda 6 (from SMCs).
    average_r : float
        Mean inter-item correlation.
    ase : float
        Duhachek & Iacobucci's asymptotic standard error (psych's ``ase``).
    n : int
        Rows used for the CIs (psych: all rows with ``use="pairwise"``; complete rows listwise).
    n_items : int
    level : float
    feldt_ci, duhachek_ci : (float, float)
        Feldt and ``raw_alpha +/- z ase`` intervals.
    mean, sd : float
        Mean and SD of the scale score (row mean of the available items).
    item_stats : DataFrame
        ``item n raw.r std.r r.cor r.drop mean sd`` (psych ``item.stats``).
    alpha_drop : DataFrame
        ``item raw_alpha std.alpha G6(smc) average_r S/N alpha.se`` (alpha if item deleted).
    use : str
    meta : Meta
    """

    raw_alpha: float
    std_alpha: float
    g6: float
    average_r: float
    ase: float
    n: int
    n_items: int
    level: float
    feldt_ci: tuple[float, float]
    duhachek_ci: tuple[float, float]
    mean: float
    sd: float
    item_stats: pd.DataFrame
    alpha_drop: pd.DataFrame
    use: str = "pairwise"
    meta: Meta = field(default_factory=Meta)

    def summary(self) -> Table:
        items = self.item_stats[["item", "n", "mean", "sd", "raw.r", "r.drop"]].merge(
            self.alpha_drop[["item", "raw_alpha"]], on="item")
        items = items.rename(columns={"raw_alpha": "alpha if deleted"})
        lv = f"{self.level:.0%}"
        notes = (f"raw alpha = {self.raw_alpha:.3f}, standardized = {self.std_alpha:.3f}, "
                 f"average r = {self.average_r:.3f}, G6 = {self.g6:.3f}.",
                 f"{lv} CI Feldt [{self.feldt_ci[0]:.3f}, {self.feldt_ci[1]:.3f}]; Duhachek "
                 f"[{self.duhachek_ci[0]:.3f}, {self.duhachek_ci[1]:.3f}] (ase {self.ase:.4f}).",
                 "r.drop = corrected item-total (item-rest) correlation.")
        return Table(f"Cronbach's alpha ({self.n_items} items, n = {self.n}, use = {self.use})",
                     items, notes=notes)


def alpha(df_items: pd.DataFrame, *, use: str = "pairwise", level: float = 0.95) -> AlphaResult:
    """Cronbach's alpha and item statistics, matching psych 2.2.9 ``alpha()``.

    Parameters
    ----------
    df_items : DataFrame
        One column per item, already reverse-keyed (see `reverse_items`).
    use : {"pairwise", "listwise"}
        ``"pairwise"`` (psych's default): covariances from pairwise-complete rows and n = all
        rows; ``"listwise"``: rows with any missing item dropped first, n = complete rows.
    level : float
        Confidence level of the Feldt and Duhachek intervals.

    Returns
    -------
    AlphaResult

    Notes
    -----
    With ``C`` the item covariance matrix and ``R = cov2cor(C)``:
    raw alpha ``k/(k-1) (1 - tr C / sum C)``; standardized alpha ``k/(k-1) (1 - k / sum R)``;
    ``r.drop_i = (sum_j C_ij - C_ii) / sqrt(C_ii sum C_{-i,-i})``; Duhachek's
    ``ase = sqrt(Q/n)`` with ``Q = 2k^2/((k-1)^2 (1'C1)^3) [1'C1 (tr C^2 + tr^2 C) - 2 tr C 1'C^2 1]``.
    Results have been tested against psych 2.2.9 (refs case d).

    References
    ----------
    Cronbach, L. J. (1951). Coefficient alpha and the internal structure of tests. Psychometrika,
    16(3), 297-334. https://doi.org/10.1007/BF02310555

    Duhachek, A., & Iacobucci, D. (2004). Alpha's standard error (ASE): An accurate and precise
    confidence interval estimate. Journal of Applied Psychology, 89(5), 792-808.
    https://doi.org/10.1037/0021-9010.89.5.792

    Revelle, W. (2022). psych: Procedures for psychological, psychometric, and personality
    research (R package version 2.2.9).

    Examples
    --------
    >>> # In R: psych::alpha(bfir[, c("A1","A2","A3","A4","A5")])$total$raw_alpha  # 0.7158
    """
    _check_choice("use", use, _USE)
    _check_level(level)
    x = _numeric_items(df_items, list(df_items.columns), "df_items")
    k = x.shape[1]
    if k < 2:
        raise ValueError(f"df_items= needs at least 2 item columns; got {k}.")
    if use == "listwise":
        x = x.dropna()
    n = int(len(x))
    if n < 3:
        raise ValueError(f"df_items= has {n} usable rows; alpha needs at least 3.")
    sd0 = x.std()
    flat = [c for c in x.columns if not (sd0[c] > 0)]
    if flat:
        raise ValueError(f"item(s) {flat} have no variance; drop them before computing alpha.")
    C = x.cov().to_numpy()  # pairwise-complete, divisor n_ij - 1 (R's cov(use="pairwise"))
    d = np.sqrt(np.diag(C))
    R = C / np.outer(d, d)
    tot = _alpha_parts(C, R)
    ase = float(np.sqrt(tot["Q"] / n))
    z = stats.norm.ppf(1 - (1 - level) / 2)
    items = list(x.columns)
    # item statistics (psych item.stats)
    total = x.mean(axis=1, skipna=True)
    raw_r = [x[c].corr(total) for c in items]
    std_r = R.sum(axis=0) / np.sqrt(R.sum())
    RC = R.copy()
    np.fill_diagonal(RC, _smc(R))
    r_cor = RC.sum(axis=0) / np.sqrt(RC.sum())
    r_drop = []
    for i in range(k):
        keep = [j for j in range(k) if j != i]
        r_drop.append((C[:, i].sum() - C[i, i]) / np.sqrt(C[i, i] * C[np.ix_(keep, keep)].sum()))
    item_stats = pd.DataFrame({"item": items, "n": x.notna().sum().to_numpy().astype(int),
                               "raw.r": raw_r, "std.r": std_r, "r.cor": r_cor, "r.drop": r_drop,
                               "mean": x.mean().to_numpy(), "sd": x.std().to_numpy()})
    rows = []
    for i in range(k):
        keep = [j for j in range(k) if j != i]
        if k > 2:
            p = _alpha_parts(C[np.ix_(keep, keep)], R[np.ix_(keep, keep)])
            rows.append({"item": items[i], "raw_alpha": p["raw_alpha"], "std.alpha": p["std.alpha"],
                         "G6(smc)": p["G6(smc)"], "average_r": p["average_r"], "S/N": p["S/N"],
                         "alpha.se": float(np.sqrt(p["Q"] / n))})
        else:  # psych's two-item special case
            o = 1 - i
            r12 = R[0, 1]
            rows.append({"item": items[i], "raw_alpha": C[0, 1] / C[o, o], "std.alpha": r12,
                         "G6(smc)": r12 ** 2, "average_r": r12, "S/N": r12 / (1 - r12),
                         "alpha.se": np.nan})
    alpha_drop = pd.DataFrame(rows)
    meta = Meta(options={"use": use, "level": level}, data_hash=hash_frame(x))
    return AlphaResult(
        raw_alpha=float(tot["raw_alpha"]), std_alpha=float(tot["std.alpha"]),
        g6=float(tot["G6(smc)"]), average_r=float(tot["average_r"]), ase=ase, n=n, n_items=k,
        level=level, feldt_ci=tuple(float(v) for v in feldt_ci(tot["raw_alpha"], n, k, level)),
        duhachek_ci=(float(tot["raw_alpha"] - z * ase), float(tot["raw_alpha"] + z * ase)),
        mean=float(total.mean()), sd=float(total.std()), item_stats=item_stats,
        alpha_drop=alpha_drop, use=use, meta=meta)


def reliability(df: pd.DataFrame, scales: Mapping[str, Sequence[str]], *,
                reverse: Sequence[str] = (),
                score_range: tuple[float, float] | Mapping[str, tuple[float, float]] | None = None,
                use: str = "pairwise", level: float = 0.95,
                omegas: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Alpha per scale (construct), after reverse keying.

    Parameters
    ----------
    df : DataFrame
        Respondents by items.
    scales : mapping construct -> list of item columns
    reverse : sequence of str
        Reverse-keyed items, recoded ``min + max - x`` first (see `reverse_items`; with no
        ``score_range`` the observed range over the scale's items is used, psych's rule).
    score_range : (min, max) or mapping item -> (min, max), optional
    use, level :
        As in `alpha`.
    omegas : mapping construct -> float, optional
        Omega values computed elsewhere (e.g. `omega` on a CFA), added as column ``omega``.

    Returns
    -------
    DataFrame
        One row per construct: ``construct n_items n raw_alpha std_alpha ci.lower ci.upper``
        (Feldt) ``ase duhachek.lower duhachek.upper average_r g6 min_r.drop reversed``
        [``omega``].
    """
    if not isinstance(scales, Mapping) or not scales:
        raise ValueError("scales= must be a non-empty mapping construct -> list of item columns.")
    reverse = list(reverse)
    all_items = [it for its in scales.values() for it in its]
    _numeric_items(df, list(dict.fromkeys(all_items)), "df")
    unknown = [r for r in reverse if r not in all_items]
    if unknown:
        raise ValueError(f"reverse= item(s) {unknown} are in no scale of scales=.")
    rows = []
    for name, items in scales.items():
        items = list(items)
        rev = [r for r in reverse if r in items]
        d = reverse_items(df, rev, score_range=score_range, items=items) if rev else df
        a = alpha(d[items], use=use, level=level)
        row = {"construct": name, "n_items": a.n_items, "n": a.n, "raw_alpha": a.raw_alpha,
               "std_alpha": a.std_alpha, "ci.lower": a.feldt_ci[0], "ci.upper": a.feldt_ci[1],
               "ase": a.ase, "duhachek.lower": a.duhachek_ci[0],
               "duhachek.upper": a.duhachek_ci[1], "average_r": a.average_r, "g6": a.g6,
               "min_r.drop": float(a.item_stats["r.drop"].min()), "reversed": ",".join(rev)}
        if omegas is not None:
            row["omega"] = float(omegas.get(name, np.nan))
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# omega (formula layer; an adapter pulls lambda, psi, theta out of a CFA fit)
# --------------------------------------------------------------------------------------------
def _as_frame(a: Any, index: Sequence[str], columns: Sequence[str], what: str) -> pd.DataFrame:
    if isinstance(a, pd.DataFrame):
        miss_r = [i for i in index if i not in a.index]
        miss_c = [c for c in columns if c not in a.columns]
        if miss_r or miss_c:
            raise KeyError(f"{what}= lacks rows {miss_r} / columns {miss_c}.")
        return a.loc[list(index), list(columns)].astype(float)
    arr = np.asarray(a, dtype=float)
    if arr.shape != (len(index), len(columns)):
        raise ValueError(f"{what}= must have shape {(len(index), len(columns))}; got {arr.shape}.")
    return pd.DataFrame(arr, index=list(index), columns=list(columns))


def omega(loadings: pd.DataFrame | pd.Series, psi: pd.DataFrame | float,
          theta: pd.DataFrame | pd.Series, sample_cov: pd.DataFrame | None = None, *,
          tau_eq: bool = False) -> pd.Series:
    """McDonald's omega per factor from CFA estimates, as ``semTools::compRelSEM``.

    Parameters
    ----------
    loadings : DataFrame (items x factors) or Series (one factor, index = items)
        Unstandardized loadings Lambda (zeros where an item does not load).
    psi : DataFrame (factors x factors) or float
        Factor covariance matrix Psi (lavaan ``cov.lv``).
    theta : DataFrame (items x items) or Series (residual variances only)
        Residual covariance matrix Theta; off-diagonal entries (correlated residuals) count in
        the model-implied denominator.
    sample_cov : DataFrame (items x items), optional
        Sample covariance with divisor N (lavaan ``sampstat``). Given: ``obs.var = TRUE``
        (compRelSEM's default); omitted: the model-implied ``Sigma = Lambda Psi Lambda' + Theta``
        (``obs.var = FALSE``).
    tau_eq : bool
        Return alpha of the factor's item block instead (``compRelSEM(tau.eq = TRUE)``).

    Returns
    -------
    Series
        Omega per factor (factors with at least two indicators, compRelSEM's ``dropSingle``).

    Notes
    -----
    For factor f with indicator set I (items with a non-zero loading on f):
    ``omega_f = psi_ff (sum_{i in I} lambda_if)^2 / 1' T_II 1``, where ``T = S`` (obs.var = TRUE)
    or ``T = Lambda Psi Lambda' + Theta`` (obs.var = FALSE). With simple structure and no
    correlated residuals the latter is ``psi (sum lambda)^2 / (psi (sum lambda)^2 + sum Theta_II)``.
    Matches semTools 0.5-6 ``compRelSEM`` on lavaan 0.6-14 fits (refs cases d and h). Reverse-key
    items first: with mixed-sign loadings the result is meaningless.

    References
    ----------
    McDonald, R. P. (1999). Test theory: A unified treatment. Erlbaum.

    Bentler, P. M. (2009). Alpha, dimension-free, and model-based internal consistency reliability.
    Psychometrika, 74(1), 137-143. https://doi.org/10.1007/s11336-008-9100-1

    Jorgensen, T. D., Pornprasertmanit, S., Schoemann, A. M., & Rosseel, Y. (2022). semTools:
    Useful tools for structural equation modeling (R package version 0.5-6).
    """
    if isinstance(loadings, pd.Series):
        loadings = loadings.to_frame(name=loadings.name if loadings.name is not None else "f1")
    if not isinstance(loadings, pd.DataFrame):
        raise TypeError("loadings= must be a DataFrame (items x factors) or a Series.")
    items, factors = list(loadings.index), list(loadings.columns)
    L = loadings.astype(float)
    P = (pd.DataFrame([[float(psi)]], index=factors, columns=factors)
         if np.isscalar(psi) else _as_frame(psi, factors, factors, "psi"))
    if isinstance(theta, pd.Series):
        T = pd.DataFrame(np.diag(theta.reindex(items).to_numpy(float)), index=items, columns=items)
        if theta.reindex(items).isna().any():
            raise KeyError(f"theta= lacks residual variances for {list(theta.reindex(items).index[theta.reindex(items).isna()])}.")
    else:
        T = _as_frame(theta, items, items, "theta")
    if sample_cov is not None:
        total = _as_frame(sample_cov, items, items, "sample_cov")
    else:
        total = pd.DataFrame(L.to_numpy() @ P.to_numpy() @ L.to_numpy().T + T.to_numpy(),
                             index=items, columns=items)
    out = {}
    for f in factors:
        ind = [i for i in items if L.at[i, f] != 0]
        if len(ind) < 2:
            continue
        block = total.loc[ind, ind].to_numpy()
        if tau_eq:
            k = len(ind)
            out[f] = k / (k - 1) * (1 - np.trace(block) / block.sum())
        else:
            lam = L.loc[ind, f].to_numpy()
            out[f] = P.at[f, f] * lam.sum() ** 2 / block.sum()
    return pd.Series(out, dtype=float, name="omega")


def bootstrap_ci(data: pd.DataFrame, statistic: Callable[[pd.DataFrame], Any], *,
                 n_boot: int = 1000, seed: int, level: float = 0.95,
                 cluster: str | None = None) -> pd.DataFrame:
    """Percentile bootstrap CI of any statistic computed by refitting on resampled rows.

    Parameters
    ----------
    data : DataFrame
    statistic : callable
        ``statistic(resampled_data)`` returns a float, a Series or a mapping of named values
        (e.g. ``lambda d: omega_from_fit(cfa(model, d))``). A replicate that raises or returns
        NaN is counted in ``n_failed`` and skipped.
    n_boot : int
        Number of bootstrap replicates.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed gives the same result.
    level : float
    cluster : str, optional
        Column whose units (e.g. schools) are resampled whole (cluster bootstrap).

    Returns
    -------
    DataFrame
        One row per statistic: ``name est ci.lower ci.upper se n_boot n_failed``.

    Notes
    -----
    Percentile interval: the ``(1-level)/2`` and ``(1+level)/2`` quantiles of the replicates
    (numpy's default linear interpolation, R's type 7). ``est`` is the statistic on ``data``.

    References
    ----------
    Efron, B., & Tibshirani, R. J. (1993). An introduction to the bootstrap. Chapman & Hall.

    Kelley, K., & Pornprasertmanit, S. (2016). Confidence intervals for population reliability
    coefficients. Psychological Methods, 21(1), 69-92. https://doi.org/10.1037/a0040086
    """
    _check_level(level)
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise ValueError(f"n_boot= must be an integer >= 2; got {n_boot!r}.")
    if cluster is not None and cluster not in data.columns:
        raise KeyError(f"cluster= column {cluster!r} is not in data.")

    def as_series(v: Any) -> pd.Series:
        if isinstance(v, pd.Series):
            return v.astype(float)
        if isinstance(v, Mapping):
            return pd.Series(v, dtype=float)
        return pd.Series({"statistic": float(v)})

    est = as_series(statistic(data))
    rng = np.random.default_rng(seed)
    reps, failed = [], 0
    if cluster is not None:
        groups = {g: idx for g, idx in data.groupby(cluster, sort=True).indices.items()}
        keys = list(groups)
    for _ in range(int(n_boot)):
        if cluster is None:
            take = rng.integers(0, len(data), len(data))
        else:
            pick = rng.integers(0, len(keys), len(keys))
            take = np.concatenate([groups[keys[p]] for p in pick])
        try:
            v = as_series(statistic(data.iloc[take].reset_index(drop=True)))
        except Exception:  # a failed refit is a failed replicate, reported in n_failed
            failed += 1
            continue
        if v.reindex(est.index).isna().any():
            failed += 1
            continue
        reps.append(v.reindex(est.index).to_numpy())
    if not reps:
        raise RuntimeError("every bootstrap replicate failed; check the statistic callable.")
    M = np.vstack(reps)
    lo, hi = np.quantile(M, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return pd.DataFrame({"name": list(est.index), "est": est.to_numpy(), "ci.lower": lo,
                         "ci.upper": hi, "se": M.std(axis=0, ddof=1),
                         "n_boot": len(reps), "n_failed": failed})


def lisrel_from_estimates(estimates: pd.DataFrame, *, group: Any = None
                          ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Lambda, Psi and Theta of a CFA from a lavaan-style parameter table.

    Parameters
    ----------
    estimates : DataFrame
        ``parameterEstimates()`` columns ``lhs op rhs est`` (optionally ``group``): rows with
        ``op == "=~"`` give loadings, ``"~~"`` between factors give Psi, ``"~~"`` between observed
        variables give Theta; other rows (intercepts, thresholds, ``:=``) are ignored.
    group : optional
        Which group to use when ``estimates`` has several (value of its ``group`` column).

    Returns
    -------
    (Lambda, Psi, Theta) : DataFrames
        Items x factors, factors x factors, items x items, in order of first appearance.
    """
    need = {"lhs", "op", "rhs", "est"}
    if not isinstance(estimates, pd.DataFrame) or not need <= set(estimates.columns):
        raise ValueError(f"estimates= must be a DataFrame with columns {sorted(need)}.")
    pe = estimates
    if "group" in pe.columns and pe["group"].nunique() > 1:
        if group is None:
            raise ValueError(f"estimates= has groups {list(pd.unique(pe['group']))}; pass group=.")
        pe = pe[pe["group"] == group]
        if pe.empty:
            raise ValueError(f"group={group!r} does not occur in estimates=.")
    meas = pe[pe["op"] == "=~"]
    factors = list(dict.fromkeys(meas["lhs"]))
    items = [i for i in dict.fromkeys(meas["rhs"]) if i not in factors]  # no higher-order part
    L = pd.DataFrame(0.0, index=items, columns=factors)
    for r in meas.itertuples(index=False):
        if r.rhs in items:
            L.at[r.rhs, r.lhs] = float(r.est)
    P = pd.DataFrame(0.0, index=factors, columns=factors)
    T = pd.DataFrame(0.0, index=items, columns=items)
    for r in pe[pe["op"] == "~~"].itertuples(index=False):
        if r.lhs in factors and r.rhs in factors:
            P.at[r.lhs, r.rhs] = P.at[r.rhs, r.lhs] = float(r.est)
        elif r.lhs in items and r.rhs in items:
            T.at[r.lhs, r.rhs] = T.at[r.rhs, r.lhs] = float(r.est)
    return L, P, T


def omega_from_estimates(estimates: pd.DataFrame, sample_cov: pd.DataFrame | None = None, *,
                         group: Any = None, tau_eq: bool = False) -> pd.Series:
    """`omega` per factor from a lavaan-style parameter table (see `lisrel_from_estimates`).

    Pass the sample covariance (divisor N) for compRelSEM's default ``obs.var = TRUE``; omit it
    for the model-implied denominator. An adapter for a fitted CFA is then
    ``omega_from_estimates(fit.estimates, fit.sample_cov if obs_var else None)``.
    """
    L, P, T = lisrel_from_estimates(estimates, group=group)
    return omega(L, P, T, sample_cov, tau_eq=tau_eq)


def omega_from_fit(fit: Any, *, obs_var: bool = True, group: int = 1) -> pd.Series:
    """McDonald's ω per factor of a fitted CFA (`instrument.cfa`), semTools ``compRelSEM``.

    ``obs_var=True`` (compRelSEM's default) divides by the sum of the sample covariance block
    (divisor N); ``obs_var=False`` by the model-implied one. Reverse-key items before fitting:
    with mixed-sign loadings ω is meaningless.
    """
    names = list(fit.ov_names)
    S = pd.DataFrame(np.asarray(fit.sample[group - 1]["cov"], float), index=names, columns=names)
    est = fit.estimates
    if "group" in est.columns and est["group"].nunique() > 1:
        est = est[est["group"] == group]
    return omega_from_estimates(est, S if obs_var else None)
