"""`ResponseSet`: one form's item responses, simulated or fielded (see DATA_CONTRACT.md).

``data`` has one row per respondent with the id columns ``respondent_id``, ``school_id``,
``district_id``, ``language`` (a language code of the bank, e.g. "en"), then background columns, then one column per scale
item named by the bank's ``item_id``. Item codes are the integer codes of the item's own response
scale as the respondent answered it (reverse-keyed items are NOT recoded here; use
``bank.recode_reverse``), stored as float64 with NaN for missing so that numeric code can use them
without nullable dtypes; id and text columns have pandas' ``str`` dtype (`normalize_dtypes`).
A panel (several survey years, e.g. a simulation with ``simulation.years``) stacks the years in
one ResponseSet with an integer ``year`` background column after the id columns; respondents are
a fresh cross-section each year (ids are not linked across years), and
`instrument.scores.school_scores` scores each year separately.
Respondent ids stay in this ingest-stage object; scores and reports drop
them (`ResponseSet.without_ids`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from instrument.results import Table, from_jsonable, to_jsonable

ID_COLUMNS = ("respondent_id", "school_id", "district_id", "language")
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
TEXT_DTYPE = "str"  # pandas' default string dtype (missing = NaN)


def normalize_dtypes(data: pd.DataFrame, items: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Copy of ``data`` with the id columns and text columns as ``str`` and items as float64.

    Simulated and ingested data pass through here, so both have the same dtypes.
    """
    out = data.copy(deep=False)  # copy-on-write: columns are replaced, never modified in place
    item_set = set(items)
    for c in out.columns:
        if c in item_set:
            if out[c].dtype != np.float64:
                out[c] = out[c].astype("float64")
        elif c in ID_COLUMNS or out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            if out[c].dtype != TEXT_DTYPE:
                out[c] = out[c].astype(TEXT_DTYPE)
    return out


@dataclass(frozen=True)
class ResponseSet:
    """Item responses of one form.

    Attributes
    ----------
    form : str
        The form answered (one of the bank's ``forms``; `instrument.io.ingest` and the
        simulation check it against the bank).
    data : DataFrame
        One row per respondent: `ID_COLUMNS`, background columns, then the item columns.
    items : tuple of str
        The item columns, in bank order.
    source : str
        ``"simulated"`` or the path of the ingested file.
    quarantine : DataFrame
        Rows set aside by ingest (columns ``row``, ``column``, ``value``, ``reason``); empty for
        simulated data.
    """

    form: str
    data: pd.DataFrame
    items: tuple[str, ...]
    source: str = "simulated"
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["row", "column", "value", "reason"]))

    def __post_init__(self) -> None:
        if not isinstance(self.form, str) or not _CODE.match(self.form):
            raise ValueError(f"form= must be a form id of the bank (a letter, then letters, "
                             f"digits, _ or -); got {self.form!r}.")
        missing = [c for c in (*ID_COLUMNS, *self.items) if c not in self.data.columns]
        if missing:
            raise ValueError(f"ResponseSet data ({self.source}) lacks column(s) {missing}; "
                             f"expected {list(ID_COLUMNS)} and every item column.")
        object.__setattr__(self, "items", tuple(self.items))
        bad = [v for v in self.data["language"].dropna().unique()
               if not _CODE.match(str(v))]
        if bad:
            raise ValueError(f"ResponseSet data ({self.source}): column 'language' holds "
                             f"{sorted(map(str, bad))}; expected language codes such as 'en'.")

    @property
    def n(self) -> int:
        """Number of respondents."""
        return int(len(self.data))

    @property
    def background(self) -> tuple[str, ...]:
        """Columns that are neither id columns nor items."""
        skip = set(ID_COLUMNS) | set(self.items)
        return tuple(c for c in self.data.columns if c not in skip)

    def item_frame(self) -> pd.DataFrame:
        """The item columns only (float64, NaN = missing)."""
        return self.data.loc[:, list(self.items)].astype("float64")

    def without_ids(self) -> pd.DataFrame:
        """The data without ``respondent_id`` (what may leave the ingest stage)."""
        return self.data.drop(columns=["respondent_id"])

    def summary(self) -> Table:
        """Respondents, schools and missing share by language."""
        d = self.data
        rows = []
        for lang, g in d.groupby("language", sort=True):
            rows.append({"language": lang, "respondents": len(g),
                         "schools": g["school_id"].nunique(),
                         "missing_share": float(g[list(self.items)].isna().to_numpy().mean())
                         if self.items else np.nan})
        return Table(f"Responses: {self.form} form ({self.source})", pd.DataFrame(rows),
                     notes=(f"{len(self.quarantine)} quarantine record(s).",))

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"form": self.form, "items": list(self.items), "source": self.source,
                            "data": self.data, "quarantine": self.quarantine})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ResponseSet":
        items = tuple(d["items"])
        data = normalize_dtypes(from_jsonable(d["data"]), items)
        q = from_jsonable(d.get("quarantine")) if d.get("quarantine") is not None else None
        kw = {} if q is None else {"quarantine": q}
        return cls(form=d["form"], data=data, items=items, source=d.get("source", ""), **kw)
