"""Decision rules: every cut-off, delta and minimum n the package applies, with its source.

A verdict stores the `Rule` it used, so a report can quote both the threshold and the citation.
Never write a bare threshold in analysis code: add a named `Rule` here and refer to it.
"""
from __future__ import annotations

import operator
from dataclasses import asdict, dataclass
from typing import Literal

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass(frozen=True)
class Rule:
    """A named decision rule: ``value <op> threshold`` passes.

    Attributes
    ----------
    key : str
        The quantity the rule is applied to, in lavaan's vocabulary (``"cfi"``, ``"cfi.delta"``).
    threshold : float
        The cut-off.
    op : {"<=", ">=", "<", ">"}
        How a value is compared with the threshold; the rule passes when the comparison is true.
    source : str
        Full citation of where the rule comes from.
    note : str
        Conditions under which the rule was derived (shown when it is applied outside them).
    """

    key: str
    threshold: float
    op: Literal["<=", ">=", "<", ">"]
    source: str
    note: str = ""

    def passes(self, value: float) -> bool:
        """True when ``value`` satisfies the rule (NaN never passes)."""
        if value != value:  # NaN
            return False
        return bool(_OPS[self.op](value, self.threshold))

    def describe(self) -> str:
        """Human-readable form, e.g. ``"cfi >= 0.95 (Hu & Bentler, 1999)"``."""
        return f"{self.key} {self.op} {self.threshold:g} ({self.source})"

    def to_dict(self) -> dict:
        return asdict(self)


# --- invariance: change-in-fit rules for measurement invariance (instrument/invariance.py) ----
CHEN_2007 = ("Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement "
             "invariance. Structural Equation Modeling, 14(3), 464-504. "
             "https://doi.org/10.1080/10705510701301834")
CHEUNG_RENSVOLD_2002 = ("Cheung, G. W., & Rensvold, R. B. (2002). Evaluating goodness-of-fit "
                        "indexes for testing measurement invariance. Structural Equation Modeling, "
                        "9(2), 233-255. https://doi.org/10.1207/S15328007SEM0902_5")
RUTKOWSKI_SVETINA_2014 = ("Rutkowski, L., & Svetina, D. (2014). Assessing the hypothesis of "
                          "measurement invariance in the context of large-scale international "
                          "surveys. Educational and Psychological Measurement, 74(1), 31-57. "
                          "https://doi.org/10.1177/0013164413498257")
_CHEN_NOTE = ("derived by simulation for two groups, continuous normal indicators and ML "
              "estimation")
# Chen (2007), p. 501: total N > 300 with equal group sizes.
DELTA_CFI_CHEN = Rule("cfi.delta", -0.010, ">=", CHEN_2007, _CHEN_NOTE)
DELTA_RMSEA_CHEN = Rule("rmsea.delta", 0.015, "<=", CHEN_2007, _CHEN_NOTE)
DELTA_SRMR_CHEN_METRIC = Rule("srmr.delta", 0.030, "<=", CHEN_2007, _CHEN_NOTE)
DELTA_SRMR_CHEN_SCALAR = Rule("srmr.delta", 0.010, "<=", CHEN_2007, _CHEN_NOTE)
# Chen (2007), p. 501: total N <= 300 or unequal group sizes.
DELTA_CFI_CHEN_SMALL = Rule("cfi.delta", -0.005, ">=", CHEN_2007, _CHEN_NOTE + "; small/unequal n")
DELTA_RMSEA_CHEN_SMALL = Rule("rmsea.delta", 0.010, "<=", CHEN_2007, _CHEN_NOTE + "; small/unequal n")
DELTA_SRMR_CHEN_SMALL_METRIC = Rule("srmr.delta", 0.025, "<=", CHEN_2007,
                                    _CHEN_NOTE + "; small/unequal n")
DELTA_SRMR_CHEN_SMALL_SCALAR = Rule("srmr.delta", 0.005, "<=", CHEN_2007,
                                    _CHEN_NOTE + "; small/unequal n")
CHEN_N_LARGE = Rule("ntotal", 300, ">", CHEN_2007, "Chen's large-sample condition")
# Groups count as "unequal" when the smallest is below this share of the largest (Chen's unequal
# condition was a 1:3 split; a 2:3 split is treated as equal here).
CHEN_EQUAL_GROUPS = Rule("n.min/n.max", 2 / 3, ">=", CHEN_2007,
                         "Chen compared equal splits with a 1:3 split")
DELTA_CFI_CHEUNG_RENSVOLD = Rule("cfi.delta", -0.01, ">=", CHEUNG_RENSVOLD_2002,
                                 "derived for two groups, ML, continuous indicators")
_RS_NOTE = "derived for 10 to 20 groups of about 1000 each, ML"
DELTA_CFI_RS_METRIC = Rule("cfi.delta", -0.020, ">=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
DELTA_RMSEA_RS_METRIC = Rule("rmsea.delta", 0.030, "<=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
DELTA_CFI_RS_SCALAR = Rule("cfi.delta", -0.010, ">=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
DELTA_RMSEA_RS_SCALAR = Rule("rmsea.delta", 0.010, "<=", RUTKOWSKI_SVETINA_2014, _RS_NOTE)
RS_MANY_GROUPS = Rule("ngroups", 10, ">=", RUTKOWSKI_SVETINA_2014, "the many-groups condition")
LRT_ALPHA = Rule("pvalue", 0.05, ">=", "Conventional .05 level for the likelihood-ratio "
                 "(chi-square difference) test; Meredith (1993), Psychometrika 58(4), 525-543")
# Partial invariance: at least two invariant indicators per factor are needed to compare latent
# means (Byrne, Shavelson & Muthen, 1989); freeing more than 20% of a factor's parameters makes
# partial invariance questionable (Vandenberg & Lance, 2000).
PARTIAL_MAX_FREED_SHARE = Rule(
    "freed.share", 0.20, "<=",
    "Vandenberg, R. J., & Lance, C. E. (2000). A review and synthesis of the measurement "
    "invariance literature. Organizational Research Methods, 3(1), 4-70. "
    "https://doi.org/10.1177/109442810031002")
PARTIAL_MIN_INVARIANT = Rule(
    "n.invariant", 2, ">=",
    "Byrne, B. M., Shavelson, R. J., & Muthen, B. (1989). Testing for the equivalence of factor "
    "covariance and mean structures. Psychological Bulletin, 105(3), 456-466. "
    "https://doi.org/10.1037/0033-2909.105.3.456")
