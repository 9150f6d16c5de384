"""Safe export of tables for spreadsheets: neutralise formula injection.

A spreadsheet program treats a cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab /
carriage return) as a formula. Every text cell of an exported table that begins so is prefixed with
a single quote, unless it is a plain number (``-99``, ``+1.5``), which cannot be a formula.

References
----------
OWASP Foundation. CSV Injection. https://owasp.org/www-community/attacks/CSV_Injection
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def neutralize_cell(value: object) -> object:
    """Prefix ``'`` to a string that a spreadsheet would read as a formula; other values unchanged."""
    if isinstance(value, str) and value.startswith(_TRIGGERS) and not _NUMBER.match(value):
        return "'" + value
    return value


def neutralize_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with every text cell (and column name) neutralised."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c].dtype):
            out[c] = out[c].map(neutralize_cell)
    out.columns = [neutralize_cell(str(c)) for c in out.columns]
    return out


def safe_to_csv(df: pd.DataFrame, path: str | Path, **kw) -> None:
    """Write ``df`` as CSV (no index) after `neutralize_frame`."""
    neutralize_frame(df).to_csv(path, index=False, **kw)
