"""lavaan's ``lavTestLRT`` for a ladder of nested fits, and each group's share of the χ²."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from instrument.sem.test import satorra_bentler as sb

__all__ = ["lrt_table", "group_chisq", "FitMemo"]


class FitMemo:
    """Quantities computed from fitted models, keyed by the fits' identities and a name.

    The fits are held with their values, so an identity cannot be reused while the memo lives.
    """

    def __init__(self) -> None:
        self._store: dict = {}

    def get(self, fits: Sequence[Any], name: Any, compute: Callable[[], Any]) -> Any:
        key = (tuple(id(f) for f in fits), name)
        hit = self._store.get(key)
        if hit is None:
            hit = (tuple(fits), compute())
            self._store[key] = hit
        return hit[1]


def lrt_table(fits: Sequence[Any], names: Sequence[str], *, method: str | None = None,
              memo: "FitMemo | None" = None) -> pd.DataFrame:
    """lavaan's ``lavTestLRT`` for a list of nested fits: sorted by df, adjacent pairs tested.

    Parameters
    ----------
    fits : sequence of CFAResult
    names : model names, one per fit
    method : {"standard", "satorra.bentler.2001", "satorra.2000"}, optional
        Default, as lavaan's: "satorra.2000" for the scaled-shifted test (WLSMV, ULSMV),
        "satorra.bentler.2001" for a Yuan-Bentler scaled test (MLR, or ML with
        ``test="yuan.bentler.mplus"``), else "standard".

    Returns
    -------
    DataFrame
        Columns ``model Df AIC BIC Chisq Chisq diff RMSEA Df diff Pr(>Chisq)`` (lavaan's;
        ``RMSEA``, the RMSEA of the difference test, only for the standard test, as lavaan).
        The tests are `instrument.sem.test.satorra_bentler`'s.
    memo : FitMemo, optional
        Keeps each pair's scaled-shifted test, so a ladder that compares the same fits again
        (a partial-invariance search) computes it once.
    """
    fm = [f.fit_measures for f in fits]
    if method is None:
        method = _default_method(fits[0])
    if method not in ("standard", "satorra.bentler.2001", "satorra.2000"):
        raise ValueError(f"method= must be one of 'standard', 'satorra.bentler.2001', "
                         f"'satorra.2000'; got {method!r}.")
    order = sorted(range(len(fits)), key=lambda i: fm[i]["df"])
    rows = []
    for pos, i in enumerate(order):
        row = {"model": names[i], "Df": int(fm[i]["df"]), "AIC": fm[i].get("aic", np.nan),
               "BIC": fm[i].get("bic", np.nan), "Chisq": fm[i]["chisq"], "Chisq diff": np.nan,
               "RMSEA": np.nan, "Df diff": np.nan, "Pr(>Chisq)": np.nan}
        if pos > 0:
            j = order[pos - 1]
            if method == "standard":
                t = sb.lrt(fm[j]["chisq"], fm[j]["df"], fm[i]["chisq"], fm[i]["df"])
                d, ddf, p = t.chisq_diff, t.df_diff, t.pvalue
                row["RMSEA"] = sb.rmsea_d(d, ddf, int(fm[i]["ntotal"]), ngroups=_ngroups(fits[i]))
            elif method == "satorra.2000":
                from instrument.sem.estimators.categorical import satorra2000_diff
                o = (satorra2000_diff(fits[j], fits[i]) if memo is None else
                     memo.get((fits[j], fits[i]), "satorra.2000",
                              lambda a=fits[j], b=fits[i]: satorra2000_diff(a, b)))
                d, ddf, p = o["chisq.diff"], o["df.diff"], o["pvalue"]
            else:
                t = sb.satorra_bentler_2001(
                    fm[j]["chisq"], fm[j]["df"], fm[j]["chisq.scaling.factor"],
                    fm[i]["chisq"], fm[i]["df"], fm[i]["chisq.scaling.factor"])
                d, ddf, p = t.chisq_diff, t.df_diff, t.pvalue
            row.update({"Chisq diff": d, "Df diff": ddf, "Pr(>Chisq)": p})
        rows.append(row)
    return pd.DataFrame(rows)


def _estimator(fit: Any) -> str:
    return str(fit.meta.options.get("estimator", "ML")).upper()


def _default_method(fit: Any) -> str:
    """lavaan's ``lavTestLRT(method = "default")``: the difference test that goes with the fit's
    own test."""
    if _estimator(fit) in ("WLSMV", "ULSMV"):
        return "satorra.2000"
    if _estimator(fit) == "MLR" or fit.meta.options.get("test") == "yuan.bentler.mplus":
        return "satorra.bentler.2001"
    return "standard"


def _ngroups(fit: Any) -> int:
    return int(fit.meta.options.get("ngroups", len(fit.sample)))


def group_chisq(fit: Any) -> list[float]:
    """Each group's contribution ``n_g F_ML,g`` to the ML χ² (lavaan's ``stat.group``)."""
    if _estimator(fit) in ("WLSMV", "ULSMV"):
        from instrument.sem.estimators.categorical import group_chisq_wls
        return group_chisq_wls(fit)
    out = []
    for s, imp in zip(fit.sample, fit.implied):
        S, m, n = np.asarray(s["cov"]), np.asarray(s["mean"]), s["n"]
        Sig = np.asarray(imp["cov"])
        mu = np.asarray(imp["mean"]) if imp.get("mean") is not None else m
        p = S.shape[0]
        Si = np.linalg.inv(Sig)
        d = m - mu
        F = (np.linalg.slogdet(Sig)[1] + np.trace(S @ Si) - np.linalg.slogdet(S)[1] - p
             + d @ Si @ d)
        out.append(float(n * F))
    return out
