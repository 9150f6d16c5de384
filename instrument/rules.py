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


# --- report: fit heuristics quoted (not applied as verdicts) in the technical report ----------
_HU_BENTLER_1999 = (
    "Hu, L., & Bentler, P. M. (1999). Cutoff criteria for fit indexes in covariance structure "
    "analysis: Conventional criteria versus new alternatives. Structural Equation Modeling, 6(1), "
    "1-55. https://doi.org/10.1080/10705519909540118")
_HEURISTIC_NOTE = (
    "Derived for ML estimation of continuous, normal indicators in simulated CFA models; a "
    "heuristic, not a test (Marsh, Hau & Wen, 2004, Structural Equation Modeling, 11(3), 320-341. "
    "https://doi.org/10.1207/s15328007sem1103_2)")
FIT_CFI_HU_BENTLER = Rule("cfi", 0.95, ">=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_TLI_HU_BENTLER = Rule("tli", 0.95, ">=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_RMSEA_HU_BENTLER = Rule("rmsea", 0.06, "<=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_SRMR_HU_BENTLER = Rule("srmr", 0.08, "<=", _HU_BENTLER_1999, _HEURISTIC_NOTE)
FIT_HEURISTICS = (FIT_CFI_HU_BENTLER, FIT_TLI_HU_BENTLER, FIT_RMSEA_HU_BENTLER, FIT_SRMR_HU_BENTLER)
