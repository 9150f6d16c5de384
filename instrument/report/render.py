"""Render the technical report, the policy brief and the school score cards from results alone.

`render` reads the ``results`` dict through `instrument.report.adapters` (one reader per section),
builds APA-style tables (`instrument.results.Table.as_html`) and matplotlib figures
(`instrument.report.figures`), fills a Jinja2 template (autoescape on) and writes HTML, then PDF
through headless Chromium (`instrument.report.pdf`). Every number printed comes from the results;
a section whose results are missing says "not available in this run".
"""
from __future__ import annotations

import contextlib
import functools
import html as _html
import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from instrument import rules as _rules
from instrument.report import figures as fig
from instrument.report.adapters import (NOT_AVAILABLE, FORBIDDEN_KEYS, READERS, Section,
                                        read_all, scrub, stage_messages)
from instrument.report.i18n import LANGUAGES, Translator
from instrument.report.pdf import html_to_pdf
from instrument.report.montecarlo import cited_sources as mc_sources, montecarlo_section, read_montecarlo
from instrument.results import Table, collect_warnings

KINDS = ("technical", "brief", "cards")
FORMATS = ("html", "pdf")
FILE_STEMS = {"technical": "technical_report", "brief": "policy_brief", "cards": "school_cards"}

#: Headings of the technical report: the five sources of validity evidence (AERA, APA & NCME, 2014)
#: and the district and state view of the policy stage.
TECHNICAL_SECTIONS = (
    "Evidence based on test content",
    "Evidence based on response processes",
    "Evidence based on internal structure",
    "Evidence based on relations to other variables",
    "Evidence based on consequences of testing",
    "District and state results",
)
BRIEF_SECTIONS = ("What the instrument measures", "How reliable school scores are",
                  "What the scores predict", "Districts and the state", "Using the scores well")

FIT_COLUMNS = ("chisq", "df", "pvalue", "chisq.scaled", "cfi", "cfi.robust", "tli", "tli.robust",
               "rmsea", "rmsea.ci.lower", "rmsea.ci.upper", "rmsea.robust", "srmr")


#: Works cited in the technical report's fixed text (rule sources are added from `rules`).
REFERENCES = (
    "American Educational Research Association, American Psychological Association, & National "
    "Council on Measurement in Education. (2014). Standards for educational and psychological "
    "testing. American Educational Research Association.",
    "Bliese, P. D. (2000). Within-group agreement, non-independence, and reliability: "
    "Implications for data aggregation and analysis. In K. J. Klein & S. W. J. Kozlowski (Eds.), "
    "Multilevel theory, research, and methods in organizations (pp. 349-381). Jossey-Bass.",
    "Horn, J. L. (1965). A rationale and test for the number of factors in factor analysis. "
    "Psychometrika, 30(2), 179-185. https://doi.org/10.1007/BF02289447",
    "Byrne, B. M., Shavelson, R. J., & Muthén, B. (1989). Testing for the equivalence of factor "
    "covariance and mean structures: The issue of partial measurement invariance. Psychological "
    "Bulletin, 105(3), 456-466. https://doi.org/10.1037/0033-2909.105.3.456",
    "Chen, F. F. (2007). Sensitivity of goodness of fit indexes to lack of measurement "
    "invariance. Structural Equation Modeling, 14(3), 464-504. "
    "https://doi.org/10.1080/10705510701301834",
    "International Test Commission. (2017). The ITC guidelines for translating and adapting "
    "tests (2nd ed.).",
    "Livingston, S. A., & Lewis, C. (1995). Estimating the consistency and accuracy of "
    "classifications based on test scores. Journal of Educational Measurement, 32(2), 179-197.",
    "Marsh, H. W., Hau, K.-T., & Wen, Z. (2004). In search of golden rules: Comment on "
    "hypothesis-testing approaches to setting cutoff values for fit indexes and dangers in "
    "overgeneralizing Hu and Bentler's (1999) findings. Structural Equation Modeling, 11(3), "
    "320-341. https://doi.org/10.1207/s15328007sem1103_2",
    "Rudner, L. M. (2001). Computing the expected proportions of misclassified examinees. "
    "Practical Assessment, Research & Evaluation, 7(14).",
)


class PrivacyError(RuntimeError):
    """A rendered report would contain a respondent identifier."""


class _Numberer:
    """APA numbering of tables and figures within one document."""

    def __init__(self, t: Translator | None = None) -> None:
        self.tables = 0
        self.figures = 0
        self._ = t or Translator("en")

    def table(self, t: Table) -> Markup:
        self.tables += 1
        t = Table(t.title, _tidy(t.frame), [" ".join(t.notes)] if t.notes else [], t.digits)
        body = t.as_html()
        cap = f"<caption>{_html.escape(t.title)}</caption>"
        new = (f"<caption><span class='tnum'>{self._('Table')} {self.tables}</span>"
               f"<span class='ttitle'>{_html.escape(t.title)}</span></caption>")
        return Markup(f"<div class='table-wrap'>{body.replace(cap, new, 1)}</div>")

    def figure(self, uri: str | None, title: str, note: str = "", alt: str = "") -> Markup:
        if not uri:
            return Markup("")
        self.figures += 1
        n = (f"<p class='note'><em>{self._('Note.')}</em> {_html.escape(note)}</p>"
             if note else "")
        return Markup(f"<figure><figcaption><span class='tnum'>{self._('Figure')} "
                      f"{self.figures}</span>"
                      f"<span class='ttitle'>{_html.escape(title)}</span></figcaption>"
                      f"<img src='{uri}' alt='{_html.escape(alt or title)}'>{n}</figure>")


COUNT_COLUMNS = frozenset({"df", "n", "k", "nobs", "n_clusters", "npar", "ntotal", "schools",
                           "reported", "suppressed", "n_items", "round", "category", "total",
                           "n_schools", "df.diff"})


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts (df, n, k, ...) shown without decimals when every value is a whole number."""
    f = frame.copy()
    for c in f.columns:
        col = f[c]
        if (str(c) in COUNT_COLUMNS or str(c).endswith(" items")) and col.dtype == object:
            num = pd.to_numeric(col, errors="coerce")
            if num.notna().sum() == col.notna().sum():      # numbers with gaps (None)
                col = num.astype(float)
        if (str(c) in COUNT_COLUMNS or str(c).endswith(" items")) and \
                pd.api.types.is_float_dtype(col):
            v = col.dropna()
            if len(v) and bool(np.all(np.equal(np.mod(v.to_numpy(float), 1), 0))):
                f[c] = pd.Series([None if x != x else int(x) for x in col], index=f.index,
                                 dtype=object)
    return f


def _whole(v: Any, key: str) -> Any:
    """A count (df, n, ...) as int when it is a whole number, else unchanged."""
    if key in COUNT_COLUMNS and isinstance(v, (int, float)) and v == v and float(v).is_integer():
        return int(v)
    return v


def _fmt(v: Any, digits: int = 2) -> str:
    """Number for running text; an en dash when missing."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "–" if v is None else str(v)
    if math.isnan(f):
        return "–"
    return f"{f:.{digits}f}"


def _label(form: str) -> str:
    return form.capitalize() if form else ""


OUTCOME_LABELS = {"chronic_absence": "chronic absenteeism", "attendance": "attendance",
                  "ela_proficiency": "ELA proficiency", "math_proficiency": "math proficiency"}


def _plain_outcome(label: str) -> str:
    """'chronic_absence (change)' -> 'Change in chronic absenteeism' (plain language)."""
    change = label.endswith(" (change)")
    base = label[: -len(" (change)")] if change else label
    name = OUTCOME_LABELS.get(base, base.replace("_", " "))
    text = f"change in {name}" if change else name
    return text[:1].upper() + text[1:]


def _plain_controls(controls: Iterable[str], t: Translator) -> str:
    """The linker's control variables in plain words: poverty, the outcome's prior value ("prior
    results"), any other control as "other school characteristics"; '' when there is none."""
    words: list[str] = []
    for c in controls:
        w = ("poverty" if c == "poverty" else "prior results" if c.startswith("prior value")
             or c.endswith("_prior") else "other school characteristics")
        if w not in words:
            words.append(w)
    words = [t(w) for w in words]
    return (", ".join(words[:-1]) + f" {t('and')} " + words[-1]) if len(words) > 1 else \
        "".join(words)


def _linked_outcomes(c: pd.DataFrame) -> str:
    """'chronic absenteeism, attendance and ELA proficiency': the outcomes the linker ran."""
    names = [_plain_outcome(str(o)).lower().replace("ela", "ELA")
             for o in dict.fromkeys(re.sub(r", [^,]+ form$", "", str(x)) for x in c["outcome"])]
    return (", ".join(names[:-1]) + " and " + names[-1]) if len(names) > 1 else "".join(names)


def _rule_sources(rs: Iterable[_rules.Rule]) -> list[str]:
    return list(dict.fromkeys(r.source for r in rs))


# --------------------------------------------------------------------------------------------
# Technical report
# --------------------------------------------------------------------------------------------
def _content(s: Section, num: _Numberer) -> dict:
    if not s.available:
        return {"na": s.reason}
    from instrument.bank.schema import LANGUAGE_NAMES

    bp = s["blueprint"].rename(columns={f: f"{f} items" for f in s["forms"]})
    findings = s.get("has_findings", True)
    out = {"blueprint": num.table(Table(
        "Blueprint: scale items by construct" + (" and finding" if findings else ""), bp,
        [f"{s['n_items']} items covering {s['n_constructs']} constructs"
         + (f" and {s['n_findings']} findings" if findings else "")
         + ". Counts from the item bank."], 0)), "findings": findings}
    if s["translation"] is not None:
        names = ", ".join(LANGUAGE_NAMES.get(x, x) for x in s.get("languages", ["en", "es"])[1:])
        out["translated"] = names
        out["translation"] = num.table(Table(
            f"Status of the {names} translation (ITC Guidelines for Translating and Adapting "
            "Tests, 2nd ed., 2017)", s["translation"], ["Number of items by status."], 0))
    if s["translation_notes"] is not None and len(s["translation_notes"]):
        out["translation_notes"] = num.table(Table("Translation reviewer notes",
                                                   s["translation_notes"], (), 0))
    return out


def _category_use_by_scale(cu: pd.DataFrame, bank: Section, lang: str = "en"
                           ) -> list[tuple[str, str, pd.DataFrame, dict[int, str] | None]]:
    """Category use split by form and by the items' response scale, each part with the
    scale's category labels (code -> label in ``lang``, English where the bank has no text in
    ``lang``) from the bank; one part per form with ``None`` labels when the bank gives no
    scales."""
    scales = bank.get("scales") if bank.available else None
    items = bank["items"] if bank.available else None
    of = ({str(i): str(s) for i, s in zip(items["item_id"], items["scale"])}
          if scales and items is not None and "scale" in items.columns else {})
    out = []
    for form, g in cu.groupby("form", sort=False) if "form" in cu.columns else [("", cu)]:
        sc = g["item_id"].astype(str).map(lambda i: of.get(i, ""))
        for scale in dict.fromkeys(sc):
            part = g[sc == scale]
            spec = scales.get(scale) if scales else None
            labels = None
            if spec:
                text = spec["labels"].get(lang) or next(iter(spec["labels"].values()), [])
                if len(text) == len(spec["codes"]):
                    labels = dict(zip(spec["codes"], text))
            out.append((str(form), scale, part, labels))
    return out


