"""Ingest fielded response files into a `ResponseSet`, quarantining every row that fails a check.

Formats: CSV (streamed in chunks), a Qualtrics-style CSV export (two extra header rows, text labels),
Excel .xlsx (cached values; formulas are never evaluated), SPSS .sav and Stata .dta (pyreadstat,
with value labels), parquet (read in record batches).

Row numbers. ``row`` in the quarantine and flags tables is the 1-based number of the DATA row: the
first record after the header row(s) is row 1. ``line`` is where the row sits in the file: a CSV's
line (blank lines and line breaks inside quoted fields counted), a spreadsheet's row, or the
record number of a .sav/.dta/parquet file.

Every row read is either used or quarantined (``read == used + quarantined``, checked before
returning). Problems with the file as a whole (a missing or unknown item column, an item of the
other form, a value label the bank does not know) raise `IngestError` naming file, column and what
was expected.
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from pydantic import ValidationError

from instrument.bank.yamlio import plain, read_yaml, schema_problems
from instrument.io.readers import (Formula, IngestError, Source, detect_format, is_blank,
                                   open_source)
from instrument.io.safe import safe_to_csv
from instrument.plans import IngestMapping
from instrument.responses import ResponseSet, normalize_dtypes
from instrument.results import Table, from_jsonable, to_jsonable
from instrument.rules import MIN_SECONDS_PER_ITEM, STRAIGHTLINE_MIN_ITEMS, Rule

QUARANTINE_COLUMNS = ("row", "line", "column", "value", "reason")
#: Spellings of "no value" that statistical software writes into id columns; an id spelled so is
#: missing, never an identity (a school called "NA" would pool unrelated respondents).
MISSING_ID_SPELLINGS = frozenset({"na", "n/a", "nan", "none", "null", ".", ""})
FLAGS = ("straightlining", "too_fast")
# Background columns understood without a mapping (numeric ones are parsed as numbers).
NUMERIC_BACKGROUND = ("years_at_school", "child_grade")
TEXT_BACKGROUND = ("role",)
# Survey-platform metadata: ignored; those that could identify a person are dropped unread.
PLATFORM_METADATA = (
    "StartDate", "EndDate", "Status", "Progress", "Finished", "RecordedDate", "DistributionChannel",
    "Q_RecaptchaScore", "Q_RelevantIDDuplicate", "Q_RelevantIDDuplicateScore",
    "Q_RelevantIDFraudScore", "Q_RelevantIDLastStartDate", "Q_TotalDuration", "Q_Language",
    "IPAddress", "RecipientLastName", "RecipientFirstName", "RecipientEmail", "ExternalReference",
    "ExternalDataReference", "LocationLatitude", "LocationLongitude")
# Qualtrics' names for the id columns, used when the canonical name is absent.
ALIASES = {"ResponseId": "respondent_id", "ResponseID": "respondent_id",
           "Duration (in seconds)": "duration", "UserLanguage": "language"}
LANGUAGE_VALUES = {"en": "en", "eng": "en", "english": "en", "inglés": "en", "ingles": "en",
                   "es": "es", "spa": "es", "spanish": "es", "español": "es", "espanol": "es"}


def language_values(languages: Iterable[str], extra: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
    """Spellings of the bank's languages in a file -> language code.

    Each code itself, its English name (`instrument.bank.schema.LANGUAGE_NAMES`) and the spellings
    in `LANGUAGE_VALUES`, for the bank's languages only; then a mapping's ``language_values``."""
    from instrument.bank.schema import LANGUAGE_NAMES

    langs = list(languages)
    out = {_norm(k): v for k, v in LANGUAGE_VALUES.items() if v in langs}
    for code in langs:
        out[_norm(code)] = code
        if code in LANGUAGE_NAMES:
            out[_norm(LANGUAGE_NAMES[code])] = code
    for k, v in (extra or {}).items():
        out[_norm(k)] = str(v)
    return out
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _passes(rule: Rule, x: np.ndarray) -> np.ndarray:
    """Vectorised `Rule.passes` (NaN never passes)."""
    return np.asarray(_OPS[rule.op](np.asarray(x, float), rule.threshold), bool)


def _norm(s: str) -> str:
    return " ".join(str(s).split()).casefold()


@dataclass(frozen=True)
class IngestResult:
    """Outcome of `ingest`.

    Attributes
    ----------
    responses : ResponseSet
        The rows that passed every check (``respondent_id`` kept for the analysis stage only).
    quarantine : DataFrame
        One line per problem: ``row`` (1-based data row), ``line`` (file line, sheet row or
        record), ``column``, ``value``, ``reason``.
    flags : DataFrame
        ``row line flag detail excluded``: straight-lining and too-fast responses (excluded ones are
        also in ``quarantine``).
    read, used, quarantined : int
        Data rows read, used and quarantined (distinct rows); ``read == used + quarantined``.
    path, format : str
        The file and the reader used.
    quarantine_path : str or None
        The quarantine CSV written, when ``quarantine_dir`` was given.
    delimiter : str or None
        The field delimiter of a CSV (detected from the header line).
    recoded : tuple of str
        Item columns of a .sav/.dta file recoded to the bank's codes by their value labels.
    """

    responses: ResponseSet
    quarantine: pd.DataFrame
    flags: pd.DataFrame
    read: int
    used: int
    quarantined: int
    path: str
    format: str
    quarantine_path: str | None = None
    recoded: tuple[str, ...] = ()
    delimiter: str | None = None

    def counts(self) -> dict[str, Any]:
        """``read``, ``used``, ``quarantined``, the quarantine file and the rows per reason."""
        return {"path": Path(self.path).name, "format": self.format, "read": self.read,
                "used": self.used, "quarantined": self.quarantined,
                "quarantine_file": (Path(self.quarantine_path).name if self.quarantine_path
                                    else None),
                "reasons": self.summary().frame.to_dict("records")}

    def to_dict(self) -> dict:
        return to_jsonable({"responses": self.responses.to_dict(), "quarantine": self.quarantine,
                            "flags": self.flags, "read": self.read, "used": self.used,
                            "quarantined": self.quarantined, "path": self.path,
                            "format": self.format, "quarantine_path": self.quarantine_path,
                            "recoded": list(self.recoded), "delimiter": self.delimiter})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "IngestResult":
        q = from_jsonable(d["quarantine"])
        f = from_jsonable(d["flags"])
        return cls(responses=ResponseSet.from_dict(d["responses"]), quarantine=q, flags=f,
                   read=int(d["read"]), used=int(d["used"]), quarantined=int(d["quarantined"]),
                   path=d["path"], format=d["format"], quarantine_path=d.get("quarantine_path"),
                   recoded=tuple(d.get("recoded", ())), delimiter=d.get("delimiter"))

    def summary(self) -> Table:
        reasons = (self.quarantine.assign(reason=self.quarantine["reason"].str.split(":").str[0])
                   .groupby("reason")["row"].nunique().reset_index(name="rows")
                   if len(self.quarantine) else pd.DataFrame(columns=["reason", "rows"]))
        sep = f", {self.delimiter!r}-separated" if self.delimiter else ""
        return Table(f"Ingest of {Path(self.path).name} ({self.format}{sep}, "
                     f"{self.responses.form} form)",
                     reasons, notes=(f"read {self.read} = used {self.used} + quarantined "
                                     f"{self.quarantined} data rows.",
                                     "Quarantine 'row' = 1-based data row: 1 is the first record "
                                     "after the header row(s); 'line' = its line in the file.",
                                     "Recoded by the file's value labels: "
                                     f"{', '.join(self.recoded) or 'none'}.",
                                     f"{len(self.flags)} flagged row(s) "
                                     f"({int(self.flags['excluded'].sum()) if len(self.flags) else 0}"
                                     " excluded)."))


def load_mapping(mapping: str | Path | Mapping[str, Any] | None) -> dict[str, Any]:
    """Read and check a mapping (YAML file or dict) against `instrument.plans.IngestMapping`,
    the schema a plan's ``data: <form>:`` section uses too; the keys that are set.

    Keys: ``columns`` (file column -> canonical name: an item_id, respondent_id, school_id,
    district_id, language, form, duration or a background name), ``labels`` (scale id or "*" ->
    {text label: code}), ``language_values`` ({file value: "en"|"es"}), ``defaults`` (column ->
    constant for a column the file lacks, e.g. ``language: en``), ``ignore`` (file columns to skip),
    ``background`` (extra background columns to keep as text), ``sheet`` (xlsx sheet), ``format``,
    ``encoding`` (of a CSV; default UTF-8 with or without BOM).

    A file is read as YAML 1.2 (a label ``No`` or ``Yes`` stays text); every problem is one line
    of the `IngestError`, ``file:line: key.path: what was expected``.
    """
    if mapping is None:
        return {}
    src, tree = "<mapping>", mapping
    if not isinstance(mapping, Mapping):
        p = Path(mapping)
        src = str(p)
        if not p.is_file():
            raise IngestError(f"{p}: mapping file not found; expected a YAML file.")
        tree, problems = read_yaml(p, src)
        if problems:
            raise IngestError("\n".join(map(str, problems)))
        mapping = plain(tree) if tree is not None else {}
    if not isinstance(mapping, Mapping):
        raise IngestError(f"{src}:1: (top level): expected a mapping with keys "
                          f"{list(IngestMapping.model_fields)}; got {type(mapping).__name__}")
    try:
        return IngestMapping.model_validate(dict(mapping)).ingest_mapping()
    except ValidationError as exc:
        lines = schema_problems(exc, tree, src, IngestMapping)
        raise IngestError("\n".join(map(str, lines))) from None


def _scale_lookup(scale: Any, extra: Mapping[str, int]) -> tuple[dict, set, set]:
    """(normalised text -> code, valid codes, missing codes) for one scale."""
    codes = set(int(c) for c in scale.codes)
    missing = set(int(c) for c in scale.missing_codes)
    lut: dict[str, int] = {}
    for labs in (scale.labels_en, scale.labels_es):
        for lab, c in zip(labs, scale.codes):
            lut[_norm(lab)] = int(c)
    for lab, c in zip(scale.missing_labels, scale.missing_codes):
        lut[_norm(lab)] = int(c)
    es_missing = getattr(scale, "missing_labels_es", None)
    if es_missing:
        for lab, c in zip(es_missing, scale.missing_codes):
            lut[_norm(lab)] = int(c)
    # a bank may declare labels in more languages (``labels_by_lang``, ``missing_labels_by_lang``)
    for attr, codes_ in (("labels_by_lang", scale.codes),
                         ("missing_labels_by_lang", scale.missing_codes)):
        for labs in (getattr(scale, attr, None) or {}).values():
            for lab, c in zip(labs, codes_):
                lut.setdefault(_norm(lab), int(c))
    for lab, c in extra.items():
        lut[_norm(lab)] = int(c)
    return lut, codes, missing


def _describe_scale(scale_id: str, codes: set, missing: set) -> str:
    lo, hi = min(codes), max(codes)
    ms = ", ".join(str(m) for m in sorted(missing))
    return f"scale {scale_id!r}: codes {lo}..{hi}" + (f" or missing codes {ms}" if ms else "")


def _parse_item(values: pd.Series, scale_id: str, lut: dict, codes: set, missing: set,
                file_missing: list[tuple[float, float]] = (),
                ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Codes (float, NaN = missing), bad mask and {bad value: reason} for one item column.

    ``file_missing`` are user-missing ranges declared in an SPSS file for this column: values in
    them are missing answers, like the scale's own missing codes."""
    arr = _blank_filled(values).to_numpy(dtype=object)
    uniq = pd.unique(arr)
    res: dict[Any, tuple[float, str]] = {}
    desc = None
    for v in uniq:
        if is_blank(v):
            res[v] = (np.nan, "")
            continue
        if isinstance(v, Formula):
            res[v] = (np.nan, "formula without a cached value (formulas are not evaluated); "
                              "expected a code or label")
            continue
        num = None
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
            num = float(v)
        elif isinstance(v, str) and _NUMBER.match(v.strip()):
            num = float(v.strip())
        if num is not None:
            desc = desc or _describe_scale(scale_id, codes, missing)
            if not np.isfinite(num):
                res[v] = (np.nan, f"value {v!r} is not a finite number; expected {desc}")
            elif num != int(num):
                res[v] = (np.nan, f"code {v!r} is not an integer; expected {desc}")
            elif int(num) in codes:
                res[v] = (float(int(num)), "")
            elif int(num) in missing or any(lo <= num <= hi for lo, hi in file_missing):
                res[v] = (np.nan, "")
            else:
                res[v] = (np.nan, f"code {int(num)} is out of range; expected {desc}")
            continue
        if isinstance(v, str):
            c = lut.get(_norm(v))
            if c is None:
                res[v] = (np.nan, f"text {v!r} maps to no code of scale {scale_id!r}; expected "
                                  "one of its labels (in any language of the bank), a missing "
                                  "label or a code")
            elif c in codes:
                res[v] = (float(c), "")
            else:
                res[v] = (np.nan, "")
            continue
        res[v] = (np.nan, f"value {v!r} of type {type(v).__name__} is not a code; expected "
                          f"{_describe_scale(scale_id, codes, missing)}")
    pos = pd.Index(uniq, dtype=object).get_indexer(arr)
    code_u = np.array([res[v][0] for v in uniq], float)
    bad_u = np.array([bool(res[v][1]) for v in uniq], bool)
    return code_u[pos], bad_u[pos], {k: r for k, (_, r) in res.items() if r}


