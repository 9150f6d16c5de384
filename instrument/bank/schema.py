"""The schema of the item bank: one pydantic v2 model per file and per record.

Each file of the bank is validated against its model (`BankManifest`, `ScalesFile`,
`ConstructsFile`, `ItemsFile`, `BackgroundFile`); unknown keys (typos) are refused with the
closest known name, required keys must be present, and every value must have its declared kind
(`instrument.bank.yamlio.schema_problems` says each problem as ``file:line: key.path: what was
expected``).

References are checked where they are made, against a `BankContext` that the files fill as they
are validated in the bank's reading order (manifest, scales, constructs, items, background): the
manifest declares the languages and forms; the scales file the missing-data codes and scale ids;
the constructs file the construct ids and their finding keys. So an item's scale, construct,
finding, texts in every language and translation records are checked in the same pass as its
kinds, and every problem of a record is reported at once. A record whose id is valid is
declared even when another of its keys is wrong, so one mistake does not make every reference to
it unknown. Checks that span files and need the lines of both places (item ids unique across the
bank, items per construct) are in `instrument.bank.loader`.

Kinds
-----
``Text``      non-empty text
``Id``        an identifier usable as a lavaan variable name: a letter, then letters, digits or _
``bool``      ``true`` or ``false`` (YAML 1.2 booleans: not yes/no, 0/1 or quoted text)
``int``       a whole number
``Date``      an ISO date (2026-03-12), written as a YAML date or as text
``LangText``  a mapping from language code to non-empty text, one entry per declared language
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional

from pydantic import (AfterValidator, ConfigDict, Field, ValidationInfo, field_validator,
                      model_validator)

from instrument.bank.yamlio import Expect, Strict, fail_at

ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
TRANSLATION_STATUSES = ("draft", "reviewed", "back-translated")
BACKGROUND_TYPES = ("choice", "integer")
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "pt": "Portuguese",
                  "zh": "Chinese", "vi": "Vietnamese", "ar": "Arabic", "ht": "Haitian Creole"}
MANIFEST_NAME = "bank.yaml"


def language_name(code: str) -> str:
    return f"{LANGUAGE_NAMES[code]} ('{code}')" if code in LANGUAGE_NAMES else f"'{code}'"


@dataclass
class BankContext:
    """What the files validated so far declare; validators read and fill it."""

    languages: list[str] = field(default_factory=list)
    forms: dict[str, Optional[str]] = field(default_factory=dict)   # form id -> id prefix
    missing: Optional[dict[int, None]] = None                    # None: scales file unreadable
    scales: dict[str, None] = field(default_factory=dict)
    # construct id -> its finding keys; None while the construct has problems of its own
    constructs: dict[str, Optional[list[str]]] = field(default_factory=dict)
    form: Optional[str] = None                                   # form of the items file at hand


def _ctx(info: ValidationInfo) -> BankContext:
    return info.context


def _iso_date(v: str) -> str:
    try:
        _dt.date.fromisoformat(v)
    except ValueError:
        raise ValueError(f"expected a date such as 2026-03-12; got {v!r}") from None
    return v


def _in_every_language(v: dict[str, str], info: ValidationInfo) -> dict[str, str]:
    """Text in every language the manifest declares, and in no other."""
    langs = _ctx(info).languages
    fail_at([((lang,), f"unknown language '{lang}'; expected one of {', '.join(langs)} "
                       f"(declared in {MANIFEST_NAME} languages)", lang)
             for lang in v if langs and lang not in langs]
            + [((), f"missing {language_name(lang)} text; expected text in every language "
                    f"declared in {MANIFEST_NAME} ({', '.join(langs)})", v)
               for lang in langs if lang not in v])
    return v


def _declared_missing(v: list[int], info: ValidationInfo) -> list[int]:
    """Missing-data codes declared in the scales file's ``missing_codes``, each once."""
    known = _ctx(info).missing
    if known is None:
        return v
    fail_at([((i,), f"missing code {c} is not declared in missing_codes; expected one of: "
                    f"{', '.join(map(str, known)) or 'none declared'}", c)
             for i, c in enumerate(v) if c not in known]
            + [((i,), f"missing code {c} listed twice; expected each code once", c)
               for i, c in enumerate(v) if c in v[:i]])
    return v


