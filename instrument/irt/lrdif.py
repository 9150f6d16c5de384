"""Differential item functioning by IRT likelihood ratios: a two-group graded model with anchors.

For a studied item j, two nested two-group logistic graded models (`instrument.irt.mml.irt` with
``group=``) are compared; the reference group's trait is N(0, 1), the focal group's mean and
variance are estimated, and the anchor items have equal slopes and intercepts in both groups:

    compact:   item j equal across groups (an anchor)
    augmented: item j's slope and intercepts free in each group

    G2_j = 2 (logL_augmented - logL_compact),   df = m_j + 1   (slope and m_j intercepts)

Anchors are purified (Thissen, Steinberg & Wainer 1993; the two-stage use of IRTLRDIF, repeated):

* stage 1, all other items as anchors: compact = every item equal; augmented = item j free;
* the anchor set is the items not flagged at stage 1 (`IRT_LR_DIF_ALPHA`);
* stage 2: base = anchors equal, the other items free; an anchor item is tested by freeing it
  (compact = base), a non-anchor item by constraining it (augmented = base);
* stage 2 is repeated with the items it did not flag as anchors until the anchor set repeats
  (iterative purification as in lordif; at most `MAX_PURIFICATION` rounds, never fewer than
  `MIN_ANCHORS` anchors). With many respondents, stage 1 flags clean items whose matching is
  contaminated by a large-DIF item; the repetition returns them to the anchor set.

The last stage 2 G2 is the reported test. Each augmented (compact) model starts the EM at the compact
(augmented) fit's estimates; a model (an anchor set) fitted before is not fitted again.

References
----------
Thissen, D., Steinberg, L., & Wainer, H. (1993). Detection of differential item functioning using
the parameters of item response models. In P. W. Holland & H. Wainer (Eds.), Differential Item
Functioning (pp. 67-113). Hillsdale, NJ: Erlbaum.
Thissen, D. (2001). IRTLRDIF v.2.0b: Software for the computation of the statistics involved in
item response theory likelihood-ratio tests for differential item functioning. L. L. Thurstone
Psychometric Laboratory, University of North Carolina at Chapel Hill.
Kim, S.-H., & Cohen, A. S. (1998). Detection of differential item functioning under the graded
response model with the likelihood ratio test. Applied Psychological Measurement, 22(4), 345-355.
https://doi.org/10.1177/014662169802200403
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import chi2

from instrument.irt.data import two_group_responses
from instrument.irt.mml import EM_MAXIT, QUADPTS, IRTResult, _estimate, _responses
from instrument.results import JSONResult, Meta, Table, hash_frame
from instrument.rules import IRT_LR_DIF_ALPHA

MAX_PURIFICATION = 10
MIN_ANCHORS = 2   # an anchor set is not reduced below this many items
LR_TOL = 1e-5     # EM stopping tolerance of the nested fits (G2 within 1e-6 of a direct optimum)


@dataclass(frozen=True)
class LRDIFResult(JSONResult):
    """IRT likelihood-ratio DIF of every item between two groups.

    Attributes
    ----------
    items : tuple of str
    group, reference, focal : str
    table : DataFrame
        One row per item: ``item G2_stage1 df_stage1 p_stage1 anchor G2 df p flagged a_ref a_foc``
        (``anchor``: in the purified anchor set; ``G2 df p``: the stage 2 test; ``flagged``: ``p``
        fails `IRT_LR_DIF_ALPHA`; ``a_ref``, ``a_foc``: the item's slopes in the model with it
        free).
    anchors : tuple of str
        The purified anchor set.
    latent : DataFrame
        ``group mean var`` of the stage 2 base model.
    loglik : float
        Log-likelihood of the final base model (anchors equal, other items free).
    rounds : int
        Stage 2 rounds until the anchor set repeated.
    rules : dict
    meta : Meta
    """

    items: tuple[str, ...]
    group: str
    reference: str
    focal: str
    table: pd.DataFrame
    anchors: tuple[str, ...]
    latent: pd.DataFrame
    loglik: float
    rounds: int
    rules: Mapping[str, Any]
    meta: Meta = field(default_factory=Meta)

    @property
    def flagged(self) -> list[str]:
        return self.table.loc[self.table["flagged"], "item"].tolist()

    def summary(self) -> Table:
        return Table(f"DIF by IRT likelihood ratio: {self.group} ({self.focal} vs "
                     f"{self.reference})", self.table,
                     notes=(f"Two-group graded model; anchors {', '.join(self.anchors)}. "
                            f"Flagged: {IRT_LR_DIF_ALPHA.describe()}.",), digits=4)


def _slopes(fit: IRTResult, item: str) -> tuple[float, float]:
    return fit.item_params(item, fit.groups[0])[0], fit.item_params(item, fit.groups[1])[0]


def lrdif(data: pd.DataFrame, items: Sequence[str], *, group: str, reference: Any | None = None,
          anchors: Sequence[str] | None = None, tol: float = LR_TOL) -> LRDIFResult:
    """IRT likelihood-ratio DIF of each item with purified anchors (two-group graded model).

    Parameters
    ----------
    data : DataFrame
        Responses coded 0..m (NaN missing), every category used in each group, and the ``group``
        column with two values.
    items : list of str
        Items of one construct.
    group : str
    reference : optional
        The reference group's value (default: the first in sorted order); its trait is N(0, 1).
    anchors : list of str, optional
        A known anchor set: stage 1 is skipped.
    tol : float
        EM tolerance of every fit.

    Returns
    -------
    LRDIFResult

    Notes
    -----
    Matches a direct (BFGS) maximisation of the same two-group marginal likelihood in base R
    (``tests/fixtures/irt_lrdif/make_reference.R``): log-likelihoods and G2 to 1e-4.
    """
    items = list(items)
    X, gv, ref, foc = two_group_responses(data, items, group, reference)
    X = X - np.nanmin(X, axis=0)
    for j, it in enumerate(items):
        top = int(np.nanmax(X[:, j]))
        for lab in (ref, foc):
            used = np.bincount(X[(gv == lab) & ~np.isnan(X[:, j]), j].astype(int), minlength=top + 1)
            if np.any(used == 0):
                raise ValueError(f"column {it!r}: category {int(np.flatnonzero(used == 0)[0])} is "
                                 f"never used in group {lab!r} of {group!r}; the item's parameters "
                                 f"cannot be estimated in that group (collapse the category).")
    # the reference group must be first: labels are coded so that it sorts first
    code = np.where(gv == ref, "0", "1")
    frame = pd.DataFrame(X, columns=items).assign(**{group: code})
    ncat = {it: int(np.nanmax(X[:, j])) for j, it in enumerate(items)}

    resp = _responses(frame, items, group)
    fits: dict[frozenset, IRTResult] = {}

    def fit(anc, start=None):
        # a model (an anchor set) is fitted once: stage 2 and the purification rounds ask for
        # models fitted before (stage 2 of an anchor set that stage 1 left whole asks for every
        # stage 1 fit again)
        key = frozenset(anc)
        if key not in fits:
            fits[key] = _estimate(resp, "graded", "logit", list(anc), QUADPTS, tol, EM_MAXIT,
                                  se=False, start=start)
        return fits[key]

    stage1: dict[str, tuple[float, int, float]] = {}
    if anchors is None:
        full = fit(items)
        for it in items:
            alt = fit([a for a in items if a != it], start=full)
            g2 = 2 * (alt.loglik - full.loglik)
            stage1[it] = (g2, ncat[it] + 1, float(chi2.sf(g2, ncat[it] + 1)))
        anchors = [it for it in items if IRT_LR_DIF_ALPHA.passes(stage1[it][2])]
        if not anchors:
            raise ValueError(f"every item of {items} has DIF at stage 1; no anchor is left for "
                             f"stage 2 (name anchors= from other evidence).")
        base = full if len(anchors) == len(items) else fit(anchors, start=full)
    else:
        anchors = list(anchors)
        bad = [a for a in anchors if a not in items]
        if bad or not anchors:
            raise ValueError(f"anchors= must name items of the construct; got {anchors}.")
        base = fit(anchors)
    history = [tuple(anchors)]
    for _ in range(MAX_PURIFICATION):
        rows = _stage2(fit, base, items, anchors, ncat, stage1)
        new = [r["item"] for r in rows if not r["flagged"]]
        if len(new) < MIN_ANCHORS or tuple(new) in history:
            break
        anchors = new
        history.append(tuple(new))
        base = fit(anchors, start=base)
    latent = base.latent.assign(group=[str(ref), str(foc)])
    meta = Meta(options={"group": group, "reference": str(ref), "model": "graded",
                         "anchors": "given" if not stage1 else "purified", "tol": tol},
                data_hash=hash_frame(frame))
    return LRDIFResult(items=tuple(items), group=group, reference=str(ref), focal=str(foc),
                       table=pd.DataFrame(rows), anchors=tuple(anchors), latent=latent,
                       loglik=float(base.loglik), rounds=len(history),
                       rules={"IRT_LR_DIF_ALPHA": IRT_LR_DIF_ALPHA.to_dict()}, meta=meta)


def _stage2(fit, base, items, anchors, ncat, stage1) -> list[dict]:
    """Each item tested against the anchor set: freed if an anchor, constrained if not."""
    rows = []
    for it in items:
        if it in anchors:
            rest = [a for a in anchors if a != it]
            if not rest:
                g2, a_pair = float("nan"), (float("nan"), float("nan"))
            else:
                alt = fit(rest, start=base)
                g2, a_pair = 2 * (alt.loglik - base.loglik), _slopes(alt, it)
        else:
            alt = fit(anchors + [it], start=base)
            g2, a_pair = 2 * (base.loglik - alt.loglik), _slopes(base, it)
        df = ncat[it] + 1
        p = float(chi2.sf(g2, df)) if g2 == g2 else float("nan")
        s1 = stage1.get(it, (float("nan"), df, float("nan")))
        rows.append({"item": it, "G2_stage1": s1[0], "df_stage1": s1[1], "p_stage1": s1[2],
                     "anchor": it in anchors, "G2": g2, "df": df, "p": p,
                     "flagged": bool(p == p and not IRT_LR_DIF_ALPHA.passes(p)),
                     "a_ref": a_pair[0], "a_foc": a_pair[1]})
    return rows