def _processes(bank: Section, ia: Section, num: _Numberer, lang: str = "en") -> dict:
    out: dict[str, Any] = {}
    cog = bank.get("cognitive") if bank.available else None
    if cog is not None and len(cog):
        out["cognitive"] = num.table(Table("Cognitive-interview notes", cog,
                                           ["Notes recorded in the item bank."], 0))
    elif not bank.available:
        out["cognitive_na"] = bank.reason
    else:
        out["cognitive_na"] = NOT_AVAILABLE + " (no cognitive-interview notes in the results)"
    if not ia.available:
        out["na"] = ia.reason
        return out
    figs = []
    cu = ia["category_use"]
    if cu is not None:
        for form, scale, g, labels in _category_use_by_scale(cu, bank, lang):
            what = ", ".join(x for x in (f"{form} form" if form else "",
                                         f"{scale} scale" if scale else "") if x)
            figs.append(num.figure(
                fig.category_use_bars(g, labels=labels,
                                      legend_title="response" if labels else "category"),
                "Category use" + (f", {what}" if what else ""),
                ("Share of answers in each response category, labelled as in the item bank's "
                 f"{scale} scale (codes {', '.join(str(c) for c in labels)}, lowest first)."
                 if labels else "Share of answers in each response category (1 = lowest)."),
                alt=f"Stacked bars of category use per item, {what or 'all items'}"))
    out["figures"] = figs
    st = ia["items"]
    if st is not None and len(st):
        if "group" in st.columns:   # the whole sample; per-language rows stay in results.json
            st = st[st["group"] == "(all)"]
        st = st.rename(columns={"n_categories": "cat.", "missing": "miss."})
        st = st[[c for c in ("form", "construct", "item_id", "cat.", "n", "miss.",
                             "mean", "sd", "floor", "ceiling", "citc", "alpha.drop", "flags")
                 if c in st.columns] or list(st.columns)]
        out["items"] = num.table(Table("Item statistics", st,
                                       ["cat.: the item's response categories in the bank; "
                                        "floor, ceiling: share in its lowest and highest "
                                        "category; citc: corrected item-total (item-rest) "
                                        "correlation and alpha.drop: alpha without the item, "
                                        "both within the item's construct; miss.: share of "
                                        "respondents who did not answer; flags: item-analysis "
                                        "rules not met (see Decision rules)."], 2))
    return out


def _efa(s: Section, num: _Numberer) -> dict:
    """Parallel-analysis table and scree figure, EFA pattern matrix, per form."""
    if not s.available:
        return {"efa_na": s.reason}
    parts = []
    for form, d in s["forms"].items():
        p: dict[str, Any] = {"form": form}
        pv = d["parallel"]
        if pv is not None:
            k_pa, k_th = d["pa_n_factors"], d["n_factors_theory"]
            quant = d["quant"]
            p["text"] = (f"{_label(form)} form (random half, n = {_fmt(d['n'], 0)}): parallel "
                         f"analysis retains {_fmt(k_pa, 0)} factor(s), for "
                         f"{_fmt(k_th, 0)} constructs in the bank." if k_pa is not None else "")
            show = pv.head(max(int(k_th or 0) + 3, 8))
            p["parallel"] = num.table(Table(
                f"Parallel analysis, {form} form", show,
                [f"Eigenvalues of the observed correlation matrix against those of "
                 f"{_fmt(d['n_iter'], 0)} random data sets of the same size"
                 + (f" (sim.quantile: {float(quant) * 100:g}th percentile)" if quant else "")
                 + "; factors are retained while the observed value is larger (Horn, 1965). "
                   f"First {len(show)} of {len(pv)} factors shown."], 3))
            p["scree"] = num.figure(fig.scree_plot(pv), f"Scree plot with parallel analysis, "
                                    f"{form} form", alt=f"Scree plot, {form} form")
        ld = d["loadings"]
        if ld is not None:
            comm = d["communalities"]
            t = ld[["item", *sorted((c for c in ld.columns if c != "item"),
                                    key=lambda c: (len(str(c)), str(c)))]].copy()
            if comm:
                t["h2"] = [float(comm[i]) if i in comm else math.nan for i in t["item"]]
            p["loadings"] = num.table(Table(
                f"Exploratory factor analysis pattern matrix, {form} form", t,
                [f"{d['method'] or 'EFA'} extraction, {d['rotation'] or 'no'} rotation, "
                 f"{_fmt(d['n_factors'], 0)} factors; h2: communality. Loadings of .30 or "
                 "more in absolute value are the ones usually interpreted."], 2))
        parts.append(p)
    return {"efa": parts}


#: The fit indices an invariance ladder's Δ-fit rules use, per estimator (chisq, cfi, rmsea),
#: as in `instrument.invariance` (lavaan's scaled / robust names).
LADDER_INDICES = {"ML": ("chisq", "cfi", "rmsea"),
                  "MLR": ("chisq.scaled", "cfi.robust", "rmsea.robust"),
                  "WLSMV": ("chisq.scaled", "cfi.scaled", "rmsea.scaled"),
                  "ULSMV": ("chisq.scaled", "cfi.scaled", "rmsea.scaled")}

RELIABILITY_COLUMNS = ("form", "language", "construct", "n_items", "n", "alpha",
                       "alpha.ci.lower", "alpha.ci.upper", "alpha.ordinal", "omega")
ICC_COLUMNS = ("form", "construct", "schools", "k", "icc1", "icc2")


MISSING_WORDS = {
    "pairwise": "pairwise: each polychoric correlation comes from the respondents who answered "
                "both items, so every respondent counts (as Mplus does for WLSMV; lavaan "
                "missing = \"pairwise\")",
    "fiml": "by full-information maximum likelihood: every respondent counts with the answers "
            "given (lavaan missing = \"ml\")",
    "listwise": "listwise: respondents with any missing answer were left out (lavaan's default)",
}


def _missing_text(secs: Mapping[str, Section]) -> str:
    """Methods text: how missing answers were handled in the EFA and CFA, with the N used."""
    parts, methods = [], {}
    efa = secs["efa"]
    if efa.available:
        ns = [f"{form} {d['n']} ({d.get('n_complete')} complete)"
              for form, d in efa["forms"].items() if d.get("missing") and d.get("n") is not None]
        methods.update({d["missing"]: 1 for d in efa["forms"].values() if d.get("missing")})
        if ns:
            parts.append("EFA on the random half, N = " + ", ".join(ns) + ".")
    cfa = secs["cfa"]
    if cfa.available:
        ns = []
        for form, d in cfa["fits"].items():
            md = d.get("missing_data")
            if md:
                methods[md["method"]] = 1
                ns.append(f"{form} {md['n_used']} of {md['n_rows']} ({md['n_complete']} "
                          "complete)")
        if ns:
            est = ", ".join(dict.fromkeys(str(d.get("estimator")) for d in cfa["fits"].values()))
            parts.append(f"CFA ({est}) on the other half, N used = " + ", ".join(ns) + ".")
    if not parts:
        return ""
    how = "; ".join(MISSING_WORDS.get(m, m) for m in methods)
    return (f"Missing answers were handled {how}. " + " ".join(parts)
            + " Complete: respondents who answered every item.")


def _structure(secs: Mapping[str, Section], num: _Numberer) -> dict:
    out: dict[str, Any] = _efa(secs["efa"], num)
    cfa = secs["cfa"]
    heur = _rules.FIT_HEURISTICS
    heur_note = ("Conventional heuristics, shown for orientation and not applied as verdicts: "
                 + "; ".join(f"{r.key} {r.op} {r.threshold:g}" for r in heur)
                 + f" ({'; '.join(_rule_sources(heur))}). {heur[0].note}.")
    out["missing_text"] = _missing_text(secs)
    if cfa.available:
        fits = cfa["fits"]
        keys = [k for k in FIT_COLUMNS if any(k in d["fit_measures"] for d in fits.values())]
        extra = [k for k in ("ntotal",) if any(k in d["fit_measures"] for d in fits.values())]
        dropped = any(d.get("dropped", math.nan) == d.get("dropped", math.nan)
                      for d in fits.values())
        frame = pd.DataFrame({"measure": ["estimator", *extra,
                                          *(["dropped (listwise)"] if dropped else []), *keys],
                              **{form: [d["estimator"] or "–",
                                        *[_whole(d["fit_measures"].get(k, float("nan")), "n")
                                          for k in extra],
                                        *([_whole(d.get("dropped", math.nan), "n")]
                                          if dropped else []),
                                        *[_whole(d["fit_measures"].get(k, float("nan")), k)
                                          for k in keys]]
                                 for form, d in fits.items()}})
        frame[list(fits)] = frame[list(fits)].astype(object)
        out["fit"] = num.table(Table("Fit of the confirmatory factor models", frame,
                                     ["Fit measures named as in lavaan's fitMeasures(); one "
                                      "column per model."
                                      + (" ntotal: respondents used" if extra else "")
                                      + ("; dropped (listwise): respondents with a missing "
                                         "answer, left out by listwise deletion" if dropped
                                         else "") + ("." if extra or dropped else "")
                                      + (" With the robust and categorical estimators (MLR, "
                                         "WLSMV, ULSMV) read chisq.scaled and the .robust "
                                         "indices; the unscaled rows are shown for comparison."
                                         if any(d["estimator"] in ("MLR", "WLSMV", "ULSMV")
                                                for d in fits.values()) else ""),
                                      heur_note], 3))
        loads, heat = [], []
        for form, d in cfa["fits"].items():
            ld = d["loadings"]
            if ld is None or not len(ld):
                continue
            groups = list(dict.fromkeys(ld["group"])) if "group" in ld.columns else []
            keep = [c for c in ("group" if len(groups) > 1 else "", "lhs", "rhs", "est", "se",
                                "std.all") if c in ld.columns]
            t = ld[keep].rename(columns={"lhs": "factor", "rhs": "item"})
            loads.append(num.table(Table(f"Factor loadings, {form} form", t,
                                         ["est: unstandardised; std.all: completely "
                                          "standardised (lavaan)."], 3)))
            first = ld[ld["group"] == groups[0]] if len(groups) > 1 else ld
            heat.append(num.figure(fig.loading_heatmap(first), f"Standardised loadings, {form} form"
                                   + (f" (group {groups[0]})" if len(groups) > 1 else ""),
                                   alt=f"Heatmap of standardised loadings, {form} form"))
        out["loadings"], out["heatmaps"] = loads, heat
        if not loads:
            out["loadings_na"] = NOT_AVAILABLE + " (no parameter estimates in the results)"
    else:
        out["fit_na"] = cfa.reason
    inv = secs["invariance"]
    if inv.available:
        tabs, deltas = [], {}
        for form, d in inv["ladders"].items():
            t = d["table"]
            deltas[form] = t
            name = form if " by " in form else f"{form} form"
            tabs.extend(_invariance_tables(num, name, d))
        cut = {}
        for key, name in (("cfi.delta", "DELTA_CFI_CHEN"), ("rmsea.delta", "DELTA_RMSEA_CHEN")):
            applied = _applied_thresholds(deltas.values(), key)
            r = getattr(_rules, name, None)
            if len(applied) == 1:
                cut[key] = (applied.pop(), "rule applied")
            elif isinstance(r, _rules.Rule):
                cut[key] = (float(r.threshold), _short_cite(r.source))
        out["invariance"] = tabs
        out["invariance_fig"] = num.figure(
            fig.invariance_delta(deltas, cut), "Change in fit across the invariance steps",
            ("Dashed lines: " + "; ".join(f"{k} {v[0]:+g} ({v[1]})" for k, v in cut.items())
             + (", the limits quoted in every verdict of the ladders (rule set "
                + ", ".join(dict.fromkeys(d["rule_set"] or "not recorded"
                                          for d in inv["ladders"].values())) + ")."
                if all(v[1] == "rule applied" for v in cut.values()) else
                ", heuristic limits shown for orientation; the verdict column of the ladder "
                "gives the rule actually applied.") if cut else
             "The verdict column of the ladder gives the rule applied at each step."),
            alt="Bar chart of delta CFI and delta RMSEA per invariance step")
    else:
        out["invariance_na"] = inv.reason
    rel = secs["reliability"]
    if rel.available:
        rt = rel["table"]
        rt = rt[[c for c in RELIABILITY_COLUMNS if c in rt.columns]]
        out["reliability"] = num.table(Table(
            "Reliability of the construct scores", rt,
            ["alpha: Cronbach's alpha with its confidence interval (alpha.ci.lower, "
             "alpha.ci.upper); omega: McDonald's omega from the confirmatory factor model, "
             "given for the whole sample of a form (language all)."
             + (" alpha.ordinal: ordinal alpha, from the polychoric correlations."
                if "alpha.ordinal" in rt.columns else "")
             + (" language: all respondents of the form, or those who answered in that language."
                if "language" in rt.columns else "")], 3))
    else:
        out["reliability_na"] = rel.reason
    ml = secs["multilevel"]
    if ml.available:
        it = ml["icc"]
        it = it[[c for c in ICC_COLUMNS if c in it.columns]]
        out["icc"] = num.table(Table(
            "Agreement within schools: ICC(1) and ICC(2)", it,
            ["ICC(1): share of variance between schools; ICC(2): reliability of the school "
             "mean at the average number of respondents k (Bliese, 2000)."], 3))
        targets: list[tuple[float, str]] = []
        if ml["min_k"] is not None:
            mk = ml["min_k"]
            src = mk["source"].iloc[0] if "source" in mk.columns and len(mk) else ""
            idx = [c for c in ("form", "construct") if c in mk.columns]
            wide = mk.pivot_table(index=idx, columns="target", values="k", aggfunc="first",
                                  sort=False)
            wide.columns = [f"k for {float(t):.2f}" for t in wide.columns]
            wide = wide.reset_index()
            out["min_k"] = num.table(Table(
                "Minimum respondents per school for a reliable school mean", _tidy_k(wide),
                ["k for r: smallest number of respondents whose school mean reaches reliability "
                 "r" + (f" (targets: {src})." if src else ".")
                 + (" Blank: ICC(1) = 0, so no number of respondents reaches r."
                    if mk["k"].isna().any() else "")], 0))
            targets = [(float(t), f"{float(t):.2f}" + (f" ({src})" if src else ""))
                       for t in sorted(set(mk["target"].astype(float)))]
        out["k_fig"] = num.figure(
            fig.reliability_vs_k(ml["icc"], targets, ml["curve"]),
            "Reliability of the school mean by number of respondents",
            ("Spearman-Brown from ICC(1): k ICC1 / (1 + (k - 1) ICC1). " if ml["curve"] is None
             else "") + "Solid lines: first form in the results; dashed: the other.",
            alt="Line chart of school-mean reliability against respondents per school")
    else:
        out["icc_na"] = ml.reason
    return out



