"""Power planning for a field test: a Monte Carlo study over a grid of designs.

Each design cell (number of schools x mean respondents per school) is the population plan with
``simulation.schools.n`` and ``simulation.forms.<form>.respondents.mean`` set to the cell's values.
Every replication simulates a field test from the plan and runs the package's own procedures on
it, the ones `instrument validate` runs, so what is measured is their operating characteristics:

Missing answers are handled as `instrument validate` handles them (pairwise for WLSMV, FIML for
ML/MLR), so no respondent is dropped listwise.

* CFA of the form (the plan's estimator; loadings identified by unit factor variances): whether it
  converged, whether its fit passes Hu & Bentler's (1999) cut-offs (scaled CFI/RMSEA for WLSMV,
  SRMR), and the relative bias and 95% CI coverage of the loadings against the generating values
  (the latent-response loadings of the simulation, which WLSMV's standardized loadings estimate);
* DIF (optional): the invariance ladder of the DIF form by language with partial invariance
  (`instrument.invariance` then ``.partial()``); an item is flagged when a constraint on it is
  released. Power: share of planted DIF items flagged; false alarms: share of the other items;
* school scores: ICC(2) of the linked score (the item bank's overall score, or the construct
  named by ``construct=``) and the share of schools passing the reporting gates
  (`instrument.school_scores`);
* predictive validity: the linker's P10->P90 contrast of that score for the outcome
  (`instrument.link`, CR2 by district): power (95% CI excludes 0) and CI width; a replication
  in which too few schools pass the gates to fit the linker counts as not detecting the effect
  (``link.estimable`` false).

A cell's power is the share of replications, with its Monte Carlo standard error
``sqrt(p (1 - p) / reps)``. The recommended design is the cell with the fewest respondents in
total that meets every target (`instrument.rules.POWER_TARGET`, `CONVERGENCE_TARGET`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from instrument import rules
from instrument.montecarlo.population import PlanPopulation
from instrument.montecarlo.runner import montecarlo
from instrument.results import Meta, Table, from_jsonable, to_jsonable

__all__ = ["power", "PowerResult", "FieldTestAnalysis"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FieldTestAnalysis:
    """One replication of a field test: CFA, DIF, school scores and the linker.

    Parameters
    ----------
    form : str
        Form analysed by the CFA, school scores and linker.
    estimator : {"WLSMV", "ML", "MLR"}
    dif_form : str or None
        Form whose language DIF is tested (None: no DIF analysis).
    outcome : str
        Outcome of the linker.
    construct : str
        The school score of the ICC, the gates and the linker (``"overall"`` or a construct).
    bank : str, optional
        The item bank's folder or manifest (None: the shipped bank).
    missing : {"listwise", "pairwise", "fiml"}, optional
        Missing-data method of the CFA and the DIF ladder; None: `instrument validate`'s method
        for the estimator (`instrument.pipeline.missing_method`).
    """

    def __init__(self, form: str = "teacher", *, estimator: str = "WLSMV",
                 dif_form: str | None = "family", dif_group: str = "language",
                 outcome: str = "chronic_absence", construct: str = "overall",
                 bank: str | None = None, missing: str | None = None):
        self.form, self.estimator, self.missing = form, estimator, missing
        self.dif_form, self.dif_group, self.outcome = dif_form, dif_group, outcome
        self.construct, self.bank_path = construct, bank
        self._bank = None

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_bank"}

    def __setstate__(self, state):
        self.__dict__.update(state, _bank=None)

    def describe(self) -> dict:
        return {"analysis": "field test", "form": self.form, "estimator": self.estimator,
                "missing": self._missing()["missing"],
                "dif_form": self.dif_form, "dif_group": self.dif_group, "outcome": self.outcome,
                "construct": self.construct}

    def __call__(self, sim: Any) -> dict:
        if self._bank is None:                    # loaded once per process, not pickled
            from instrument.bank import load_bank
            self._bank = load_bank(self.bank_path)
        bank = self._bank
        rec: dict = {}
        rec.update(self._cfa(sim, bank))
        rec.update(self._scores(sim, bank))
        if self.dif_form:
            rec.update(self._dif(sim, bank))
        return rec

    def _ordinal(self) -> dict:
        return {"ordered": True} if self.estimator in ("WLSMV", "ULSMV") else {}

    def _missing(self) -> dict:
        """``missing=`` as given, else the method `instrument validate` uses for the estimator
        (pairwise for WLSMV, FIML for ML/MLR), so every respondent is analysed as in the fielded
        run."""
        if self.missing is not None:
            return {"missing": self.missing}
        from instrument.pipeline import missing_method
        return {"missing": missing_method(self.estimator)}

    def _cfa(self, sim: Any, bank: Any) -> dict:
        from instrument.sem.cfa import cfa
        df = bank.recode_reverse(sim.responses(self.form).data, form=self.form)
        fit = cfa(bank.model_syntax(form=self.form), df, estimator=self.estimator, std_lv=True,
                  **self._ordinal(), **self._missing())
        fm = fit.fit_measures
        scaled = self.estimator != "ML"
        vals = {"cfi": fm["cfi.scaled" if scaled else "cfi"],
                "rmsea": fm["rmsea.scaled" if scaled else "rmsea"], "srmr": fm["srmr"]}
        checks = [rules.FIT_CFI_HU_BENTLER, rules.FIT_RMSEA_HU_BENTLER, rules.FIT_SRMR_HU_BENTLER]
        passes = all(r.passes(float(vals[r.key])) for r in checks)
        est = fit.estimates
        lam = est[est["op"] == "=~"]
        truth = sim.truth.items
        true = dict(zip(truth.loc[truth["form"] == self.form, "item_id"],
                        truth.loc[truth["form"] == self.form, "loading"]))
        t = lam["rhs"].map(true).to_numpy(float)
        e = lam["est"].to_numpy(float)
        cover = (lam["ci.lower"].to_numpy(float) <= t) & (t <= lam["ci.upper"].to_numpy(float))
        return {"converged": fit.converged, "cfa.pass": passes, **vals,
                "loading.relbias": float(np.mean((e - t) / t)),
                "loading.coverage": float(np.mean(cover))}

    def _scores(self, sim: Any, bank: Any) -> dict:
        from instrument.linker import link
        from instrument.multilevel import icc
        from instrument.scores import respondent_scores, school_scores
        rs = respondent_scores(sim.responses(self.form), bank=bank)
        constructs = list(dict.fromkeys(bank.items.loc[bank.items["form"] == self.form,
                                                       "construct"])) + ["overall"]
        iccs = {c: icc(rs, c, "school_id") for c in constructs if c in rs.columns}
        ic = iccs[self.construct]
        sc = school_scores(sim.responses(self.form), bank=bank, outcomes=sim.outcomes,
                           icc1={c: float(r.icc1) for c, r in iccs.items()})
        ov = sc[(sc["construct"] == self.construct)]
        out = {"icc2": float(ic.icc2),
               "gates.pass": float((~ov["suppressed"].astype(bool)).mean())}
        try:
            lk = link(sc, sim.outcomes, outcome=self.outcome, form=self.form,
                      construct=self.construct)
        except ValueError:
            # too few reported schools to estimate the model: the design detects nothing
            return {**out, "link.estimable": False, "link.significant": False}
        eff = lk.effects.set_index("predictor").loc["score"]
        lo, hi = float(eff["ci.lower"]), float(eff["ci.upper"])
        return {**out, "link.estimable": True, "link.contrast": float(eff["contrast"]),
                "link.ci_width": hi - lo, "link.significant": bool(lo > 0 or hi < 0)}

    def _dif(self, sim: Any, bank: Any) -> dict:
        from instrument.invariance import collapse_empty_categories, invariance
        form = self.dif_form
        df = bank.recode_reverse(sim.responses(form).data, form=form)
        items = bank.items_for(form)
        if self._ordinal():
            df, _ = collapse_empty_categories(df, items, self.dif_group)
        try:
            res = invariance(bank.model_syntax(form=form), df, group=self.dif_group,
                             estimator=self.estimator, **self._ordinal(), **self._missing())
        except ValueError:
            # a group too small to fit the configural model: the design flags nothing
            return {"dif.estimable": False, "dif.power": 0.0, "dif.false_alarm": 0.0}
        if not res.table["holds"].iloc[1:].all():
            res = res.partial()
        flagged = set()
        for p in (res.releases["parameter"] if len(res.releases) else []):
            flagged |= set(_WORD.findall(str(p))) & set(items)
        tr = sim.truth.items[sim.truth.items["form"] == form]
        planted = set(tr.loc[(tr["threshold_shift"] != 0) |
                             (tr["loading_es"] != tr["loading"]), "item_id"])
        clean = set(items) - planted
        return {"dif.estimable": True,
                "dif.power": len(flagged & planted) / len(planted) if planted else math.nan,
                "dif.false_alarm": len(flagged & clean) / len(clean) if clean else math.nan}


_MEASURES = (  # field of a replication, column of the table, how it is summarised
    ("cfa.pass", "p_fit_pass", "share"), ("dif.estimable", "dif_estimable", "share"),
    ("dif.power", "dif_power", "mean"),
    ("dif.false_alarm", "dif_false_alarm", "mean"), ("icc2", "icc2", "mean"),
    ("gates.pass", "gates_pass", "mean"), ("link.significant", "link_power", "share"),
    ("link.ci_width", "link_ci_width", "mean"), ("loading.relbias", "loading_relbias", "mean"),
    ("loading.coverage", "loading_coverage", "mean"))


def _cell_row(schools: int, respondents: float, reps: pd.DataFrame) -> dict:
    ok = reps[reps["status"] == "ok"]
    row = {"schools": int(schools), "respondents": float(respondents), "reps": len(reps),
           "convergence": float((reps["status"] == "ok").mean())}
    for fieldname, col, _ in _MEASURES:
        v = ok[fieldname].dropna() if fieldname in ok.columns else pd.Series(dtype=float)
        row[col] = float(v.mean()) if len(v) else math.nan
        row[col + ".mcse"] = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan
    return row


@dataclass(frozen=True)
class PowerResult:
    """Power of a field test per design cell.

    Attributes
    ----------
    table : DataFrame
        One row per cell: ``schools respondents reps convergence p_fit_pass dif_estimable
        dif_power dif_false_alarm icc2 gates_pass link_power link_ci_width loading_relbias
        loading_coverage`` and ``<column>.mcse`` (Monte Carlo standard errors).
    replications : DataFrame
        Every replication's record with its cell (``schools respondents rep status ...``).
    recommended : dict
        The recommended cell (``schools``, ``respondents``) or empty when none meets the targets,
        with ``targets`` (the rules) and ``assumptions`` (the plan's population values).
    form, estimator, plan : str
    meta : Meta
    """

    table: pd.DataFrame
    replications: pd.DataFrame
    recommended: Mapping[str, Any]
    form: str
    estimator: str
    plan: str
    meta: Meta = field(default_factory=Meta)

    def summary(self) -> Table:
        cols = ["schools", "respondents", "convergence", "p_fit_pass", "dif_power",
                "dif_false_alarm", "icc2", "gates_pass", "link_power", "link_ci_width",
                "loading_relbias", "loading_coverage"]
        rec = self.recommended
        note = (f"Recommended: {rec['schools']} schools x {rec['respondents']:g} respondents per "
                "school." if rec.get("schools") else "No cell meets every target.")
        return Table(f"Power of the {self.form} field test ({self.estimator})",
                     self.table[[c for c in cols if c in self.table.columns]],
                     notes=(note, f"Targets: {'; '.join(rec.get('targets', []))}.",
                            f"{int(self.table['reps'].max())} replications per cell; simulated "
                            f"from plan {self.plan}."))

    def to_dict(self) -> dict:
        return to_jsonable({"table": self.table, "replications": self.replications,
                            "recommended": dict(self.recommended), "form": self.form,
                            "estimator": self.estimator, "plan": self.plan,
                            "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "PowerResult":
        return cls(table=from_jsonable(d["table"]), replications=from_jsonable(d["replications"]),
                   recommended=dict(d["recommended"]), form=d["form"], estimator=d["estimator"],
                   plan=d["plan"], meta=Meta.from_dict(d["meta"]))


def _recommend(table: pd.DataFrame, spec: Any, form: str, dif: bool) -> dict:
    target = rules.POWER_TARGET.threshold
    conv = rules.CONVERGENCE_TARGET.threshold
    need = [("convergence", conv), ("p_fit_pass", target), ("link_power", target)]
    if dif:
        need.append(("dif_power", target))
    ok = table.copy()
    for col, thr in need:
        ok = ok[ok[col] >= thr]
    sim = spec.simulation
    fs = sim["forms"][form]
    icc = ", ".join(f"{k} {v:g}" for k, v in fs["icc"].items())
    assumptions = [f"{form} form: loadings {fs['loadings']['low']}-{fs['loadings']['high']}, "
                   f"school ICC ({icc}), respondents negative binomial (dispersion "
                   f"{fs['respondents']['dispersion']})",
                   f"outcome effects and DIF as planted in plan {spec.name}",
                   f"districts: {sim['schools']['districts']}"]
    targets = [f"{col} >= {thr:g}" for col, thr in need]
    out = {"targets": targets, "assumptions": assumptions,
           "sources": [rules.POWER_TARGET.source, rules.CONVERGENCE_TARGET.source]}
    if len(ok):
        best = ok.assign(total=ok["schools"] * ok["respondents"]).sort_values(
            ["total", "schools"]).iloc[0]
        out.update(schools=int(best["schools"]), respondents=float(best["respondents"]))
    return out


def _dif_form(spec: Any) -> str | None:
    """The first form in which the plan plants DIF (``simulation.forms.<form>.dif``), or None."""
    planted = [f for f, fs in spec.simulation["forms"].items() if fs.get("dif")]
    return planted[0] if planted else None


def power(plan: Any = None, *, schools: Sequence[int] = (100, 200, 400),
          respondents: Sequence[float] = (8, 15, 25), reps: int = 500, seed: int = 1,
          form: str = "teacher", estimator: str | None = None, dif: bool = True,
          outcome: str = "chronic_absence", construct: str | None = None,
          missing: str | None = None, scheduler: Any = None,
          workers: int | None = None, path: str | None = None,
          progress: bool | None = None) -> PowerResult:
    """Power, precision and error rates of a field test over a grid of designs.

    Parameters
    ----------
    plan : path, name or mapping
        The population plan (the shipped default when None).
    schools, respondents : sequences
        The design grid: numbers of schools, mean respondents per school on ``form``.
    reps, seed : int
        Replications per cell; cell ``k`` (in grid order) runs with ``SeedSequence([seed, k])``.
    form : str
        Form of the CFA, school scores and linker.
    estimator : str, optional
        CFA estimator (the plan's ``analysis.estimator``, else WLSMV).
    dif : bool
        Test language DIF in every replication, on the first form in which the plan plants DIF
        (``simulation.forms.<form>.dif``); a plan that plants none has no DIF analysis.
    construct : str, optional
        The school score behind the ICC, the gates and the linker: the item bank's overall
        score when the bank declares one, else a construct that must be named.
    missing : {"listwise", "pairwise", "fiml"}, optional
        Missing-data method (None: `instrument validate`'s for the estimator).
    scheduler, workers, path, progress
        As in `instrument.montecarlo` (``path``: one study directory per cell below it).

    Returns
    -------
    PowerResult
    """
    base = PlanPopulation(plan)
    spec = base.spec()
    est = estimator or (spec.spec.get("analysis") or {}).get("estimator", "WLSMV")
    if form not in spec.simulation["forms"]:
        raise ValueError(f"form={form!r} is not a form of plan {spec.path}; expected one of "
                         f"{sorted(spec.simulation['forms'])}")
    bank = base.bank()
    known = bank.score_names()
    if construct is None and bank.overall is None:
        raise ValueError("the item bank defines no overall score; expected construct= (--construct) "
                         "naming one of " + ", ".join(known))
    construct = "overall" if construct is None else construct
    if construct not in known:
        raise ValueError(f"construct={construct!r} is not a construct of the item bank; expected "
                         f"one of {', '.join(known)}")
    dif_form = _dif_form(spec) if dif else None
    analysis = FieldTestAnalysis(form, estimator=est, dif_form=dif_form, outcome=outcome,
                                 construct=construct, bank=base.bank_path(), missing=missing)
    rows, frames = [], []
    k = 0
    for s in schools:
        for r in respondents:
            pop = PlanPopulation(plan, {"schools.n": int(s),
                                        f"forms.{form}.respondents.mean": float(r)})
            cell_seed = int(np.random.SeedSequence([int(seed), k]).generate_state(1, np.uint32)[0])
            sub = None if path is None else f"{path}/cell-{int(s)}x{r:g}"
            res = montecarlo(pop, analysis, reps=reps, seed=cell_seed, scheduler=scheduler,
                             workers=workers, path=sub, progress=progress)
            rows.append(_cell_row(s, r, res.replications))
            d = res.replications.copy()
            d.insert(0, "respondents", float(r))
            d.insert(0, "schools", int(s))
            frames.append(d)
            k += 1
    table = pd.DataFrame(rows)
    recommended = _recommend(table, spec, form, dif_form is not None)
    return PowerResult(table=table, replications=pd.concat(frames, ignore_index=True),
                       recommended=recommended, form=form, estimator=est, plan=spec.name,
                       meta=Meta(options={"plan": spec.path, "schools": list(map(int, schools)),
                                          "respondents": list(map(float, respondents)),
                                          "reps": int(reps), "form": form, "estimator": est,
                                          "dif": bool(dif), "outcome": outcome,
                                          "missing": analysis._missing()["missing"]},
                                 seed=int(seed)))