def _declares(registry: str, what: str) -> AfterValidator:
    """A validator that declares the value in the context's ``registry`` (a dict), refusing a
    second declaration of the same value."""
    def declare(v: Any, info: ValidationInfo) -> Any:
        known = getattr(_ctx(info), registry)
        if v in known:
            raise ValueError(f"duplicate {what} {v!r}; expected each {what} once")
        known[v] = None
        return v
    return AfterValidator(declare)


Text = Annotated[str, Field(pattern=r"\S"), Expect("non-empty text")]
Id = Annotated[str, Field(pattern=ID_PATTERN.pattern),
               Expect("an identifier (a letter, then letters, digits or _)")]
LangCode = Annotated[str, Field(pattern=ID_PATTERN.pattern),
                     Expect("a language code such as en or es")]
Date = Annotated[str, AfterValidator(_iso_date), Expect("a date such as 2026-03-12")]
LangText = Annotated[dict[LangCode, Text], AfterValidator(_in_every_language)]
MissingCodes = Annotated[list[int], AfterValidator(_declared_missing)]


# --- bank.yaml ------------------------------------------------------------------------------

class Form(Strict):
    """One form of the bank (``forms:`` in the manifest)."""

    id: Annotated[Id, _declares("forms", "form id")] = Field(
        description="the form's name, used in item files and the API")
    id_prefix: Optional[Text] = None
    label: LangText = Field(description="the title of the form in every language")
    instructions: Optional[LangText] = None

    @field_validator("id_prefix")
    @classmethod
    def _prefix(cls, v: Optional[str], info: ValidationInfo) -> Optional[str]:
        if v is not None and "id" in info.data:
            _ctx(info).forms[info.data["id"]] = v
        return v


class Files(Strict):
    """``files:`` in the manifest: the files that make up the bank, relative to its folder."""

    scales: Text = Field(description="the file with response scales")
    constructs: Text = Field(description="the file with constructs and findings")
    items: list[Text] = Field(description="the files with scale items, one form per file")
    background: Optional[Text] = None

    @field_validator("items")
    @classmethod
    def _once(cls, v: list[str]) -> list[str]:
        fail_at(((i,), f"'{name}' listed twice; expected each file once", name)
                for i, name in enumerate(v) if name in v[:i])
        return v


def _declared_forms(v: Optional[list[str]], info: ValidationInfo) -> Optional[list[str]]:
    """Forms declared in the manifest's ``forms``, each once."""
    if v is not None:
        fail_at([((i,), f"form '{f}' listed twice; expected each form once", f)
                 for i, f in enumerate(v) if f in v[:i]]
                + [((i,), f"unknown form '{f}'; expected one of "
                          f"{', '.join(_ctx(info).forms) or '(no forms declared)'} (declared in "
                          f"{MANIFEST_NAME} forms)", f)
                   for i, f in enumerate(v) if f not in _ctx(info).forms and f not in v[:i]])
    return v


class Overall(Strict):
    """``overall:`` in the manifest: the bank's overall score, when it defines one.

    A respondent's overall score is the unweighted mean of their scores on ``constructs``, each
    construct score computed on its items as keyed (reverse-keyed items recoded), so a higher
    overall score means more of what every listed construct measures; constructs on different
    response scales are averaged in their own units. Forms not in ``forms`` (every form when
    omitted) get no overall score. Construct ids are checked against the constructs file by
    `instrument.bank.loader`, which reads that file after the manifest.
    """

    label: LangText = Field(description="the name of the overall score in every language")
    constructs: list[Id] = Field(min_length=2, description="the constructs it averages")
    forms: Optional[Annotated[list[Id], AfterValidator(_declared_forms)]] = Field(
        None, min_length=1, description="the forms that report it (default: every form)")

    @field_validator("constructs")
    @classmethod
    def _once(cls, v: list[str]) -> list[str]:
        fail_at(((i,), f"construct '{c}' listed twice; expected each construct once", c)
                for i, c in enumerate(v) if c in v[:i])
        return v


