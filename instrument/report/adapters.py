"""Adapters: the one place where the report reads keys of the results dict.

Reports are rendered from the ``results`` part of ``results.json`` alone (a mapping stage name ->
that stage's ``to_dict()`` output, see `instrument.pipeline.validate`). Each section of a report has
one small ``read_*`` function here that turns its stage's output into a `Section`: plain DataFrames
and numbers in a fixed shape. When the key is missing (the stage did not run, failed, or its
output lacks what the section needs) the section is marked unavailable with the reason, and the
templates print "not available in this run"; no number is ever made up. When a stage's real output
changes shape, only its reader below needs to change.

Frames may be given in any of these encodings (`as_frame`): a DataFrame, the
``{"__frame__": "records", "columns": [...], "data": [[...]]}`` encoding of
`instrument.results.to_jsonable`, a list of records (dicts), or a dict holding one of those under
``"table"``. "Per form" means either one result or a mapping label -> result (e.g.
``{"teacher": ..., "family": ...}``).

Keys read, by section
---------------------
``results["bank"]`` (test content; response processes)
    ``items``: frame with ``item_id``, ``construct``, ``form``, ``finding``, ``translation_status``
    and optionally ``text_en``, ``text_es``, ``reverse``, ``scale``, ``translation_notes``.
    ``constructs`` (optional): frame ``construct``, ``label_en`` (and ``label_<lang>`` per
    translation), ``description``; ``overall`` (optional): ``{"label": {lang: ...},
    "constructs": [...]}``, the bank's overall score. The section holds each language's construct
    labels (``labels``) and overall-score label (``overall_label``), read once.
    ``cognitive_interviews`` (optional): frame ``item_id``, ``round``, ``note`` (and ``form``).
    ``scales`` (optional): ``{scale id: {"codes": [...], "labels": {language: [...]}}}``, the
    response scales the items' ``scale`` column names (category legends use these labels).
    The blueprint (items per construct x finding, per form) and the translation status counts are
    counted from ``items``.
``results["item_analysis"]`` (response processes)
    ``items`` (optional): frame ``form``, ``item_id``, ``construct``, ``n``, ``mean``, ``sd``,
    ``missing`` (share), ``citc`` (corrected item-total correlation).
    ``category_use``: frame ``form``, ``item_id``, ``category`` (code), ``label`` (optional),
    ``share`` (proportion of answers in that category).
    Both may carry a ``group`` column (``"(all)"`` and one row set per language); the report
    shows the ``"(all)"`` rows.
``results["efa"]`` (internal structure), per form
    ``{"n", "n_factors_theory", "parallel": ParallelResult.to_dict(), "efa": EFAResult.to_dict()}``:
    ``parallel.values`` frame ``factor observed sim.mean sim.quantile`` (Horn's parallel analysis,
    ``n_factors``, ``n_iter``, ``quant``); ``efa.loadings`` frame ``item MR1 ... MRk`` (pattern
    matrix), ``efa.phi`` (factor correlations), ``efa.method``, ``efa.rotation``,
    ``efa.communalities``.
``results["cfa"]`` (internal structure), per form
    a CFAResult ``to_dict()``: ``fit_measures`` (dict with lavaan's ``fitMeasures()`` names:
    ``chisq``, ``df``, ``pvalue``, ``cfi``, ``tli``, ``rmsea``, ``rmsea.ci.lower``,
    ``rmsea.ci.upper``, ``srmr``, scaled/robust variants ``chisq.scaled``, ``cfi.robust``,
    ``rmsea.robust``, ...; ``ntotal``), ``estimates`` (frame with ``lhs op rhs est se std.all``;
    the ``=~`` rows are the loadings), optionally ``estimator`` or ``meta.options.estimator``.
``results["reliability"]`` (internal structure), per form or one frame with a ``form`` column
    (directly or under ``"table"``): frame with ``construct``, ``alpha``, ``alpha.ci.lower``,
    ``alpha.ci.upper``, ``omega`` and optionally ``language`` (``"all"`` or a language code;
    omega is given for ``"all"``, from the CFA), ``alpha.ordinal``, ``n``, ``n_items``.
``results["invariance"]`` (internal structure), per ladder (keys like ``"family by language"``)
    an InvarianceResult ``to_dict()``: ``table`` with one row per step: ``step``, ``chisq``,
    ``df``, ``cfi``, ``rmsea``, ``srmr``, ``cfi.delta``, ``rmsea.delta``, ``srmr.delta`` (or
    ``delta_cfi``, ``delta_rmsea``, ``delta_srmr``), ``verdict``, optionally ``rule`` and
    ``holds``; ``group_labels``, ``estimator``, ``rule_set`` (optional); ``releases``
    (optional): frame ``round step parameter X2 pvalue``, the constraints freed for partial
    invariance.
``results["multilevel"]`` (internal structure)
    ``icc``: frame ``form``, ``construct``, ``icc1``, ``icc2`` and optionally ``k`` (mean
    respondents per school); ``min_k`` (optional): frame ``form``, ``construct``, ``target``
    (reliability of the school mean), ``k`` (minimum respondents), optionally ``source``;
    ``curve`` (optional): frame ``form``, ``construct``, ``k``, ``reliability``. Without
    ``curve`` the figure draws the Spearman-Brown curve k ICC1 / (1 + (k - 1) ICC1) from ``icc1``.
``results["scores"]`` (consequences; brief; score cards)
    the school scores long table of DATA_CONTRACT.md (``school_id``, ``district_id``, ``form``,
    ``construct``, ``n``, ``response_rate``, ``mean``, ``se``, ``reliability``, ``score``,
    ``band``, ``suppressed``, ``suppression_reason``), as a frame or under ``"scores"``/
    ``"table"``; optionally ``school_name`` and ``bands`` (ordered band names) beside it.
    Suppressed rows have their ``mean``, ``se``, ``score``, ``band`` blanked here, whatever
    the input says.
``results["linker"]`` (relations to other variables)
    one LinkResult ``to_dict()`` or lists / mappings of them, up to two levels deep (e.g.
    ``{"results": [...]}`` or ``{"teacher": {"chronic_absence": ...}}``); each has
    ``outcome``, ``construct``, ``form``, ``change``, ``se_type``, ``nobs``, ``n_clusters``,
    ``coefficients`` (frame ``term est se t df pvalue ci.lower ci.upper``; the score's term is
    ``"score"``), ``effects`` (frame ``predictor b sd b_per_sd beta_std p10 p90 contrast_pp
    ci.lower_pp ci.upper_pp``; predictors ``score`` and ``poverty``).
``results["policy"]`` (district and state; brief)
    ``rollup_district`` / ``rollup_state``: frames ``unit form construct n_schools n_respondents
    score se ci.lower ci.upper sd_schools suppressed suppression_reason``; ``accuracy``: frame
    ``form construct accuracy misclassified consistency n_schools``; ``convergence``: frame
    ``construct n_schools r ci.lower ci.upper rel_a rel_b r_corrected`` (teacher vs family school
    scores); ``variance_components``: per form ``{tau_district, tau_school, sigma2,
    icc_district, icc_school, n_districts, n_schools, n, mean_schools, mean_respondents}``;
    ``construct``: the construct of the district figures and the variance components
    (``"overall"`` when absent). Suppressed rollup rows have ``score``, ``se`` and the interval blanked here.
``results["classification"]`` or ``results["policy"]["classification"]`` (consequences)
    a ClassificationAccuracy ``to_dict()``: ``overall`` (``accuracy``, ``consistency``,
    ``n_schools``), ``by_band`` frame.

Respondent identifiers never reach a section: `scrub` removes every ``respondent_id`` key and
column from the whole results dict before any reader runs.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from instrument.results import from_jsonable

NOT_AVAILABLE = "not available in this run"
FORBIDDEN_KEYS = frozenset({"respondent_id"})


@dataclass(frozen=True)
class Section:
    """What one report section needs, read from the results (or why it is unavailable)."""

    key: str
    available: bool
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, k: str) -> Any:
        return self.data[k]

    def get(self, k: str, default: Any = None) -> Any:
        return self.data.get(k, default)


def _unavailable(key: str, why: str = "") -> Section:
    return Section(key, False, NOT_AVAILABLE + (f" ({why})" if why else ""))


# --------------------------------------------------------------------------------------------
# Generic readers
# --------------------------------------------------------------------------------------------
def scrub(obj: Any) -> Any:
    """Copy of ``obj`` with every respondent identifier key or column removed (recursively)."""
    if isinstance(obj, pd.DataFrame):
        drop = [c for c in obj.columns if str(c).lower() in FORBIDDEN_KEYS]
        return obj.drop(columns=drop)
    if isinstance(obj, Mapping):
        if obj.get("__frame__") == "records":
            cols = list(obj.get("columns", []))
            keep = [i for i, c in enumerate(cols) if str(c).lower() not in FORBIDDEN_KEYS]
            return {"__frame__": "records", "columns": [cols[i] for i in keep],
                    "data": [[row[i] for i in keep] for row in obj.get("data", [])]}
        return {k: scrub(v) for k, v in obj.items() if str(k).lower() not in FORBIDDEN_KEYS}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    return obj


def as_frame(obj: Any) -> pd.DataFrame | None:
    """A DataFrame from any of the accepted encodings, or None."""
    if obj is None:
        return None
    if isinstance(obj, pd.DataFrame):
        return obj.copy()
    if isinstance(obj, Mapping):
        if obj.get("__frame__") == "records":
            return from_jsonable(obj)
        if "table" in obj:
            return as_frame(obj["table"])
        return None
    if isinstance(obj, list) and all(isinstance(r, Mapping) for r in obj):
        return pd.DataFrame(list(obj))
    return None


def per_label(obj: Any, is_one: Callable[[Mapping], bool]) -> dict[str, Any]:
    """``{label: result}`` from one result (label "") or a mapping label -> result."""
    if not isinstance(obj, Mapping):
        return {}
    if is_one(obj):
        return {"": obj}
    return {str(k): v for k, v in obj.items() if isinstance(v, Mapping) and is_one(v)}


def frame_per_label(obj: Any, label: str = "form") -> pd.DataFrame | None:
    """One frame from a frame, or from a mapping label -> frame (adding a ``label`` column)."""
    f = as_frame(obj)
    if f is not None:
        return f
    if isinstance(obj, Mapping):
        parts = []
        for k, v in obj.items():
            g = as_frame(v)
            if g is not None:
                if label not in g.columns:
                    g.insert(0, label, str(k))
                parts.append(g)
        if parts:
            return pd.concat(parts, ignore_index=True)
    return None


def _has(f: pd.DataFrame | None, cols: tuple[str, ...]) -> list[str]:
    if f is None:
        return list(cols)
    return [c for c in cols if c not in f.columns]


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return math.nan
    return f


# --------------------------------------------------------------------------------------------
# Section readers (one per section; adapt here when a stage's output changes shape)
# --------------------------------------------------------------------------------------------
def read_bank(results: Mapping[str, Any]) -> Section:
    """Test content: items, blueprint counts, translation status; cognitive-interview notes."""
    b = results.get("bank")
    if not isinstance(b, Mapping):
        return _unavailable("bank")
    items = as_frame(b.get("items"))
    miss = _has(items, ("item_id", "construct", "form", "finding", "translation_status"))
    if items is None or miss:
        return _unavailable("bank", f"bank items lack {', '.join(miss)}")
    forms = [str(f) for f in dict.fromkeys(items["form"])]
    languages = [str(x) for x in (b.get("languages")
                                  or [c[5:] for c in items.columns if c.startswith("text_")])]
    if not languages:   # results without the bank's languages: translation records imply two
        translated = items["translation_status"].fillna("").astype(str).str.len().gt(0).any()
        languages = ["en", "es"] if translated else ["en"]
    has_findings = bool(items["finding"].notna().any())
    keys = ["construct", "finding"] if has_findings else ["construct"]
    blueprint = (items.groupby([*keys, "form"], sort=False).size()
                 .unstack("form", fill_value=0).reindex(columns=forms, fill_value=0)
                 .reset_index())
    blueprint.columns.name = None
    corder = {c: i for i, c in enumerate(dict.fromkeys(items["construct"]))}
    forder = {c: i for i, c in enumerate(dict.fromkeys(items["finding"]))}
    blueprint = blueprint.sort_values(keys, key=lambda s: s.map(
        corder if s.name == "construct" else forder)).reset_index(drop=True)
    blueprint["total"] = blueprint[forms].sum(axis=1)
    translation = None
    if len(languages) > 1:   # a translation table only where the bank has a translation
        translation = (items.groupby(["form", "translation_status"]).size()
                       .unstack("translation_status", fill_value=0).reset_index())
        translation.columns.name = None
        order = [s for s in ("draft", "reviewed", "back-translated") if s in translation.columns]
        translation = translation[["form", *order, *[c for c in translation.columns
                                                     if c not in ("form", *order)]]]
    notes_col = ("translation_notes" if "translation_notes" in items.columns
                 and translation is not None else None)
    tnotes = (items.loc[items[notes_col].fillna("").astype(str).str.len() > 0,
                        ["item_id", "translation_status", notes_col]]
              .rename(columns={notes_col: "reviewer notes"}) if notes_col else None)
    cog = as_frame(b.get("cognitive_interviews"))
    if cog is not None and _has(cog, ("item_id", "note")):
        cog = None
    scales = {}
    for sid, sc in (b.get("scales") or {}).items() if isinstance(b.get("scales"), Mapping) else ():
        if isinstance(sc, Mapping) and isinstance(sc.get("labels"), Mapping):
            scales[str(sid)] = {"codes": [int(c) for c in sc.get("codes") or []],
                                "labels": {str(k): [str(x) for x in v]
                                           for k, v in sc["labels"].items()}}
    constructs = as_frame(b.get("constructs"))
    overall = b.get("overall") if isinstance(b.get("overall"), Mapping) else None
    return Section("bank", True, data={
        "items": items, "blueprint": blueprint, "scales": scales, "forms": forms, "translation": translation,
        "translation_notes": tnotes, "cognitive": cog,
        "constructs": constructs, "languages": languages,
        "labels": {lang: _construct_labels(constructs, lang)
                   for lang in dict.fromkeys(["en", *languages])},
        "overall_label": _overall_labels(overall, ["en", *languages]),
        "name": str(b.get("name") or ""), "has_findings": has_findings,
        "overall": overall,
        "shipped": str(b.get("path") or "shipped bank") == "shipped bank",
        "n_items": len(items), "n_constructs": items["construct"].nunique(),
        "n_findings": items["finding"].nunique()})


def _construct_labels(constructs: pd.DataFrame | None, lang: str) -> dict[str, str]:
    """Construct id -> its label in ``lang`` (``label_<lang>``; ``label_en`` when the bank has
    no translation of it)."""
    out: dict[str, str] = {}
    for r in constructs.to_dict("records") if constructs is not None else ():
        label = r.get(f"label_{lang}") or r.get("label_en")
        if label and label == label:
            out[str(r["construct"])] = str(label)
    return out


def _overall_labels(overall: Mapping[str, Any] | None, langs: list[str]) -> dict[str, str]:
    """Language -> the label of the bank's overall score (its first label when the bank has
    none in that language); empty when the bank declares no overall score."""
    labels = overall.get("label") if overall else None
    if not isinstance(labels, Mapping) or not labels:
        return {}
    first = str(next(iter(labels.values())))
    return {lang: str(labels.get(lang) or first) for lang in dict.fromkeys(langs)}


def read_item_analysis(results: Mapping[str, Any]) -> Section:
    """Response processes: item statistics and category use."""
    ia = results.get("item_analysis")
    if not isinstance(ia, Mapping):
        return _unavailable("item_analysis")
    cu = frame_per_label(ia.get("category_use"))
    if cu is not None and _has(cu, ("item_id", "category", "share")):
        cu = None
    stats = frame_per_label(ia.get("items"))
    if cu is None and stats is None:
        return _unavailable("item_analysis", "no item statistics or category use in the results")
    cu, stats = _overall_group(cu), _overall_group(stats)
    if cu is not None and "form" not in cu.columns:
        cu.insert(0, "form", "")
    rules = [r for r in ia.get("rules") or [] if isinstance(r, Mapping) and "key" in r]
    return Section("item_analysis", True, data={"category_use": cu, "items": stats,
                                                "rules": rules})


def _overall_group(f: pd.DataFrame | None) -> pd.DataFrame | None:
    """Rows of the whole sample when a frame is also split by ``group`` (e.g. language)."""
    if f is None or "group" not in f.columns:
        return f
    keep = f[f["group"].astype(str) == "(all)"]
    if not len(keep):
        return f
    return keep.drop(columns="group").reset_index(drop=True)


def _is_efa(d: Mapping) -> bool:
    return isinstance(d.get("efa"), Mapping) or isinstance(d.get("parallel"), Mapping)


def read_efa(results: Mapping[str, Any]) -> Section:
    """Internal structure: parallel analysis and the EFA pattern matrix per form."""
    forms = per_label(results.get("efa"), _is_efa)
    out = {}
    for label, d in forms.items():
        pa = d.get("parallel") if isinstance(d.get("parallel"), Mapping) else {}
        ef = d.get("efa") if isinstance(d.get("efa"), Mapping) else {}
        values = as_frame(pa.get("values"))
        if values is not None and _has(values, ("factor", "observed")):
            values = None
        load = as_frame(ef.get("loadings"))
        if load is not None and "item" not in load.columns:
            load = None
        if values is None and load is None:
            continue
        out[label or "model"] = {
            "n": d.get("n"), "n_complete": d.get("n_complete"), "cor": d.get("cor"),
            "missing": d.get("missing"), "n_factors_theory": d.get("n_factors_theory"),
            "parallel": values, "pa_n_factors": pa.get("n_factors"), "n_iter": pa.get("n_iter"),
            "quant": pa.get("quant"), "loadings": load, "phi": as_frame(ef.get("phi")),
            "method": str(ef.get("method") or ""), "rotation": str(ef.get("rotation") or ""),
            "n_factors": ef.get("n_factors"),
            "communalities": ef.get("communalities") if isinstance(ef.get("communalities"),
                                                                   Mapping) else {}}
    if not out:
        return _unavailable("efa")
    return Section("efa", True, data={"forms": out})


def _is_fit(d: Mapping) -> bool:
    return "fit_measures" in d


def _estimator(d: Mapping) -> str:
    e = d.get("estimator") or (d.get("meta") or {}).get("options", {}).get("estimator")
    return str(e) if e else ""


def read_cfa(results: Mapping[str, Any]) -> Section:
    """Internal structure: fit measures and standardised loadings per form."""
    fits = per_label(results.get("cfa"), _is_fit)
    if not fits:
        return _unavailable("cfa")
    out = {}
    for label, d in fits.items():
        est = as_frame(d.get("estimates"))
        if est is not None and not _has(est, ("lhs", "op", "rhs", "est")):
            load = est[est["op"] == "=~"].copy()
        else:
            load = None
        out[label or "model"] = {"fit_measures": {k: _num(v) for k, v in
                                                  (d.get("fit_measures") or {}).items()},
                                 "estimates": est, "loadings": load, "estimator": _estimator(d),
                                 "converged": d.get("converged"),
                                 "dropped": _num((d.get("meta") or {}).get("options", {})
                                                 .get("nobs_dropped_listwise")),
                                 "missing_data": d.get("missing_data")
                                 if isinstance(d.get("missing_data"), Mapping) else None}
    return Section("cfa", True, data={"fits": out})


def read_reliability(results: Mapping[str, Any]) -> Section:
    """Internal structure: alpha with CI and omega per construct."""
    f = frame_per_label(results.get("reliability"))
    miss = _has(f, ("construct",))
    if f is None or miss or not ({"alpha", "omega"} & set(f.columns)):
        return _unavailable("reliability")
    return Section("reliability", True, data={"table": f})


_DELTA_ALIASES = {"delta_cfi": "cfi.delta", "delta_rmsea": "rmsea.delta",
                  "delta_srmr": "srmr.delta", "delta_tli": "tli.delta"}


def read_invariance(results: Mapping[str, Any]) -> Section:
    """Internal structure: the invariance ladder per form (Δ-fit and verdict per step)."""
    ladders = per_label(results.get("invariance"), lambda d: "table" in d)
    out = {}
    for label, d in ladders.items():
        t = as_frame(d.get("table"))
        if t is None or _has(t, ("step",)):
            continue
        t = t.rename(columns=_DELTA_ALIASES)
        rel = as_frame(d.get("releases"))
        truth = d.get("truth") if isinstance(d.get("truth"), Mapping) else None
        out[label or "model"] = {"table": t, "estimator": str(d.get("estimator") or ""),
                                 "releases": rel if rel is not None and len(rel) else None,
                                 "truth": None if truth is None else {
                                     "parameters": as_frame(truth.get("parameters")),
                                     "counts": truth.get("counts") or {}},
                                 "rule_set": str(d.get("rule_set") or ""),
                                 "groups": [str(g) for g in d.get("group_labels") or []],
                                 "group_names": dict(d.get("group_names") or {})}
    if not out:
        return _unavailable("invariance")
    return Section("invariance", True, data={"ladders": out})


def read_multilevel(results: Mapping[str, Any]) -> Section:
    """Internal structure: ICC(1), ICC(2) and the minimum respondents per school."""
    m = results.get("multilevel")
    if not isinstance(m, Mapping):
        return _unavailable("multilevel")
    icc = frame_per_label(m.get("icc"))
    if icc is None or _has(icc, ("construct", "icc1")):
        return _unavailable("multilevel", "no ICC table in the results")
    if "form" not in icc.columns:
        icc.insert(0, "form", "")
    min_k = frame_per_label(m.get("min_k"))
    if min_k is not None and _has(min_k, ("construct", "target", "k")):
        min_k = None
    curve = frame_per_label(m.get("curve"))
    if curve is not None and _has(curve, ("construct", "k", "reliability")):
        curve = None
    return Section("multilevel", True, data={"icc": icc, "min_k": min_k, "curve": curve})


SCORE_COLUMNS = ("school_id", "district_id", "form", "construct", "n", "response_rate", "mean",
                 "se", "reliability", "score", "band", "suppressed", "suppression_reason")
DEFAULT_BANDS = ("Very Weak", "Weak", "Neutral", "Strong", "Very Strong")


def read_scores(results: Mapping[str, Any]) -> Section:
    """School scores (DATA_CONTRACT long table), suppressed rows blanked."""
    s = results.get("scores")
    f = as_frame(s)
    if f is None and isinstance(s, Mapping):
        f = as_frame(s.get("scores"))
    miss = _has(f, ("school_id", "form", "construct", "n", "score", "band", "suppressed"))
    if f is None or miss:
        return _unavailable("scores", f"school scores lack {', '.join(miss)}" if f is not None
                            else "")
    for c in SCORE_COLUMNS:
        if c not in f.columns:
            f[c] = "" if c in ("suppression_reason", "district_id") else np.nan
    f["suppressed"] = f["suppressed"].map(lambda v: bool(v) if v is not None and v == v else True)
    for c in ("mean", "se", "score", "reliability", "score_se", "ci.lower", "ci.upper",
              "band_probability"):
        if c in f.columns:
            f[c] = pd.to_numeric(f[c], errors="coerce").astype(float)
            f.loc[f["suppressed"], c] = np.nan
    f["band"] = f["band"].astype(object)
    f.loc[f["suppressed"], "band"] = None
    f["suppression_reason"] = f["suppression_reason"].fillna("").astype(str)
    bands = tuple(s.get("bands")) if isinstance(s, Mapping) and s.get("bands") else DEFAULT_BANDS
    return Section("scores", True, data={"table": f, "bands": bands})


def _is_link(d: Mapping) -> bool:
    return "effects" in d and "coefficients" in d


def _collect_links(obj: Any, depth: int = 0) -> list[Mapping]:
    """LinkResult dicts found in one result, a list, or mappings of them (two levels deep)."""
    if isinstance(obj, Mapping):
        if _is_link(obj):
            return [obj]
        vals = list(obj.values())
    elif isinstance(obj, list):
        vals = obj
    else:
        return []
    if depth >= 2:
        return []
    return [d for v in vals for d in _collect_links(v, depth + 1)]


def read_linker(results: Mapping[str, Any]) -> Section:
    """Relations to other variables: score coefficients and P10->P90 contrasts per outcome."""
    links = _collect_links(results.get("linker"))
    rows, effects = [], []
    several_forms = len({d.get("form", "") for d in links}) > 1
    for d in links:
        coef = as_frame(d["coefficients"])
        eff = as_frame(d["effects"])
        if coef is None or eff is None or _has(coef, ("term", "est", "ci.lower", "ci.upper")):
            continue
        sc = coef[coef["term"] == "score"]
        if not len(sc):
            continue
        sc = sc.iloc[0]
        label = (str(d.get("outcome", "")) + (" (change)" if d.get("change") else "")
                 + (f", {d.get('form', '')} form" if several_forms else ""))
        sd = _num(eff.loc[eff["predictor"] == "score", "sd"].iloc[0]) if (
            "sd" in eff.columns and (eff["predictor"] == "score").any()) else math.nan
        rows.append({"outcome": label, "form": d.get("form", ""),
                     "construct": d.get("construct", ""),
                     "est": _num(sc["est"]), "se": _num(sc.get("se")), "df": _num(sc.get("df")),
                     "pvalue": _num(sc.get("pvalue")), "ci.lower": _num(sc["ci.lower"]),
                     "ci.upper": _num(sc["ci.upper"]), "sd": sd,
                     "nobs": d.get("nobs"), "n_clusters": d.get("n_clusters"),
                     "controls": ", ".join(
                         "prior value of the outcome" if str(x) == f"{d.get('outcome')}_prior"
                         else str(x) for x in (d.get("controls") or (d.get("meta") or {})
                                               .get("options", {}).get("controls") or [])),
                     "se_type": d.get("se_type", "")})
        if not _has(eff, ("predictor", "contrast_pp", "ci.lower_pp", "ci.upper_pp")):
            e = eff[["predictor", *[c for c in ("p10", "p90", "contrast_pp", "ci.lower_pp",
                                                "ci.upper_pp") if c in eff.columns]]].copy()
            e.insert(0, "outcome", label)
            e["form"] = str(d.get("form", ""))
            e["outcome_name"] = str(d.get("outcome", ""))
            e["change"] = bool(d.get("change"))
            effects.append(e)
    if not rows:
        return _unavailable("linker")
    return Section("linker", True, data={
        "coefficients": pd.DataFrame(rows),
        "effects": pd.concat(effects, ignore_index=True) if effects else None})


ROLLUP_COLUMNS = ("unit", "form", "construct", "n_schools", "score", "se", "ci.lower",
                  "ci.upper", "suppressed")


def _rollup(obj: Any) -> pd.DataFrame | None:
    f = as_frame(obj)
    if f is None or _has(f, ROLLUP_COLUMNS):
        return None
    f["suppressed"] = f["suppressed"].map(lambda v: bool(v) if v is not None and v == v else True)
    for c in ("score", "se", "ci.lower", "ci.upper", "sd_schools"):
        if c in f.columns:
            f[c] = pd.to_numeric(f[c], errors="coerce").astype(float)
            f.loc[f["suppressed"], c] = np.nan
    if "suppression_reason" not in f.columns:
        f["suppression_reason"] = ""
    f["suppression_reason"] = f["suppression_reason"].fillna("").astype(str)
    return f


def read_policy(results: Mapping[str, Any]) -> Section:
    """District and state: rollups with intervals, 3-level variance, convergence, accuracy."""
    p = results.get("policy")
    if not isinstance(p, Mapping):
        return _unavailable("policy")
    district, state = _rollup(p.get("rollup_district")), _rollup(p.get("rollup_state"))
    acc = as_frame(p.get("accuracy"))
    if acc is not None and _has(acc, ("construct", "accuracy")):
        acc = None
    conv = as_frame(p.get("convergence"))
    if conv is not None and _has(conv, ("construct", "r")):
        conv = None
    vc = p.get("variance_components")
    vc_rows = []
    if isinstance(vc, Mapping):
        comps = per_label(vc, lambda d: "tau_school" in d and "sigma2" in d)
        for form, d in comps.items():
            vc_rows.append({"form": form, **{k: d.get(k) for k in (
                "value", "n_districts", "n_schools", "n", "tau_district", "tau_school", "sigma2",
                "icc_district", "icc_school", "mean_schools", "mean_respondents")}})
    vcf = pd.DataFrame(vc_rows) if vc_rows else None
    if all(x is None for x in (district, state, acc, conv, vcf)):
        return _unavailable("policy", "no district or state results in the policy output")
    return Section("policy", True, data={"district": district, "state": state, "accuracy": acc,
                                         "convergence": conv, "variance": vcf,
                                         "construct": str(p.get("construct") or "overall")})


def read_classification(results: Mapping[str, Any]) -> Section:
    """Consequences: expected accuracy and consistency of the reporting bands."""
    c = results.get("classification")
    if c is None and isinstance(results.get("policy"), Mapping):
        c = results["policy"].get("classification")
    if not isinstance(c, Mapping) or not isinstance(c.get("overall"), Mapping):
        return _unavailable("classification")
    return Section("classification", True, data={
        "overall": {k: _num(v) for k, v in c["overall"].items()},
        "by_band": as_frame(c.get("by_band"))})


def stage_messages(payload: Mapping[str, Any]) -> dict[str, str]:
    """Stage name -> status message from a full ``results.json`` payload's ``stages`` list."""
    out = {}
    for s in payload.get("stages", []) or []:
        # a stage that finished with warnings is complete: its warnings are shown beside its
        # tables (`instrument.results.collect_warnings`), not as a stage that did not complete
        if isinstance(s, Mapping) and s.get("status") not in ("ok", "warning"):
            msg = f"{s.get('status')}: {s.get('message', '')}".strip(": ")
            out[str(s.get("name"))] = re.sub("respondent_id", "[identifier removed]", msg,
                                             flags=re.IGNORECASE)
    return out