#: Column headings of the invariance tables (lavaan's names in the results).
_LADDER_HEADINGS = {"step": "step", "chisq": "χ²", "chisq.scaled": "χ² (scaled)", "df": "df",
                    "cfi": "CFI", "cfi.scaled": "CFI (scaled)", "cfi.robust": "CFI (robust)",
                    "rmsea": "RMSEA", "rmsea.scaled": "RMSEA (scaled)",
                    "rmsea.robust": "RMSEA (robust)", "srmr": "SRMR",
                    "chisq.diff": "Δχ²", "df.diff": "Δdf", "pvalue.diff": "p",
                    "cfi.delta": "ΔCFI", "rmsea.delta": "ΔRMSEA", "dmacs": "largest dMACS",
                    "result": "result"}


def _step_result(row: Mapping[str, Any], released: set[str]) -> str:
    """One or two words for the ladder table; the verdict itself is printed under it."""
    step = str(row["step"])
    h = row.get("holds")
    if step == "configural" or h is None or h != h:
        return "baseline" if step == "configural" else ""
    if not bool(h):
        return "does not hold; released" if step in released else "does not hold"
    if row.get("supported") is False:
        return "holds, after a failed step"
    return "holds"


def _strip_step_note(text: str) -> str:
    """A verdict without the explanation of what its step constrains (printed once instead)."""
    from instrument.invariance.ordinal import ORDINAL_STEP_NOTES

    for note in ORDINAL_STEP_NOTES.values():
        text = text.replace(" " + note, "")
    return text


def _invariance_tables(num: Any, name: str, d: Mapping[str, Any]) -> list[Markup]:
    """The ladder (numbers only, a short result per step) with each step's verdict under it;
    the fully constrained and partial models side by side; the releases; and, for simulated
    data, the released parameters against the planted ones."""
    t = d["table"].reset_index(drop=True)
    idx = LADDER_INDICES.get(d["estimator"], LADDER_INDICES["ML"])
    partial_of = {str(s)[: -len(" (partial)")] for s in t["step"] if str(s).endswith(" (partial)")}
    view = pd.DataFrame({"step": t["step"]})
    for c in (idx[0], "df", idx[1], idx[2], "srmr", "chisq.diff", "df.diff", "pvalue.diff",
              "cfi.delta", "rmsea.delta"):
        if c in t.columns:
            view[c] = t[c]
    if "df.diff" in view.columns:
        view["df.diff"] = pd.Series([_whole(v, "df.diff") for v in view["df.diff"]],
                                    dtype=object)
    if "dmacs.max" in t.columns:
        view["dmacs"] = [("" if v is None or v != v else f"{float(v):.2f}"
                          + (f" ({it})" if isinstance(it, str) and it else ""))
                         for v, it in zip(t["dmacs.max"], t.get("dmacs.item", [""] * len(t)))]
    if "holds" in t.columns:
        view["result"] = [_step_result(r, partial_of) for r in t.to_dict("records")]
    view = view.rename(columns=_LADDER_HEADINGS)
    notes = []
    if d["groups"]:
        labels = d.get("group_names") or {}
        notes.append("Groups: " + ", ".join(f"{labels[g]} ({g})" if g in labels else str(g)
                                            for g in d["groups"]) + ".")
    notes.append(f"Estimator {d['estimator'] or 'not recorded'}; rule set "
                 f"{d['rule_set'] or 'not recorded'}. Each step is compared with the accepted "
                 "step before it (Δχ² is the scaled difference test for WLSMV and MLR); "
                 "largest dMACS is the largest item effect of the step's restrictions. A step "
                 "that holds after a failed one is not evidence of comparability. The verdict "
                 "of each step, with the rule applied, follows the table.")
    out = [num.table(Table(f"Measurement invariance ladder, {name}", view, notes, 3))]
    items, step_notes = [], {}
    from instrument.invariance.ordinal import ORDINAL_STEP_NOTES
    for r in t.to_dict("records")[1:]:
        v = str(r.get("verdict") or "")
        base = str(r["step"]).replace(" (partial)", "")
        if base in ORDINAL_STEP_NOTES and ORDINAL_STEP_NOTES[base] in v:
            step_notes[base] = ORDINAL_STEP_NOTES[base]
        text = _strip_step_note(v)
        srch = r.get("search")
        if isinstance(srch, str) and srch:
            text += f" Search: {srch}."
        items.append(f"<li><strong>{_html.escape(str(r['step']))}</strong>: "
                     f"{_html.escape(text)}</li>")
    if items:
        out.append(Markup("<div class='verdicts'><p class='note'><em>Verdicts.</em></p>"
                          f"<ul class='verdicts'>{''.join(items)}</ul>"
                          + ("<p class='note'>" + " ".join(
                              _html.escape(f"{k}: {v}") for k, v in step_notes.items())
                             + "</p>" if step_notes else "") + "</div>"))
    rel = d.get("releases")
    if partial_of:
        rows = []
        recs = {str(r["step"]): r for r in t.to_dict("records")}
        for st in [s for s in dict.fromkeys(str(x).replace(" (partial)", "") for x in t["step"])
                   if s in partial_of]:
            full, part = recs[st], recs[f"{st} (partial)"]
            freed = ([str(p) for p in rel.loc[rel["step"] == st, "parameter"]]
                     if rel is not None and "step" in rel.columns else [])

            def cells(r: Mapping[str, Any], tag: str) -> dict:
                return {f"{tag} Δχ²": r.get("chisq.diff"), f"{tag} Δdf": _whole(r.get("df.diff"), "df.diff"),
                        f"{tag} p": r.get("pvalue.diff"), f"{tag} dMACS": r.get("dmacs.max"),
                        f"{tag} result": _step_result(r, set()) if tag == "partial"
                        else ("does not hold" if not r.get("holds") else "holds")}
            rows.append({"step": st, **cells(full, "full"), **cells(part, "partial"),
                         "released": ", ".join(freed)})
        search = [f"{st}: {recs[f'{st} (partial)'].get('search')}" for st in partial_of
                  if isinstance(recs[f"{st} (partial)"].get("search"), str)]
        out.append(num.table(Table(
            f"Fully constrained and partial models side by side, {name}", pd.DataFrame(rows),
            ["Each model is compared with the same accepted previous step. Search outcome: "
             + ("; ".join(search) if search else "not recorded") + "."], 3)))
    if rel is not None:
        stopped = [str(x) for x in t.get("search", pd.Series(dtype=object)).dropna()
                   if str(x).startswith("does not hold")]
        out.append(num.table(Table(
            f"Constraints released for partial invariance, {name}", rel,
            ["Released one item at a time, largest score test (X2) first among the items "
             "significant after Bonferroni adjustment with dMACS of at least .20 "
             "(Byrne, Shavelson & Muthén, 1989). "
             + ("The search stopped before every step met its rule: " + "; ".join(stopped)
                + "." if stopped else "Every searched step met its rule after the releases.")],
            3)))
    truth = d.get("truth")
    if truth and truth.get("parameters") is not None:
        tp = truth["parameters"]
        c = truth.get("counts") or {}

        def said(k: str) -> str:
            x = c.get(k) or {}
            return (f"{x.get('hit', 0)} hit(s), {x.get('miss', 0)} miss(es), "
                    f"{x.get('false alarm', 0)} false alarm(s)")
        if len(tp):
            out.append(num.table(Table(
                f"Released against planted DIF (simulated truth), {name}", tp,
                [f"Items: {said('items')}; parameters: {said('parameters')}. A planted threshold "
                 "shift counts as an intercept difference of the latent response (Wu & "
                 "Estabrook, 2016); hit = planted and released, miss = planted and not "
                 "released, false alarm = released without planted DIF."], 3)))
        else:
            out.append(Markup("<p class='note'><em>Simulated truth.</em> No DIF was planted "
                              f"for {_html.escape(name)} and no parameter was released "
                              "(0 false alarms).</p>"))
    return out


def _applied_thresholds(tables: Iterable[pd.DataFrame], key: str) -> set[float]:
    """Thresholds for ``key`` quoted in the ladders' verdicts ('cfi.delta = -0.0023 meets >=
    -0.005'); one value when every step of every ladder applied the same limit."""
    pat = re.compile(re.escape(key) + r" = [-+\d.]+ (?:meets|fails|does not meet) "
                     r"(?:>=|<=|>|<) ([-+]?\d*\.?\d+)")
    out: set[float] = set()
    for t in tables:
        if "verdict" in t.columns:
            for v in t["verdict"].dropna().astype(str):
                out |= {float(m) for m in pat.findall(v)}
    return out


def _tidy_k(f: pd.DataFrame) -> pd.DataFrame:
    f = f.copy()
    for c in f.columns:
        if str(c).startswith("k for "):
            f[c] = [None if x != x else int(x) for x in f[c].astype(float)]
    return f


def _short_cite(source: str) -> str:
    """'Chen, F. F. (2007). Sensitivity ...' -> 'Chen (2007)' (`rules.short_cite`)."""
    return _rules.short_cite(source)


def _relations(s: Section, num: _Numberer) -> dict:
    if not s.available:
        return {"na": s.reason}
    c = s["coefficients"]
    same = [k for k in ("form", "construct", "se_type") if k in c.columns and c[k].nunique() == 1]
    keep = [k for k in ("outcome", "form", "construct", "est", "se", "df", "pvalue", "ci.lower",
                        "ci.upper", "nobs", "n_clusters", "se_type")
            if k in c.columns and k not in same]
    common = "; ".join(f"{k} {c[k].iloc[0]}" for k in same)
    controls = [x for x in dict.fromkeys(c["controls"]) if x] if "controls" in c.columns else []
    listed = [x.strip() for cs in controls for x in cs.split(",") if x.strip()]
    intro = {"outcomes": _linked_outcomes(c),
             "controls": _plain_controls(dict.fromkeys(listed), Translator("en"))}
    c = c.copy()
    if "form" in keep:
        c["outcome"] = [re.sub(r", [^,]+ form$", "", str(o)) for o in c["outcome"]]
    for k, d in (("df", 1), ("pvalue", 4)):
        if k in c.columns:
            c[k] = [_fmt(v, d) for v in c[k]]
    out = {**intro, "coefficients": num.table(Table(
        "Predictive validity: coefficient of the school score", c[keep],
        [(f"All rows: {common}. " if common else "")
         + "One regression per outcome with the school score, the outcome's prior value and "
         "school controls"
         + (f" ({'; '.join(controls)})" if controls else "") + "; standard errors clustered by district (se_type; nobs schools in "
         "n_clusters districts). est: change in the outcome (a proportion) per point of the "
         "1-99 score."], 5)),
        "forest": num.figure(fig.forest_plot(c), "Validity coefficients by outcome",
                             "Coefficient of the school score scaled to one standard deviation "
                             "of the score, with its 95% confidence interval.",
                             alt="Forest plot of the score coefficient per outcome")}
    e = s["effects"]
    if e is not None and len(e):
        e = e.drop(columns=[c for c in ("form", "outcome_name", "change") if c in e.columns])
        out["contrasts"] = num.table(Table(
            "Predicted outcome difference between the 10th and 90th percentile (P10→P90)", e,
            ["contrast_pp: predicted change in percentage points when the predictor moves from "
             "its 10th to its 90th percentile, others fixed; ci: 95% interval."], 2))
        score = ", ".join(f"{x} score" for x in dict.fromkeys(s["coefficients"]["construct"])
                          if x) if "construct" in s["coefficients"].columns else ""
        out["contrast_fig"] = num.figure(fig.contrast_chart(
            e, {"score": f"school {score or 'score'}", "poverty": "poverty"}),
                                         f"P10→P90 contrasts: school {score or 'score'} and "
                                         "poverty",
                                         alt="Bar chart of P10 to P90 contrasts with intervals")
    return out