class BankManifest(Strict):
    """``bank.yaml``: name, languages (the first is the source language), forms, files and the
    optional overall score (`Overall`; a bank without ``overall:`` reports construct scores
    only)."""

    name: Text = Field(description="the name of the bank")
    version: Optional[Text] = None
    languages: list[LangCode] = Field(min_length=1, description="language codes, e.g. [en, es]")
    forms: list[Form] = Field(min_length=1, description="the forms (e.g. teacher, family)")
    files: Files = Field(description="the files that make up the bank")
    overall: Optional[Overall] = None

    @field_validator("languages")
    @classmethod
    def _declare(cls, v: list[str], info: ValidationInfo) -> list[str]:
        _ctx(info).languages[:] = dict.fromkeys(v)       # declared even when one is repeated
        fail_at(((i,), f"'{lang}' listed twice; expected each language once", lang)
                for i, lang in enumerate(v) if lang in v[:i])
        return v


# --- scales.yaml ----------------------------------------------------------------------------

class MissingCode(Strict):
    """A missing-data code (e.g. -99 Prefer not to say) and its label in every language."""

    code: Annotated[int, _declares("missing", "missing code")] = Field(
        description="the code stored in data")
    label: LangText = Field(description="the label in every language")


class Scale(Strict):
    """A response scale: codes 1..k with one label per code in every language."""

    id: Annotated[Id, _declares("scales", "scale id")] = Field(
        description="the scale id items refer to")
    kind: Id = Field(description="agreement, frequency, ...")
    codes: list[int] = Field(description="consecutive whole numbers starting at 1")
    labels: dict[LangCode, list[Text]] = Field(
        description="one list of labels per language, one label per code")
    missing: Optional[MissingCodes] = None

    @field_validator("codes")
    @classmethod
    def _consecutive(cls, v: list[int]) -> list[int]:
        if len(v) < 2 or v != list(range(1, len(v) + 1)):
            raise ValueError(f"codes {v} are not consecutive from 1; expected "
                             f"{list(range(1, max(len(v), 2) + 1))}")
        return v

    @field_validator("labels")
    @classmethod
    def _one_per_code(cls, v: dict[str, list[str]], info: ValidationInfo) -> dict:
        langs, codes = _ctx(info).languages, info.data.get("codes")
        fail_at([((lang,), f"labels for unknown language '{lang}'; expected one of "
                           f"{', '.join(langs)}", lang)
                 for lang in v if langs and lang not in langs]
                + [((), f"no {language_name(lang)} labels; expected one label per code in every "
                        f"language ({', '.join(langs)})", v) for lang in langs if lang not in v]
                + [((lang,), f"{len(labs)} {language_name(lang)} labels for {len(codes)} codes; "
                             f"expected one label per code ({len(codes)} labels)", labs)
                   for lang, labs in v.items() if codes is not None and len(labs) != len(codes)])
        return v

    @field_validator("missing")
    @classmethod
    def _outside_codes(cls, v: Optional[list[int]], info: ValidationInfo) -> Optional[list[int]]:
        codes = info.data.get("codes") or []
        fail_at(((i,), f"missing code {c} is also a response code; expected missing codes "
                       "outside the scale's codes", c) for i, c in enumerate(v or []) if c in codes)
        return v


class ScalesFile(Strict):
    """``scales.yaml``: the missing-data codes, then the response scales."""

    missing_codes: list[MissingCode] = Field([], validate_default=True)
    scales: list[Scale] = Field(description="the response scales")

    @field_validator("missing_codes", mode="before")
    @classmethod
    def _declaring(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, list):     # codes are declared one by one as they validate
            _ctx(info).missing = {}
        return v


# --- constructs.yaml ------------------------------------------------------------------------

class Finding(Strict):
    """A Stage 2 finding a construct's items operationalise."""

    key: Id = Field(description="the short key items refer to")
    text: Text = Field(description="the finding in a sentence")


