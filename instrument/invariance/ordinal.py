"""Ordinal measurement invariance (WLSMV): the rungs of the ladder and their identification.

Every rung is one `instrument.sem.cfa.cfa` fit with ``group_equal=`` (lavaan's names, cumulative:
thresholds -> loadings -> intercepts -> residuals) and the options `ORDINAL_LADDER_OPTIONS`:
Wu & Estabrook's (2016) identification, which the parameter table builds as semTools'
``measEq.syntax(ID.fac = "std.lv", ID.cat = "Wu.Estabrook.2016", parameterization = "theta")``
writes it (`instrument.sem.partable.build_partable`, ``id_cat=``). Partial invariance releases
parameters through ``group_partial=`` as for continuous items.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["ORDINAL_STEPS", "ORDINAL_STEP_NOTES", "ORDINAL_LADDER_OPTIONS",
           "collapse_empty_categories"]

ORDINAL_STEPS = ("configural", "thresholds", "metric", "scalar", "strict")
# The `cfa` options of every rung: factors by std.lv, latent responses by Wu & Estabrook (2016)
# in the theta parameterization (semTools measEq.syntax ID.fac = "std.lv",
# ID.cat = "Wu.Estabrook.2016", parameterization = "theta").
ORDINAL_LADDER_OPTIONS = {"std_lv": True, "parameterization": "theta",
                          "id_cat": "Wu.Estabrook.2016"}

# What each rung constrains under Wu & Estabrook (2016) identification (appended to verdicts).
ORDINAL_STEP_NOTES = {
    "thresholds": ("Under Wu & Estabrook (2016) identification this step holds every item's "
                   "thresholds equal across groups while the latent-response intercepts and "
                   "residual variances become free in groups 2..G; a failure means some items' "
                   "response categories are used differently across groups (threshold "
                   "non-invariance), and the score tests of partial() name the thresholds."),
    "metric": ("This step adds equal loadings (latent variances become free in groups 2..G); a "
               "failure means items relate differently to the factor across groups."),
    "scalar": ("This step fixes the latent-response intercepts at 0 in every group (latent means "
               "become free in groups 2..G); a failure means item-level shifts that the equal "
               "thresholds do not absorb, so latent means are not comparable."),
    "strict": ("This step fixes the latent-response residual variances at 1 in every group; a "
               "failure means unequal item reliability across groups."),
}


def collapse_empty_categories(data: pd.DataFrame, items: Sequence[str], group: str
                              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge categories that some group never uses into their neighbour, in every group.

    WLSMV needs every category of an item observed in every group (lavaan stops otherwise). The
    usual remedy is to collapse the empty category with an adjacent one for all groups, so the
    item keeps one threshold structure across groups (e.g. Liu et al., 2017, Psychological
    Methods 22(3), 486-506). An empty lowest (highest) category is merged upwards (downwards); an
    empty middle category into its less frequent neighbour. Repeats until no category is empty.

    Returns
    -------
    data : DataFrame
        A copy with the recoded items.
    changes : DataFrame
        One row per merge: ``item``, ``from``, ``to``, ``empty_in`` (the groups that had no
        response in ``from``). Empty when nothing was collapsed.
    """
    out = data.copy()
    changes = []
    gmask = out[group].notna().to_numpy()
    for item in items:
        while True:
            m = gmask & out[item].notna().to_numpy()
            gi, groups = pd.factorize(out.loc[m, group], sort=True)
            ci, cats = pd.factorize(out.loc[m, item], sort=True)
            tab = np.zeros((len(groups), len(cats)), int)
            np.add.at(tab, (gi, ci), 1)
            empty = (tab == 0).any(axis=0)
            if not empty.any() or tab.shape[1] < 3:
                break
            i = int(np.flatnonzero(empty)[0])
            c = cats[i]
            if i == 0:
                to = cats[1]
            elif i == len(cats) - 1:
                to = cats[-2]
            else:
                to = cats[i - 1] if tab[:, i - 1].sum() <= tab[:, i + 1].sum() else cats[i + 1]
            changes.append({"item": item, "from": c, "to": to,
                            "empty_in": ", ".join(map(str, groups[tab[:, i] == 0]))})
            out.loc[out[item] == c, item] = to
    return out, pd.DataFrame(changes, columns=["item", "from", "to", "empty_in"])