def _reason_kinds(reasons: pd.Series) -> list[str]:
    """Suppression reasons grouped by their kind (text before ':'), with counts of results."""
    kinds = reasons[reasons != ""].map(lambda r: r.split(":", 1)[0].strip())
    counts = kinds.value_counts()
    examples = {k: r for r, k in zip(reasons[reasons != ""], kinds)}
    return [f"{k} ({n} results; e.g. {examples[k]})" if examples[k] != k else f"{k} ({n} results)"
            for k, n in counts.items()]


def overall_definitions(scores: Section, bank: Section, t: Translator) -> list[str]:
    """The sentence saying what the "overall" score is, for the forms whose scores have one:
    the item bank's declared overall score (``overall:`` in ``bank.yaml``), the unweighted mean
    of its constructs' scores, each on its items as keyed (reverse-keyed items recoded), so a
    higher score means more of every practice it averages (`instrument.scores.overall_columns`);
    named from the bank. Empty when the bank defines none, and then the report does not mention
    an overall score."""
    ov = bank.get("overall") if bank.available else None
    label = _overall_label(bank, t.lang)
    if not scores.available or not ov or label is None:
        return []
    tab = scores["table"]
    forms = [t(str(f).capitalize() + " survey").lower()
             for f, g in tab.groupby("form", sort=False) if (g["construct"] == "overall").any()]
    if not forms:
        return []
    names = _construct_labels(bank, t.lang)
    cons = [str(c) for c in ov["constructs"]]
    form = (", ".join(forms[:-1]) + f" {t('and')} " + forms[-1]) if len(forms) > 1 else forms[0]
    return [t("\"Overall\" on the %(form)s is the item bank's overall score (%(label)s): the "
              "unweighted mean of %(n)s practice scores (%(names)s), each on its items as keyed "
              "in the item bank, so a higher score means more of every practice.",
              form=form, label=label, n=len(cons),
              names="; ".join(names.get(c, c.replace("_", " ")) for c in cons))]


def _consequences(scores: Section, cls: Section, num: _Numberer) -> dict:
    out: dict[str, Any] = {}
    if scores.available:
        t = scores["table"]
        per = (t.groupby(["school_id", "form"])["suppressed"].all().reset_index()
               .groupby("form")["suppressed"].agg(["size", "sum"]).reset_index()
               .rename(columns={"size": "schools", "sum": "suppressed"}))
        per["reported"] = per["schools"] - per["suppressed"]
        reasons = _reason_kinds(t.loc[t["suppressed"], "suppression_reason"])
        out["suppression"] = num.table(Table(
            "Schools reported and suppressed, by form", per[["form", "schools", "reported",
                                                             "suppressed"]],
            ["A school's form is suppressed when all its constructs are; reasons recorded: "
             + ("; ".join(reasons) if reasons else "none") + "."], 0))
        shown = t[~t["suppressed"]]
        if len(shown):
            bands = (shown.groupby(["form", "band"]).size().unstack("band", fill_value=0)
                     .reindex(columns=[b for b in scores["bands"] if b in set(shown["band"])])
                     .reset_index())
            bands.columns.name = None
            out["bands"] = num.table(Table("Reported school x construct results by band", bands,
                                           ["Counts of reported results."], 0))
    else:
        out["scores_na"] = scores.reason
    if cls.available:
        o = cls["overall"]
        out["classification_text"] = (
            f"Expected classification accuracy of the reporting bands is {_fmt(o.get('accuracy'))}"
            f" and consistency {_fmt(o.get('consistency'))} over "
            f"{_fmt(o.get('n_schools'), 0)} schools.")
        if cls["by_band"] is not None:
            out["classification"] = num.table(Table("Classification accuracy by band",
                                                    cls["by_band"],
                                                    ["Rudner (2001); Livingston & Lewis (1995)."],
                                                    3))
    else:
        out["classification_na"] = cls.reason
    return out


def _linked_rows(f: pd.DataFrame, construct: str, form: str | None = None) -> pd.DataFrame:
    """Rows of the policy stage's construct (``"overall"`` or the plan's linked construct)."""
    sel = f[f["construct"] == construct]
    if form is not None:
        sel = sel[sel["form"] == form]
    return sel


def _district(s: Section, num: _Numberer, names: Mapping[str, str]) -> dict:
    """District and state rollups, 3-level variance, convergence and accuracy (policy stage);
    the district tables, figures and variance are of the stage's one construct (the bank's
    overall score or the plan's ``linked_construct``), named from the bank."""
    if not s.available:
        return {"na": s.reason}
    out: dict[str, Any] = {}
    st, di, con = s["state"], s["district"], s["construct"]
    score = "overall" if con == "overall" else names.get(con, con)
    cols = ["form", "construct", "n_schools", "n_respondents", "score", "se", "ci.lower",
            "ci.upper", "sd_schools"]
    if st is not None:
        out["state"] = num.table(Table(
            "State results by form and construct", st[[c for c in cols if c in st.columns]],
            ["score: mean of the reported schools' 1-99 scores, weighted by enrollment; "
             "ci: 95% interval; sd_schools: spread of school scores."], 2))
    if di is not None:
        ov = _linked_rows(di, con)
        show = ov[[c for c in ("unit", *cols, "suppressed", "suppression_reason")
                   if c in ov.columns]].rename(columns={"unit": "district"}).copy()
        show["suppressed"] = ["yes" if v else "" for v in show["suppressed"]]
        n_sup = int(ov.groupby("unit")["suppressed"].all().sum())
        rule = getattr(_rules, "MIN_SCHOOLS_ROLLUP", None)
        out["district"] = num.table(Table(
            f"District results, {score} score by form", show,
            ["score: mean of the district's reported school scores (1-99) with its 95% "
             "interval. Suppressed districts show no score"
             + (f" (rule: {rule.describe_short()})" if isinstance(rule, _rules.Rule) else "")
             + f"; {n_sup} district x form results are suppressed."], 2))
        figs = []
        for form in dict.fromkeys(ov["form"]):
            state = (float(_linked_rows(st, con, form)["score"].iloc[0])
                     if st is not None and len(_linked_rows(st, con, form)) else None)
            figs.append(num.figure(
                fig.district_dots(_linked_rows(di, con, form), state),
                f"District {score} scores, {form} form",
                "Points: district score with 95% interval; dashed line: state score. "
                "Suppressed districts are listed without a score.",
                alt=f"Dot plot of district scores with intervals, {form} form"))
        out["district_figs"] = figs
    vc = s["variance"]
    if vc is not None:
        out["variance"] = num.table(Table(
            f"Variance of the {score} score between districts, schools and respondents", vc,
            ["Three-level random-intercept model (respondents in schools in districts): "
             "tau_district, tau_school, sigma2 are the variance components; icc_district and "
             "icc_school the shares of total variance at each level."], 4))
    acc = s["accuracy"]
    if acc is not None:
        out["accuracy"] = num.table(Table(
            "Classification accuracy and consistency by form and construct", acc,
            ["Expected share of schools placed in their true band (accuracy) and in the same "
             "band on a replication (consistency) (Rudner, 2001; Livingston & Lewis, 1995)."],
            3))
    cv = s["convergence"]
    if cv is not None:
        out["convergence"] = num.table(Table(
            "Convergence of teacher and family school scores", cv,
            ["r: correlation of the teacher and family school scores across schools with both "
             "reported, with its 95% interval; rel_a, rel_b: reliabilities of the two school "
             "scores; r_corrected: r corrected for attenuation."], 3))
    return out


def _rows_accounted(data: Any, num: _Numberer) -> Markup | None:
    """The data stage's row accounting (``rows``: form, source, read, used, quarantined)."""
    rows = data.get("rows") if isinstance(data, Mapping) else None
    if not rows:
        return None
    t = pd.DataFrame(rows)
    t = t[[c for c in ("form", "source", "file", "format", "read", "used", "quarantined",
                       "flagged", "quarantine_file") if c in t.columns]]
    q = int(pd.to_numeric(t["quarantined"], errors="coerce").fillna(0).sum())
    by_reason = [f"{form}: " + "; ".join(f"{r['reason']} ({r['rows']})" for r in v["reasons"])
                 for form, v in data.items()
                 if isinstance(v, Mapping) and v.get("reasons")]
    return num.table(Table(
        "Rows read, used and quarantined", t,
        [f"{q} row(s) quarantined in all. Every row read is either used or quarantined with "
         "its reason and file line (read = used + quarantined); the quarantine files are "
         "written beside the results."]
        + ([f"Quarantined rows by reason: {' | '.join(by_reason)}."] if by_reason else [])
        + (["flagged: rows flagged as straight-lining or too fast (kept unless excluded)."]
           if "flagged" in t.columns else []), 0))


def _irt(s: Section, num: _Numberer) -> dict:
    """IRT item table (slopes, S-X2, information at the band cuts) and the short form."""
    if not s.available:
        return {"na": s.reason}
    it, co = s["items"], s["constructs"]
    items = it[["construct", "item", "finding", "reverse", "a", "information", "S_X2", "S_X2_df",
                "S_X2_p", "misfit", "dif_flagged", "selected"]].copy()
    for c in ("reverse", "misfit", "dif_flagged", "selected"):
        items[c] = ["yes" if v else "" for v in items[c]]
    # short headers that wrap between words, so no column is broken mid-word on the page
    items = items.rename(columns={"reverse": "rev.", "information": "info", "S_X2": "S-X2",
                                  "S_X2_df": "df", "S_X2_p": "p", "dif_flagged": "DIF",
                                  "selected": "short form"})
    # nine columns whose headers wrap between words: counts are paired in one cell each
    cons = pd.DataFrame({
        "construct": co["construct"],
        "items full / short": [f"{a} / {b}" for a, b in zip(co["n_full"], co["n_short"])],
        "findings kept / all": [f"{a} / {b}" for a, b in zip(co["covered"], co["findings"])],
        "reverse kept": co["reverse_short"],
        "rel full": co["rel_full"], "rel short": co["rel_short"],
        "r (Levy)": co["r_full_short_levy"], "school rel full": co["school_rel_full"],
        "school rel short": co["school_rel_short"],
        "school rel lost per item": co["school_rel_lost_per_item"]})
    tested = [str(c) for c, v in zip(co["construct"], co["dif_tested"]) if bool(v)]
    dif_note = (f"DIF by language was tested for {', '.join(tested)}" if tested else
                "DIF by language was not tested (no construct had two languages with enough "
                "respondents)")
    cond = pd.DataFrame([{"construct": r["construct"],
                          **{f"full @ {c:g}": v for c, v in zip(_rules.SCORE_BAND_CUTS, r["cond_rel_full"])},
                          **{f"short @ {c:g}": v for c, v in zip(_rules.SCORE_BAND_CUTS, r["cond_rel_short"])}}
                         for _, r in co.iterrows()])
    ld = s["ld_pairs"]
    rules = s["rules"] or {}
    share = rules.get("SHORTFORM_REVERSE_SHARE", {})
    return {"form": s["form"], "k": s["k"],
            "item_table": num.table(Table(
                f"Graded response model per construct, {s['form']} form: items", items,
                [f"a: slope; rev.: reverse-keyed; info: information summed at the band cut points "
                 f"on the trait scale; S-X2, df, p: Orlando & Thissen (2000) item fit "
                 f"({_rules.S_X2_ALPHA.describe_short()}; no p when df < 1); DIF: flagged by ordinal "
                 f"logistic regression by language; short form: in the {s['k']}-item short "
                 "form."], 3)),
            "constructs": num.table(Table(
                f"Short form ({s['k']} items per construct): what it keeps", cons,
                ["rel: empirical reliability of EAP scores; r (Levy): correlation of the "
                 "short and full summed scores without the shared error (Levy, 1967); school rel: "
                 "Spearman-Brown reliability of a school mean at the mean respondents per school; "
                 f"reverse-keyed items per construct at most {share.get('threshold', '')} of k "
                 f"({share.get('source', '')}); {dif_note}; it needs "
                 f"{_rules.DIF_MIN_GROUP.threshold:g} respondents per group."], 3)),
            "conditional": num.table(Table(
                "Conditional reliability at the band cut points (full and short form)", cond,
                ["1 / (1 + 1 / I(theta)) at the cut points 20, 40, 60, 80 of the 1-99 school "
                 "scale placed on the trait scale (theta = (cut - 50) / 20 * sqrt(ICC1))."], 3)),
            "ld": (num.table(Table("Locally dependent item pairs (Yen's Q3)", ld,
                                   [_rules.Q3_RELATIVE.describe_short()], 3))
                   if ld is not None and len(ld) else None),
            "ld_rule": _rules.Q3_RELATIVE.describe_short(),
            **_short_ladder(s.get("ladder") or {}, s["form"], num)}


