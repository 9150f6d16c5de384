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
from instrument.cfa import cfa  # noqa: E402
__all__ += ["cfa"]
from instrument.linker import bright_spots, link, sensitivity  # noqa: E402
__all__ += ["link", "sensitivity", "bright_spots"]
from instrument.invariance import invariance  # noqa: E402
__all__ += ["invariance"]
from instrument.policy import (change, classification_accuracy, convergence,  # noqa: E402
                               rollup, variance_components)
__all__ += ["rollup", "classification_accuracy", "convergence", "change", "variance_components"]
from instrument.reliability_ordinal import omega_categorical  # noqa: E402
__all__ += ["omega_categorical"]
