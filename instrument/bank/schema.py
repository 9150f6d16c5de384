"""The schema of the item bank: which fields each YAML mapping has, their types and meaning.

Each mapping in the bank is checked against one `Schema` (a tuple of `Field`): unknown fields
(typos) are reported with the closest known name, required fields must be present, and each
value must have its declared kind. Cross-references (scale ids, construct ids, finding keys,
forms, languages) and counts are checked in `instrument.bank.loader`.

Field kinds
-----------
``text``     a non-empty string
``id``       an identifier usable as a lavaan variable name: a letter, then letters, digits or _
``bool``     ``true`` or ``false`` (YAML booleans; not 0/1 or quoted text)
``int``      a whole number
``date``     an ISO date (2026-03-12), read by YAML as a date or given as text
``list``     a YAML list
``map``      a YAML mapping
``langtext`` a mapping from language code to non-empty text, one entry per declared language
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any

ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
TRANSLATION_STATUSES = ("draft", "reviewed", "back-translated")
BACKGROUND_TYPES = ("choice", "integer")
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "pt": "Portuguese",
                  "zh": "Chinese", "vi": "Vietnamese", "ar": "Arabic", "ht": "Haitian Creole"}

EXPECT = {
    "text": "non-empty text",
    "id": "an identifier (a letter, then letters, digits or _)",
    "bool": "true or false",
    "int": "a whole number",
    "date": "a date such as 2026-03-12",
    "list": "a list",
    "map": "a mapping of field: value",
    "langtext": "a mapping from language code to text (e.g. en: ..., es: ...)",
}


@dataclass(frozen=True)
class Field:
    """One field of a mapping: its name, kind, whether it is required and what it means."""

    name: str
    kind: str
    required: bool = True
    doc: str = ""


Schema = tuple[Field, ...]

MANIFEST: Schema = (
    Field("name", "text", doc="name of the bank"),
    Field("version", "text", False, "version of the bank's content"),
    Field("languages", "list", doc="language codes; the first is the source language"),
    Field("forms", "list", doc="the forms (teacher, family)"),
    Field("files", "map", doc="the files that make up the bank"),
)
FORM: Schema = (
    Field("id", "id", doc="form name used in item files and the API"),
    Field("id_prefix", "text", False, "prefix every item id on this form starts with"),
    Field("label", "langtext", doc="title of the form"),
    Field("instructions", "langtext", False, "instructions shown to respondents"),
)
FILES: Schema = (
    Field("scales", "text", doc="file with response scales"),
    Field("constructs", "text", doc="file with constructs and findings"),
    Field("items", "list", doc="files with scale items, one form per file"),
    Field("background", "text", False, "file with background items"),
)
SCALES_FILE: Schema = (
    Field("missing_codes", "list", False, "missing-data codes and their labels"),
    Field("scales", "list", doc="response scales"),
)
MISSING_CODE: Schema = (
    Field("code", "int", doc="the code stored in data"),
    Field("label", "langtext", doc="label in every language"),
)
SCALE: Schema = (
    Field("id", "id", doc="scale id referred to by items"),
    Field("kind", "id", doc="agreement, frequency, ..."),
    Field("codes", "list", doc="consecutive whole numbers starting at 1"),
    Field("labels", "map", doc="one list of labels per language, one label per code"),
    Field("missing", "list", False, "missing-data codes this scale offers"),
)
CONSTRUCTS_FILE: Schema = (Field("constructs", "list", doc="the constructs"),)
CONSTRUCT: Schema = (
    Field("id", "id", doc="construct id, the latent variable's name in lavaan syntax"),
    Field("label", "langtext", doc="label in every language"),
    Field("description", "text", doc="what strong practice looks like"),
    Field("findings", "list", False, "findings the items operationalise (optional)"),
)
FINDING: Schema = (
    Field("key", "id", doc="short key items refer to"),
    Field("text", "text", doc="the finding in a sentence"),
)
ITEMS_FILE: Schema = (
    Field("form", "id", doc="the form these items belong to"),
    Field("items", "list", doc="the scale items of the form"),
)
ITEM: Schema = (
    Field("id", "id", doc="stable item id, e.g. t_mind_1"),
    Field("construct", "id", doc="construct id from constructs.yaml"),
    Field("finding", "id", False, "finding key of the construct (when it declares findings)"),
    Field("scale", "id", doc="scale id from scales.yaml"),
    Field("reverse", "bool", doc="true for negatively worded (reverse-keyed) items"),
    Field("text", "langtext", doc="item text in every language"),
    Field("translation", "map", False, "per translated language: status and reviewer notes "
          "(required when the bank has more than one language)"),
    Field("revisions", "list", False, "revision history"),
    Field("cognitive_interviews", "list", False, "cognitive-interview notes"),
)
TRANSLATION: Schema = (
    Field("status", "text", doc="draft, reviewed or back-translated"),
    Field("notes", "text", False, "reviewer notes"),
    Field("reviewer", "text", False, "who reviewed the translation"),
)
REVISION: Schema = (
    Field("version", "int", False, "version number of the item after the change"),
    Field("date", "date", doc="date of the change"),
    Field("change", "text", doc="what changed"),
    Field("reason", "text", False, "why"),
)
COGNITIVE_INTERVIEW: Schema = (
    Field("round", "int", False, "interview round"),
    Field("date", "date", False, "date of the round"),
    Field("language", "id", False, "language of the interviews"),
    Field("participants", "int", False, "number of participants"),
    Field("note", "text", doc="what the interviews showed"),
    Field("action", "text", False, "what was done about it"),
)
BACKGROUND_FILE: Schema = (Field("items", "list", doc="background items"),)
BACKGROUND_ITEM: Schema = (
    Field("id", "id", doc="stable item id, e.g. t_bg_role"),
    Field("form", "id", doc="the form the item is asked on"),
    Field("type", "id", doc="choice or integer"),
    Field("text", "langtext", doc="question text in every language"),
    Field("options", "list", False, "choice options: code and a label per language"),
    Field("min", "int", False, "smallest allowed answer (integer items)"),
    Field("max", "int", False, "largest allowed answer (integer items)"),
    Field("missing", "list", False, "missing-data codes the item offers"),
)


def kind_ok(kind: str, value: Any) -> bool:
    """True when ``value`` has the field kind ``kind`` (see the module docstring)."""
    if kind == "text":
        return isinstance(value, str) and value.strip() != ""
    if kind == "id":
        return isinstance(value, str) and bool(ID_PATTERN.match(value))
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "date":
        if isinstance(value, _dt.date):
            return True
        if isinstance(value, str):
            try:
                _dt.date.fromisoformat(value)
                return True
            except ValueError:
                return False
        return False
    if kind in ("list",):
        return isinstance(value, list)
    if kind in ("map", "langtext"):
        return isinstance(value, dict)
    raise ValueError(f"unknown field kind {kind!r}")


def describe(value: Any) -> str:
    """Short description of a YAML value for messages: ``got 'yes' (text)``."""
    if value is None:
        return "got nothing"
    if isinstance(value, bool):
        return f"got {str(value).lower()}"
    if isinstance(value, str):
        v = value if len(value) <= 40 else value[:37] + "..."
        return f"got '{v}' (text)"
    if isinstance(value, (int, float)):
        return f"got {value!r} (number)"
    if isinstance(value, dict):
        return "got a mapping"
    if isinstance(value, list):
        return "got a list"
    return f"got {value!r}"


def language_name(code: str) -> str:
    return f"{LANGUAGE_NAMES[code]} ('{code}')" if code in LANGUAGE_NAMES else f"'{code}'"