def _short_ladder(lad: Mapping[str, Any], form: str, num: _Numberer) -> dict:
    """The short form's invariance ladder table, or why it was not fitted."""
    t = lad.get("table")
    if t is None:
        why = lad.get("not_tested")
        return {"ladder_na": (f"The short form's invariance ladder by {lad.get('group', 'language')} "
                              f"was not fitted: {why}.") if why else None}
    idx = LADDER_INDICES.get(str(lad.get("estimator", "ML")), LADDER_INDICES["ML"])
    keep = [c for c in ("step", idx[0], "df", idx[1], idx[2], "chisq.diff", "df.diff",
                        "pvalue.diff", "verdict") if c in t.columns]
    n = lad.get("n") or {}
    return {"ladder": num.table(Table(
        f"Invariance ladder of the {form} short form by {lad.get('group', 'language')}", t[keep],
        [f"{lad.get('estimator', '')}, items ordered, pairwise present data; groups "
         + ", ".join(f"{k} (n = {v})" for k, v in n.items())
         + ". Each step is compared with the one before; the verdict quotes the rule applied."],
        3))}


def _irt_dif(s: Section, num: _Numberer) -> dict:
    """One table per form and language: CFA invariance releases, ordinal logistic regression DIF
    and IRT likelihood-ratio DIF of each item side by side."""
    if not s.available:
        return {"na": s.reason}
    tables = []
    yes = lambda v: "yes" if v is True or v == 1 or str(v).lower() == "true" else ""  # noqa: E731
    for form, d in s["forms"].items():
        t = d["table"].copy()
        cfa = d["cfa"]
        if cfa is not None:
            t = t.merge(cfa, on="item", how="left")
            t["cfa_released"] = t["cfa_released"].fillna("")
        show = pd.DataFrame({"construct": t["construct"], "item": t["item"]})
        if cfa is not None:
            show["CFA released"] = t["cfa_released"]
            show["dMACS"] = t["cfa_dmacs"]
        show["OLR chi2"] = t["olr_chi13"]
        show["OLR p"] = t["olr_p13"]
        show["OLR dR2"] = t["olr_R2_13"]
        show["OLR DIF"] = [yes(v) for v in t["olr_flagged"]]
        if "lr_G2" in t.columns:
            show["IRT G2"] = t["lr_G2"]
            show["IRT df"] = t["lr_df"]
            show["IRT p"] = t["lr_p"]
            show["IRT DIF"] = [yes(v) for v in t["lr_flagged"]]
        notes = [f"{d['focal']} (focal, n = {d['n'].get(d['focal'], '')}) against {d['reference']} "
                 f"(reference, n = {d['n'].get(d['reference'], '')}). CFA released: the invariance "
                 "steps whose constraints on the item the partial-invariance search released "
                 "(blank: none), with the item's largest dMACS"
                 if cfa is not None else
                 f"{d['focal']} (focal) against {d['reference']} (reference). No CFA invariance "
                 f"ladder of the {form} form by {s['group']} is in these results"]
        notes.append("OLR: ordinal logistic regression with lordif's iterative purification, "
                     "chi2 (2 df) of model 3 against model 1, dR2 its change in Nagelkerke "
                     f"pseudo-R2 ({_rules.DIF_ALPHA.describe_short()}; size "
                     f"{_rules.DIF_R2_MODERATE.describe_short()}, "
                     f"{_rules.DIF_R2_LARGE.describe_short()})")
        if "lr_G2" in t.columns:
            notes.append("IRT: likelihood ratio G2 of the two-group graded model with the item "
                         "free against it equal across groups, anchors purified "
                         f"({_rules.IRT_LR_DIF_ALPHA.describe_short()})")
        if "planted" in t.columns:
            planted = t["planted"].map(lambda v: yes(v) == "yes")
            show["planted"] = [yes(v) for v in planted]
            parts = []
            for key, name in (("cfa_released", "CFA"), ("olr_flagged", "OLR"),
                              ("lr_flagged", "IRT")):
                if key not in t.columns:
                    continue
                fl = (t[key].astype(str) != "") if key == "cfa_released" else \
                    t[key].map(lambda v: yes(v) == "yes")
                parts.append(f"{name} {int((fl & planted).sum())} of {int(planted.sum())} planted "
                             f"items, {int((fl & ~planted).sum())} false alarms")
            notes.append("Simulated data: planted = DIF built into the simulation. Found: "
                         + "; ".join(parts))
        tables.append(num.table(Table(
            f"Item DIF by {s['group']}, {form} form: {d['focal']} vs {d['reference']}", show,
            ["; ".join(notes) + "."], 3)))
    return {"tables": tables, "skipped": s["skipped"], "warnings": s["warnings"]}


def _technical(secs: Mapping[str, Section], stages: Mapping[str, str],
               data: Any = None) -> dict:
    num = _Numberer()
    ctx = {"content": _content(secs["bank"], num),
           "rows": _rows_accounted(data, num),     # numbered in document order
           "processes": _processes(secs["bank"], secs["item_analysis"], num),
           "overall": overall_definitions(secs["scores"], secs["bank"], Translator("en")),
           "structure": _structure(secs, num),
           "relations": _relations(secs["linker"], num),
           "consequences": _consequences(secs["scores"], secs["classification"], num),
           "district": _district(secs["policy"], num,
                                 _construct_labels(secs["bank"], "en")),
           "irt": _irt(secs["irt"], num),
           "irt_dif": _irt_dif(secs["irt_dif"], num),
           "montecarlo": montecarlo_section(secs["montecarlo"], num),
           "sections": TECHNICAL_SECTIONS}
    if stages:
        ctx["stages"] = num.table(Table(
            "Stages that did not complete in this run, or stood aside (n/a) for the reason given",
            pd.DataFrame([{"stage": k, "status": v} for k, v in stages.items()]), (), 0))
    heur = _rules.FIT_HEURISTICS
    quoted = [*heur]
    if secs["multilevel"].available:
        quoted += [r for r in (getattr(_rules, "SCHOOL_MEAN_RELIABILITY", None),
                               getattr(_rules, "SCHOOL_MEAN_RELIABILITY_HIGH", None))
                   if isinstance(r, _rules.Rule)]
    if secs["policy"].available and isinstance(getattr(_rules, "MIN_SCHOOLS_ROLLUP", None),
                                               _rules.Rule):
        quoted.append(_rules.MIN_SCHOOLS_ROLLUP)
    # rules quoted in short (author-year) form in the IRT and DIF notes: listed here in full
    if secs["irt"].available:
        quoted += [_rules.S_X2_ALPHA, _rules.Q3_RELATIVE]
    if secs["irt_dif"].available:
        quoted += [_rules.DIF_ALPHA, _rules.DIF_R2_MODERATE, _rules.DIF_R2_LARGE,
                   _rules.IRT_LR_DIF_ALPHA, _rules.DIF_MIN_GROUP]
    quoted = list(dict.fromkeys(quoted))
    ctx["rules"] = [r.describe() for r in quoted]
    item_rules = secs["item_analysis"].get("rules") if secs["item_analysis"].available else []
    for r in item_rules or []:
        ctx["rules"].append(f"{r['key']} {r.get('op', '')} {r.get('threshold', '')} "
                            f"({r.get('source', '')})" + (f"; {r['note']}" if r.get("note")
                                                           else ""))
    ctx["references"] = sorted(set(REFERENCES) | set(_rule_sources(quoted))
                               | (set(mc_sources()) if secs["montecarlo"].available else set())
                               | {str(r.get("source")) for r in item_rules or []
                                  if r.get("source")})
    return ctx


# --------------------------------------------------------------------------------------------
# Policy brief
# --------------------------------------------------------------------------------------------
def _construct_labels(bank: Section, lang: str) -> dict[str, str]:
    """Construct id -> its label in ``lang`` from the bank (English when not translated), as
    `adapters.read_bank` reads them."""
    labels = bank.get("labels") if bank.available else None
    return (labels.get(lang) or labels.get("en") or {}) if labels else {}


def _overall_label(bank: Section, lang: str) -> str | None:
    """The label of the bank's overall score in ``lang`` (its first label when not translated),
    or None when the bank declares no overall score."""
    labels = bank.get("overall_label") if bank.available else None
    return (labels.get(lang) or next(iter(labels.values()))) if labels else None


def _linked_score_name(bank: Section, construct: str, lang: str) -> str:
    """How the brief names the score the linker used, in ``lang``: the bank's overall-score label
    for ``"overall"`` (lower-cased to read inside a sentence), else the construct's bank label."""
    if construct == "overall":
        label = _overall_label(bank, lang) or "overall"
        return label[:1].lower() + label[1:]
    return _construct_labels(bank, lang).get(construct, construct)


FIT_INDEX_SUFFIX = {"MLR": ".robust", "WLSMV": ".scaled", "ULSMV": ".scaled"}
PLAIN_OPS = {">=": "≥", "<=": "≤"}


def _brief_omega_and_fit(secs: Mapping[str, Section], t: Translator) -> dict:
    """Plain-language reading of omega (against `rules.MIN_SCALE_OMEGA`) and of each form's
    CFA fit (against `rules.FIT_HEURISTICS`, the estimator's scaled or robust indices as in the
    technical report); keys ``omega`` and ``fit`` (absent when the results lack them)."""
    out: dict[str, Any] = {}
    names = _construct_labels(secs["bank"], t.lang)
    rel = secs["reliability"]
    if rel.available and "omega" in rel["table"].columns:
        rt = rel["table"]
        if "language" in rt.columns:   # omega is estimated on all respondents of a form
            rt = rt[rt["language"].isin(["all", "", None]) | rt["language"].isna()]
        om = rt.assign(omega=pd.to_numeric(rt["omega"], errors="coerce")).dropna(subset=["omega"])
        if len(om):
            r = _rules.MIN_SCALE_OMEGA
            below = [f"{names.get(str(x['construct']), str(x['construct']))}"
                     + (f" ({t(str(x['form']).capitalize() + ' survey')}, {_fmt(x['omega'])})"
                        if x.get("form") else f" ({_fmt(x['omega'])})")
                     for x in om.to_dict("records") if not r.passes(float(x["omega"]))]
            out["omega"] = {"lo": _fmt(om["omega"].min()), "hi": _fmt(om["omega"].max()),
                            "rule": _fmt(r.threshold), "source": _short_cite(r.source),
                            "below": "; ".join(below)}
    cfa = secs["cfa"]
    if cfa.available:
        heur = _rules.FIT_HEURISTICS
        fits = []
        for form, d in cfa["fits"].items():
            fm = d["fit_measures"]
            suffix = FIT_INDEX_SUFFIX.get(str(d.get("estimator") or "").upper(), "")
            shown, fails = [], []
            for r in heur:
                v = _num(fm.get(r.key + suffix if r.key != "srmr" else r.key))
                v = v if v == v else _num(fm.get(r.key))
                if v != v:
                    continue
                shown.append(f"{r.key.upper()} {_fmt(v, 3)}")
                if not r.passes(v):
                    fails.append(t("%(index)s %(v)s, limit %(op)s %(limit)s", index=r.key.upper(),
                                   v=_fmt(v, 3), op=PLAIN_OPS.get(r.op, r.op),
                                   limit=f"{r.threshold:g}"))
            if shown:
                fits.append({"form": t(str(form).capitalize() + " survey")
                             if form != "model" else "", "ok": not fails,
                             "shown": "; ".join(shown), "fails": "; ".join(fails)})
        if fits:
            out["fit"] = fits
            out["fit_limits"] = ", ".join(f"{r.key.upper()} {PLAIN_OPS.get(r.op, r.op)} "
                                          f"{r.threshold:g}"
                                          for r in heur)
            out["fit_source"] = "; ".join(_short_cite(x) for x in _rule_sources(heur))
    return out