def _blank_filled(values: pd.Series) -> pd.Series:
    """Missing cells (None/NaN/NA) as "" so that unique values are hashable and comparable."""
    if values.dtype == object and values.hasnans:
        return values.fillna("")
    if values.dtype != object and not pd.api.types.is_string_dtype(values.dtype):
        return values.astype(object).where(values.notna(), "")
    return values.fillna("") if values.hasnans else values


def _map_unique(values: pd.Series, fn: Any) -> np.ndarray:
    """``fn`` applied once per distinct value, broadcast back (object array)."""
    v = _blank_filled(values)
    uniq = pd.unique(v.to_numpy(dtype=object))
    mapped = np.empty(len(uniq), dtype=object)
    mapped[:] = [fn(u) for u in uniq]
    return mapped[pd.Index(uniq, dtype=object).get_indexer(v.to_numpy(dtype=object))]


def _ids(values: pd.Series) -> pd.Series:
    """Id cells as text (101.0 -> "101"), blank -> missing; vectorised for text columns."""
    if pd.api.types.is_string_dtype(values.dtype) or pd.api.types.infer_dtype(
            values, skipna=True) in ("string", "empty"):
        out = values.astype("str").str.strip()
        return out.where(~out.str.casefold().isin(MISSING_ID_SPELLINGS), None).astype("str")
    return pd.Series(_map_unique(values, _id_text), index=values.index).astype("str")