def read_irt(results: Mapping[str, Any]) -> Section:
    """Graded-model item table and short form (`instrument.irt.shortform` result)."""
    r = results.get("irt")
    if not isinstance(r, Mapping) or "items" not in r:
        return _unavailable("irt")
    return Section("irt", True, data={"form": r.get("form"), "k": r.get("k"),
                                      "items": as_frame(r["items"]),
                                      "constructs": as_frame(r["constructs"]),
                                      "ld_pairs": as_frame(r.get("ld_pairs")),
                                      "ladder": _ladder(r.get("ladder")),
                                      "rules": r.get("rules", {})})


def _ladder(d: Any) -> dict:
    """The short form's invariance ladder: ``{"table": frame, ...}`` or ``{"not_tested": why}``."""
    if not isinstance(d, Mapping):
        return {}
    out = dict(d)
    if "table" in d:
        out["table"] = as_frame(d["table"])
    return out


def _cfa_item_releases(results: Mapping[str, Any], form: str, group: str) -> pd.DataFrame | None:
    """Per item, the constraints the CFA invariance search released for ``form`` by ``group``:
    ``item cfa_released cfa_dmacs`` (None when that ladder is not in the results)."""
    inv = results.get("invariance")
    d = inv.get(f"{form} by {group}") if isinstance(inv, Mapping) else None
    if not isinstance(d, Mapping) or "table" not in d:
        return None
    rel = as_frame(d.get("releases"))
    if rel is None or not len(rel) or _has(rel, ("item", "step")):
        return pd.DataFrame(columns=["item", "cfa_released", "cfa_dmacs"])
    rows = []
    for item, g in rel.groupby("item", sort=False):
        dm = pd.to_numeric(g["dmacs"], errors="coerce") if "dmacs" in g.columns else pd.Series()
        rows.append({"item": str(item), "cfa_released": ", ".join(dict.fromkeys(map(str, g["step"]))),
                     "cfa_dmacs": float(dm.max()) if dm.notna().any() else np.nan})
    return pd.DataFrame(rows)