def _brief(secs: Mapping[str, Section], t: Translator) -> dict:
    num = _Numberer(t)
    ctx: dict[str, Any] = {"sections": BRIEF_SECTIONS}
    b = secs["bank"]
    if b.available:
        items = b["items"]
        cons = b.get("constructs")
        names = _construct_labels(b, t.lang)
        labels = ({r["construct"]: (names.get(str(r["construct"]), r["construct"]),
                                    r.get("description", ""))
                   for r in cons.to_dict("records")} if cons is not None else {})
        ctx["constructs"] = [{"name": labels.get(c, (c, ""))[0], "description":
                              labels.get(c, (c, ""))[1],
                              "items": {f: int(((items["construct"] == c)
                                                & (items["form"] == f)).sum())
                                        for f in b["forms"]}}
                             for c in dict.fromkeys(items["construct"])]
        ctx["forms"] = b["forms"]
        ctx["n_items"] = b["n_items"]
        ctx["bank_name"], ctx["n_constructs"] = b.get("name", ""), int(b["n_constructs"])
    else:
        ctx["measures_na"] = b.reason
    rel, ml = secs["reliability"], secs["multilevel"]
    if rel.available and "alpha" in rel["table"].columns:
        a = rel["table"]["alpha"].astype(float)
        ctx["alpha_range"] = (_fmt(a.min()), _fmt(a.max()))
        ctx["alpha_ok"] = bool(_rules.MIN_SCALE_ALPHA.passes(float(a.min())))
        ctx["alpha_rule"] = _fmt(_rules.MIN_SCALE_ALPHA.threshold)
    ctx.update(_brief_omega_and_fit(secs, t))
    if ml.available:
        icc = ml["icc"]
        facts = []
        for form, g in icc.groupby("form", sort=False):
            f = {"form": form or "all", "icc2": None, "k": None, "min_k": None, "target": None}
            if "icc2" in g.columns:
                f["icc2"] = (_fmt(g["icc2"].astype(float).min()),
                             _fmt(g["icc2"].astype(float).max()))
            if "k" in g.columns:
                f["k"] = _fmt(g["k"].astype(float).mean(), 0)
            mk = ml["min_k"]
            if mk is not None:
                sel = mk[(mk["form"] == form)] if "form" in mk.columns else mk
                if len(sel):
                    tgt = float(sel["target"].astype(float).min())
                    f["target"] = _fmt(tgt)
                    ks = sel.loc[sel["target"].astype(float) == tgt, "k"].astype(float)
                    # a practice whose ICC(1) is 0 reaches the target at no size: no number
                    f["min_k"] = _fmt(ks.max(), 0) if ks.notna().all() else None
            facts.append(f)
        ctx["school_reliability"] = facts
        targets = []
        if ml["min_k"] is not None:
            targets = [(float(t), f"{float(t):.2f}") for t in
                       sorted(set(ml["min_k"]["target"].astype(float)))]
        ctx["k_fig"] = num.figure(fig.reliability_vs_k(ml["icc"], targets, ml["curve"],
                                                       by_form=True, tr=t),
                                  t("How school scores become more reliable with more "
                                    "respondents"),
                                  alt="Reliability of a school's score against respondents")
    if not rel.available and not ml.available:
        ctx["reliability_na"] = f"{NOT_AVAILABLE}"
    lk = secs["linker"]
    if lk.available and lk["effects"] is not None:
        e = lk["effects"]
        lines = []
        if "outcome_name" not in e.columns:
            e = e.assign(outcome_name=e["outcome"], form="", change=False)
        for outcome in dict.fromkeys(e["outcome"]):
            sc = e[(e["outcome"] == outcome) & (e["predictor"] == "score")]
            pv = e[(e["outcome"] == outcome) & (e["predictor"] == "poverty")]
            if not len(sc):
                continue
            sc = sc.iloc[0]
            name = _plain_outcome(str(sc["outcome_name"]) + (" (change)" if bool(sc["change"])
                                                             else "")).lower()
            name = name.replace("ela", "ELA")
            form = str(sc["form"] or "")
            v = _num(sc["contrast_pp"])
            lines.append({
                "outcome": _plain_outcome(str(sc["outcome_name"]) + (" (change)" if bool(
                    sc["change"]) else "")), "form": form, "name": name,
                "score": _fmt(abs(v), 1), "direction": "higher" if v > 0 else "lower",
                "score_ci": _plain_ci(_num(sc["ci.lower_pp"]), _num(sc["ci.upper_pp"]), v, t),
                "poverty": _fmt(abs(_num(pv.iloc[0]["contrast_pp"])), 1) if len(pv) else None,
                "poverty_direction": ("higher" if _num(pv.iloc[0]["contrast_pp"]) > 0
                                      else "lower") if len(pv) else ""})
        ctx["predicts"] = lines
        c = lk["coefficients"]
        con = str(next(iter(c["construct"]), "")) if "construct" in c.columns else ""
        ctx["score_name"] = _linked_score_name(secs["bank"], con, t.lang)
        ctx["controls"] = _plain_controls(dict.fromkeys(
            x.strip() for cs in (c["controls"] if "controls" in c.columns else [])
            for x in str(cs).split(",") if x.strip()), t)
        forms = [f for f in dict.fromkeys(e["form"]) if f]
        first = "teacher" if "teacher" in forms else (forms[0] if forms else "")
        ef = e[e["form"] == first] if first else e
        ctx["contrast_fig"] = num.figure(
            fig.contrast_chart(ef.assign(outcome=[t(_plain_outcome(str(o))) for o in
                                                  ef["outcome_name"]]),
                               labels={"score": t("%(form)s %(score)s score", form=t(first),
                                                  score=ctx["score_name"]).strip(),
                                       "poverty": t("poverty")}, tr=t),
            t("Difference between schools at the 10th and 90th percentile")
            + (f", {t(first.capitalize() + ' survey').lower()}" if first else ""),
            t("Bars: predicted difference in the outcome, in percentage points; lines: 95% "
              "confidence intervals."), alt="Bar chart of P10 to P90 contrasts")
    else:
        ctx["predicts_na"] = lk.reason if not lk.available else NOT_AVAILABLE
    ctx.update(_scores_facts(secs["scores"], secs["policy"], t))
    ctx["overall"] = overall_definitions(secs["scores"], secs["bank"], t)
    ctx.update(_brief_districts(secs["policy"], num, t, _construct_labels(secs["bank"], t.lang)))
    return ctx


WHO = {"teacher": "teachers", "family": "families"}


def _scores_facts(sc: Section, policy: Section, t: Translator) -> dict:
    """Plain-language facts about the school scores: the two gates, how many scores each gate
    withheld, how many shown scores are imprecise, and band accuracy and consistency."""
    out: dict[str, Any] = {"precision_target": _fmt(_rules.MIN_SCHOOL_RELIABILITY.threshold)}
    rates = {"teacher": _rules.MIN_RESPONSE_RATE_TEACHERS,
             "family": _rules.MIN_RESPONSE_RATE_FAMILIES}
    out["gates"] = {"min_n": _fmt(_rules.MIN_N_PRIVACY.threshold, 0), "rates": "; ".join(
        t("at least %(pct)s%% of %(who)s", pct=_fmt(100 * r.threshold, 0), who=t(WHO[f]))
        for f, r in rates.items())}
    acc = policy.get("accuracy") if policy.available else None
    if acc is not None and len(acc) and {"accuracy", "consistency"} <= set(acc.columns):
        w = acc["n_schools"].astype(float) if "n_schools" in acc.columns else None
        a = np.average(acc["accuracy"].astype(float), weights=w)
        c = np.average(acc["consistency"].astype(float), weights=w)
        out["band_accuracy"] = {"acc": f"{100 * a:.0f}%", "cons": f"{100 * c:.0f}%"}
    if not sc.available:
        return out
    tab = sc["table"]
    out["n_schools"] = int(tab["school_id"].nunique())
    out["n_results"] = int(len(tab))
    out["n_suppressed"] = int(tab["suppressed"].sum())
    shown = tab[~tab["suppressed"]]
    out["n_shown"] = int(len(shown))
    if "reliability" in shown.columns:
        rel = shown["reliability"].astype(float)
        out["low_precision"] = int((rel < _rules.MIN_SCHOOL_RELIABILITY.threshold).sum())
    lines = []
    codes = _codes(tab[tab["suppressed"]])
    privacy = sum("privacy" in str(c) for c in codes)
    if privacy:
        lines.append(t("%(n)s because fewer than %(min_n)s people answered", n=privacy,
                       min_n=_fmt(_rules.MIN_N_PRIVACY.threshold, 0)))
    for form in dict.fromkeys(tab["form"]):
        sel = codes[(tab.loc[codes.index, "form"] == form).to_numpy()]
        for code, msg in (("response_rate", "%(n)s because too few of the school's %(who)s "
                                            "answered to represent it"),
                          ("response_rate_unknown", "%(n)s because the number of %(who)s at "
                                                    "the school is not known")):
            k = sum(code in str(c).split("; ") for c in sel)
            if k:
                lines.append(t(msg, n=k, who=t(WHO.get(form, form))))
    out["suppression_lines"] = lines
    return out


def _codes(rows: pd.DataFrame) -> pd.Series:
    """Suppression codes of suppressed rows (from ``suppression_code``, or read from the
    technical reason of results written before codes existed)."""
    if "suppression_code" in rows.columns:
        return rows["suppression_code"].fillna("").astype(str)
    def guess(reason: str) -> str:
        out = []
        if "privacy" in reason or "fewer than" in reason:
            out.append("privacy")
        if "unknown" in reason:
            out.append("response_rate_unknown")
        elif "response rate" in reason:
            out.append("response_rate")
        return "; ".join(out)
    return rows["suppression_reason"].fillna("").astype(str).map(guess)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _plain_ci(lo: float, hi: float, v: float, t: Translator) -> str:
    """A 95% interval in the words of the estimate: '2.8 to 5.7' (same direction) or
    'from 0.5 lower to 1.5 higher' when it spans zero."""
    if lo * hi > 0 and lo * v > 0:
        a, b = sorted((abs(lo), abs(hi)))
        return t("%(a)s to %(b)s", a=_fmt(a, 1), b=_fmt(b, 1))
    return t("from %(a)s lower to %(b)s higher", a=_fmt(abs(lo), 1), b=_fmt(abs(hi), 1))


