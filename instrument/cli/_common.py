"""Argument helpers shared by the CLI commands (reading a model argument and a data file)."""
from __future__ import annotations

from pathlib import Path

import click


def model_text(model: str) -> str:
    """MODEL is a syntax file or lavaan syntax itself."""
    p = Path(model)
    return p.read_text() if ("=~" not in model and p.is_file()) else model


def read_data(path: str):
    """Read a CSV data file; any reader failure becomes a one-line CLI error."""
    import pandas as pd

    try:
        return pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - report any reader failure plainly
        raise click.ClickException(f"cannot read {path}: {e}") from e


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b,c"`` -> ``("a", "b", "c")``."""
    return tuple(s.strip() for s in text.split(",") if s.strip())