class Construct(Strict):
    """A construct: the latent variable of its items."""

    id: Annotated[Id, _declares("constructs", "construct id")] = Field(
        description="the construct id, the latent variable's name in lavaan syntax")
    label: LangText = Field(description="the label in every language")
    description: Text = Field(description="what strong practice looks like")
    findings: Optional[list[Finding]] = None

    @field_validator("findings")
    @classmethod
    def _keys_once(cls, v: Optional[list[Finding]]) -> Optional[list[Finding]]:
        if v is not None and not v:
            raise ValueError("no findings; expected at least one finding (key, text)")
        keys = [f.key for f in v or []]
        fail_at(((j, "key"), f"duplicate finding key '{k}'; expected each key once per "
                             "construct", k) for j, k in enumerate(keys) if k in keys[:j])
        return v

    @model_validator(mode="after")
    def _findings_known(self, info: ValidationInfo) -> "Construct":
        _ctx(info).constructs[self.id] = [f.key for f in self.findings or []]
        return self


class ConstructsFile(Strict):
    """``constructs.yaml``: the constructs."""

    constructs: list[Construct] = Field(description="the constructs")


# --- teacher.yaml, family.yaml --------------------------------------------------------------

class Translation(Strict):
    """The ITC record of one translation of an item."""

    status: Literal[TRANSLATION_STATUSES]  # type: ignore[valid-type]
    notes: Optional[Text] = None
    reviewer: Optional[Text] = None


class Revision(Strict):
    """One change in an item's history."""

    version: Optional[int] = None
    date: Date = Field(description="the date of the change")
    change: Text = Field(description="what changed")
    reason: Optional[Text] = None


class CognitiveInterview(Strict):
    """A round of cognitive interviews: evidence on response processes."""

    round: Optional[int] = None
    date: Optional[Date] = None
    language: Optional[LangCode] = None
    participants: Optional[int] = None
    note: Text = Field(description="what the interviews showed")
    action: Optional[Text] = None

    @field_validator("language")
    @classmethod
    def _declared(cls, v: Optional[str], info: ValidationInfo) -> Optional[str]:
        return v if v is None else _one_of(v, _ctx(info).languages, "language")


def _one_of(v: str, known: Any, what: str) -> str:
    """``v`` when it is one of the ``known`` ids (not checked while none are known: the file
    that declares them has its own problem)."""
    if known and v not in known:
        raise ValueError(f"unknown {what} '{v}'; expected one of {', '.join(known)}")
    return v


def _declared_form(form: str, ctx: BankContext) -> str:
    if form not in ctx.forms:
        raise ValueError(f"unknown form '{form}'; expected one of "
                         f"{', '.join(ctx.forms) or '(no forms declared)'} (declared in "
                         f"{MANIFEST_NAME} forms)")
    return form


def _prefixed(iid: str, form: Optional[str], ctx: BankContext, what: str) -> None:
    prefix = ctx.forms.get(form or "")
    if prefix and not iid.startswith(prefix):
        raise ValueError(f"{what} '{iid}' is on the {form} form; expected an id starting with "
                         f"'{prefix}'")