def _brief_districts(s: Section, num: _Numberer, t: Translator,
                     names: Mapping[str, str]) -> dict:
    """Plain-language district and state facts and one chart (first form) of the policy stage's
    construct (the bank's overall score or the plan's ``linked_construct``)."""
    if not s.available or s["district"] is None:
        return {"districts_na": s.reason if not s.available else NOT_AVAILABLE}
    di, st = s["district"], s["state"]
    out: dict[str, Any] = {}
    forms = list(dict.fromkeys(di["form"]))
    form = "teacher" if "teacher" in forms else forms[0]
    con = s["construct"]
    ov = _linked_rows(di, con, form)
    shown = ov[~ov["suppressed"]]
    out["d_form"] = form
    out["d_n"] = int(ov["unit"].nunique())
    out["d_reported"] = int(shown["unit"].nunique())
    out["d_suppressed"] = out["d_n"] - out["d_reported"]
    if len(shown):
        out["d_range"] = (_fmt(shown["score"].min(), 0), _fmt(shown["score"].max(), 0))
    state = None
    if st is not None and len(_linked_rows(st, con, form)):
        r = _linked_rows(st, con, form).iloc[0]
        state = _num(r["score"])
        out["state"] = (_fmt(r["score"], 0), _fmt(r["ci.lower"], 0), _fmt(r["ci.upper"], 0))
    vc = s["variance"]
    if vc is not None and (vc["form"] == form).any():
        r = vc[vc["form"] == form].iloc[0]
        out["share_district"] = _fmt(100 * _num(r["icc_district"]), 0)
        out["share_school"] = _fmt(100 * _num(r["icc_school"]), 0)
        out["mostly_within"] = _num(r["icc_district"]) < _num(r["icc_school"])
    cv = s["convergence"]
    if cv is not None and (cv["construct"] == con).any():
        r = cv[cv["construct"] == con].iloc[0]
        out["convergence"] = _fmt(r["r"])
        out["convergence_construct"] = None if con == "overall" else names.get(con, con)
        out["convergence_high"] = _num(r["r"]) >= 0.7
    out["district_fig"] = num.figure(
        fig.district_dots(ov, state, tr=t),
        t("Districts' overall scores, %(form)s survey", form=t(form)) if con == "overall" else
        t("Districts' %(construct)s scores, %(form)s survey", construct=names.get(con, con),
          form=t(form)),
        t("Each point is a district's average school score (1-99) with its 95% interval; the "
          "dashed line is the state. Districts with too few reported schools are listed without "
          "a score."),
        alt=f"Dot plot of district scores, {form} survey")
    return out


# --------------------------------------------------------------------------------------------
# School score cards
# --------------------------------------------------------------------------------------------
def _cards(secs: Mapping[str, Section], t: Translator) -> dict:
    """One card per school: each shown score with its 95% interval, band, precision and the
    probability that the true score is in the band shown; withheld scores in plain words."""
    sc = secs["scores"]
    facts = _scores_facts(sc, secs["policy"], t)
    out = {"band_accuracy": facts.get("band_accuracy"),
           "precision_target": facts["precision_target"]}
    if not sc.available:
        return {**out, "cards_na": sc.reason, "schools": []}
    tab = sc["table"]
    out["band_ranges"] = _band_ranges(sc["bands"], t)
    out["overall"] = overall_definitions(sc, secs["bank"], t)
    names = _construct_labels(secs["bank"], t.lang)
    colours = fig.band_colours(_band_order(tab, sc["bands"]))
    codes = _codes(tab)
    record = dict(zip(tab.index, tab.to_dict("records")))     # one conversion, not one per group
    has_rate, has_name = "response_rate" in tab, "school_name" in tab
    schools = []
    # the rows of each school (in school id order), then of each of its forms (in the order
    # they come), grouped over the records rather than by a pandas groupby per school
    for sid, labels in tab.groupby("school_id", sort=True).groups.items():
        by_form: dict[Any, list] = {}
        for i in labels:
            form = record[i]["form"]
            if form is not None and form == form:
                by_form.setdefault(form, []).append(i)
        forms = []
        for form, h_index in by_form.items():
            n = _max_float(record[i]["n"] for i in h_index)
            rr = (_max_float(record[i]["response_rate"] for i in h_index) if has_rate
                  else math.nan)
            rows = []
            for i in h_index:
                r = record[i]
                label = names.get(str(r["construct"])) or (
                    t("Overall") if r["construct"] == "overall"
                    else str(r["construct"]).replace("_", " ").capitalize())
                row = {"construct": r["construct"], "label": label,
                       "suppressed": bool(r["suppressed"])}
                if r["suppressed"]:
                    row["reason"] = _plain_reason(codes[i], form, r, t)
                else:
                    s_, lo, hi = (_num(r.get(k)) for k in ("score", "ci.lower", "ci.upper"))
                    lo = s_ if lo != lo else lo
                    hi = s_ if hi != hi else hi
                    p = _num(r.get("band_probability"))
                    row.update({
                        "score": _fmt(s_, 0), "lo": _fmt(lo, 0), "hi": _fmt(hi, 0),
                        "score_pct": f"{min(max(s_, 1), 99):.0f}",
                        "lo_pct": f"{min(max(lo, 1), 99):.0f}",
                        "ci_width": f"{max(min(hi, 99) - max(lo, 1), 0.5):.0f}",
                        "band": r["band"], "colour": colours.get(r["band"], "#999999"),
                        "p_band": f"{100 * p:.0f}%" if p == p else "–",
                        "low_precision": _num(r.get("reliability"))
                        < _rules.MIN_SCHOOL_RELIABILITY.threshold})
                rows.append(row)
            rows.sort(key=lambda x: x["construct"] == "overall")
            all_supp = all(r["suppressed"] for r in rows)
            privacy = any("privacy" in codes[i].split("; ") for i in h_index)
            forms.append({"form": form, "n": _fmt(n, 0), "show_count": not privacy,
                          "rate": f"{100 * rr:.0f}%" if rr == rr else None,
                          "suppressed": all_supp,
                          "reason": rows[0]["reason"] if all_supp and rows else "",
                          "rows": rows})
        first = record[labels[0]]
        d0 = first["district_id"]
        schools.append({"school_id": sid, "district_id": "" if d0 is None or pd.isna(d0)
                        or str(d0).strip().casefold() in ("nan", "none", "na", ".")
                        else str(d0),
                        "name": str(first["school_name"]) if has_name else "",
                        "forms": forms})
    return {**out, "schools": schools}


def _max_float(values: Any) -> float:
    """The largest of ``values`` as floats, missing ones (None, NaN) left out; NaN if none."""
    xs = [float(v) for v in values if v is not None]
    xs = [x for x in xs if x == x]
    return max(xs) if xs else math.nan


def _plain_reason(code: str, form: str, row: Mapping[str, Any], t: Translator) -> str:
    """Why a score is not shown, in plain words (the first gate that failed)."""
    who = t(WHO.get(form, form))
    parts = code.split("; ") if code else []
    if "privacy" in parts:
        return t("Not shown: fewer than %(min_n)s people answered, so the answers could "
                 "identify someone.", min_n=_fmt(_rules.MIN_N_PRIVACY.threshold, 0))
    if not parts:   # a reason without a code (results written by other tools)
        return t("Not shown: %(why)s.", why=str(row.get("suppression_reason") or "suppressed"))
    if "response_rate_unknown" in parts:
        return t("Not shown: the number of %(who)s at the school is not known, so we cannot "
                 "tell whether those who answered represent it.", who=who)
    rule = {"teacher": _rules.MIN_RESPONSE_RATE_TEACHERS,
            "family": _rules.MIN_RESPONSE_RATE_FAMILIES}.get(form, _rules.MIN_RESPONSE_RATE_TEACHERS)
    return t("Not shown: only %(rate)s of the school's %(who)s answered; at least %(min)s must "
             "answer for the result to represent the school.",
             rate=f"{100 * _num(row.get('response_rate')):.0f}%", who=who,
             min=f"{100 * rule.threshold:.0f}%")


def _band_ranges(declared: Sequence[str], t: Translator) -> str:
    """'Very Weak below 20, Weak 20–39, ..., Very Strong 80 and above' from
    `rules.SCORE_BAND_CUTS` when the results' bands are `rules.SCORE_BAND_NAMES`; '' otherwise
    (the cut points of other bands are not known to the report)."""
    names, cuts = tuple(_rules.SCORE_BAND_NAMES), tuple(_rules.SCORE_BAND_CUTS)
    if tuple(declared) != names or len(cuts) != len(names) - 1:
        return ""
    parts = [t("%(band)s below %(x)s", band=t(names[0]), x=f"{cuts[0]:g}")]
    parts += [t("%(band)s %(lo)s–%(hi)s", band=t(b), lo=f"{lo:g}", hi=f"{hi - 1:g}")
              for b, lo, hi in zip(names[1:-1], cuts[:-1], cuts[1:])]
    parts.append(t("%(band)s %(x)s and above", band=t(names[-1]), x=f"{cuts[-1]:g}"))
    return ", ".join(parts)