def _language(v: Any, values: Mapping[str, str]) -> str | None:
    """"en"/"es" from a language cell ("EN", "es-MX", "Español", ...); None when unknown."""
    t = _norm(v)
    if t in values:
        return values[t]
    return values.get(re.split(r"[-_]", t)[0])


def _number(v: Any) -> float:
    """A cell as a float (NaN when blank or not a number)."""
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and _NUMBER.match(v.strip()):
        return float(v.strip())
    return float("nan")


def _id_text(v: Any) -> Any:
    """Ids as text: 101.0 -> "101"; blank -> None."""
    if is_blank(v):
        return None
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return None
        if float(v).is_integer():
            return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    t = str(v).strip()
    return None if t.casefold() in MISSING_ID_SPELLINGS else t


def _value_label_recodes(src: Source, rename: Mapping[str, str], items: list[str],
                         item_scale: Mapping[str, str], lookups: Mapping[str, tuple],
                         ) -> dict[str, dict[float, float]]:
    """File code -> bank code for item columns whose .sav/.dta value labels code differently.

    Each labelled code's label is looked up among the bank scale's labels (English, Spanish,
    missing labels and mapping labels). A column whose labels all agree with the bank needs no
    recode; one coded differently (e.g. reversed, or 0-based) is recoded by its labels; a label
    the bank does not know raises `IngestError`, since the file's coding cannot be verified.
    """
    out: dict[str, dict[float, float]] = {}
    for col, labels in src.value_labels.items():
        target = rename.get(col, col)
        if target not in items:
            continue
        lut = lookups[target][0]
        recode: dict[float, float] = {}
        for code, lab in labels.items():
            try:
                c = float(code)
            except (TypeError, ValueError):
                continue
            b = lut.get(_norm(lab))
            if b is None:
                raise IngestError(
                    f"{src.path}: column {col!r}: value label {lab!r} of code {code!r} is not a "
                    f"label of the bank's scale {item_scale[target]!r}; expected its English or "
                    "Spanish labels, a missing label, or a mapping 'labels' entry, so that the "
                    "file's coding can be checked.")
            recode[c] = float(b)
        if any(k != v for k, v in recode.items()):
            out[target] = recode
    return out


