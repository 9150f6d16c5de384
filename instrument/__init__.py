"""instrument: build and validate a survey of how schools partner with families.

The public API mirrors lavaan where lavaan has a name for a thing; see README.md.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("instrument")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

__all__ = ["__version__"]
from instrument.simulate import Simulation, simulate  # noqa: E402
from instrument.io import IngestResult, ingest  # noqa: E402
from instrument.responses import ResponseSet  # noqa: E402
from instrument.scores import school_scores  # noqa: E402
__all__ += ["simulate", "Simulation", "ingest", "IngestResult", "school_scores", "ResponseSet"]