def _band_order(t: pd.DataFrame, declared: Sequence[str]) -> tuple[str, ...]:
    """The declared band names when they cover every band shown, else bands by mean score."""
    shown = t.loc[~t["suppressed"], ["band", "score"]].dropna()
    if set(shown["band"]) <= set(declared):
        return tuple(declared)
    return tuple(shown.groupby("band")["score"].mean().sort_values().index.astype(str))


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _env() -> Environment:
    """The templates' environment, made once (Jinja compiles each template once per
    environment)."""
    env = Environment(loader=PackageLoader("instrument.report", "templates"),
                      autoescape=select_autoescape(("html", "xml"), default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _fmt
    return env


def _css() -> str:
    return (Path(__file__).with_name("static") / "report.css").read_text()


def _check_private(text: str, banned: Sequence[str]) -> None:
    low = text.lower()
    for key in FORBIDDEN_KEYS:
        if key in low:
            raise PrivacyError(f"The rendered report contains '{key}'; respondent identifiers "
                               "must never be printed.")
    for v in banned:
        if re.search(r"(?<![\w-])" + re.escape(v) + r"(?![\w-])", text):
            raise PrivacyError("The rendered report contains a respondent identifier value.")


def _id_values(obj: Any, out: set[str]) -> set[str]:
    """Every value stored under a respondent-id key or column (to assert none is printed)."""
    if isinstance(obj, Mapping):
        if obj.get("__frame__") == "records":
            cols = [str(c).lower() for c in obj.get("columns", [])]
            for i, c in enumerate(cols):
                if c in FORBIDDEN_KEYS:
                    out.update(str(r[i]) for r in obj.get("data", []) if r[i] is not None)
        for k, v in obj.items():
            if str(k).lower() in FORBIDDEN_KEYS:
                vals = v if isinstance(v, (list, tuple)) else [v]
                out.update(str(x) for x in vals if x is not None and not isinstance(x, Mapping))
            else:
                _id_values(v, out)
    elif isinstance(obj, pd.DataFrame):
        for c in obj.columns:
            if str(c).lower() in FORBIDDEN_KEYS:
                out.update(str(x) for x in obj[c].dropna())
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            if isinstance(v, (Mapping, pd.DataFrame, list, tuple)):   # scalars hold no key
                _id_values(v, out)
    return out


def provenance(results: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``provenance`` record of the data stage (empty when the results have none)."""
    data = results.get("data")
    p = data.get("provenance") if isinstance(data, Mapping) else None
    return p if isinstance(p, Mapping) else {}


def _provenance_line(p: Mapping[str, Any], t: Translator) -> str:
    if p.get("source") == "simulated":
        return t("Data: simulated from plan %(plan)s (%(file)s), seed %(seed)s.",
                 plan=p.get("plan", "?"), file=p.get("plan_file", "?"), seed=p.get("seed", "?"))
    if p.get("source") == "fielded":
        files = ", ".join(f"{f.get('file')} (SHA-256 {str(f.get('sha256', ''))[:12]})"
                          for f in p.get("files", []))
        return t("Data: fielded files %(files)s; plan %(plan)s.", files=files,
                 plan=p.get("plan", "?"))
    return ""


TITLES = {"technical": "Technical report: validity evidence for the school-family partnership "
                       "instrument",
          "brief": "Policy brief: measuring school-family partnership practice",
          "cards": "School score cards"}
#: Reports rendered in each language by `render_all` (the technical report is English only).
TRANSLATED_KINDS = ("brief", "cards")
#: The order `pipeline_stage` writes the reports in, longest Chromium print first (the cards have
#: a page per school), so the prints that run in the background finish together.
PRINT_ORDER = ("cards", "technical", "brief")
#: The stages whose results the score cards read (`_cards`, the provenance line, the report
#: languages): `pipeline_stage` writes the cards once these are in, before the stages still
#: running in the background have finished.
CARD_INPUTS = ("bank", "data", "scores", "policy")


#: While `pipeline_stage` renders every report of one results mapping: its identifier values, its
#: scrubbed copy, its warnings and its sections (`adapters.read_all`; the renderers only read
#: them), computed once (keyed by the mapping's identity, which is held, and the stage messages).
_PREPARED: dict[tuple, tuple] | None = None


def _number_word(n: Any) -> str:
    """5 -> "five" (the numbers of constructs a bank is likely to have), else the digits."""
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
             "ten", "eleven", "twelve")
    return words[n] if isinstance(n, int) and 0 <= n < len(words) else str(n if n else "")


def report_languages(results: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(languages the brief and the cards can be rendered in, the bank's languages).

    The bank's languages (``results["bank"]["languages"]``, source language first; inferred by
    `adapters.read_bank` when not recorded) that have a report translation (`LANGUAGES`), with
    English, the language of the report text, always available. Results without a bank give
    English only.
    """
    if "results" in results and isinstance(results["results"], Mapping):
        results = results["results"]
    return _languages(READERS["bank"](results) if isinstance(results.get("bank"), Mapping)
                      else None)


def _languages(bank: Section | None) -> tuple[list[str], list[str]]:
    """`report_languages` from the bank's section (None when the results have no bank)."""
    langs = list(bank["languages"]) if bank is not None and bank.available else []
    return ["en", *[x for x in langs if x != "en" and x in LANGUAGES]], langs


def check_language(results: Mapping[str, Any], lang: str) -> None:
    """Raise ValueError (one line) when ``lang`` is not one of `report_languages`."""
    _check_language(report_languages(results), lang)


def _check_language(languages: tuple[list[str], list[str]], lang: str) -> None:
    ok, bank = languages
    if lang not in ok:
        untranslated = [x for x in bank if x not in LANGUAGES]
        raise ValueError(f"lang={lang!r}: the reports of these results can be rendered in "
                         f"{', '.join(ok)} (the bank's languages: "
                         f"{', '.join(bank) if bank else 'not recorded'}"
                         + (f"; no report translation for {', '.join(untranslated)}"
                            if untranslated else "") + ").")


def render_html(results: Mapping[str, Any], kind: str = "technical", *,
                title: str | None = None, label: str | None = None, lang: str = "en") -> str:
    """The HTML text of one report (see `render`)."""
    if kind not in KINDS:
        raise ValueError(f"kind= must be one of {', '.join(repr(k) for k in KINDS)}; got {kind!r}.")
    if lang != "en" and kind not in TRANSLATED_KINDS:
        raise ValueError(f"lang={lang!r}: only {', '.join(TRANSLATED_KINDS)} are translated; "
                         f"the {kind} report is in English (lang='en').")
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping of stage name -> result; got "
                        f"{type(results).__name__}.")
    stages: dict[str, str] = {}
    if "results" in results and isinstance(results["results"], Mapping) and "stages" in results:
        stages = stage_messages(results)
        results = results["results"]
    key = (id(results), tuple(sorted(stages.items())))
    hit = _PREPARED.get(key) if _PREPARED is not None else None
    if hit is not None and hit[0] is results:
        banned, clean, stage_warnings, secs = hit[1:]
    else:
        banned = sorted(_id_values(results, set()))
        clean = scrub(results)
        stage_warnings = {k: collect_warnings(v) for k, v in clean.items() if k in READERS}
        secs = {**read_all(clean, stages), "montecarlo": read_montecarlo(clean)}
        if _PREPARED is not None:
            _PREPARED[key] = (results, banned, clean, stage_warnings, secs)
    _check_language(_languages(secs["bank"]), lang)
    t = Translator(lang)
    fixture = clean.get("_fixture") if isinstance(clean.get("_fixture"), str) else None
    ctx = {"technical": lambda: _technical(secs, stages, clean.get("data")),
           "brief": lambda: _brief(secs, t), "cards": lambda: _cards(secs, t)}[kind]()
    # every warning a result carries, shown beside that stage's tables and listed up front
    ctx["warnings"] = {k: list(v) for k, v in stage_warnings.items()}
    ctx["all_warnings"] = [(k, w) for k, ws in ctx["warnings"].items() for w in ws]
    prov = provenance(clean)
    simulated = prov.get("source") == "simulated"
    bank = clean.get("bank") if isinstance(clean.get("bank"), Mapping) else {}
    if title is None and kind == "technical" and bank.get("name") and bank.get("path") not in (
            None, "", "shipped bank"):   # another bank than the shipped one: its own name
        title = f"Technical report: validity evidence for the {bank['name']}"
    n_cons = secs["bank"].get("n_constructs") if secs["bank"].available else None
    # school sections only where schools were analysed (not when the scores stage stood aside)
    ctx.update({"has_schools": not str(stages.get("scores", "")).startswith("n/a"),
                "n_constructs_word": _number_word(None if n_cons is None else int(n_cons)),
                "title": title or t(TITLES[kind]), "label": label, "fixture": fixture,
                "css": Markup(_css()), "not_available": NOT_AVAILABLE, "kind": kind,
                "lang": lang, "_": t, "simulated": t(SIMULATED_LINE) if simulated else "",
                "provenance": _provenance_line(prov, t)})
    text = _env().get_template(f"{kind}.html").render(**ctx)
    if t.missing:   # left in English, and said
        warnings.warn(f"the {kind} report has no {lang} translation for: "
                      + " | ".join(dict.fromkeys(t.missing)), stacklevel=2)
    # Identifier values are checked as whole tokens when they hold a letter (numeric ids would
    # collide with counts; they are covered by dropping their key or column before rendering).
    _check_private(text, [b for b in banned if len(b) >= 4 and re.search(r"[A-Za-z]", b)])
    return text


SIMULATED_LINE = ("Simulated data: every number here comes from a computer simulation, not from "
                  "real schools.")


def render(results: Mapping[str, Any], kind: str = "technical", out_dir: str | Path = "reports",
           formats: Sequence[str] = FORMATS, *, title: str | None = None,
           label: str | None = None, lang: str = "en") -> list[Path]:
    """Render one report from a results dict and write it to ``out_dir``.

    Parameters
    ----------
    results : mapping
        The ``results`` part of ``results.json`` (stage name -> that stage's ``to_dict()``), or
        the whole payload ``{"stages": [...], "results": {...}}`` (then stages that did not
        complete are listed and named where their section is unavailable). See
        `instrument.report.adapters` for the keys each section reads.
    kind : {"technical", "brief", "cards"}
        The technical report (five sources of validity evidence), the policy brief, or one
        score card per school.
    out_dir : path
        Folder to write to (created if needed); files are ``technical_report``,
        ``policy_brief`` or ``school_cards`` with ``.html`` / ``.pdf``.
    formats : sequence of {"html", "pdf"}
        PDF is printed from the HTML by headless Chromium; raises
        `instrument.report.pdf.PdfUnavailable` (after the HTML is written) when none is found.
    title, label : str, optional
        Document title; a label printed in the header (e.g. "Example rendered from a fixture").
    lang : {"en", "es"}
        Language of the brief and the cards (`TRANSLATED_KINDS`); files in another language than
        English end in ``_<lang>`` (``policy_brief_es.pdf``).

    Returns
    -------
    list of Path
        The files written, HTML first.

    Raises
    ------
    PrivacyError
        If the rendered text would contain a respondent identifier (never expected: identifiers
        are dropped before rendering; this is the last check).
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats= must be a non-empty subset of {FORMATS}; got {tuple(formats)}.")
    text = render_html(results, kind, title=title, label=label, lang=lang)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = FILE_STEMS[kind] + ("" if lang == "en" else f"_{lang}")
    html_path = out / f"{stem}.html"
    html_path.write_text(text, encoding="utf-8")
    written = [html_path] if "html" in formats else []
    if "pdf" in formats:
        written.append(html_to_pdf(html_path, out / f"{stem}.pdf"))
        if "html" not in formats:
            html_path.unlink()
    return written


def render_all(results: Mapping[str, Any], out_dir: str | Path = "reports",
               formats: Sequence[str] = FORMATS, **kw: Any) -> dict[str, list[Path]]:
    """`render` every kind into ``out_dir`` (the brief and the cards in every language of
    `report_languages`); returns kind -> files written."""
    langs = report_languages(results)[0]
    return {k: [p for lang in (langs if k in TRANSLATED_KINDS else ("en",))
                for p in render(results, k, out_dir, formats, lang=lang, **kw)] for k in KINDS}


def pipeline_stage(ctx: Mapping[str, Any]) -> dict:
    """The ``reports`` stage of `instrument.pipeline.validate`: every report from the results.

    Converts each stage's result in ``ctx["results"]`` once with
    `instrument.results.to_jsonable` (so stage outputs may be result objects or dicts), renders
    the three kinds into ``ctx["out_dir"] / "reports"``, with PDFs when Chromium is found, and
    returns ``{"files": [...], "pdf": bool, "pdf_files": int,
    "note": str}`` (files relative to the output folder; ``pdf`` is True when every PDF was
    made, ``note`` says why one was not).

    The stage records (each stage's status, so that a section whose stage failed names the
    failure) come from ``ctx["stage_records"]``, which `validate` passes: ``stage_records(needs)``
    returns them once the stages of ``needs`` still running in the background have finished
    (every stage, and ``results.json`` written, when ``needs`` is None). The score cards read
    only the `CARD_INPUTS` stages, so they are written and sent to the printer first, and the
    other reports after every stage has finished. Without ``stage_records`` there are no
    records.
    """
    from instrument.report.pdf import INSTALL_HINT, PdfUnavailable, Printer, find_chromium
    from instrument.results import to_jsonable

    out_dir = Path(ctx.get("out_dir", "."))
    records = ctx.get("stage_records") or (lambda needs=None: [])

    converted: dict[str, Any] = {}      # each stage's result, converted once

    def snapshot(stages: list) -> tuple[dict, Mapping[str, Any]]:
        results = {}
        for k, v in dict(ctx.get("results", {})).items():
            if k != "reports":
                if k not in converted:
                    converted[k] = to_jsonable(v)
                results[k] = converted[k]
        return results, ({"results": results, "stages": stages} if stages else results)

    stages = records(CARD_INPUTS)
    results, payload = snapshot(stages)
    out = out_dir / "reports"
    pdf = find_chromium() is not None
    notes = [] if pdf else ["No PDF: " + INSTALL_HINT]
    langs = report_languages(results)[0]
    # the brief and the cards report school scores: where the scores stage stood aside (no
    # schools in the data) only the technical report
    aside = {s.get("name") for s in stages if isinstance(s, Mapping) and s.get("status") == "n/a"}
    kinds = [k for k in KINDS if k == "technical" or "scores" not in aside]
    docs = [(kind, lang) for kind in kinds
            for lang in (langs if kind in TRANSLATED_KINDS else ("en",))]
    htmls: dict[tuple[str, str], Path] = {}
    prints: dict[tuple[str, str], Any] = {}
    complete: list | None = None    # every stage's record, once asked for
    global _PREPARED
    _PREPARED = {}
    try:
        # Chromium prints each HTML file in the background (two at once) while the next one is
        # written; the longest prints (the cards, a page per school) are started first
        with Printer() if pdf else contextlib.nullcontext() as printer:
            for doc in sorted(docs, key=lambda d: PRINT_ORDER.index(d[0])):
                kind, lang = doc
                if complete is None and kind != "cards":
                    complete = records(None)
                    if complete != stages:      # stages recorded since: the results grew
                        _, payload = snapshot(complete)
                htmls[doc] = render(payload, kind, out, ("html",), lang=lang)[0]
                if printer is not None:
                    prints[doc] = printer.submit(htmls[doc], htmls[doc].with_suffix(".pdf"))
            if complete is None:
                records(None)
    finally:
        _PREPARED = None
    written: list[Path] = []
    for doc in docs:
        written.append(htmls[doc])
        if doc in prints:
            try:
                written.append(prints[doc].result())
            except PdfUnavailable as exc:
                notes.append(f"No PDF of {htmls[doc].stem}: {exc}")
    base = out_dir.resolve()
    made = [p for p in written if p.suffix == ".pdf"]
    return {"files": [p.resolve().relative_to(base).as_posix() for p in written],
            "pdf": pdf and not notes, "pdf_files": len(made), "note": " ".join(notes)}


def load_results(path: str | Path) -> Mapping[str, Any]:
    """Read a ``results.json`` (whole payload or bare results) with a clear error when broken."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        results = data.get("results", data) if isinstance(data, Mapping) else None
        if not isinstance(results, Mapping) or not set(results) & set(READERS):
            raise ValueError(f"{p}: not a results file: expected a JSON object with the results "
                             f"of at least one stage ({', '.join(READERS)}), as `instrument "
                             "validate` writes to results.json.")
        return data
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: no such results file.") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: line {exc.lineno}, column {exc.colno}: not valid JSON "
                         f"({exc.msg}); expected the results.json written by "
                         "`instrument validate`.") from None
