"""instrument: build and validate a survey of how schools partner with families.

The public API mirrors lavaan where lavaan has a name for a thing; see README.md.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("instrument")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.1.0"

from instrument.cfa import cfa  # noqa: E402
from instrument.linker import bright_spots, link, sensitivity  # noqa: E402

__all__ = ["__version__", "cfa", "link", "sensitivity", "bright_spots"]