def read_irt_dif(results: Mapping[str, Any]) -> Section:
    """Item-level DIF by language (`instrument.pipeline.stage_irt_dif`) with the CFA invariance
    releases of the same form and grouping beside each item."""
    r = results.get("irt_dif")
    if not isinstance(r, Mapping) or not isinstance(r.get("forms"), Mapping):
        return _unavailable("irt_dif")
    group = str(r.get("group") or "language")
    forms = {}
    for form, d in r["forms"].items():
        t = as_frame(d.get("table")) if isinstance(d, Mapping) else None
        if t is None or _has(t, ("construct", "item", "olr_p13")):
            continue
        forms[str(form)] = {"reference": str(d.get("reference", "")),
                            "focal": str(d.get("focal", "")), "n": d.get("n") or {},
                            "table": t, "cfa": _cfa_item_releases(results, str(form), group)}
    skipped = {str(k): str(v) for k, v in (r.get("skipped") or {}).items()}
    if not forms and not skipped:
        return _unavailable("irt_dif", "no form was tested")
    return Section("irt_dif", True, data={"group": group, "forms": forms, "skipped": skipped,
                                          "warnings": list(r.get("warnings") or [])})


READERS: dict[str, Callable[[Mapping[str, Any]], Section]] = {
    "bank": read_bank, "item_analysis": read_item_analysis, "efa": read_efa, "cfa": read_cfa,
    "reliability": read_reliability, "invariance": read_invariance,
    "multilevel": read_multilevel, "scores": read_scores, "linker": read_linker,
    "classification": read_classification, "policy": read_policy, "irt": read_irt,
    "irt_dif": read_irt_dif,
}


def read_all(results: Mapping[str, Any], stages: Mapping[str, str] | None = None
             ) -> dict[str, Section]:
    """Every section, each read from the (scrubbed) results; unavailable ones carry the reason."""
    clean = scrub(results)
    out = {}
    for key, fn in READERS.items():
        sec = fn(clean)
        if not sec.available and stages and stages.get(key):
            sec = Section(key, False, f"{NOT_AVAILABLE} (stage {stages[key]})")
        out[key] = sec
    return out
