"""`validate`: run an analysis plan end to end and write every result under one folder.

The flow (DESIGN.md): bank → simulate or ingest → item analysis → EFA on a random half and CFA on
the other → reliability → invariance → school aggregation (ICC) → school scores → linker → IRT
and item-level DIF → policy views → reports. Each stage is a function of the shared context
``ctx`` that returns plain, JSON-able results; live objects that later stages need (the bank,
response sets, fits) are kept in ``ctx``. A stage that fails is recorded with its error and the
later stages that do not need it still run; `ValidationRun.ok` is False and the CLI exits
non-zero.

Stages also declare what the data must hold (`REQUIREMENTS`: schools, outcomes, groups for an
invariance ladder, the short form's form). When it is absent, or the plan switches the stage off
(``stages: {irt: false}``), the stage stands aside: status ``n/a`` with the reason, in the stage
table and the reports; a run whose stages all ran or stood aside is `ValidationRun.ok`.
"""
from __future__ import annotations

import contextlib
import gc
import json
import re
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument import rules
from instrument.plans import plan_dir
from instrument.results import collect_warnings, to_jsonable
from instrument.sem.optim import single_threaded_blas

# Analysis settings a plan may override under its ``analysis:`` key (defaults here).
DEFAULT_ANALYSIS: dict[str, Any] = {
    # CFA estimator. The items have 4 or 5 categories, for which categorical estimation is
    # recommended (Rhemtulla, Brosseau-Liard & Savalei, 2012, Psychological Methods 17(3)):
    # WLSMV treats every item as ordered; "ML" / "MLR" treat them as continuous.
    "estimator": "WLSMV",
    # Missing answers: None = the method that fits the estimator (`missing_method`); or
    # "listwise" / "pairwise" (WLSMV) / "fiml" (ML, MLR).
    "missing": None,
    "split_seed": 1,              # seed of the EFA/CFA random half split
    "parallel_iterations": 20,    # Horn's parallel analysis replications
    "invariance": [               # ladders: form and grouping column (a ladder whose form has no
        {"form": "family", "group": "language"},     # data or whose group column is absent or
        {"form": "teacher", "group": "grade_band"},  # has one level stands aside)
    ],
    "invariance_steps": None,     # None: the estimator's default ladder
    "rule_set": "lrt_dmacs",      # scaled Δχ² and dMACS (instrument.invariance.verdict_dmacs)
    "outcomes": ["chronic_absence", "attendance", "ela_proficiency", "math_proficiency"],
    # IRT item analysis and short form (graded model per construct): form (None: the bank's first
    # form with data) and items per construct
    "shortform": {"form": None, "items_per_construct": 3},
    # respondent scores behind school scores: "mean" (raw scale means) or "irt" (graded-model
    # EAPs, person measurement error carried into the school SE; `instrument.scores`)
    "scoring": "mean",
    # the school score the linker and policy stages use: a construct id or "overall"; None: the
    # bank's overall score, and without one those stages stand aside (`linked_construct`)
    "linked_construct": None,
}


@dataclass
class StageOutcome:
    """What happened in one stage.

    ``status`` is "ok", "warning" (it finished, but its results carry warnings: see
    `instrument.results.collect_warnings`), "n/a" (it stood aside: the data lack what it needs,
    or the plan switched it off; ``message`` says which), "failed", or "skipped" (a stage it
    needs failed); ``warnings`` lists them;
    ``seconds`` is the wall time and ``cpu_seconds`` the CPU time of the process that ran it
    (this one, or the child of a `BACKGROUND_STAGES` stage; both written to the run log, not to
    ``results.json``; a report's PDF printing by Chromium runs in child processes and is not
    counted).
    """

    name: str
    status: str
    message: str = ""
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The reproducible part (no timing), as recorded in ``results.json``."""
        return {"name": self.name, "status": self.status, "message": self.message,
                "warnings": list(self.warnings)}


@dataclass
class ValidationRun:
    """The outcome of `validate`: per-stage status, results and the output folder."""

    out_dir: Path
    stages: list[StageOutcome] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Every stage finished (with or without warnings) or stood aside for a stated reason."""
        return all(s.status in ("ok", "warning") or (s.status == "n/a" and s.message)
                   for s in self.stages)

    @property
    def warnings(self) -> list[str]:
        """Every stage's warnings, each as ``"stage: where: text"``."""
        return [f"{s.name}: {w}" for s in self.stages for w in s.warnings]


# --------------------------------------------------------------------------------------------
# Stage helpers
# --------------------------------------------------------------------------------------------

def _analysis(ctx: dict) -> dict[str, Any]:
    a = {**DEFAULT_ANALYSIS, **(ctx["plan"].get("analysis") or {})}
    a["shortform"] = {**DEFAULT_ANALYSIS["shortform"], **(a.get("shortform") or {})}
    return a


def _forms(ctx: dict) -> dict[str, Any]:
    """Response sets by form (from the simulation or from ingested files)."""
    return ctx["responses"]


def _recoded(ctx: dict, form: str) -> pd.DataFrame:
    """A form's responses with reverse-keyed items recoded (bank.recode_reverse), cached."""
    cache = ctx.setdefault("_recoded", {})
    if form not in cache:
        rs = _forms(ctx)[form]
        cache[form] = ctx["bank"].recode_reverse(rs.data, form=form)
    return cache[form]


def _scales(ctx: dict, form: str) -> dict[str, list[str]]:
    bank = ctx["bank"]
    constructs = list(dict.fromkeys(bank.items.loc[bank.items["form"] == form, "construct"]))
    return {c: bank.items_for(form, c) for c in constructs}


def _forms_items(ctx: dict, form: str) -> set[str]:
    return set(ctx["bank"].items_for(form))


def _ordinal_options(estimator: str) -> dict[str, Any]:
    """``ordered=True`` for the categorical estimators (every model item is ordinal)."""
    return {"ordered": True} if estimator in ("WLSMV", "ULSMV") else {}


def missing_method(estimator: str) -> str:
    """The missing-data method that fits an estimator and keeps every respondent: pairwise
    polychorics for WLSMV/ULSMV (Mplus's default for categorical data; lavaan
    ``missing = "pairwise"``), full-information ML for ML/MLR (lavaan ``missing = "ml"``)."""
    return "pairwise" if estimator in ("WLSMV", "ULSMV") else "fiml"


def _missing(ctx: dict) -> str:
    a = _analysis(ctx)
    return a["missing"] or missing_method(a["estimator"])


