"""Short forms: k items per construct chosen by mixed-integer programming under the blueprint.

For a form, each construct gets a unidimensional logistic graded model (MML) fitted to the
reverse-keyed-recoded responses. The short form maximises the summed item information at the
score-band cut points, subject to

* exactly ``k`` items per construct;
* blueprint coverage: every Stage 2 finding of the construct keeps an item when ``k`` is at least
  the construct's number of findings; otherwise the ``k`` items cover ``k`` different findings;
* at most ``floor(SHORTFORM_REVERSE_SHARE * k)`` reverse-keyed items per construct;
* no item flagged for DIF (ordinal logistic regression by language, when both languages have
  `DIF_MIN_GROUP` respondents) and no locally dependent pair (Yen's Q3) together.

It is solved with ``scipy.optimize.milp`` (HiGHS).

The band cut points (`SCORE_BAND_CUTS`, a 1-99 school scale with 20 points per SD of school means)
are placed on the person trait scale (variance 1) as ``theta_c = (cut - 50) / 20 * sqrt(ICC1)``,
with ICC1 the ANOVA intraclass correlation of the full form's EAP scores across schools: a school
at a cut has its mean trait there.

References
----------
van der Linden, W. J. (2005). Linear Models for Optimal Test Design. Springer.
https://doi.org/10.1007/0-387-29054-0
Levy, P. (1967). The correction for spurious correlation in the evaluation of short-form tests.
Journal of Clinical Psychology, 23(1), 84-86.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy.optimize import Bounds, LinearConstraint, milp

from instrument.irt.data import group_sizes_gate
from instrument.irt.dif import dif as run_dif
from instrument.irt.itemfit import q3, s_x2
from instrument.irt.mml import irt
from instrument.irt.scoring import fscores, information, item_information
from instrument.results import JSONResult, Meta, Table
from instrument.rules import DIF_MIN_GROUP, SCORE_BAND_CUTS, SHORTFORM_REVERSE_SHARE

SCALE_MEAN, SCALE_SD = 50.0, 20.0     # the 1-99 school scale of SCORE_SCALE_SOURCE


def cut_thetas(icc1: float) -> np.ndarray:
    """Band cut points on the person trait scale: ``(cut - 50) / 20 * sqrt(icc1)``."""
    return (np.asarray(SCORE_BAND_CUTS) - SCALE_MEAN) / SCALE_SD * np.sqrt(max(icc1, 0.0))


def _icc1(values: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """ANOVA ICC(1) with the adjusted mean cluster size n0, and n0 (Bliese 2000)."""
    from instrument.multilevel import icc
    r = icc(pd.DataFrame({"v": values, "g": groups}).dropna(), "v", "g")
    return float(r.icc1_anova_n0), float(r.nbar)


def spearman_brown(icc1: float, n: float) -> float:
    """Reliability of a mean of ``n`` respondents: ``n icc1 / (1 + (n - 1) icc1)``."""
    return n * icc1 / (1 + (n - 1) * icc1)


def _alpha(x: pd.DataFrame) -> float:
    c = x.dropna().cov().to_numpy()
    k = c.shape[0]
    return k / (k - 1) * (1 - np.trace(c) / c.sum())


@dataclass(frozen=True)
class ShortFormResult(JSONResult):
    """A short form chosen by `shortform`, its checks and its cost in precision.

    Attributes
    ----------
    form : str
    k : int
        Items per construct.
    items : DataFrame
        One row per item of the full form: ``construct item finding reverse a information S_X2
        S_X2_df S_X2_p misfit dif_flagged selected`` (``a``: graded-model slope; ``information``:
        summed at the cut thetas; ``misfit``: S-X2 fails `S_X2_ALPHA`).
    constructs : DataFrame
        One row per construct: ``construct n_full n_short findings covered reverse_short
        max_reverse icc1_full icc1_short theta_cuts cond_rel_full cond_rel_short rel_full
        rel_short r_full_short_levy
        school_rel_full school_rel_short school_rel_lost_per_item dif_tested``. ``rel_*`` are
        empirical reliabilities of the EAP scores ``var(EAP) / (var(EAP) + mean SE^2)``;
        ``r_full_short_levy`` is Levy's (1967) correlation of the short with the full summed
        score with the shared error variance removed; ``school_rel_*`` are Spearman-Brown
        reliabilities of a school mean at the mean respondents per school; ``cond_rel_*`` the
        conditional reliabilities ``1 / (1 + 1 / I(theta))`` at the four band cut thetas.
    ld_pairs : DataFrame
        Flagged Q3 pairs ``construct item1 item2 q3 q3_minus_mean``.
    ladder : dict
        The short form's measurement-invariance ladder by language: ``group``, ``estimator``,
        ``table`` (`instrument.invariance` ladder table: fit, differences and verdict per step)
        or, when the languages are too small to compare, ``not_tested`` with the reason.
    rules : dict
    meta : Meta
    """

    form: str
    k: int
    items: pd.DataFrame
    constructs: pd.DataFrame
    ld_pairs: pd.DataFrame
    rules: Mapping[str, Any]
    ladder: Mapping[str, Any] = field(default_factory=dict)
    meta: Meta = field(default_factory=Meta)

    @property
    def selected(self) -> list[str]:
        return self.items.loc[self.items["selected"], "item"].tolist()

    def to_bank_form(self, name: str | None = None) -> dict:
        """The short form as an item-bank form declaration: name, base form and item ids."""
        return {"form": name or f"{self.form}_short{self.k}", "base_form": self.form,
                "items_per_construct": self.k, "items": self.selected,
                "source": "instrument.irt.shortform (maximum information at the band cut points)"}

    def export_bank(self, out_dir: Any, *, source: Any = None, name: str | None = None) -> Any:
        """Write a copy of the bank at ``source`` (shipped bank when None) to ``out_dir`` with the
        short form as a new form (`instrument.bank.export.add_form`); returns the folder, which
        ``instrument.load_bank`` loads."""
        from instrument.bank.export import add_form

        form = name or f"{self.form}_short{self.k}"
        return add_form(self.selected, base_form=self.form, form_id=form, out_dir=out_dir,
                        source=source, label_suffix=f"short form, {self.k} items per construct",
                        note=f"Chosen by instrument.irt.shortform: {self.k} items per construct "
                             "with the most graded-model information at the band cut points "
                             "under the blueprint constraints.")

    def summary(self) -> Table:
        cols = ["construct", "n_full", "n_short", "covered", "findings", "rel_full", "rel_short",
                "r_full_short_levy", "school_rel_full", "school_rel_short"]
        return Table(f"Short form of the {self.form} form ({self.k} items per construct)",
                     self.constructs[cols],
                     notes=("Items maximise graded-model information at the band cut points under "
                            "the blueprint constraints (scipy.optimize.milp).",))


def _solve(info: np.ndarray, construct: np.ndarray, finding: np.ndarray, reverse: np.ndarray,
           banned: np.ndarray, pairs: list[tuple[int, int]], k: int) -> np.ndarray:
    """The MILP: binary x (items) and y (construct-finding coverage)."""
    n = info.size
    fkeys = sorted(set(zip(construct, finding)))
    m = len(fkeys)
    c = np.concatenate([-info, np.zeros(m)])
    A, lo, hi = [], [], []
    for con in sorted(set(construct)):
        row = np.zeros(n + m)
        row[:n] = construct == con
        A.append(row); lo.append(k); hi.append(k)
        row = np.zeros(n + m)
        row[:n] = (construct == con) & reverse
        A.append(row); lo.append(-np.inf); hi.append(np.floor(SHORTFORM_REVERSE_SHARE.threshold * k))
        fk = [j for j, key in enumerate(fkeys) if key[0] == con]
        row = np.zeros(n + m)
        row[[n + j for j in fk]] = 1
        A.append(row); lo.append(min(k, len(fk))); hi.append(np.inf)
    for j, (con, f) in enumerate(fkeys):
        row = np.zeros(n + m)
        row[:n] = -((construct == con) & (finding == f)).astype(float)
        row[n + j] = 1
        A.append(row); lo.append(-np.inf); hi.append(0)
    for i, j in pairs:
        row = np.zeros(n + m)
        row[[i, j]] = 1
        A.append(row); lo.append(-np.inf); hi.append(1)
    ub = np.concatenate([np.where(banned, 0.0, 1.0), np.ones(m)])
    res = milp(c, constraints=LinearConstraint(np.array(A), lo, hi), integrality=np.ones(n + m),
               bounds=Bounds(np.zeros(n + m), ub))
    if res.status != 0:
        raise ValueError(f"no short form with {k} items per construct satisfies the blueprint "
                         f"constraints ({res.message}).")
    return np.round(res.x[:n]).astype(bool)


def shortform(responses: Any, *, bank: Any, k: int = 3, language_column: str = "language",
              school_column: str = "school_id") -> ShortFormResult:
    """Choose ``k`` items per construct of a form maximizing information at the band cut points.

    Parameters
    ----------
    responses : ResponseSet
        Responses of one form (``responses.form``), raw codes; reverse-keyed items are recoded
        with the bank.
    bank : Bank
    k : int
        Items per construct.

    Returns
    -------
    ShortFormResult
    """
    form = responses.form
    if not isinstance(k, int) or k < 2:
        raise ValueError(f"k= must be an integer of at least 2; got {k!r}.")
    data = responses.data
    items_tab = bank.items[bank.items["form"] == form]
    recoded = bank.recode_reverse(data[list(responses.items)], form=form)
    rows, con_rows, ld_rows = [], [], []
    for con in dict.fromkeys(items_tab["construct"]):
        tab = items_tab[items_tab["construct"] == con]
        its = tab["item_id"].tolist()
        if len(its) < k:
            raise ValueError(f"construct {con!r} of form {form!r} has {len(its)} items; "
                             f"k={k} needs at least {k}.")
        x = recoded[its] - recoded[its].min()
        fit = irt(x, its, se=False, tol=1e-4)
        full = fscores(fit, x)
        icc_full, nbar = _icc1(full["theta"].to_numpy(), data[school_column].to_numpy())
        cuts = cut_thetas(icc_full)
        info = item_information(fit, cuts).sum(axis=0).reindex(its).to_numpy()
        fitstat = s_x2(fit, x).set_index("item")
        _, pairs = q3(fit, x)
        pairs = pairs[pairs["flagged"]]
        for _, p in pairs.iterrows():
            ld_rows.append({"construct": con, "item1": p["item1"], "item2": p["item2"],
                            "q3": p["q3"], "q3_minus_mean": p["q3_minus_mean"]})
        langs = data[language_column].value_counts()
        dif_tested = group_sizes_gate(langs, language_column) is None
        flagged: set[str] = set()
        if dif_tested:
            res = run_dif(x.assign(**{language_column: data[language_column].to_numpy()}), its,
                          group=language_column)
            flagged = set(res.flagged)
        for _, r in tab.iterrows():
            rows.append({"construct": con, "item": r["item_id"], "finding": r["finding"],
                         "reverse": bool(r["reverse"]),
                         "a": float(fit.item_params(r["item_id"])[0]),
                         "information": float(info[its.index(r["item_id"])]),
                         "S_X2": float(fitstat.loc[r["item_id"], "S_X2"]),
                         "S_X2_df": int(fitstat.loc[r["item_id"], "df"]),
                         "S_X2_p": float(fitstat.loc[r["item_id"], "p"]),
                         "misfit": bool(fitstat.loc[r["item_id"], "flagged"]),
                         "dif_flagged": r["item_id"] in flagged})
        con_rows.append({"construct": con, "n_full": len(its), "findings": int(tab["finding"].nunique()),
                         "icc1_full": icc_full, "theta_cuts": [float(v) for v in cuts],
                         "rel_full": _empirical_rel(full), "dif_tested": bool(dif_tested),
                         "cond_rel_full": information(fit, cuts)["reliability"].round(12).tolist(),
                         "_x": x, "_fit": fit, "_nbar": nbar})
    items = pd.DataFrame(rows)
    index = {it: j for j, it in enumerate(items["item"])}
    pairs_idx = [(index[p["item1"]], index[p["item2"]]) for p in ld_rows]
    sel = _solve(items["information"].to_numpy(), items["construct"].to_numpy(),
                 items["finding"].to_numpy(), items["reverse"].to_numpy(bool),
                 items["dif_flagged"].to_numpy(bool), pairs_idx, k)
    items["selected"] = sel
    out = []
    for c in con_rows:
        con = c.pop("construct")
        x, fit, nbar = c.pop("_x"), c.pop("_fit"), c.pop("_nbar")
        chosen = items[(items["construct"] == con) & items["selected"]]
        short_items = chosen["item"].tolist()
        sfit = irt(x, short_items, se=False, tol=1e-4)
        sc = fscores(sfit, x[short_items])
        icc_short, _ = _icc1(sc["theta"].to_numpy(), data[school_column].to_numpy())
        S = x[short_items].sum(axis=1, min_count=len(short_items))
        L = x.sum(axis=1, min_count=x.shape[1])
        ok = S.notna() & L.notna()
        a_s = _alpha(x[short_items])
        cov = np.cov(S[ok], L[ok])
        levy = (cov[0, 1] - cov[0, 0] * (1 - a_s)) / np.sqrt(cov[0, 0] * cov[1, 1])
        sb_full = spearman_brown(c["icc1_full"], nbar)
        sb_short = spearman_brown(icc_short, nbar)
        out.append({"construct": con, **{k_: v for k_, v in c.items()}, "n_short": len(short_items),
                    "covered": int(chosen["finding"].nunique()),
                    "reverse_short": int(chosen["reverse"].sum()),
                    "max_reverse": int(np.floor(SHORTFORM_REVERSE_SHARE.threshold * k)),
                    "icc1_short": icc_short, "rel_short": _empirical_rel(sc),
                    "cond_rel_short": information(sfit, c["theta_cuts"])["reliability"].round(12).tolist(),
                    "r_full_short_levy": float(levy), "school_rel_full": sb_full,
                    "school_rel_short": sb_short,
                    "school_rel_lost_per_item": (sb_full - sb_short) / (c["n_full"] - len(short_items))
                    if c["n_full"] > len(short_items) else 0.0})
    constructs = pd.DataFrame(out)
    ladder = _short_ladder(items, recoded, data, language_column)
    ld = pd.DataFrame(ld_rows, columns=["construct", "item1", "item2", "q3", "q3_minus_mean"])
    rules = {"SHORTFORM_REVERSE_SHARE": SHORTFORM_REVERSE_SHARE.to_dict(),
             "DIF_MIN_GROUP": DIF_MIN_GROUP.to_dict(), "band_cuts": list(SCORE_BAND_CUTS)}
    meta = Meta(options={"form": form, "k": k, "model": "graded", "source": responses.source})
    return ShortFormResult(form=form, k=k, items=items, constructs=constructs, ld_pairs=ld,
                           rules=rules, ladder=ladder, meta=meta)


def _short_ladder(items: pd.DataFrame, recoded: pd.DataFrame, data: pd.DataFrame,
                  group: str) -> dict:
    """The short form's invariance ladder by ``group`` (WLSMV, items ordered, pairwise present
    data), when both groups meet `DIF_MIN_GROUP`; otherwise the reason it was not fitted."""
    from instrument.invariance import invariance

    counts = data[group].value_counts() if group in data.columns else pd.Series(dtype=int)
    reason = group_sizes_gate(counts, group, "the ladder")
    if reason:
        return {"group": group, "not_tested": reason}
    sel = items[items["selected"]]
    model = "\n".join(f"{con} =~ " + " + ".join(g["item"]) for con, g in
                       sel.groupby("construct", sort=False))
    df = recoded[sel["item"].tolist()].assign(**{group: data[group].to_numpy()})
    df = df[df[group].notna()]
    try:
        res = invariance(model, df, group=group, estimator="WLSMV", ordered=True,
                         missing="pairwise")
    except ValueError as exc:
        return {"group": group, "not_tested": f"the ladder could not be fitted: {exc}"}
    return {"group": group, "estimator": "WLSMV", "model": model, "table": res.table,
            "n": {str(k): int(v) for k, v in counts.items()}}


def _empirical_rel(scores: pd.DataFrame) -> float:
    """``var(EAP) / (var(EAP) + mean SE^2)`` (mirt's ``empirical_rxx``)."""
    t = scores.dropna()
    v = float(t["theta"].var())
    return v / (v + float((t["se"] ** 2).mean()))