class Item(Strict):
    """A scale item: its construct, finding, response scale, keying, texts and records."""

    id: Id = Field(description="a stable item id, e.g. t_mind_1")
    # "construct" is a method of pydantic's BaseModel: the field is construct_id, read as construct
    construct_id: Id = Field(alias="construct", description="a construct id from constructs.yaml")
    finding: Optional[Id] = Field(None, validate_default=True)
    scale: Id = Field(description="a scale id from scales.yaml")
    reverse: bool = Field(description="true for negatively worded (reverse-keyed) items, "
                                      "else false")
    text: LangText = Field(description="the item text in every language")
    translation: Optional[dict[LangCode, Translation]] = Field(None, validate_default=True)
    revisions: Optional[list[Revision]] = None
    cognitive_interviews: Optional[list[CognitiveInterview]] = None

    @field_validator("id")
    @classmethod
    def _prefix(cls, v: str, info: ValidationInfo) -> str:
        _prefixed(v, _ctx(info).form, _ctx(info), "item")
        return v

    @field_validator("construct_id", "scale")
    @classmethod
    def _declared(cls, v: str, info: ValidationInfo) -> str:
        if info.field_name == "scale":
            return _one_of(v, _ctx(info).scales, "scale")
        return _one_of(v, _ctx(info).constructs, "construct")

    @field_validator("finding")
    @classmethod
    def _known_finding(cls, v: Optional[str], info: ValidationInfo) -> Optional[str]:
        cid = info.data.get("construct_id")
        keys = _ctx(info).constructs.get(cid) if cid else None
        if keys is None:            # construct unknown or with problems of its own: said there
            return v
        if v is None and keys:
            raise ValueError(f"no finding; expected finding: one of {', '.join(keys)}")
        if v is not None and v not in keys:
            raise ValueError(f"unknown finding '{v}' for construct '{cid}'; expected one of "
                             f"{', '.join(keys) or '(none declared)'}")
        return v

    @field_validator("translation")
    @classmethod
    def _every_translation(cls, v: Optional[dict], info: ValidationInfo) -> Optional[dict]:
        targets = _ctx(info).languages[1:]
        if v is None:
            if targets:
                raise ValueError("no translation record; expected translation: with an entry "
                                 f"per translated language ({', '.join(targets)})")
            return v
        fail_at([((lang,), f"translation entry for '{lang}'; expected entries only for "
                           f"translated languages ({', '.join(targets) or 'none'})", lang)
                 for lang in v if lang not in targets]
                + [((), f"no translation record for {language_name(lang)}; expected {lang}: "
                        f"{{status: {' | '.join(TRANSLATION_STATUSES)}}}", v)
                   for lang in targets if lang not in v])
        return v


class ItemsFile(Strict):
    """``teacher.yaml``, ``family.yaml``: the scale items of one form."""

    form: Id = Field(description="the form these items belong to")
    items: list[Item] = Field(min_length=1, description="the form's items")

    @field_validator("form")
    @classmethod
    def _known_form(cls, v: str, info: ValidationInfo) -> str:
        _ctx(info).form = _declared_form(v, _ctx(info))
        return v


# --- background.yaml ------------------------------------------------------------------------

class Option(Strict):
    """A choice option: its code and its label in every language (``{code: 1, en: .., es: ..}``)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Text]
    code: int = Field(description="the code stored in data")

    @model_validator(mode="after")
    def _labels(self, info: ValidationInfo) -> "Option":
        langs, labels = _ctx(info).languages, self.__pydantic_extra__
        fail_at([((k,), f"unknown language '{k}'; expected code and one of {', '.join(langs)}",
                  k) for k in labels if langs and k not in langs]
                + [((), f"no {language_name(lang)} label; expected a label in every language",
                    lang) for lang in langs if lang not in labels])
        return self


class BackgroundItem(Strict):
    """A background item: asked on a form, not part of any scale."""

    id: Id = Field(description="a stable item id, e.g. t_bg_role")
    form: Id = Field(description="the form the item is asked on")
    type: Literal[BACKGROUND_TYPES]  # type: ignore[valid-type]
    text: LangText = Field(description="the question text in every language")
    options: Optional[list[Option]] = Field(None, validate_default=True)
    min: Optional[int] = None
    max: Optional[int] = None
    missing: Optional[MissingCodes] = None

    @field_validator("form")
    @classmethod
    def _known_form(cls, v: str, info: ValidationInfo) -> str:
        _declared_form(v, _ctx(info))
        if "id" in info.data:
            _prefixed(info.data["id"], v, _ctx(info), "background item")
        return v

    @field_validator("options")
    @classmethod
    def _options_of_type(cls, v: Optional[list[Option]], info: ValidationInfo) -> Any:
        typ = info.data.get("type")
        if typ == "choice" and v is None:
            raise ValueError("choice item without options; expected a list of options (code, "
                             f"{', '.join(_ctx(info).languages)})")
        if typ == "integer" and v is not None:
            raise ValueError("options on an integer item; expected min and max instead")
        codes = [o.code for o in v or []]
        fail_at(((j, "code"), f"duplicate code {c}; expected each code once", c)
                for j, c in enumerate(codes) if c in codes[:j])
        return v


class BackgroundFile(Strict):
    """``background.yaml``: the background items of every form."""

    items: list[BackgroundItem] = Field(description="the background items")
