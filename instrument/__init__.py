"""instrument: build and validate a survey of how schools partner with families.

The public API mirrors lavaan where lavaan has a name for a thing; see README.md. Every name below
is listed once in ``__all__`` (tests/test_api.py checks it against the documented API).
"""
from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("instrument")
except _metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

from instrument.bank import BankError, check_bank, load_bank  # noqa: E402
from instrument.efa import bartlett, efa, kmo, parallel_analysis  # noqa: E402
from instrument.invariance import invariance  # noqa: E402
from instrument.io import IngestResult, ingest  # noqa: E402
from instrument.irt import (DIFResult, IRTResult, LRDIFResult, RaschResult, dif,  # noqa: E402
                            fscores, irt, lrdif, person_parameters, rasch, shortform)
from instrument.itemanalysis import item_analysis  # noqa: E402
from instrument.linker import bright_spots, link, sensitivity  # noqa: E402
from instrument.montecarlo import (MomentPopulation, PlanPopulation,  # noqa: E402
                                   dynamic_cutoffs, montecarlo, power)
from instrument.multilevel import (icc, mean_reliability, min_cluster_size,  # noqa: E402
                                   muml_covariances, split_half_reliability)
from instrument.policy import (change, change_link, classification_accuracy,  # noqa: E402
                               convergence, rollup, variance_components)
from instrument.reliability import (alpha, bootstrap_ci, omega,  # noqa: E402
                                    omega_from_estimates, reliability, reverse_items)
from instrument.reliability_ordinal import omega_categorical  # noqa: E402
from instrument.responses import ResponseSet  # noqa: E402
from instrument.scores import school_scores  # noqa: E402
from instrument.sem.cfa import cfa, twolevel_cfa  # noqa: E402
from instrument.sem.twolevel import twolevel_reliability  # noqa: E402
from instrument.simulate import Simulation, simulate  # noqa: E402

__all__ = [
    "__version__",
    # item bank, data
    "load_bank", "check_bank", "BankError", "simulate", "Simulation", "ingest", "IngestResult",
    "ResponseSet",
    # structural equation models
    "cfa", "twolevel_cfa", "invariance",
    # item analysis, EFA, reliability
    "item_analysis", "efa", "kmo", "bartlett", "parallel_analysis",
    "alpha", "omega", "omega_from_estimates", "omega_categorical", "reliability",
    "reverse_items", "bootstrap_ci", "twolevel_reliability",
    # schools
    "icc", "mean_reliability", "min_cluster_size", "split_half_reliability", "muml_covariances",
    "school_scores",
    # item response theory
    "irt", "rasch", "fscores", "person_parameters", "dif", "lrdif", "shortform", "IRTResult",
    "RaschResult", "DIFResult", "LRDIFResult",
    # Monte Carlo studies
    "montecarlo", "MomentPopulation", "PlanPopulation", "dynamic_cutoffs", "power",
    # predictive validity and policy views
    "link", "sensitivity", "bright_spots", "rollup", "classification_accuracy", "convergence",
    "change", "change_link", "variance_components",
]