def ingest(path: str | Path, *, bank: Any, form: str, mapping: Any = None,
           quarantine_dir: str | Path | None = None, exclude_flags: Iterable[str] = (),
           format: str | None = None, chunksize: int = 100_000,
           straightline: Rule = STRAIGHTLINE_MIN_ITEMS,
           seconds_per_item: Rule = MIN_SECONDS_PER_ITEM) -> IngestResult:
    """Read a fielded response file, check every row against the bank and quarantine failures.

    Parameters
    ----------
    path : path
        The file (.csv, .tsv, .txt, .xlsx, .sav, .dta, .parquet; a Qualtrics CSV export is
        recognised by its ImportId row).
    bank : Bank
        The item bank (``items``, ``scales``, ``items_for``).
    form : str
        The form the file holds: one of ``bank.forms``.
    mapping : path or mapping, optional
        Column renames, extra labels, defaults, ignored columns (see `load_mapping`).
    quarantine_dir : path, optional
        Folder for ``<file stem>.quarantine.csv`` (cells neutralised against formula injection).
    exclude_flags : iterable of {"straightlining", "too_fast"}
        Flags that exclude a row (into quarantine) rather than only flag it.
    format : str, optional
        Force a reader: one of "csv", "qualtrics", "xlsx", "sav", "dta", "parquet".
    chunksize : int
        Rows per chunk (CSV, SPSS/Stata, parquet and xlsx are read chunk by chunk).
    straightline, seconds_per_item : Rule
        Quality rules (`STRAIGHTLINE_MIN_ITEMS`, `MIN_SECONDS_PER_ITEM`).

    Returns
    -------
    IngestResult

    Notes
    -----
    Row checks (each failing row goes to quarantine with every problem found): respondent id
    missing or duplicated (a repeat of an id seen on an earlier row); school or district id missing
    or spelled as a missing value ("NA", "nan", "None", ".") when the file has that column; a
    language that is not one of ``bank.languages``; a ``form`` column naming another form; an item value that is not a code of the item's
    scale, a missing code or a label (English, Spanish, missing labels, or mapping labels); no item
    answered; a non-numeric duration or background number; and, when excluded, straight-lining
    (every answered item has the same raw code over at least ``straightline.threshold`` items) and
    too-fast responses (duration / items on the form fails ``seconds_per_item``).

    Optional columns: without ``respondent_id`` a respondent is known by the file's name and its
    data row number (``<file stem>:<row>``, so files stacked by a plan stay distinct);
    without ``school_id`` (``district_id``) the rows belong to no school (district) and the school
    stages of `instrument.validate` stand aside; without ``language`` a one-language bank's
    language is assumed (a bank with several needs the column or a mapping default).
    """
    path = Path(path)
    forms = tuple(getattr(bank, "forms", ()))
    if form not in forms:
        raise ValueError(f"form= must be one of the bank's forms {list(forms)}; got {form!r}.")
    languages = tuple(getattr(bank, "languages", ("en", "es")))
    exclude = tuple(exclude_flags)
    bad_flags = [f for f in exclude if f not in FLAGS]
    if bad_flags:
        raise ValueError(f"exclude_flags= must contain only {FLAGS!r}; got {bad_flags!r}.")
    if not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize= must be a positive integer; got {chunksize!r}.")
    mp = load_mapping(mapping)
    enc = str(mp.get("encoding", "utf-8-sig"))
    fmt = detect_format(path, format or mp.get("format"), enc)
    src = open_source(path, fmt, chunksize=chunksize, sheet=mp.get("sheet"), encoding=enc)

    items = list(bank.items_for(form))
    all_items = bank.items.set_index("item_id")
    item_scale = all_items["scale"].to_dict()
    other_items = set(all_items.index[all_items["form"] != form])
    bg_extra = list(mp.get("background") or [])
    bank_bg = getattr(bank, "background", None)
    if isinstance(bank_bg, pd.DataFrame) and "item_id" in bank_bg.columns:
        bg_extra += [b for b in bank_bg["item_id"] if b not in bg_extra]
    numeric_bg = set(NUMERIC_BACKGROUND)
    if isinstance(bank_bg, pd.DataFrame) and {"item_id", "type"} <= set(bank_bg.columns):
        numeric_bg |= set(bank_bg.loc[bank_bg["type"].isin(["integer", "number"]), "item_id"])

    # --- columns: rename, then file-level checks ------------------------------------------------
    rename = {}
    user_cols = dict(mp.get("columns") or {})
    for c in src.columns:
        if c in user_cols:
            rename[c] = str(user_cols[c])
    present = {rename.get(c, c) for c in src.columns}
    for c in src.columns:
        if c not in rename and c in ALIASES and ALIASES[c] not in present:
            rename[c] = ALIASES[c]
            present.add(ALIASES[c])
    ignore = set(mp.get("ignore") or []) | set(PLATFORM_METADATA)
    canonical = {"respondent_id", "school_id", "district_id", "language", "form", "duration",
                 *NUMERIC_BACKGROUND, *TEXT_BACKGROUND, *bg_extra}
    targets: dict[str, str] = {}
    for c in src.columns:
        t = rename.get(c, c)
        if c in ignore and c not in rename:
            continue
        if t in targets.values():
            raise IngestError(f"{path}: column {c!r}: maps to {t!r}, which another column already "
                              "provides; expected each item and id once.")
        if t in other_items:
            other = all_items.loc[t, "form"]
            raise IngestError(f"{path}: column {c!r}: item {t!r} belongs to the {other} form, but "
                              f"the file is ingested as form={form!r}; expected only {form} items "
                              "(wrong form?).")
        if t not in items and t not in canonical:
            raise IngestError(f"{path}: column {c!r}: unknown column; expected an item of the "
                              f"{form} form, an id column (respondent_id, school_id, district_id, "
                              "language, form, duration), a background column, or a mapping "
                              "'columns'/'ignore' entry for it.")
        targets[c] = t
    defaults = dict(mp.get("defaults") or {})
    have = set(targets.values()) | set(defaults)
    missing_items = [i for i in items if i not in have]
    if missing_items:
        raise IngestError(f"{path}: column {missing_items[0]!r}: item column missing "
                          f"({len(missing_items)} missing: {missing_items}); expected every item "
                          f"of the {form} form.")
    if "language" not in have:
        if len(languages) != 1:
            raise IngestError(f"{path}: column 'language': required column missing (the bank has "
                              f"{len(languages)} languages: {list(languages)}); expected it in the "
                              "file, via mapping 'columns', or a mapping 'defaults' entry.")
        defaults["language"] = languages[0]
        have.add("language")
    labels_extra = mp.get("labels") or {}
    lookups = {}
    for it in items:
        sid = item_scale[it]
        extra = {**(labels_extra.get("*") or {}), **(labels_extra.get(sid) or {})}
        lookups[it] = _scale_lookup(bank.scales[sid], extra)
    recodes = _value_label_recodes(src, rename, items, item_scale, lookups)
    lang_values = language_values(languages, mp.get("language_values"))
    J = len(items)

    # --- rows, chunk by chunk --------------------------------------------------------------------
    seen_ids = pd.Series(dtype=np.int64)  # respondent id -> first data row
    used_parts: list[pd.DataFrame] = []
    q_parts: list[pd.DataFrame] = []
    flag_parts: list[pd.DataFrame] = []
    read = 0
    first_row = 1
    kept_rows: list[np.ndarray] = []
    kept_lines: list[np.ndarray] = []
    inv = {t: c for c, t in targets.items()}
    bg_cols = [b for b in (*NUMERIC_BACKGROUND, *TEXT_BACKGROUND, *bg_extra) if b in inv]

    for chunk in src.chunks:
        n = len(chunk)
        if n == 0:
            continue
        rows = np.arange(first_row, first_row + n)
        first_row += n
        read += n
        lines = chunk.attrs.get("lines")
        if lines is None:   # a spreadsheet's row is the data row + 1; a record file's, the row
            lines = rows + (1 if fmt == "xlsx" else 0)
        ragged = dict(chunk.attrs.get("ragged") or {})
        problems: list[tuple[np.ndarray, str, list, list]] = []  # (mask, column, values, reasons)

        def col(t: str) -> pd.Series:
            if t in inv:
                return chunk[inv[t]]
            return pd.Series([defaults.get(t)] * n, dtype=object)

        def add(mask: np.ndarray, column: str, values: pd.Series, reason: Any) -> None:
            if mask.any():
                idx = np.flatnonzero(mask)
                vals = values.iloc[idx].tolist()
                reasons = [reason(v) if callable(reason) else reason for v in vals]
                problems.append((idx, column, vals, reasons))

        # without a respondent id column, a respondent is known by file and data row number
        rid = (_ids(col("respondent_id")) if "respondent_id" in have
               else pd.Series([f"{path.stem}:{r}" for r in rows], dtype="str"))
        add(rid.isna().to_numpy(), inv.get("respondent_id", "respondent_id"), col("respondent_id"),
            lambda v: _missing_id("respondent id", v))
        row_s = pd.Series(rows, index=rid.index)
        prev = rid.map(seen_ids) if len(seen_ids) else pd.Series(np.nan, index=rid.index)
        valid = rid.notna()
        first_here = row_s[valid].groupby(rid[valid].to_numpy()).transform("first")
        first = prev.fillna(first_here.reindex(rid.index))
        dup = (valid & (prev.notna() | rid.duplicated(keep="first"))).to_numpy()
        if dup.any():
            idx = np.flatnonzero(dup)
            problems.append((idx, inv.get("respondent_id", "respondent_id"),
                             rid.iloc[idx].tolist(),
                             [f"duplicate respondent id: first seen on row {int(first.iloc[k])}; "
                              "expected unique ids" for k in idx]))
        new_ids = valid.to_numpy() & ~dup
        seen_ids = pd.concat([seen_ids, pd.Series(rows[new_ids], index=rid[new_ids].to_numpy())])
        # a file without a school column holds no schools (the school stages stand aside);
        # one with a school (district) column needs a real id on every row
        sid = pd.Series([None] * n, dtype="str")
        if "school_id" in have:
            sid = _ids(col("school_id"))
            add(sid.isna().to_numpy(), inv.get("school_id", "school_id"), col("school_id"),
                lambda v: _missing_id("school id", v))
        did = pd.Series([None] * n, dtype="str")
        if "district_id" in have:
            did = _ids(col("district_id"))
            add(did.isna().to_numpy(), inv.get("district_id", "district_id"),
                col("district_id"), lambda v: _missing_id("district id", v))
        lang_raw = col("language")
        lang = pd.Series(_map_unique(lang_raw, lambda v: None if is_blank(v)
                                     else _language(v, lang_values)), index=lang_raw.index)
        add(lang.isna().to_numpy(), inv.get("language", "language"), lang_raw,
            lambda v: f"language {v!r} is not recognised; expected one of the bank's languages "
                      f"{list(languages)}")
        if "form" in have:
            fr = col("form")
            fm = pd.Series(_map_unique(fr, lambda v: None if is_blank(v) else _norm(v)))
            add((fm.notna() & (fm != form)).to_numpy(), inv.get("form", "form"), fr,
                lambda v: f"form {v!r} does not match the form ingested ({form!r})")

        codes = np.empty((n, J))
        for j, it in enumerate(items):
            lut, cset, mset = lookups[it]
            v = col(it)
            if it in recodes:   # the file's value labels code this item differently: use them
                rc = recodes[it]
                v = pd.Series(_map_unique(v, lambda x, rc=rc: rc.get(_number(x), x)
                                          if np.isfinite(_number(x)) else x), index=v.index)
            codes[:, j], bad, reasons = _parse_item(v, item_scale[it], lut, cset, mset,
                                                    src.user_missing.get(inv.get(it, it), ()))
            add(bad, inv.get(it, it), v, lambda x, r=reasons: r[x])
        answered = np.isfinite(codes).sum(axis=1)
        add(answered == 0, "", pd.Series([""] * n, dtype=object),
            f"no item answered: expected at least one answer to the {J} items")

        bg = {}
        for b in bg_cols:
            raw = col(b)
            if b in numeric_bg:
                num = _map_unique(raw, _number).astype(float)
                blank = _map_unique(raw, is_blank).astype(bool)
                add(~np.isfinite(num) & ~blank, inv[b], raw,
                    lambda v, b=b: f"{b} {v!r} is not a number")
                bg[b] = num
            else:
                bg[b] = _map_unique(raw, lambda v: None if is_blank(v) else str(v))

        # quality flags
        fl_rows, fl_names, fl_detail = [], [], []
        with np.errstate(invalid="ignore"):
            mx = np.nanmax(np.where(np.isfinite(codes), codes, -np.inf), axis=1)
            mn = np.nanmin(np.where(np.isfinite(codes), codes, np.inf), axis=1)
        sl = _passes(straightline, answered) & (mx == mn)
        for k in np.flatnonzero(sl):
            fl_rows.append(k)
            fl_names.append("straightlining")
            fl_detail.append(f"straight-lining: all {answered[k]} answered items = {mx[k]:g} "
                             f"({straightline.describe()})")
        if "duration" in have:
            raw = col("duration")
            blank = _map_unique(raw, is_blank).astype(bool)
            dur = _map_unique(raw, _number).astype(float)
            add(~np.isfinite(dur) & ~blank, inv.get("duration", "duration"), raw,
                lambda v: f"duration {v!r} is not a number of seconds")
            spi = dur / J
            with np.errstate(invalid="ignore"):
                fast = np.isfinite(spi) & ~_passes(seconds_per_item, spi)
            for k in np.flatnonzero(fast):
                fl_rows.append(k)
                fl_names.append("too_fast")
                fl_detail.append(f"too fast: {dur[k]:g} s for {J} items = {spi[k]:.2f} s/item "
                                 f"({seconds_per_item.describe()})")
        if fl_rows:
            fr_ = np.array(fl_rows)
            excl = np.array([f in exclude for f in fl_names])
            flag_parts.append(pd.DataFrame({"row": rows[fr_], "line": np.asarray(lines)[fr_],
                                            "flag": fl_names,
                                            "detail": fl_detail, "excluded": excl}))
            if excl.any():
                problems.append((fr_[excl], "", [""] * int(excl.sum()),
                                 [d for d, e in zip(fl_detail, excl) if e]))

        if ragged:   # a row split into the wrong number of fields: only that is reported
            rg = np.array(sorted(ragged))
            problems = [(idx[~np.isin(idx, rg)], column,
                         [v for k, v in zip(idx, vals) if k not in ragged],
                         [r for k, r in zip(idx, reasons) if k not in ragged])
                        for idx, column, vals, reasons in problems]
            problems.append((rg, "", [f"{ragged[k]} fields" for k in rg],
                             [f"the row has {ragged[k]} fields; expected {len(src.columns)} as "
                              f"in the header (a missing or stray delimiter"
                              + (", e.g. a trailing one" if ragged[k] > len(src.columns) else "")
                              + ")" for k in rg]))
        bad_rows = np.zeros(n, bool)
        for idx, column, vals, reasons in problems:
            if not len(idx):
                continue
            bad_rows[idx] = True
            q_parts.append(pd.DataFrame({"row": rows[idx], "line": np.asarray(lines)[idx],
                                         "column": column,
                                         "value": ["" if is_blank(v) else str(v) for v in vals],
                                         "reason": reasons}))
        keep = ~bad_rows
        kept_rows.append(rows[keep])
        kept_lines.append(np.asarray(lines)[keep])
        part = pd.DataFrame({"respondent_id": rid[keep].to_numpy(),
                             "school_id": sid[keep].to_numpy(),
                             "district_id": did.to_numpy()[keep],
                             "language": lang.to_numpy(object)[keep]}).astype("str")
        for b, v in bg.items():
            part[b] = v[keep]
        part = pd.concat([part, pd.DataFrame(codes[keep], columns=items)], axis=1)
        used_parts.append(part)

    # --- assemble ----------------------------------------------------------------------------------
    if used_parts:
        data = pd.concat(used_parts, ignore_index=True)
    else:
        data = pd.DataFrame(columns=["respondent_id", "school_id", "district_id", "language",
                                     *bg_cols, *items])
    for b in bg_cols:
        if b in numeric_bg:
            v = data[b].astype(float)
            if len(v) and v.notna().all() and (v == np.round(v)).all():
                data[b] = v.astype(np.int64)
            else:
                data[b] = v
    data = normalize_dtypes(data, items)
    data, q_parts = _one_district_per_school(
        data, q_parts, np.concatenate(kept_rows) if kept_rows else np.zeros(0, np.int64),
        np.concatenate(kept_lines) if kept_lines else np.zeros(0, np.int64),
        inv.get("district_id", "district_id"))
    quarantine = (pd.concat(q_parts, ignore_index=True).sort_values(["row"], kind="stable")
                  .reset_index(drop=True) if q_parts
                  else pd.DataFrame({c: pd.Series(dtype=np.int64 if c in ("row", "line")
                                                  else object)
                                     for c in QUARANTINE_COLUMNS}))
    flags = (pd.concat(flag_parts, ignore_index=True) if flag_parts
             else pd.DataFrame({"row": pd.Series(dtype=np.int64),
                                "line": pd.Series(dtype=np.int64), "flag": pd.Series(dtype=object),
                                "detail": pd.Series(dtype=object),
                                "excluded": pd.Series(dtype=bool)}))
    n_q = int(quarantine["row"].nunique())
    used = len(data)
    if read != used + n_q:  # the accounting identity every ingest must satisfy
        raise RuntimeError(f"{path}: internal accounting error: read {read} != used {used} + "
                           f"quarantined {n_q}.")
    qpath = None
    if quarantine_dir is not None:
        qd = Path(quarantine_dir)
        qd.mkdir(parents=True, exist_ok=True)
        qpath = qd / f"{path.stem}.quarantine.csv"
        safe_to_csv(quarantine, qpath)
    rs = ResponseSet(form=form, data=data, items=tuple(items), source=str(path),
                     quarantine=quarantine)
    return IngestResult(responses=rs, quarantine=quarantine, flags=flags, read=read, used=used,
                        quarantined=n_q, path=str(path), format=fmt,
                        quarantine_path=None if qpath is None else str(qpath),
                        recoded=tuple(recodes), delimiter=src.delimiter)


