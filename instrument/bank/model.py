"""The loaded item bank: `Scale` and `Bank` (frozen), with model syntax and reverse coding."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from instrument.results import Table


@dataclass(frozen=True)
class Scale:
    """A response scale, declared once in ``scales.yaml`` and referred to by id.

    Attributes
    ----------
    id : str
        Scale id (e.g. ``"agree4"``).
    codes : tuple of int
        Consecutive response codes starting at 1.
    labels_en, labels_es : tuple of str
        One label per code, in English and Spanish.
    missing_codes : tuple of int
        Codes that mean missing (e.g. -98 "Don't know", -99 "Prefer not to say").
    missing_labels : tuple of str
        English labels of ``missing_codes``.
    kind : str
        ``"agreement"``, ``"frequency"``, ...
    missing_labels_es : tuple of str
        Spanish labels of ``missing_codes``.
    labels_by_lang, missing_labels_by_lang : mapping
        Labels for every declared language (the bank admits more than en and es).
    """

    id: str
    codes: tuple[int, ...]
    labels_en: tuple[str, ...]
    labels_es: tuple[str, ...]
    missing_codes: tuple[int, ...]
    missing_labels: tuple[str, ...]
    kind: str
    missing_labels_es: tuple[str, ...] = ()
    labels_by_lang: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)
    missing_labels_by_lang: Mapping[str, tuple[str, ...]] = field(default_factory=dict,
                                                                   compare=False)

    @property
    def min(self) -> int:
        return self.codes[0]

    @property
    def max(self) -> int:
        return self.codes[-1]

    @property
    def n_categories(self) -> int:
        return len(self.codes)

    def labels(self, lang: str = "en") -> tuple[str, ...]:
        """Labels of the codes in language ``lang``."""
        if lang not in self.labels_by_lang:
            raise ValueError(f"lang= must be one of {', '.join(map(repr, self.labels_by_lang))}; "
                             f"got {lang!r}.")
        return self.labels_by_lang[lang]

    def missing_labels_in(self, lang: str = "en") -> tuple[str, ...]:
        """Labels of the missing codes in language ``lang``."""
        self.labels(lang)
        return self.missing_labels_by_lang.get(lang, ())

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "codes": list(self.codes),
                "labels": {k: list(v) for k, v in self.labels_by_lang.items()},
                "missing_codes": list(self.missing_codes),
                "missing_labels": {k: list(v) for k, v in self.missing_labels_by_lang.items()}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "Scale":
        labels = {k: tuple(v) for k, v in d["labels"].items()}
        mlabels = {k: tuple(v) for k, v in d.get("missing_labels", {}).items()}
        return cls(id=d["id"], codes=tuple(d["codes"]), labels_en=labels.get("en", ()),
                   labels_es=labels.get("es", ()), missing_codes=tuple(d["missing_codes"]),
                   missing_labels=mlabels.get("en", ()), kind=d["kind"],
                   missing_labels_es=mlabels.get("es", ()), labels_by_lang=labels,
                   missing_labels_by_lang=mlabels)


def _choice(name: str, value, allowed: Sequence) -> None:
    if value not in allowed:
        raise ValueError(f"{name}= must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def overall_record(label: Mapping[str, str], constructs: Sequence[str],
                   forms: Sequence[str]) -> dict:
    """`Bank.overall` from its parts: the label per language, the constructs it averages and
    the forms it is scored on (tuples, so that two banks compare equal after a JSON trip)."""
    return {"label": dict(label), "constructs": tuple(constructs), "forms": tuple(forms)}


@dataclass(frozen=True, eq=False)
class Bank:
    """The item bank: constructs, scales, scale items, background items and forms.

    Built by `instrument.bank.load_bank`, which checks the YAML against the schema first.

    Attributes
    ----------
    constructs : DataFrame
        One row per construct: ``construct``, ``label_en``, ``label_es``, ``description``
        (plus ``label_<lang>`` for further languages).
    scales : dict
        Scale id -> `Scale`.
    items : DataFrame
        One row per scale item, in bank order: ``item_id``, ``construct``, ``form``, ``scale``,
        ``reverse`` (bool), ``text_en``, ``text_es``, ``finding``, ``translation_status`` and
        ``translation_notes`` (of Spanish, or the first translated language), ``file``, ``line``.
    background : DataFrame
        Background items (in no scale): ``item_id``, ``form``, ``type``, ``scale`` (None),
        ``text_en``, ``text_es``, ``codes``, ``labels_en``, ``labels_es``, ``min``, ``max``,
        ``missing_codes``.
    forms : tuple of str
        Form names, e.g. ``("teacher", "family")``.
    findings : DataFrame
        ``construct``, ``finding``, ``text``: the Stage 2 findings per construct.
    form_info : DataFrame
        ``form``, ``id_prefix``, ``label_<lang>``, ``instructions_<lang>``.
    revisions : DataFrame
        ``item_id``, ``version``, ``date``, ``change``, ``reason``.
    cognitive_interviews : DataFrame
        ``item_id``, ``round``, ``date``, ``language``, ``participants``, ``note``, ``action``.
    overall : dict or None
        The bank's overall score (``overall:`` in the manifest, `instrument.bank.schema.Overall`):
        ``label`` {language: text}, ``constructs`` and ``forms`` (tuples); None when the bank
        defines none, and then no overall score is computed (`overall_constructs`).
    languages : tuple of str
        Language codes; the first is the source language.
    missing_codes : dict
        Every declared missing-data code -> {language: label}.
    name, version, path : str
        The bank's name, content version and folder.
    """

    constructs: pd.DataFrame
    scales: Mapping[str, Scale]
    items: pd.DataFrame
    background: pd.DataFrame
    forms: tuple[str, ...]
    findings: pd.DataFrame
    form_info: pd.DataFrame
    revisions: pd.DataFrame
    cognitive_interviews: pd.DataFrame
    overall: Mapping[str, Any] | None = None
    languages: tuple[str, ...] = ("en", "es")
    missing_codes: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    name: str = ""
    version: str = ""
    path: str = ""

    _FRAMES = ("constructs", "items", "background", "findings", "form_info", "revisions",
               "cognitive_interviews")

    # ---------------------------------------------------------------- JSON
    def to_dict(self) -> dict:
        """JSON-serialisable form (see `instrument.results.to_jsonable`); `from_dict` inverts it."""
        from instrument.results import to_jsonable

        d = {k: to_jsonable(getattr(self, k)) for k in self._FRAMES}
        d["scales"] = {k: v.to_dict() for k, v in self.scales.items()}
        d["missing_codes"] = [{"code": int(c), "label": dict(lab)}
                              for c, lab in self.missing_codes.items()]
        d["overall"] = None if self.overall is None else {
            "label": dict(self.overall["label"]), "constructs": list(self.overall["constructs"]),
            "forms": list(self.overall["forms"])}
        d.update(forms=list(self.forms), languages=list(self.languages), name=self.name,
                 version=self.version, path=self.path)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "Bank":
        """Rebuild a `Bank` from `to_dict` output (after a JSON round trip)."""
        from instrument.results import from_jsonable

        frames = {k: from_jsonable(d[k]) for k in cls._FRAMES}
        items = frames["items"]
        items["reverse"] = items["reverse"].astype(bool)
        bg = frames["background"]
        for col in bg.columns:
            if col in ("codes", "missing_codes") or col.startswith("labels_"):
                bg[col] = bg[col].map(tuple)
        bg["scale"] = None
        for col in ("min", "max"):
            bg[col] = bg[col].astype("Int64")
        return cls(**frames, scales={k: Scale.from_dict(v) for k, v in d["scales"].items()},
                   forms=tuple(d["forms"]), languages=tuple(d["languages"]),
                   overall=(None if d.get("overall") is None else
                            overall_record(**d["overall"])),
                   missing_codes={int(m["code"]): dict(m["label"]) for m in d["missing_codes"]},
                   name=d.get("name", ""), version=d.get("version", ""), path=d.get("path", ""))

    # ---------------------------------------------------------------- look-ups
    def _check_form(self, form: str | None, *, allow_none: bool = False) -> None:
        if form is None and allow_none:
            return
        _choice("form", form, self.forms)

    def _check_constructs(self, constructs: Sequence[str] | str | None) -> list[str]:
        known = list(self.constructs["construct"])
        if constructs is None:
            return known
        if isinstance(constructs, str):
            constructs = [constructs]
        for c in constructs:
            _choice("constructs", c, known)
        return list(constructs)

    def score_names(self) -> list[str]:
        """The school scores a one-score analysis (linker, policy, power) may use: every
        construct, then ``"overall"`` when the bank declares an overall score."""
        return list(self.constructs["construct"]) + (["overall"] if self.overall else [])

    def overall_constructs(self, form: str) -> list[str]:
        """The constructs whose keyed scores a ``form``'s overall score averages; empty when the
        bank defines no overall score or not for this form."""
        if self.overall is None or form not in self.overall["forms"]:
            return []
        return list(self.overall["constructs"])

    def items_for(self, form: str, construct: str | None = None) -> list[str]:
        """Item ids of ``form`` (optionally of one ``construct``), in bank order."""
        self._check_form(form)
        rows = self.items[self.items["form"] == form]
        if construct is not None:
            self._check_constructs([construct])
            rows = rows[rows["construct"] == construct]
        return list(rows["item_id"])

    def _item_row(self, item_id: str) -> pd.Series:
        hit = self.items.index[self.items["item_id"] == item_id]
        if len(hit) == 0:
            raise KeyError(f"item_id {item_id!r} is not a scale item of this bank "
                           f"(e.g. {', '.join(self.items['item_id'].head(3))}).")
        return self.items.loc[hit[0]]

    def scale_of(self, item_id: str) -> Scale:
        """The `Scale` of a scale item."""
        return self.scales[self._item_row(item_id)["scale"]]

    def n_categories(self, item_id: str) -> int:
        """Number of response categories of a scale item (missing codes not counted)."""
        return self.scale_of(item_id).n_categories

    def _missing_label(self, code: int, lang: str) -> str:
        return self.missing_codes.get(code, {}).get(lang, "")

    # ---------------------------------------------------------------- syntax
    def model_syntax(self, form: str = "teacher", constructs: Sequence[str] | None = None) -> str:
        """lavaan model syntax for ``form``: one ``construct =~ item + item ...`` line each.

        Parameters
        ----------
        form : str
            One of `forms`.
        constructs : list of str, optional
            Constructs to include, in the given order (all, in bank order, by default).

        Returns
        -------
        str
            Lines ``mindsets =~ t_mind_1 + t_mind_2 + ...`` joined by newlines; items in bank
            order. Constructs without items on ``form`` are left out.

        Notes
        -----
        Only measurement lines are emitted; lavaan's ``cfa()`` defaults (marker loadings or
        ``std.lv``, correlated factors, residual variances) are added by the model code, so bank
        models and user-written models take the same path.
        """
        self._check_form(form)
        lines = []
        for c in self._check_constructs(constructs):
            ids = self.items_for(form, c)
            if ids:
                lines.append(f"{c} =~ " + " + ".join(ids))
        return "\n".join(lines)

    # ---------------------------------------------------------------- recoding
    def recode_reverse(self, df: pd.DataFrame, form: str | None = None) -> pd.DataFrame:
        """Copy of ``df`` with reverse-keyed item columns recoded as ``min + max - x``.

        Parameters
        ----------
        df : DataFrame
            Responses, one column per item id; columns that are not reverse-keyed items (or
            not present) are left alone.
        form : str, optional
            Only recode reverse-keyed items of this form (all forms by default).

        Returns
        -------
        DataFrame
            A copy; valid codes ``x`` of the item's scale become ``min + max - x`` (on 1..4,
            1 <-> 4 and 2 <-> 3); NaN and the scale's missing codes are left unchanged.

        Raises
        ------
        ValueError
            When a reverse-keyed column holds a value that is neither a code of its scale nor
            one of its missing codes (naming the column, the row and the allowed values).
        """
        self._check_form(form, allow_none=True)
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df= must be a pandas DataFrame; got {type(df).__name__}.")
        rev = self.items[self.items["reverse"]]
        if form is not None:
            rev = rev[rev["form"] == form]
        out = df.copy()
        for item_id, scale_id in zip(rev["item_id"], rev["scale"]):
            if item_id not in out.columns:
                continue
            sc = self.scales[scale_id]
            s = out[item_id]
            num = pd.to_numeric(s, errors="coerce")
            valid = num.isin(sc.codes)
            bad = s.notna() & ~valid & ~num.isin(sc.missing_codes)
            if bad.any():
                row = bad.idxmax()
                value = s[row].item() if hasattr(s[row], "item") else s[row]
                row = row.item() if hasattr(row, "item") else row
                raise ValueError(
                    f"Column '{item_id}', row {row!r}: value {value!r} is not a code of scale "
                    f"'{sc.id}' ({sc.min}..{sc.max}) or one of its missing codes "
                    f"({', '.join(map(str, sc.missing_codes)) or 'none'}); cannot reverse-code it.")
            flipped = (sc.min + sc.max) - num
            if pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any():
                flipped = flipped.astype(s.dtype)
            out[item_id] = s.where(~valid, flipped)
        return out

    # ---------------------------------------------------------------- tables
    def blueprint(self, form: str | None = None) -> pd.DataFrame:
        """Coverage of findings: one row per construct and finding, item counts per form.

        Returns
        -------
        DataFrame
            ``construct``, ``finding``, one count column per form (or only ``form``), and
            ``total``; findings with no item show 0, so gaps are visible.
        """
        self._check_form(form, allow_none=True)
        forms = [form] if form else list(self.forms)
        rows = []
        for c, f in zip(self.findings["construct"], self.findings["finding"]):
            sel = self.items[(self.items["construct"] == c) & (self.items["finding"] == f)]
            counts = {fm: int((sel["form"] == fm).sum()) for fm in forms}
            rows.append({"construct": c, "finding": f, **counts, "total": sum(counts.values())})
        return pd.DataFrame(rows, columns=["construct", "finding", *forms, "total"])

    def summary(self) -> Table:
        """Items per construct and form, with reverse-keyed and translation counts."""
        rows = []
        for c in self.constructs["construct"]:
            row = {"construct": c}
            for fm in self.forms:
                sel = self.items[(self.items["construct"] == c) & (self.items["form"] == fm)]
                row[fm] = len(sel)
                row[f"{fm} reversed"] = int(sel["reverse"].sum())
            rows.append(row)
        frame = pd.DataFrame(rows)
        status = self.items["translation_status"].value_counts()
        notes = [f"{len(self.items)} scale items, {len(self.background)} background items, "
                 f"{len(self.scales)} scales; languages {', '.join(self.languages)}."]
        if len(self.languages) > 1:
            notes.append("Translation status: " + ", ".join(
                f"{k} {int(status.get(k, 0))}" for k in ("back-translated", "reviewed", "draft"))
                + ".")
        return Table(f"Item bank: {self.name}", frame, notes=notes)

    def show(self, form: str | None = None, lang: str = "en", construct: str | None = None,
             *, width: int = 100) -> str:
        """The form(s) as readable text, grouped by construct, in language ``lang``.

        Each construct section gives its label, its items (``(R)`` marks reverse-keyed items)
        and the response options of the scales it uses, all in ``lang``.
        """
        _choice("lang", lang, self.languages)
        self._check_form(form, allow_none=True)
        constructs = self._check_constructs(None if construct is None else [construct])
        es = lang == "es"
        t = {"items": "ítems" if es else "items", "options": "Opciones" if es else "Options",
             "rev": "(R) = ítem inverso" if es else "(R) = reverse-keyed item"}
        out: list[str] = []
        info = self.form_info.set_index("form")
        for fm in [form] if form else list(self.forms):
            title = f"{info.loc[fm, f'label_{lang}']} [{fm}, {lang}]"
            out += [title, "=" * len(title)]
            instr = info.loc[fm, f"instructions_{lang}"]
            if isinstance(instr, str) and instr:
                out += textwrap.wrap(instr, width) + [""]
            for c in constructs:
                sel = self.items[(self.items["form"] == fm) & (self.items["construct"] == c)]
                if sel.empty:
                    continue
                crow = self.constructs.set_index("construct").loc[c]
                out.append(f"{crow[f'label_{lang}']} ({c}, {len(sel)} {t['items']})")
                out.append("-" * min(width, len(out[-1])))
                mixed = sel["scale"].nunique() > 1
                for iid, txt, rev, sid in zip(sel["item_id"], sel[f"text_{lang}"], sel["reverse"],
                                              sel["scale"]):
                    head = (f"  {iid:<10} " + ("(R) " if rev else "")
                            + (f"[{sid}] " if mixed else ""))
                    out += textwrap.wrap(txt, width, initial_indent=head,
                                         subsequent_indent=" " * 13)
                for sid in dict.fromkeys(sel["scale"]):
                    sc = self.scales[sid]
                    opts = [f"{k} {lab}" for k, lab in zip(sc.codes, sc.labels(lang))]
                    opts += [f"{k} {lab}" for k, lab in zip(sc.missing_codes,
                                                            sc.missing_labels_in(lang))]
                    out += textwrap.wrap(" | ".join(opts), width,
                                         initial_indent=f"  {t['options']} ({sid}): ",
                                         subsequent_indent=" " * 6)
                out.append("")
            bg = self.background[self.background["form"] == fm]
            if construct is None and len(bg):
                head = "Preguntas de contexto" if es else "Background questions"
                out += [f"{head} ({len(bg)})", "-" * (len(head) + 4)]
                for _, b in bg.iterrows():
                    out += textwrap.wrap(b[f"text_{lang}"], width,
                                         initial_indent=f"  {b['item_id']:<10} ",
                                         subsequent_indent=" " * 13)
                    if b["type"] == "choice":
                        opts = [f"{k} {lab}" for k, lab in zip(b["codes"], b[f"labels_{lang}"])]
                    else:
                        opts = [f"{b['min']}-{b['max']}"]
                    opts += [f"{k} {self._missing_label(k, lang)}" for k in b["missing_codes"]]
                    out += textwrap.wrap(" | ".join(opts), width, initial_indent=" " * 13,
                                         subsequent_indent=" " * 13)
                out.append("")
            if self.items[(self.items["form"] == fm) & self.items["reverse"]].shape[0]:
                out += [t["rev"], ""]
        return "\n".join(out).rstrip() + "\n"


def empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


__all__ = ["Scale", "Bank"]