def _halves(ctx: dict, form: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random half split of a form's respondents (seeded): (EFA half, CFA half)."""
    df = _recoded(ctx, form)
    rng = np.random.default_rng(_analysis(ctx)["split_seed"])
    mask = np.zeros(len(df), dtype=bool)
    mask[rng.permutation(len(df))[: len(df) // 2]] = True
    return df[mask], df[~mask]


def _respondent_scores(ctx: dict, form: str) -> pd.DataFrame:
    from instrument.scores import respondent_scores

    cache = ctx.setdefault("_resp_scores", {})
    if form not in cache:
        cache[form] = respondent_scores(_forms(ctx)[form], bank=ctx["bank"])
    return cache[form]


# --------------------------------------------------------------------------------------------
# Stages
# --------------------------------------------------------------------------------------------

def _plan_dir(ctx: dict) -> Path:
    """The folder that a plan's relative paths (bank, data files, mappings) are relative to."""
    return plan_dir(ctx.get("plan_path"))


def stage_bank(ctx: dict) -> Any:
    """Load and check the item bank (the plan's ``bank:`` path, relative to the plan file's
    folder, or the shipped bank)."""
    from instrument.bank import load_bank

    where = ctx["plan"].get("bank")
    ctx["bank"] = load_bank(_plan_dir(ctx) / where if where else None)
    d = ctx["bank"].to_dict()
    d["path"] = relative_paths(d.get("path") or "", _plan_dir(ctx)) if where else "shipped bank"
    return d


def stage_data(ctx: dict) -> Any:
    """Simulate the plan's population model (ingest of fielded files when the plan names them).

    The result carries ``provenance`` (`_provenance`): where the data came from, which every
    report states (simulated data are labelled as such on every page).
    """
    plan = ctx["plan"]
    if "data" in plan:
        out = _ingest_files(ctx)
    else:
        from instrument.simulate import pipeline_stage

        out = pipeline_stage(ctx)
        sim = ctx["simulation"]
        ctx["responses"] = {"teacher": sim.teacher, "family": sim.family}
        ctx["outcomes"] = sim.outcomes
        out["meta"]["options"].pop("plan_path", None)
        out["files"] = {k: relative_paths(v, ctx["out_dir"]) for k, v in out["files"].items()}
        out["rows"] = [{"form": form, "source": "simulated", "read": len(rs.data),
                        "used": len(rs.data), "quarantined": 0, "quarantine_file": None}
                       for form, rs in ctx["responses"].items()]
    out["provenance"] = _provenance(ctx)
    return out



def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _provenance(ctx: dict) -> dict[str, Any]:
    """Where the run's data came from, without machine paths.

    Simulated: ``{"source": "simulated", "plan": name, "plan_file": file name, "plan_sha256",
    "seed"}``. Fielded: ``{"source": "fielded", "plan": ..., "files": [{"role", "file",
    "sha256"}]}`` with each file named relative to the plan's folder.
    """
    plan = ctx["plan"]
    plan_path = Path(ctx["plan_path"]) if ctx.get("plan_path") else default_plan_path()
    out: dict[str, Any] = {"plan": plan.get("name", plan_path.stem),
                           "plan_file": plan_path.name, "plan_sha256": _sha256(plan_path)}
    if "data" in plan:
        base = _plan_dir(ctx)
        files = [{"role": role, "file": str(rel), "sha256": _sha256(base / rel)}
                 for role, rels in _data_files(plan["data"]).items() for rel in rels]
        return {"source": "fielded", **out, "files": files}
    sim = ctx.get("simulation")
    seed = sim.meta.seed if sim is not None else plan.get("seed")
    return {"source": "simulated", **out, "seed": seed}


def _data_files(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """The plan's ``data:`` as role -> files (a form's ``files``, or ``outcomes``)."""
    from instrument.plans import FormData

    out: dict[str, list[str]] = {}
    for role, entry in spec.items():
        if role == "outcomes":
            out[role] = [str(entry)]
        else:
            out[role] = list(FormData.model_validate(entry).files)
    return out


def _ingest_files(ctx: dict) -> Any:
    """Ingest the plan's ``data:``: per form of the bank, its files (stacked) read with the form's
    ingest mapping; ``outcomes`` a school outcomes table. Paths are relative to the plan's
    folder; each file's quarantine is written under ``quarantine/`` of the output folder.

    Returns ``{"rows": [...], "<form>": {"reasons": [...]}}``: one row per file with ``form
    file format read used quarantined flagged quarantine_file``, and per form the quarantined
    rows by reason (``reason``, ``rows``)."""
    from instrument.io import ingest
    from instrument.io.tables import read_table
    from instrument.plans import FormData
    from instrument.responses import ResponseSet

    spec = ctx["plan"]["data"]
    bank = ctx["bank"]
    base = _plan_dir(ctx)
    unknown = [k for k in spec if k != "outcomes" and k not in bank.forms]
    if unknown:
        raise ValueError(f"plan data: {unknown[0]!r} is not a form of the bank {bank.name!r}; "
                         f"expected one of {list(bank.forms)} or 'outcomes'.")
    out: dict[str, Any] = {"rows": []}
    responses = {}
    for form in bank.forms:        # in bank order
        if form not in spec:
            continue
        entry = FormData.model_validate(spec[form])
        mapping = (entry.ingest_mapping() if entry.mapping is None
                   else base / entry.mapping)
        parts, reasons = [], {}
        for rel in entry.files:
            res = ingest(base / rel, bank=bank, form=form, mapping=mapping,
                         quarantine_dir=ctx["out_dir"] / "quarantine")
            parts.append(res.responses)
            c = res.counts()
            out["rows"].append({"form": form, "file": rel, "format": c["format"],
                                "read": c["read"], "used": c["used"],
                                "quarantined": c["quarantined"], "flagged": len(res.flags),
                                "quarantine_file": f"quarantine/{c['quarantine_file']}"})
            for r in c["reasons"]:
                reasons[r["reason"]] = reasons.get(r["reason"], 0) + int(r["rows"])
        rs = parts[0]
        if len(parts) > 1:
            data = pd.concat([p.data for p in parts], ignore_index=True)
            dup = data["respondent_id"].duplicated()
            if dup.any():
                raise ValueError(f"plan data.{form}.files: respondent id "
                                 f"{data.loc[dup, 'respondent_id'].iloc[0]!r} appears in more "
                                 "than one file; expected each respondent in one file.")
            rs = ResponseSet(form=form, data=data, items=rs.items,
                             source=", ".join(entry.files),
                             quarantine=pd.concat([p.quarantine for p in parts],
                                                  ignore_index=True))
        responses[form] = rs
        out[form] = {"reasons": [{"reason": k, "rows": v} for k, v in sorted(reasons.items())]}
    ctx["responses"] = responses
    ctx["outcomes"] = read_table(base / spec["outcomes"]) if "outcomes" in spec else None
    return out


def stage_item_analysis(ctx: dict) -> Any:
    """Item statistics and category use per form and construct, each item on its own scale.

    Categories are the item's codes from the bank (a 4-point item has 4 categories, so floor,
    ceiling and empty-category counts refer to its own extremes); the item-rest correlation and
    alpha-if-deleted use the other items of the item's construct (psych ``alpha()`` run per
    scale), overall and within each language.
    """
    from instrument.itemanalysis import item_analysis

    bank = ctx["bank"]
    items_rows, cats, res = [], [], None
    for form in _forms(ctx):
        df = _recoded(ctx, form)
        for construct, items in _scales(ctx, form).items():
            codes = {i: list(bank.scale_of(i).codes) for i in items}
            res = item_analysis(df, items, categories=codes, group="language")
            t = res.items.rename(columns={"item": "item_id", "missing_share": "missing",
                                          "r.drop": "citc"})
            t.insert(0, "form", form)
            t.insert(2, "construct", construct)
            items_rows.append(t)
            d = res.distribution.rename(columns={"item": "item_id"})
            d.insert(0, "form", form)
            cats.append(d)
    return {"items": pd.concat(items_rows, ignore_index=True),
            "category_use": pd.concat(cats, ignore_index=True),
            "rules": [r.to_dict() for r in res.rules] if res is not None else []}


def stage_efa(ctx: dict) -> Any:
    """Parallel analysis and an oblimin minres EFA on a random half of each form.

    Both analyse the half's polychoric correlations computed pairwise (every respondent of the
    half counts, each correlation from the rows that answered both items); ``n`` is that half's
    number of respondents and ``n_complete`` those who answered every item.
    """
    from instrument.efa import efa, parallel_analysis

    a = _analysis(ctx)
    out = {}
    for form in _forms(ctx):
        half, _ = _halves(ctx, form)
        items = ctx["bank"].items_for(form)
        x = half[items]
        pa = parallel_analysis(x, n_iter=a["parallel_iterations"], seed=a["split_seed"],
                               cor="polychoric", use="pairwise")
        k = len(_scales(ctx, form))
        fit = efa(x, k, method="minres", rotation="oblimin", cor="polychoric", use="pairwise")
        out[form] = {"n": len(x), "n_complete": int(x.notna().all(axis=1).sum()),
                     "cor": "polychoric", "missing": "pairwise", "n_factors_theory": k,
                     "parallel": pa.to_dict(), "efa": fit.to_dict()}
    return out


def stage_cfa(ctx: dict) -> Any:
    """CFA of the bank's model on the other half of each form."""
    from instrument.sem.cfa import cfa

    est = _analysis(ctx)["estimator"]
    missing = _missing(ctx)
    fits, out = {}, {}
    ctx["cfa_data"] = {}
    for form in _forms(ctx):
        _, half = _halves(ctx, form)
        fits[form] = cfa(ctx["bank"].model_syntax(form=form), half, estimator=est,
                         missing=missing, **_ordinal_options(est))
        ctx["cfa_data"][form] = half
        # the two-step sample statistics (thresholds, polychorics and their asymptotic
        # covariance) are the fit's input, megabytes of it: not in the results; the fit with
        # them stays in ctx for later stages
        out[form] = replace(fits[form], categorical_stats=None).to_dict()
        out[form].pop("categorical_stats", None)
        items = ctx["bank"].items_for(form)
        out[form]["missing_data"] = {
            "method": missing, "n_rows": len(half),
            "n_complete": int(half[items].notna().all(axis=1).sum()),
            "n_used": int(fits[form].fit_measures.get("ntotal", len(half)))}
    ctx["cfa_fits"] = fits
    return out


def stage_syntax(ctx: dict) -> Any:
    """lavaan (.lav) and Mplus (.inp) syntax per form with the CFA half's data (syntax/)."""
    from instrument.report.syntax_export import pipeline_stage

    return pipeline_stage(ctx)


def stage_reliability(ctx: dict) -> Any:
    """α (Feldt CI), ordinal α (polychoric) and ω (from the CFA) per construct, form and language."""
    from instrument.sem.polychoric import ordinal_alpha
    from instrument.reliability import omega_from_fit, reliability
    from instrument.reliability_ordinal import omega_categorical

    frames = []
    fits = ctx.get("cfa_fits", {})
    for form in _forms(ctx):
        df = _recoded(ctx, form)
        scales = _scales(ctx, form)
        omegas = None
        if form in fits:
            ordinal = fits[form].meta.options.get("estimator") in ("WLSMV", "ULSMV")
            omegas = pd.Series(omega_categorical(fits[form]) if ordinal
                               else omega_from_fit(fits[form]))
        for lang, sub in [("all", df), *sorted(df.groupby("language"))]:
            r = reliability(sub, scales)
            r = r.rename(columns={"raw_alpha": "alpha", "ci.lower": "alpha.ci.lower",
                                  "ci.upper": "alpha.ci.upper"})
            r.insert(0, "language", lang)
            r.insert(0, "form", form)
            if omegas is not None and lang == "all":
                r["omega"] = r["construct"].map(omegas)
            r["alpha.ordinal"] = [ordinal_alpha(sub[scales[c]], missing="pairwise")
                                  for c in r["construct"]]
            frames.append(r)
    return {"table": pd.concat(frames, ignore_index=True)}


def stage_invariance(ctx: dict) -> Any:
    """Invariance ladders named in the plan (default: family by language, teacher by grade band).

    Steps that are rejected are searched for the items responsible (`InvarianceResult.partial`).
    With simulated data the released parameters are compared with the DIF the plan planted (by
    language; no other grouping has planted DIF): ``truth`` holds hits, misses and false alarms.
    """
    from instrument.invariance import collapse_empty_categories, compare_with_truth, invariance

    a = _analysis(ctx)
    out: dict[str, Any] = {}
    refused: list[str] = []
    sim = ctx.get("simulation")
    outcomes = ctx.get("outcomes")
    # ladders the plan names must exist (an unknown form or column fails the stage); the default
    # ladders stand aside where the data lack their form or group
    explicit = "invariance" in (ctx["plan"].get("analysis") or {})
    ladders, aside = [], []
    for spec in a["invariance"]:
        form, group = spec["form"], spec["group"]
        if form not in _forms(ctx):
            if explicit:
                raise ValueError(f"plan analysis.invariance: form {form!r} has no responses; "
                                 f"expected one of {sorted(_forms(ctx))}.")
            aside.append(f"{form} by {group}: no {form} responses")
            continue
        known = set(_recoded(ctx, form).columns) | (set(outcomes.columns) - {"school_id"}
                                                     if outcomes is not None else set())
        if group not in known:
            if explicit:
                raise ValueError(
                    f"plan analysis.invariance: group {group!r} is not a column of the "
                    f"{form} responses or of the school outcomes; expected one of "
                    f"{sorted(c for c in known if c not in _forms_items(ctx, form))}.")
            aside.append(f"{form} by {group}: no {group} column")
            continue
        df = _recoded(ctx, form)
        if group not in df.columns:
            df = df.merge(outcomes[["school_id", group]], on="school_id", how="left")
        levels = sorted(df[group].dropna().astype(str).unique())
        if len(levels) < 2:
            aside.append(f"{form} by {group}: one group only ({', '.join(levels) or 'none'})")
            continue
        ladders.append((form, group, df))
    if not ladders:
        raise StandAside("; ".join(aside) if aside else
                         "the plan names no invariance ladder (analysis.invariance)")
    if aside:
        out["stood_aside"] = aside
    for form, group, df in ladders:
        steps = {"steps": tuple(a["invariance_steps"])} if a["invariance_steps"] else {}
        collapsed = None
        if _ordinal_options(a["estimator"]):
            df, collapsed = collapse_empty_categories(df, ctx["bank"].items_for(form), group)
        try:
            res = invariance(ctx["bank"].model_syntax(form=form), df, group=group,
                             rule_set=a["rule_set"], estimator=a["estimator"],
                             missing=_missing(ctx), **steps, **_ordinal_options(a["estimator"]))
        except ValueError as exc:   # groups the data cannot support: refused, not fitted
            refused.append(f"{form} by {group}: not estimated: {exc}")
            continue
        if a["rule_set"] == "lrt_dmacs" and not res.table["holds"].iloc[1:].all():
            res = res.partial()
        d = res.to_dict(fits=False)   # every fit is large; the ladder table is the result
        t = res.table
        names = set(map(str, t["step"]))
        live = t[[f"{s} (partial)" not in names for s in t["step"]]]   # the accepted path
        if "supported" in live and not live["supported"].all():
            bad = [str(s) for s, h in zip(live["step"], live["holds"]) if h is False or h == 0]
            refused.append(f"{form} by {group}: step(s) {', '.join(bad)} do not hold "
                           + ("after the partial-invariance search " if len(res.releases) else "")
                           + "; the steps after them are not evidence of comparability.")
        if collapsed is not None:
            d["collapsed_categories"] = to_jsonable(collapsed)
        if sim is not None:
            dif = sim.truth.dif
            planted = dif[dif["form"] == form] if group == "language" else dif.iloc[:0]
            released = [p for q in res.releases["parameter"] for p in str(q).split(",")]
            d["truth"] = to_jsonable(compare_with_truth(released, planted,
                                                        ctx["bank"].items_for(form)))
        names = _group_names(ctx["bank"], group)
        if names:   # the bank's labels of the group codes, for the reports
            d["group_names"] = {str(g): names.get(str(g), str(g))
                                for g in d.get("group_labels", [])}
        out[f"{form} by {group}"] = d
    if refused:
        out["warnings"] = refused
    return out


def _group_names(bank: Any, column: str) -> dict[str, str]:
    """Code -> English label of a background choice item of the bank (empty when ``column`` is
    not one): how a grouping column's values are shown in the reports."""
    bg = getattr(bank, "background", None)
    if not isinstance(bg, pd.DataFrame) or "item_id" not in bg.columns:
        return {}
    row = bg[bg["item_id"] == column]
    if row.empty or "labels_en" not in bg.columns:
        return {}
    codes, labels = row["codes"].iloc[0], row["labels_en"].iloc[0]
    if not isinstance(codes, (list, tuple)) or not isinstance(labels, (list, tuple)):
        return {}
    return {str(c): str(lab) for c, lab in zip(codes, labels)}


def stage_multilevel(ctx: dict) -> Any:
    """ICC(1) (REML), ICC(2) and the respondents needed for a reliable school mean."""
    from instrument.multilevel import BOUNDARY_NOTE, icc, min_cluster_size

    icc_rows, mink, boundary = [], [], []
    ctx["icc1"] = {}
    for form in _forms(ctx):
        scores = _respondent_scores(ctx, form)
        ctx["icc1"][form] = {}
        named = {*_scales(ctx, form), "overall"}
        for construct in [c for c in scores.columns if c in named]:
            r = icc(scores, construct, "school_id")
            ctx["icc1"][form][construct] = float(r.icc1)
            icc_rows.append({"form": form, "construct": construct, "icc1": float(r.icc1),
                             "icc1_anova": r.icc1_anova_n0, "icc2": r.icc2, "k": r.nbar,
                             "tau00": float(r.tau00), "sigma2": float(r.sigma2), "schools": r.J})
            if r.icc1 == 0:
                boundary.append(f"{form} {construct}")
            for target in (rules.SCHOOL_MEAN_RELIABILITY, rules.SCHOOL_MEAN_RELIABILITY_HIGH):
                mink.append({"form": form, "construct": construct, "target": target.threshold,
                             "k": min_cluster_size(float(r.icc1), target),
                             "source": target.source})
    out: dict[str, Any] = {"icc": pd.DataFrame(icc_rows), "min_k": pd.DataFrame(mink)}
    if boundary:
        out["warnings"] = [f"ICC(1) = 0 for {', '.join(boundary)}. {BOUNDARY_NOTE}"]
    return out


def _shortform_form(ctx: dict) -> str | None:
    """``analysis.shortform.form``, else the bank's first form with responses."""
    form = _analysis(ctx)["shortform"].get("form")
    if form is not None:
        return form
    return next((f for f in ctx["bank"].forms if f in (ctx.get("responses") or {})), None)


def stage_irt(ctx: dict) -> Any:
    """Graded IRT per construct: item fit (S-X2), local dependence (Q3), DIF and the short form."""
    from instrument.irt import shortform

    spec = _analysis(ctx)["shortform"]
    return shortform(_forms(ctx)[_shortform_form(ctx)], bank=ctx["bank"],
                     k=int(spec["items_per_construct"]))


def stage_irt_dif(ctx: dict) -> Any:
    """Item-level DIF by language for every form with both languages large enough: ordinal
    logistic regression (lordif's purification) and IRT likelihood ratios (two-group graded
    model, purified anchors), per construct on the reverse-keyed-recoded responses.

    A form is skipped (with its reason) when it has no ``language`` column, one language, or a
    language with fewer than `rules.DIF_MIN_GROUP` respondents. With simulated data each row says
    whether DIF was planted in the item (``planted``).
    """
    from instrument.irt.data import group_sizes_gate
    from instrument.irt.dif import dif
    from instrument.irt.lrdif import lrdif

    col = "language"
    out: dict[str, Any] = {"group": col, "forms": {}, "skipped": {}}
    warnings: list[str] = []
    sim = ctx.get("simulation")
    for form in _forms(ctx):
        data = _forms(ctx)[form].data
        if col not in data.columns:
            out["skipped"][form] = f"no {col!r} column"
            continue
        counts = data[col].value_counts()
        reason = group_sizes_gate(counts, col)
        if reason:
            out["skipped"][form] = reason
            continue
        ref = str(counts.index[0])            # the larger group is the reference
        foc = str(counts.index[1])
        recoded = _recoded(ctx, form)
        planted = set()
        if sim is not None:
            planted = set(sim.truth.dif.loc[sim.truth.dif["form"] == form, "item_id"])
        rows = []
        for con, its in _scales(ctx, form).items():
            keep = data[col].notna().to_numpy()     # a respondent without a language is not compared
            x = (recoded[its] - recoded[its].min())[keep]
            x = x.assign(**{col: data[col].astype(str).to_numpy()[keep]})
            ores = dif(x, its, group=col, reference=ref)
            if ores.note:
                warnings.append(f"{form} {con}: ordinal logistic regression DIF: {ores.note}.")
            o = ores.table.set_index("item")
            try:
                lr = lrdif(x, its, group=col, reference=ref).table.set_index("item")
            except ValueError as exc:
                warnings.append(f"{form} {con}: IRT likelihood-ratio DIF not estimated: {exc}")
                lr = None
            for it in its:
                row = {"construct": con, "item": it,
                       **{f"olr_{k}": o.loc[it, k] for k in ("chi12", "p12", "chi23", "p23",
                                                             "chi13", "p13", "R2_13",
                                                             "magnitude", "flagged")}}
                if lr is not None:
                    row.update({f"lr_{k}": lr.loc[it, k] for k in ("G2", "df", "p", "flagged",
                                                                   "anchor", "a_ref", "a_foc")})
                if sim is not None:
                    row["planted"] = it in planted
                rows.append(row)
        out["forms"][form] = {"reference": ref, "focal": foc,
                              "n": {str(k): int(v) for k, v in counts.items()},
                              "table": pd.DataFrame(rows)}
    out["rules"] = {"DIF_ALPHA": rules.DIF_ALPHA.to_dict(),
                    "IRT_LR_DIF_ALPHA": rules.IRT_LR_DIF_ALPHA.to_dict(),
                    "DIF_R2_MODERATE": rules.DIF_R2_MODERATE.to_dict(),
                    "DIF_R2_LARGE": rules.DIF_R2_LARGE.to_dict(),
                    "DIF_MIN_GROUP": rules.DIF_MIN_GROUP.to_dict()}
    if warnings:
        out["warnings"] = warnings
    return out


def stage_scores(ctx: dict) -> Any:
    """School scores per form with the privacy and response-rate gates (ICC1 from multilevel)."""
    from instrument.scores import school_scores

    scoring = _analysis(ctx)["scoring"]
    if scoring not in ("mean", "irt"):
        raise ValueError(f"plan analysis.scoring: expected 'mean' or 'irt'; got {scoring!r}.")
    frames = []
    for form, rs in _forms(ctx).items():
        # the multilevel stage's ICC1 is of raw scale means; IRT scores estimate their own
        icc1 = ctx.get("icc1", {}).get(form) if scoring == "mean" else None
        frames.append(school_scores(rs, bank=ctx["bank"], outcomes=ctx.get("outcomes"),
                                    icc1=icc1, scoring=scoring))
    ctx["scores"] = pd.concat(frames, ignore_index=True)
    return {"table": ctx["scores"]}


def linked_construct(ctx: dict) -> str:
    """The school score the linker and policy stages use: the plan's
    ``analysis.linked_construct`` when it names one, else ``"overall"`` when the item bank
    defines an overall score.

    A bank without an overall score and a plan naming no construct: the stages stand aside
    with that reason (`StandAside`) instead of running once per construct, because each of them
    reports one score per form as its headline (the brief's linked outcome, the band
    classification, the variance components); running every construct would multiply the
    tests read as confirmatory, and picking one would be an arbitrary choice the plan did not
    make. The construct-by-construct view stays in `instrument.linker.sensitivity`.
    """
    bank = ctx["bank"]
    c = _analysis(ctx).get("linked_construct")
    known = bank.score_names()
    if c is None and bank.overall is None:
        raise StandAside("the item bank defines no overall score and the plan names no "
                         "construct; expected analysis: {linked_construct: <one of "
                         + ", ".join(known) + ">}")
    if c is not None and c not in known:
        raise ValueError(f"plan analysis.linked_construct: unknown construct {c!r}; expected "
                         f"one of {', '.join(known)}")
    return "overall" if c is None else c


def _forms_with(scores: pd.DataFrame, forms: Any, construct: str) -> list[str]:
    """The forms (in ``forms``' order) whose school scores include ``construct``; the stage
    stands aside when there is none."""
    have = set(scores.loc[scores["construct"] == construct, "form"].astype(str))
    out = [f for f in forms if f in have]
    if not out:
        raise StandAside(f"no form's school scores include {construct!r}")
    return out


def stage_linker(ctx: dict) -> Any:
    """Predictive validity: each outcome on each form's `linked_construct` score (CR2 by
    district).

    With a panel (a ``year`` column holding several years) the latest year is linked, and the
    change in practice is linked to the change in each outcome (`instrument.policy.change_link`).
    """
    from instrument.linker import link, sensitivity
    from instrument.policy import change_link

    scores, outcomes = ctx["scores"], ctx["outcomes"]
    a = _analysis(ctx)
    construct = linked_construct(ctx)
    forms = _forms_with(scores, _forms(ctx), construct)
    out: dict[str, Any] = {"results": [], "sensitivity": [], "change": []}
    years = sorted(scores["year"].unique()) if "year" in scores.columns else []
    if len(years) > 1:
        last = years[-1]
        for form in forms:
            for outcome in a["outcomes"]:
                out["change"].append(change_link(scores, outcomes, outcome=outcome,
                                                 construct=construct, form=form).to_dict())
        scores = scores[scores["year"] == last].drop(columns="year")
        if "year" in outcomes.columns:
            outcomes = outcomes[outcomes["year"] == last].drop(columns="year")
    refused = []
    for form in forms:
        for outcome in a["outcomes"]:
            try:
                out["results"].append(link(scores, outcomes, outcome=outcome,
                                           construct=construct, form=form).to_dict())
            except ValueError as exc:   # a model the data cannot support is refused, not fitted
                refused.append(f"{form} form, {outcome}: not estimated: {_first_clause(exc)}")
    try:
        out["sensitivity"] = sensitivity(scores, outcomes, outcome=a["outcomes"][0])
    except ValueError as exc:
        refused.append(f"sensitivity analysis of {a['outcomes'][0]}: not estimated: "
                       f"{_first_clause(exc)}")
    if refused:
        out["warnings"] = refused
    return out


def _first_clause(exc: Exception) -> str:
    """An error's message without the bracketed detail it may append (sample accounting)."""
    return re.sub(r" \(sample accounting: .*\)", "", str(exc), flags=re.DOTALL)


def stage_policy(ctx: dict) -> Any:
    """District rollups, band classification accuracy, teacher–family convergence, 3-level ICCs
    (the classification and the ICCs of the `linked_construct` score)."""
    from instrument import policy

    scores = ctx["scores"]
    outcomes = ctx.get("outcomes")
    weight = "enrollment" if outcomes is not None and "enrollment" in outcomes.columns else None
    construct = linked_construct(ctx)
    forms = [f for f in ctx["bank"].forms if f in _forms(ctx)]
    scored = _forms_with(scores, forms, construct)
    out = {"rollup_district": policy.rollup(scores, outcomes, level="district"),
           "rollup_state": policy.rollup(scores, outcomes, level="state", weight=weight),
           "accuracy": policy.scores_accuracy(scores),
           "convergence": (policy.convergence(scores, forms=tuple(forms[:2]))
                           if len(forms) >= 2 else None),
           "variance_components": {}, "construct": construct}
    vis = scores[(scores["construct"] == construct) & (scores["form"] == scored[0])
                 & ~scores["suppressed"].astype(bool)]
    acc = policy.classification_accuracy(vis["score"].to_numpy(), _score_se(vis),
                                         school_id=vis["school_id"].tolist())
    out["classification"] = acc.to_dict()
    no_district = []
    for form in scored:
        rs = _respondent_scores(ctx, form)
        rs = rs.merge(_forms(ctx)[form].data[["school_id", "district_id"]].drop_duplicates(),
                      on="school_id", how="left") if "district_id" not in rs else rs
        if rs["district_id"].isna().all():   # a file without a district column
            no_district.append(form)
            continue
        out["variance_components"][form] = policy.variance_components(rs, construct).to_dict()
    if no_district:
        out["warnings"] = [f"variance components of the {f} form: not estimated: its data name "
                           "no districts (no district_id column)" for f in no_district]
    return out


def _score_se(rows: pd.DataFrame) -> np.ndarray:
    from instrument.policy import _scale_se

    return _scale_se(rows).to_numpy()


def stage_reports(ctx: dict) -> Any:
    """Technical report, policy brief and school score cards from the results alone."""
    from instrument.report.render import pipeline_stage

    return pipeline_stage(ctx)


Stage = Callable[[dict], Any]
# (name, function, stages it needs)
STAGES: list[tuple[str, Stage, tuple[str, ...]]] = [
    ("bank", stage_bank, ()),
    ("data", stage_data, ("bank",)),
    ("item_analysis", stage_item_analysis, ("data",)),
    ("efa", stage_efa, ("data",)),
    ("cfa", stage_cfa, ("data",)),
    ("syntax", stage_syntax, ("cfa",)),
    ("reliability", stage_reliability, ("data",)),
    ("invariance", stage_invariance, ("data",)),
    ("multilevel", stage_multilevel, ("data",)),
    ("scores", stage_scores, ("data",)),
    ("linker", stage_linker, ("scores",)),
    ("irt", stage_irt, ("data",)),
    ("irt_dif", stage_irt_dif, ("data",)),
    ("policy", stage_policy, ("scores",)),
    ("reports", stage_reports, ()),
]


def load_plan(plan: str | Path | None) -> dict[str, Any]:
    """The plan as a mapping, read and validated against `instrument.plans.AnalysisPlan` (every
    section, every key; `instrument.plans.PlanError` says ``file:line: key: expected``); the
    shipped default when None."""
    from instrument.plans import load_plan as load

    return load(plan)


def default_plan_path() -> Path:
    """The shipped default analysis plan (package data)."""
    from instrument.plans import default_plan_path as shipped

    return shipped()


#: What `validate` writes in its output folder (files, and folders of files).
RUN_OUTPUTS = ("results.json", "run_log.json", "errors", "quarantine", "reports", "syntax", "data")


def _clear_outputs(out: Path) -> None:
    """Remove the previous run's files from ``out`` (those its run log lists, and stage error
    files), so the folder holds only this run's files; files the runs did not write stay."""
    old = []
    log = out / RUN_LOG_FILE
    if log.is_file():
        try:
            old = list(json.loads(log.read_text(encoding="utf-8")).get("files") or [])
        except (ValueError, OSError, AttributeError):
            old = []
    old += [f"errors/{name}.txt" for name, _, _ in STAGES]
    base = out.resolve()
    for rel in old:
        p = (out / str(rel)).resolve()
        if p.is_file() and base in p.parents and p.relative_to(base).parts[0] in RUN_OUTPUTS:
            p.unlink()
    for name in RUN_OUTPUTS:   # folders this run writes into, when left empty
        d = out / name
        if d.is_dir():
            for sub in sorted((q for q in d.rglob("*") if q.is_dir()), reverse=True):
                if not any(sub.iterdir()):
                    sub.rmdir()
            if not any(d.iterdir()):
                d.rmdir()


def _run_files(out: Path) -> list[str]:
    """Every file this run wrote in ``out`` (relative paths, sorted)."""
    files = []
    for name in RUN_OUTPUTS:
        p = out / name
        if p.is_file():
            files.append(name)
        elif p.is_dir():
            files += [q.relative_to(out).as_posix() for q in p.rglob("*") if q.is_file()]
    return sorted(files)


def validate(plan: str | Path | None = None, out_dir: str | Path = "validation",
             progress: Callable[[str], None] | None = None) -> ValidationRun:
    """Run every stage of an analysis plan and write ``results.json`` to ``out_dir``.

    Parameters
    ----------
    plan : path, optional
        An analysis plan (YAML); the shipped default plan when omitted.
    out_dir : path
        Folder for results, reports, data and quarantine files (created if needed).
    progress : callable, optional
        Called with a line of text as each stage starts and ends.

    Returns
    -------
    ValidationRun
        ``results.json`` holds ``{"plan": ..., "stages": [...], "results": {stage: ...}}``;
        every number in a report is read from it.
    """
    say = progress or (lambda s: None)
    out = Path(out_dir)
    spec = load_plan(plan)
    out.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out)
    run = ValidationRun(out_dir=out)
    ctx: dict[str, Any] = {"plan_path": plan, "plan": spec, "out_dir": out,
                           "results": run.results, "started": _now()}
    done: set[str] = set()
    with single_threaded_blas():   # on 2 cores, threaded BLAS only adds contention
        _run_stages(run, ctx, done, say)
    _write(run, ctx)
    return run


#: The cyclic garbage collector's youngest-generation threshold while the stages run (Python's
#: default is 700 allocations). A run builds hundreds of thousands of long-lived objects (data,
#: fits, result tables), and at the default thresholds each full collection walks all of them:
#: about 2 s of a default run's main process went to collections, 0.6 s with this threshold and
#: the heap frozen (`_long_lived_heap`).
GC_THRESHOLD = 10_000


@contextlib.contextmanager
def _long_lived_heap() -> Iterator[Callable[[], None]]:
    """Run the block with collections less frequent (`GC_THRESHOLD`, each older generation after
    20 collections of the younger) and the objects that exist at its start (the imported
    modules, the plan) left out of garbage collection (`gc.freeze`); it gets a function that
    freezes the objects that exist when it is called, which the stage loop calls before it forks
    a background stage. Objects that live for the whole run are then not walked again and again,
    and a child's collections do not write to the pages it shares with its parent (Python's
    documentation recommends freezing before ``fork()`` for this:
    https://docs.python.org/3/library/gc.html#gc.freeze). The thresholds are restored and the
    objects unfrozen at the end. Where objects are frozen already (by the program that calls
    `validate`), freezing is left to that program."""
    old = gc.get_threshold()
    owner = gc.get_freeze_count() == 0
    if owner:
        gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    try:
        yield gc.freeze if owner else (lambda: None)
    finally:
        gc.set_threshold(*old)
        if owner:
            gc.unfreeze()


class StandAside(Exception):
    """Raised by a stage whose inputs are absent from the data: it stands aside (status "n/a")
    with this reason instead of failing."""


def _has_schools(ctx: dict) -> str | None:
    """None when some form's respondents name a school, else why not."""
    forms = ctx.get("responses") or {}
    if any(rs.data["school_id"].notna().any() for rs in forms.values()):
        return None
    return "the data name no schools (no school_id column, or no school id given)"


def _has_outcomes(ctx: dict) -> str | None:
    """None when school outcomes are there and hold an outcome the plan links, else why not."""
    oc = ctx.get("outcomes")
    if oc is None:
        return "the plan names no school outcomes file (data: outcomes:)"
    wanted = list(_analysis(ctx)["outcomes"])
    if not wanted:
        return "the plan lists no outcomes to link (analysis.outcomes is empty)"
    have = [o for o in wanted if o in oc.columns]
    if not have:
        return (f"the outcomes file has none of the outcomes the plan links ({', '.join(wanted)}; "
                "analysis.outcomes)")
    return None


def _has_shortform_form(ctx: dict) -> str | None:
    form = _shortform_form(ctx)
    if form is None or form not in (ctx.get("responses") or {}):
        return (f"the short form's form {form!r} has no responses (analysis.shortform.form; "
                f"forms with data: {sorted(ctx.get('responses') or {})})")
    return None


#: What each stage needs the data to hold (beyond the stages it depends on): a check returning
#: None when present, else the reason the stage stands aside.
REQUIREMENTS: dict[str, tuple[Callable[[dict], str | None], ...]] = {
    "multilevel": (_has_schools,),
    "scores": (_has_schools,),
    "linker": (_has_schools, _has_outcomes),
    "policy": (_has_schools,),
    # the short form is chosen for information at the school score band cuts, which are set from
    # the school ICC
    "irt": (_has_shortform_form, _has_schools),
}


def _stand_aside_reason(ctx: dict, name: str, run: ValidationRun, needs: tuple[str, ...]
                        ) -> str | None:
    """Why stage ``name`` stands aside (switched off, a needed stage stood aside, or the data lack
    what it needs), or None when it runs."""
    if (ctx["plan"].get("stages") or {}).get(name) is False:
        return f"switched off by the plan (stages: {name}: false)"
    by_name = {s.name: s for s in run.stages}
    for n in needs:
        if n in by_name and by_name[n].status == "n/a":
            return f"needs {n}, which stood aside: {by_name[n].message}"
    for check in REQUIREMENTS.get(name, ()):
        reason = check(ctx)
        if reason:
            return reason
    return None


#: Stages `validate` runs in a forked child process while the stages after them run, on Linux
#: (`_can_fork`; elsewhere every stage runs in this process): each starts once the stages it
#: needs are done (the data; the scores for the linker), only reads ``ctx``, and no stage but the
#: reports needs it. Its result comes back as JSON-able data and is recorded in its place in the
#: stage order (the same results and run log as in one process). The two longest fitting stages
#: overlap each other and the rest; the linker overlaps the policy stage, which would otherwise
#: run alone on one of two cores.
BACKGROUND_STAGES = ("invariance", "irt_dif", "linker")


def _can_fork() -> bool:
    """Linux only: forking is the platform's default way to start a process there (on macOS it
    is unsafe with the system frameworks, and Windows has none)."""
    import multiprocessing
    import sys

    return sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()


def _execute(fn: Stage, ctx: dict, out: Path) -> dict[str, Any]:
    """Run one stage: its JSON-able result, or why it stood aside or failed, with its times."""
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        result = relative_paths(to_jsonable(fn(ctx)), out)
        return {"status": "ok", "result": result, "warnings": collect_warnings(result),
                "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}
    except StandAside as exc:
        return {"status": "n/a", "message": str(exc), "seconds": time.perf_counter() - t0}
    except Exception as exc:  # a failed stage is recorded; the others still run
        return {"status": "failed", "seconds": time.perf_counter() - t0,
                "message": relative_paths(f"{type(exc).__name__}: {exc}", out),
                "traceback": traceback.format_exc()}


def _execute_in_child(conn: Any, name: str, fn: Stage, ctx: dict, out: Path) -> None:
    """`_execute` in a forked child; the record goes back through ``conn``."""
    try:
        with single_threaded_blas():
            rec = _execute(fn, ctx, out)
    except BaseException as exc:  # noqa: BLE001 - whatever happens, the parent is told
        rec = {"status": "failed", "seconds": 0.0, "traceback": traceback.format_exc(),
               "message": f"{type(exc).__name__}: {exc}"}
    conn.send(rec)
    conn.close()


def _record(run: ValidationRun, name: str, rec: dict[str, Any], tag: str, done: set[str],
            say: Callable[[str], None]) -> None:
    """Enter a stage's record (from `_execute`) in ``run``, in the stage order."""
    out, secs = run.out_dir, rec["seconds"]
    if rec["status"] == "ok":
        run.results[name] = rec["result"]
        done.add(name)
        warns = rec["warnings"]
        outcome = StageOutcome(name, "warning" if warns else "ok", seconds=secs,
                               warnings=warns, cpu_seconds=rec["cpu_seconds"])
        say(f"{tag} done in {secs:.1f} s" + (f" with {len(warns)} warning(s)" if warns else ""))
    elif rec["status"] == "n/a":
        outcome = StageOutcome(name, "n/a", rec["message"], secs)
        say(f"{tag} stands aside: {rec['message']}")
    else:
        outcome = StageOutcome(name, "failed", rec["message"], secs)
        say(f"{tag} FAILED after {secs:.1f} s: {rec['message']}")
        (out / "errors").mkdir(exist_ok=True)
        (out / "errors" / f"{name}.txt").write_text(rec["traceback"])
    run.stages.append(outcome)
    order = {n: i for i, (n, _, _) in enumerate(STAGES)}
    run.stages.sort(key=lambda s: order.get(s.name, len(order)))


def _run_stages(run: ValidationRun, ctx: dict, done: set[str], say: Callable[[str], None]) -> None:
    import multiprocessing

    out = run.out_dir
    start = time.perf_counter()
    tags = {name: f"[{i:2d}/{len(STAGES)}] {name:<14}" for i, (name, _, _) in enumerate(STAGES, 1)}
    background = [st for st in STAGES if st[0] in BACKGROUND_STAGES] if _can_fork() else []
    running: dict[str, tuple[Any, Any]] = {}     # stage -> (child process, its end of the pipe)
    waiting: list[str] = []                      # run in the background, its turn has passed
    after: dict[str, Any] = {}   # such a stage -> the result it follows in one process's order

    def launch() -> None:
        for name, fn, needs in background:
            if name in running or any(s.name == name for s in run.stages) or \
                    not all(n in done for n in needs) or \
                    _stand_aside_reason(ctx, name, run, needs):
                continue
            receive, send = multiprocessing.Pipe(duplex=False)
            freeze()        # what the child inherits is never collected there (nor here)
            child = multiprocessing.get_context("fork").Process(
                target=_execute_in_child, args=(send, name, fn, ctx, out), daemon=True)
            try:
                child.start()
            except OSError:         # no process to be had (memory, limits): it runs in its turn
                send.close()
                receive.close()
                continue
            send.close()
            running[name] = (child, receive)
            say(f"{tags[name]} running in the background ... ({_doing(name)}; "
                f"{time.perf_counter() - start:.0f} s elapsed)")

    def collect(name: str) -> None:
        child, receive = running.pop(name)
        try:
            rec = receive.recv()
        except EOFError:
            rec = {"status": "failed", "seconds": 0.0, "traceback": "",
                   "message": f"the stage's process ended without a result "
                              f"(exit code {child.exitcode})"}
        child.join()
        receive.close()
        if name in waiting:
            waiting.remove(name)
        _record(run, name, rec, tags[name], done, say)
        if name in after:       # its result moved to where one process would have put it
            keys = [k for k in run.results if k not in after]
            order = [k for k in after if after[k] is None and k in run.results]
            for k in keys:
                order += [k] + [b for b in after if after[b] == k and b in run.results]
            for k in [k for k in order]:
                run.results[k] = run.results.pop(k)

    def stage_records(needs: Sequence[str] | None = None) -> list[dict]:
        """The reports stage's view of the run: the stage records, once the stages of ``needs``
        still running in the background are recorded; with None, every stage, and results.json
        is written."""
        for n in [n for n in waiting if needs is None or n in needs]:
            collect(n)
        if needs is None:
            _write(run, ctx)
        return [s.to_dict() for s in run.stages]

    with _long_lived_heap() as freeze:
        try:
            for name, fn, needs in STAGES:
                tag = tags[name]
                for n in [n for n in waiting if n in needs]:
                    collect(n)
                if name in running:
                    if running[name][1].poll():
                        collect(name)
                    else:              # recorded when it ends; the next stages go on meanwhile
                        waiting.append(name)
                        after[name] = next((k for k in reversed(run.results) if k not in after),
                                           None)
                    continue
                aside = _stand_aside_reason(ctx, name, run, needs) if "data" in done else None
                if aside:
                    run.stages.append(StageOutcome(name, "n/a", aside))
                    say(f"{tag} stands aside: {aside}")
                    continue
                missing = [n for n in needs if n not in done]
                if missing:
                    run.stages.append(StageOutcome(name, "skipped", f"needs {', '.join(missing)}"))
                    say(f"{tag} skipped: needs {', '.join(missing)}")
                    continue
                if name == "reports":   # it waits for the background stages when it needs them
                    ctx["stage_records"] = stage_records
                say(f"{tag} running ... ({_doing(name)}; "
                    f"{time.perf_counter() - start:.0f} s elapsed)")
                _record(run, name, _execute(fn, ctx, out), tag, done, say)
                ctx.pop("stage_records", None)
                launch()
            for n in list(waiting):
                collect(n)
        finally:
            for child, receive in running.values():   # interrupted: no child outlives the run
                child.terminate()
                child.join()
                receive.close()


def _doing(name: str) -> str:
    """What a stage does, for the progress line (the first line of its docstring)."""
    fn = dict((n, f) for n, f, _ in STAGES).get(name)
    doc = (fn.__doc__ or name).strip().splitlines()[0].rstrip(".") if fn else name
    return doc[:70] + ("..." if len(doc) > 70 else "")


def relative_paths(obj: Any, base: str | Path) -> Any:
    """``obj`` with no machine paths: every path under ``base`` (in a string, mapping or list)
    written relative to it, and a string that is itself an absolute path elsewhere reduced to its
    file name (so the results of two runs into different folders are the same bytes)."""
    b = Path(base)
    whole = (str(b), str(b.resolve()))
    prefixes = sorted({whole[1] + "/", str(b) + "/"}, key=len, reverse=True)

    def rel(obj: Any) -> Any:
        t = type(obj)
        if t is float or t is int or t is bool or obj is None:
            return obj
        if t is dict:
            return {k: rel(v) for k, v in obj.items()}
        if isinstance(obj, Path):
            obj = str(obj)
        if isinstance(obj, str):
            if obj in whole:
                return "."
            for p in prefixes:
                obj = obj.replace(p, "")
            if obj.startswith("/") and not any(c.isspace() for c in obj):
                obj = Path(obj).name
            return obj
        if isinstance(obj, Mapping):
            return {k: rel(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [rel(v) for v in obj]
        return obj

    return rel(obj)


#: File names `validate` writes in its output folder.
RESULTS_FILE, RUN_LOG_FILE = "results.json", "run_log.json"


def _write(run: ValidationRun, ctx: dict) -> None:
    """``results.json`` (reproducible: no timings, paths relative to the output folder) and the
    run log ``run_log.json`` (wall times, absolute paths, software versions)."""
    import platform

    # each stage's result is JSON-able already (`_execute` converted it)
    payload = {**to_jsonable({"plan": {k: v for k, v in ctx["plan"].items() if k != "simulation"},
                              "stages": [s.to_dict() for s in run.stages]}),
               "results": run.results}
    (run.out_dir / RESULTS_FILE).write_text(json.dumps(payload, indent=1, sort_keys=True))
    plan_path = ctx.get("plan_path")
    log = {"out_dir": str(run.out_dir.resolve()),
           "plan": str(Path(plan_path).resolve()) if plan_path else "shipped default plan",
           "started": ctx.get("started"), "written": _now(),
           "python": platform.python_version(), "instrument": _version(),
           "stages": [{"name": s.name, "status": s.status, "seconds": round(s.seconds, 3),
                       "cpu_seconds": round(s.cpu_seconds, 3)} for s in run.stages]}
    log["files"] = sorted(set(_run_files(run.out_dir)) | {RUN_LOG_FILE})
    (run.out_dir / RUN_LOG_FILE).write_text(json.dumps(log, indent=1))


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _version() -> str:
    from instrument import __version__

    return __version__