def _missing_id(what: str, v: Any) -> str:
    """The reason for a blank id or one spelled as missing ("NA", "nan", "None", ".")."""
    if is_blank(v):
        return f"missing {what}: expected a non-blank {what}"
    return f"missing {what}: {str(v).strip()!r} is a spelling of a missing value; expected a real {what}"


def _one_district_per_school(data: pd.DataFrame, q_parts: list[pd.DataFrame], rows: np.ndarray,
                             lines: np.ndarray, column: str
                             ) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Quarantine every row of a school whose rows name more than one district.

    A school belongs to one district; rows that disagree cannot say which is right, so none of
    that school's rows is used (each is quarantined naming the districts found)."""
    if not len(data) or data["district_id"].isna().all():
        return data, q_parts
    d = data["district_id"].where(data["district_id"].notna(), None)
    n_d = d.groupby(data["school_id"]).nunique()
    bad = n_d.index[n_d > 1]
    if not len(bad):
        return data, q_parts
    mask = data["school_id"].isin(bad).to_numpy()
    names = {s: sorted(str(x) for x in d[data["school_id"] == s].dropna().unique()) for s in bad}
    q_parts = q_parts + [pd.DataFrame({
        "row": rows[mask], "line": lines[mask], "column": column,
        "value": [str(x) for x in d[mask]],
        "reason": [f"school {s!r} is named in districts {names[s]}; expected one district per "
                   "school" for s in data.loc[mask, "school_id"]]})]
    return data.loc[~mask].reset_index(drop=True), q_parts
