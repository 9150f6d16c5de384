"""instrument: build and validate a survey of how schools partner with families.

The public API mirrors lavaan where lavaan has a name for a thing; see README.md.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("instrument")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["__version__"]
# Each stage adds an import line and an ``__all__ +=`` line (union merges keep every stage's).
from instrument.sem.cfa import cfa  # noqa: E402
__all__ += ["cfa"]
from instrument.linker import bright_spots, link, sensitivity  # noqa: E402
__all__ += ["link", "sensitivity", "bright_spots"]
from instrument.invariance import invariance  # noqa: E402
__all__ += ["invariance"]
from instrument.policy import (change, classification_accuracy, convergence,  # noqa: E402
                               rollup, variance_components)
__all__ += ["rollup", "classification_accuracy", "convergence", "change", "variance_components"]

# reliability, EFA, item analysis, school aggregation (helper `reliability`)
from instrument.efa import bartlett, efa, kmo, parallel_analysis  # noqa: E402
from instrument.itemanalysis import item_analysis  # noqa: E402
from instrument.multilevel import (icc, mean_reliability, min_cluster_size,  # noqa: E402
                                   muml_covariances, split_half_reliability)
from instrument.reliability import (alpha, bootstrap_ci, omega,  # noqa: E402
                                    omega_from_estimates, reliability, reverse_items)

__all__ += ["alpha", "reliability", "omega", "omega_from_estimates", "reverse_items", "bootstrap_ci", "efa", "kmo",
            "bartlett", "parallel_analysis", "item_analysis", "icc", "mean_reliability",
            "min_cluster_size", "split_half_reliability", "muml_covariances"]
from instrument.bank import BankError, check_bank, load_bank  # noqa: E402
__all__ += ["load_bank", "check_bank", "BankError"]
from instrument.simulate import Simulation, simulate  # noqa: E402
from instrument.io import IngestResult, ingest  # noqa: E402
from instrument.responses import ResponseSet  # noqa: E402
from instrument.scores import school_scores  # noqa: E402
__all__ += ["simulate", "Simulation", "ingest", "IngestResult", "school_scores", "ResponseSet"]
# two-level CFA, exact ML (helper `twolevel`)
from instrument.sem.twolevel import twolevel_cfa, twolevel_reliability  # noqa: E402
__all__ += ["twolevel_cfa", "twolevel_reliability"]
from instrument.reliability_ordinal import omega_categorical  # noqa: E402
__all__ += ["omega_categorical"]
from instrument.policy import change_link  # noqa: E402  (panels, issue 12)
__all__ += ["change_link"]
from instrument.sem.cfa import cfa  # noqa: E402
from instrument.linker import bright_spots, link, sensitivity  # noqa: E402

__all__ = ["__version__", "cfa", "link", "sensitivity", "bright_spots"]
from instrument.montecarlo import MomentPopulation, PlanPopulation, montecarlo  # noqa: E402
__all__ += ["montecarlo", "MomentPopulation", "PlanPopulation"]
