"""Test statistics (lavaan's ``lav_test``).

`TESTS` is the registry of the model tests an ML fit of complete data can carry, by lavaan's
``test=`` names; each entry maps a `instrument.sem.vcov.MLFitState` and the fit's standard
measures to the measures the test adds:

* "standard": the likelihood-ratio chi-square alone (nothing added);
* "yuan.bentler.mplus": the Yuan-Bentler (Mplus) scaled test, its scaled and robust indices
  (`yuan_bentler.yuan_bentler_fit_measures`).

The other tests live beside the estimators that need their ingredients: the scaled-shifted test
of DWLS/ULS (`scaled_shifted`, from the polychoric asymptotic covariance), the Yuan-Bentler test
under FIML (`instrument.sem.estimators.fiml_fast`, over missing-data patterns) and the difference
tests of nested models (`satorra_bentler`: Satorra-Bentler 2001 and Satorra 2000).
"""
from __future__ import annotations

from typing import Callable

from instrument.sem.test.yuan_bentler import yuan_bentler_fit_measures

__all__ = ["TESTS"]

#: test= -> f(state, standard fit measures) -> the fit measures the test adds
TESTS: dict[str, Callable[..., dict]] = {
    "standard": lambda st, fm: {},
    "yuan.bentler.mplus": yuan_bentler_fit_measures,
}
