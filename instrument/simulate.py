"""Simulate a field test from a population model (``analyses/*.yaml``).

Model (per form f, school s, respondent i, construct c, item j of construct c(j)):

* School level. True school engagement ``G_s ~ N(0, 1)``, correlated ``r`` with the latent
  poverty ``z_s`` (``engagement_poverty_correlation``). School effect of each construct
  ``u_fsc = sqrt(ICC_fc) * (g_f G_s + sqrt(1 - g_f^2) w_fsc)``, ``w_fs ~ N(0, R_f)``.
* Respondents. ``eta_ic = u_s(i)c + sqrt(1 - ICC_fc) e_ic``, ``e_i ~ N(0, R_f)``; so each
  construct's latent score has variance 1, a school ICC of ``ICC_fc`` and within-school factor
  correlations ``R_f``.
* Items. Latent response ``x*_ij = lambda_j eta_ic(j) + sqrt(1 - lambda_j^2) eps_ij`` (variance 1 in
  English). Spanish respondents on a DIF item: ``x* = (lambda_j + dlambda_j) eta + sqrt(1 -
  lambda_j^2) eps + delta_j`` (intercept shift ``delta_j``, i.e. all thresholds lower by
  ``delta_j``). The category is ``1 + #{k: x* > tau_jk}`` with ``tau_jk = Phi^-1(cum. category
  probability k) + d_j`` (item difficulty ``d_j``), mapped onto the scale's codes; reverse-keyed
  items are then written reversed (``min + max - code``), so ``bank.recode_reverse`` restores the
  construct's direction. Thresholds in `Truth` are on the construct-aligned (recoded) scale.
* Missing: every answer is missing with probability ``mcar``, plus ``extra`` for respondents whose
  background variable is below ``below`` (MAR).
* Outcomes (proportions): ``prior = prior_mean + prior_poverty z_s + prior_sd e``;
  ``current = prior + change_mean + b_G G_s + b_z z_s + change_sd e'`` clipped to [0, 1], where
  the plan gives the P90-vs-P10 contrasts and ``b = contrast / (Phi^-1(.9) - Phi^-1(.1))``; since
  poverty is a monotone transform of ``z``, its population P90-vs-P10 contrast equals the plan's.
* District share of engagement (optional ``schools.engagement_district_share`` = q):
  ``G_s = r z_s + sqrt(1 - r^2) (sqrt(q) a_d(s) + sqrt(1 - q) e_s)`` with district effects
  ``a_d ~ N(0, 1)``; the district share of Var(G) is ``r^2 p + (1 - r^2) q`` (p = poverty's
  district share). q = 0 (default) is the model above.
* Panel (optional ``simulation.years``: ``n`` years labelled ``first, first + 1, ...``): true
  engagement changes ``G_s,t = G_s,t-1 + change_sd D_s,t``, ``D ~ N(0, 1)``; the construct-specific
  school parts ``w_fsc`` persist, so the true change of a school effect is
  ``sqrt(ICC_fc) g_f change_sd D_s,t``. Respondents are a fresh cross-section each year (new
  respondents, counts and rosters). Outcomes of year t >= 1: ``prior_t = current_t-1``,
  ``current_t = prior_t + change_mean + b_G G_s,t-1 + b_z z_s + b_D change_sd D_s,t + change_sd e``
  with ``b_D = change_engagement_effect / (Phi^-1(.9) - Phi^-1(.1)) / change_sd`` (the plan's
  P90-vs-P10 contrast of the true engagement change). Year 0 is exactly the one-year simulation
  (with the year's label in a ``year`` column and year-tagged respondent ids). Responses and
  outcomes of all years are stacked with a ``year`` column (ResponseSet keeps one form; the
  column is a background column); `Truth.panel` and `Truth.variance` hold the true scores,
  changes and variance components.

Randomness flows from one ``numpy.random.SeedSequence(seed)`` spawned into independent streams for
schools, each form's respondents, each form's item parameters and outcomes, so the same seed gives
identical frames (and changing one form's items leaves the other form's draws unchanged).
Panel draws (district engagement, change, later years' respondents and outcomes) use further
spawned streams, so a plan without ``years`` draws exactly what it drew before panels existed.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import special, stats

from instrument.plans import OUTCOMES
from instrument.population import PopulationPlan, load_plan
from instrument.responses import ResponseSet, normalize_dtypes
from instrument.results import Meta, Table, from_jsonable, hash_frame, to_jsonable

DEFAULT_FIRST_YEAR = 2025  # label of the first survey year of a panel without ``years.first``
Z90_MINUS_Z10 = float(stats.norm.ppf(0.9) - stats.norm.ppf(0.1))  # 2.5631...
_SELECTOR = re.compile(r"^(?P<construct>[A-Za-z_][\w]*)\[(?P<k>\d+)\]$")


@dataclass(frozen=True)
class Truth:
    """The generating values of a simulation.

    Attributes
    ----------
    items : DataFrame
        ``form item_id construct scale reverse loading loading_es threshold_shift difficulty
        thresholds`` (thresholds: list, construct-aligned scale, English respondents).
    icc : DataFrame
        ``form construct icc`` (of the latent construct score).
    factor_correlation : dict
        form -> DataFrame (construct x construct), within-school correlations.
    school_general : dict
        form -> g_f.
    schools : DataFrame
        ``school_id district_id engagement poverty_z`` and ``u.<form>.<construct>`` school effects.
    effects : DataFrame
        ``outcome predictor p90_p10 per_sd`` true effects on current-year outcomes given prior.
    dif : DataFrame
        ``form item_id threshold_shift loading_diff`` planted for Spanish respondents.
    panel : DataFrame or None
        Panels only: one row per school x year, ``school_id district_id year engagement
        engagement_change`` (true change from the previous year, NaN in the first) and
        ``u.<form>.<construct>`` (the school's true construct effect that year).
    variance : DataFrame or None
        Panels only: true variance components per year of each construct's latent score
        (``form construct``) and of school engagement (``form == ""``, ``construct ==
        "engagement"``): ``year district school respondent total icc_district icc_school
        district_share`` (district / (district + school), the district share of the
        between-school variance) and ``change`` (variance of the true change of the school
        effect from the previous year; NaN in the first year).
    """

    items: pd.DataFrame
    icc: pd.DataFrame
    factor_correlation: Mapping[str, pd.DataFrame]
    school_general: Mapping[str, float]
    schools: pd.DataFrame
    effects: pd.DataFrame
    dif: pd.DataFrame
    panel: pd.DataFrame | None = None
    variance: pd.DataFrame | None = None

    def summary(self) -> Table:
        """Generating values by form x construct: ICC, mean loading, items, DIF items."""
        it = self.items.groupby(["form", "construct"], sort=False).agg(
            items=("item_id", "size"), mean_loading=("loading", "mean"))
        frame = self.icc.merge(it.reset_index(), on=["form", "construct"])
        dif = self.dif.merge(self.items[["item_id", "construct"]], on="item_id")
        frame["dif_items"] = [", ".join(dif.loc[(dif["form"] == r.form)
                                                & (dif["construct"] == r.construct), "item_id"])
                              for r in frame.itertuples()]
        eff = "; ".join(f"{r.outcome} ~ {r.predictor}: {r.p90_p10:+g} (P90-P10)"
                        for r in self.effects.itertuples())
        return Table("Simulation truth", frame, notes=(f"True effects on outcomes: {eff}.",))

    def to_dict(self) -> dict:
        fc = {f: {"constructs": list(m.columns), "values": m.to_numpy().tolist()}
              for f, m in self.factor_correlation.items()}
        d = {"items": self.items, "icc": self.icc, "factor_correlation": fc,
             "school_general": dict(self.school_general), "schools": self.schools,
             "effects": self.effects, "dif": self.dif}
        for k in ("panel", "variance"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        return to_jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Truth":
        fc = {f: pd.DataFrame(v["values"], index=v["constructs"], columns=v["constructs"])
              for f, v in d["factor_correlation"].items()}
        return cls(items=from_jsonable(d["items"]), icc=from_jsonable(d["icc"]),
                   factor_correlation=fc, school_general=dict(d["school_general"]),
                   schools=from_jsonable(d["schools"]), effects=from_jsonable(d["effects"]),
                   dif=from_jsonable(d["dif"]),
                   panel=from_jsonable(d["panel"]) if d.get("panel") is not None else None,
                   variance=(from_jsonable(d["variance"]) if d.get("variance") is not None
                             else None))


@dataclass(frozen=True)
class Simulation:
    """Simulated field test: both forms' responses, school outcomes and the truth."""

    teacher: ResponseSet
    family: ResponseSet
    outcomes: pd.DataFrame
    truth: Truth
    meta: Meta = field(default_factory=Meta)

    def to_dict(self) -> dict:
        return to_jsonable({"teacher": self.teacher.to_dict(), "family": self.family.to_dict(),
                            "outcomes": self.outcomes, "truth": self.truth.to_dict(),
                            "meta": self.meta.to_dict()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Simulation":
        outcomes = from_jsonable(d["outcomes"])
        for c in ("school_id", "district_id", "grade_band", "locale"):
            outcomes[c] = outcomes[c].astype("str")
        for c in ("enrollment", "roster_teachers", "roster_families"):
            outcomes[c] = outcomes[c].astype(np.int64)
        return cls(teacher=ResponseSet.from_dict(d["teacher"]),
                   family=ResponseSet.from_dict(d["family"]), outcomes=outcomes,
                   truth=Truth.from_dict(d["truth"]), meta=Meta.from_dict(d["meta"]))

    def responses(self, form: str) -> ResponseSet:
        return {"teacher": self.teacher, "family": self.family}[form]

    def summary(self) -> Table:
        rows = []
        for rs in (self.teacher, self.family):
            d = rs.data
            rows.append({"form": rs.form, "respondents": len(d), "schools": d["school_id"].nunique(),
                         "spanish_share": float((d["language"] == "es").mean()),
                         "missing_share": float(d[list(rs.items)].isna().to_numpy().mean())})
        years = self.meta.options.get("years")
        n_schools = self.outcomes["school_id"].nunique()
        notes = (f"{n_schools} schools, seed {self.meta.seed}.",)
        if years:
            notes += (f"Panel of {len(years)} survey years ({', '.join(map(str, years))}); "
                      "respondent counts are over all years.",)
        return Table("Simulated field test", pd.DataFrame(rows), notes=notes)

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write teacher.csv, family.csv, outcomes.csv and truth.json to ``out_dir``."""
        from instrument.io.safe import safe_to_csv
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"teacher": out / "teacher.csv", "family": out / "family.csv",
                 "outcomes": out / "outcomes.csv", "truth": out / "truth.json"}
        safe_to_csv(self.teacher.data, paths["teacher"])
        safe_to_csv(self.family.data, paths["family"])
        safe_to_csv(self.outcomes, paths["outcomes"])
        payload = {"truth": self.truth.to_dict(), "meta": self.meta.to_dict()}
        paths["truth"].write_text(json.dumps(to_jsonable(payload), indent=1, sort_keys=True))
        return paths


# --- helpers ---------------------------------------------------------------------------------------

def _per_construct(mapping: Mapping[str, float], constructs: list[str], path: str) -> np.ndarray:
    unknown = [k for k in mapping if k != "default" and k not in constructs]
    if unknown:
        raise ValueError(f"plan key {path}.{unknown[0]}: construct {unknown[0]!r} is not on this "
                         f"form of the bank; expected one of {constructs} or 'default'.")
    return np.array([float(mapping.get(c, mapping["default"])) for c in constructs])


def _corr_matrix(spec: Mapping[str, Any], constructs: list[str], path: str) -> np.ndarray:
    C = len(constructs)
    R = np.full((C, C), float(spec["default"]))
    np.fill_diagonal(R, 1.0)
    for pair, v in (spec.get("pairs") or {}).items():
        a, b = (s.strip() for s in pair.split("~"))
        for x in (a, b):
            if x not in constructs:
                raise ValueError(f"plan key {path}.pairs.{pair}: construct {x!r} is not on this "
                                 f"form of the bank; expected one of {constructs}.")
        i, j = constructs.index(a), constructs.index(b)
        R[i, j] = R[j, i] = float(v)
    if np.linalg.eigvalsh(R).min() <= 1e-10:
        raise ValueError(f"plan key {path}: the factor correlation matrix is not positive "
                         "definite; expected correlations that can hold together.")
    return R


def _resolve_item(sel: str, form: str, bank: Any, path: str) -> str:
    items = bank.items_for(form)
    if sel in items:
        return sel
    m = _SELECTOR.match(sel)
    if m:
        its = bank.items_for(form, m["construct"])
        k = int(m["k"])
        if 1 <= k <= len(its):
            return its[k - 1]
    raise ValueError(f"plan key {path}: {sel!r} names no item of the {form} form; expected an "
                     "item_id of that form or 'construct[k]' (k-th item of the construct, 1-based).")


def _nb(rng: np.random.Generator, mean: float, size: float, n: int) -> np.ndarray:
    """Negative binomial counts with the given mean and size (dispersion) parameter."""
    return rng.negative_binomial(size, size / (size + mean), n)


def _beta(rng: np.random.Generator, mean: float, conc: float, n: int) -> np.ndarray:
    return rng.beta(mean * conc, (1 - mean) * conc, n)


def _item_parameters(bank: Any, form: str, fspec: Mapping[str, Any], rng: np.random.Generator,
                     ) -> pd.DataFrame:
    """Loadings, difficulties and thresholds of every item of ``form`` (English respondents)."""
    order = bank.items_for(form)
    items = (bank.items[bank.items["form"] == form].set_index("item_id").loc[order]
             .reset_index()[["item_id", "construct", "scale", "reverse"]].copy())
    J = len(items)
    lo, hi = fspec["loadings"]["low"], fspec["loadings"]["high"]
    loading = rng.uniform(lo, hi, J)
    difficulty = rng.normal(0.0, fspec["difficulty_sd"], J)
    overrides = fspec.get("items") or {}
    for item_id, o in overrides.items():
        if item_id not in order:
            raise ValueError(f"plan key simulation.forms.{form}.items.{item_id}: not an item of "
                             f"the {form} form; expected one of {order}.")
        j = order.index(item_id)
        loading[j] = o.get("loading", loading[j])
        difficulty[j] = o.get("difficulty", difficulty[j])
    probs = {int(k): np.asarray(v, float) for k, v in fspec["category_probabilities"].items()}
    thresholds = []
    for j, scale_id in enumerate(items["scale"]):
        K = len(bank.scales[scale_id].codes)
        if K not in probs:
            raise ValueError(f"plan key simulation.forms.{form}.category_probabilities: no entry "
                             f"for {K} categories (scale {scale_id!r}, item {items['item_id'][j]!r});"
                             f" expected a key \"{K}\".")
        tau = stats.norm.ppf(np.cumsum(probs[K])[:-1]) + difficulty[j]
        thresholds.append([float(t) for t in tau])
    items["loading"] = loading
    items["difficulty"] = difficulty
    items["thresholds"] = thresholds
    items["loading_es"] = loading
    items["threshold_shift"] = 0.0
    for i, d in enumerate(fspec.get("dif") or []):
        item_id = _resolve_item(d["item"], form, bank, f"simulation.forms.{form}.dif[{i}].item")
        j = order.index(item_id)
        items.loc[j, "threshold_shift"] = float(d.get("threshold_shift", 0.0))
        les = loading[j] + float(d.get("loading_diff", 0.0))
        if not 0 < les < 1:
            raise ValueError(f"plan key simulation.forms.{form}.dif[{i}].loading_diff: Spanish "
                             f"loading {les:.3f} of {item_id} is outside (0, 1).")
        items.loc[j, "loading_es"] = les
    items["form"] = form
    cols = ["form", "item_id", "construct", "scale", "reverse", "loading", "loading_es",
            "threshold_shift", "difficulty", "thresholds"]
    return items[cols]


def _schools(spec: Mapping[str, Any], rng: np.random.Generator,
             r_panel: np.random.Generator | None = None) -> pd.DataFrame:
    S, D = int(spec["n"]), int(spec["districts"])
    conc = float(spec.get("district_concentration", 2.0))
    # every district gets one school, the rest by Dirichlet-multinomial sizes
    sizes = np.ones(D, int) + rng.multinomial(S - D, rng.dirichlet(np.full(D, conc)))
    district = np.repeat(np.arange(D), sizes)
    pov = spec["poverty"]
    dz = rng.standard_normal(D)
    z_pov = (math.sqrt(pov["district_share"]) * dz[district]
             + math.sqrt(1 - pov["district_share"]) * rng.standard_normal(S))
    r = spec["engagement_poverty_correlation"]
    e_g = rng.standard_normal(S)
    q = float(spec.get("engagement_district_share", 0.0))
    if q > 0:  # panel plans: a district part of engagement from its own stream (issue 12)
        dg = r_panel.standard_normal(D)
        e_g = math.sqrt(q) * dg[district] + math.sqrt(1 - q) * e_g
    G = r * z_pov + math.sqrt(1 - r * r) * e_g
    el = spec["el_share"]
    rz = el["poverty_correlation"]
    z_el = rz * z_pov + math.sqrt(1 - rz * rz) * rng.standard_normal(S)
    bands = list(spec["grade_band"])
    band = rng.choice(bands, size=S, p=np.array([spec["grade_band"][b] for b in bands]))
    locales = list(spec["locale"])
    locale = rng.choice(locales, size=S, p=np.array([spec["locale"][x] for x in locales]))
    cv = spec["enrollment"]["cv"]
    sig = math.sqrt(math.log1p(cv * cv))
    mean_enr = np.array([spec["enrollment"]["mean"][b] for b in band], float)
    enrollment = np.maximum(20, np.round(mean_enr * np.exp(sig * rng.standard_normal(S)
                                                            - sig * sig / 2))).astype(int)
    return pd.DataFrame({
        "school_id": [f"S{s + 1:04d}" for s in range(S)],
        "district_id": [f"D{d + 1:02d}" for d in district],
        "grade_band": band, "enrollment": enrollment,
        "poverty": special.expit(special.logit(pov["mean"]) + pov["sd_logit"] * z_pov),
        "el_share": special.expit(special.logit(el["mean"]) + el["sd_logit"] * z_el),
        "locale": locale, "engagement": G, "poverty_z": z_pov})


def _simulate_form(form: str, fspec: Mapping[str, Any], bank: Any, schools: pd.DataFrame,
                   items: pd.DataFrame, rng: np.random.Generator, *,
                   engagement: np.ndarray | None = None, w: np.ndarray | None = None,
                   respondent_rng: np.random.Generator | None = None, year: int | None = None,
                   ) -> tuple[ResponseSet, np.ndarray, pd.DataFrame, np.ndarray, np.ndarray,
                              np.ndarray]:
    """One form's respondents. ``engagement`` (a year's true engagement) and ``w`` (persistent
    construct-specific school effects) default to year-0 values drawn here; ``respondent_rng``
    redraws everything below the school level (measurement replications); ``year`` adds a
    ``year`` column and year-tagged respondent ids."""
    S = len(schools)
    constructs = list(dict.fromkeys(items["construct"]))
    path = f"simulation.forms.{form}"
    icc = _per_construct(fspec["icc"], constructs, f"{path}.icc")
    R = _corr_matrix(fspec["factor_correlation"], constructs, f"{path}.factor_correlation")
    L = np.linalg.cholesky(R)
    g = float(fspec["school_general"])
    C = len(constructs)

    # respondents and rosters
    n_s = _nb(rng, fspec["respondents"]["mean"], fspec["respondents"]["dispersion"], S)
    rate = _beta(rng, fspec["response_rate"]["mean"], fspec["response_rate"]["concentration"], S)
    w_own = rng.standard_normal((S, C)) @ L.T
    w = w_own if w is None else w
    if respondent_rng is not None:
        rng = respondent_rng
        n_s = _nb(rng, fspec["respondents"]["mean"], fspec["respondents"]["dispersion"], S)
        rate = _beta(rng, fspec["response_rate"]["mean"], fspec["response_rate"]["concentration"],
                     S)
    roster = np.maximum(n_s, np.ceil(np.where(n_s > 0, n_s, fspec["respondents"]["mean"])
                                     / np.maximum(rate, 0.02))).astype(int)
    sidx = np.repeat(np.arange(S), n_s)
    N = int(n_s.sum())

    # school effects and latent construct scores
    G = schools["engagement"].to_numpy() if engagement is None else np.asarray(engagement, float)
    u = np.sqrt(icc) * (g * G[:, None] + math.sqrt(1 - g * g) * w)
    e = rng.standard_normal((N, C)) @ L.T
    eta = u[sidx] + np.sqrt(1 - icc) * e

    # language
    ss = fspec["spanish_share"]
    p_es = np.clip(ss["base"] + ss["per_el_share"] * schools["el_share"].to_numpy(), 0, 0.95)
    spanish = rng.random(N) < p_es[sidx]

    # item responses
    cidx = np.array([constructs.index(c) for c in items["construct"]])
    lam = items["loading"].to_numpy()
    lam_es = items["loading_es"].to_numpy()
    shift = items["threshold_shift"].to_numpy()
    lam_i = np.where(spanish[:, None], lam_es[None, :], lam[None, :])
    xstar = (lam_i * eta[:, cidx] + np.sqrt(1 - lam * lam)[None, :] * rng.standard_normal(
        (N, len(lam))) + np.where(spanish[:, None], shift[None, :], 0.0))
    K = max(len(t) for t in items["thresholds"]) + 1
    tau = np.full((len(lam), K - 1), np.inf)
    for j, t in enumerate(items["thresholds"]):
        tau[j, :len(t)] = t
    cat = (xstar[:, :, None] > tau[None, :, :]).sum(axis=2)  # 0..K_j-1
    codes = np.empty((N, len(lam)))
    for j, (scale_id, rev) in enumerate(zip(items["scale"], items["reverse"])):
        sc = np.asarray(bank.scales[scale_id].codes, float)
        c = sc[cat[:, j]]
        codes[:, j] = (sc.min() + sc.max() - c) if bool(rev) else c

    # background and missingness
    years = rng.poisson(fspec["years_at_school_mean"], N)
    miss = rng.random(codes.shape) < fspec["missing"]["mcar"]
    mar = fspec["missing"].get("mar")
    if mar:
        low = years < mar["below"]
        miss |= (rng.random(codes.shape) < mar["extra"]) & low[:, None]
    codes[miss] = np.nan

    prefix = "T" if form == "teacher" else "F"
    if year is not None:
        prefix = f"{prefix}{year}-"
    data = pd.DataFrame({
        "respondent_id": [f"{prefix}{i + 1:06d}" for i in range(N)],
        "school_id": schools["school_id"].to_numpy()[sidx],
        "district_id": schools["district_id"].to_numpy()[sidx],
        "language": np.where(spanish, "es", "en").astype(object)})
    if year is not None:
        data["year"] = np.full(N, int(year), np.int64)
    data["years_at_school"] = years.astype(np.int64)
    if form == "family":
        lo_hi = {"elementary": (0, 5), "middle": (6, 8), "high": (9, 12)}
        band = schools["grade_band"].to_numpy()[sidx]
        lo = np.array([lo_hi[b][0] for b in band])
        hi = np.array([lo_hi[b][1] for b in band])
        data["child_grade"] = (lo + np.floor(rng.random(N) * (hi - lo + 1))).astype(np.int64)
    item_ids = items["item_id"].tolist()
    data = normalize_dtypes(pd.concat([data, pd.DataFrame(codes, columns=item_ids)], axis=1),
                            item_ids)
    rs = ResponseSet(form=form, data=data, items=tuple(item_ids), source="simulated")
    icc_df = pd.DataFrame({"form": form, "construct": constructs, "icc": icc})
    return rs, roster, icc_df, R, u, w


def _outcomes(spec: Mapping[str, Any], schools: pd.DataFrame, rng: np.random.Generator,
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    G = schools["engagement"].to_numpy()
    z = schools["poverty_z"].to_numpy()
    S = len(schools)
    out = {}
    eff = []
    for name in OUTCOMES:
        o = spec[name]
        prior = o["prior_mean"] + o["prior_poverty"] * z + o["prior_sd"] * rng.standard_normal(S)
        b_g = o["effects"]["engagement"] / Z90_MINUS_Z10
        b_z = o["effects"]["poverty"] / Z90_MINUS_Z10
        change = o["change_mean"] + b_g * G + b_z * z + o["change_sd"] * rng.standard_normal(S)
        out[name] = np.clip(prior + change, 0, 1)
        out[f"{name}_prior"] = np.clip(prior, 0, 1)
        eff += [{"outcome": name, "predictor": "engagement", "p90_p10": o["effects"]["engagement"],
                 "per_sd": b_g},
                {"outcome": name, "predictor": "poverty", "p90_p10": o["effects"]["poverty"],
                 "per_sd": b_z}]
    return pd.DataFrame(out), pd.DataFrame(eff)


def _panel_outcomes(spec: Mapping[str, Any], ysp: Mapping[str, Any], schools: pd.DataFrame,
                    previous: pd.DataFrame, G_prev: np.ndarray, dG: np.ndarray,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Outcomes of a later panel year: the prior is the previous year's current value and the
    change depends on last year's engagement, poverty and the true engagement change."""
    z = schools["poverty_z"].to_numpy()
    S = len(schools)
    cs = float(ysp["change_sd"])
    ce = ysp.get("change_engagement_effect") or {}
    out = {}
    for name in OUTCOMES:
        o = spec[name]
        prior = previous[name].to_numpy(float)
        b_g = o["effects"]["engagement"] / Z90_MINUS_Z10
        b_z = o["effects"]["poverty"] / Z90_MINUS_Z10
        b_d = float(ce.get(name, 0.0)) / (Z90_MINUS_Z10 * cs) if cs > 0 else 0.0
        change = (o["change_mean"] + b_g * G_prev + b_z * z + b_d * dG
                  + o["change_sd"] * rng.standard_normal(S))
        out[name] = np.clip(prior + change, 0, 1)
        out[f"{name}_prior"] = prior
    return pd.DataFrame(out)


def _change_effects(spec: Mapping[str, Any], ysp: Mapping[str, Any]) -> pd.DataFrame:
    """True effects of the engagement change on the outcome change (``per_sd``: per SD of the
    true change; per unit of engagement change it is ``per_sd / change_sd``)."""
    ce = ysp.get("change_engagement_effect") or {}
    return pd.DataFrame([{"outcome": name, "predictor": "engagement_change",
                          "p90_p10": float(ce.get(name, 0.0)),
                          "per_sd": float(ce.get(name, 0.0)) / Z90_MINUS_Z10}
                         for name in OUTCOMES])


def _true_variance(spec: Mapping[str, Any], icc: pd.DataFrame, school_general: Mapping[str, float],
                   years: list, change_sd: float) -> pd.DataFrame:
    """True variance components per year (see `Truth.variance` and the module docstring)."""
    r = float(spec["engagement_poverty_correlation"])
    d0 = r * r * float(spec["poverty"]["district_share"]) + (1 - r * r) * float(
        spec.get("engagement_district_share", 0.0))
    rows = []
    for t, y in enumerate(years):
        gd, gs = d0, 1 - d0 + t * change_sd ** 2  # engagement: district, school-within-district
        ch = change_sd ** 2 if t > 0 else np.nan
        rows.append({"year": y, "form": "", "construct": "engagement", "district": gd,
                     "school": gs, "respondent": np.nan, "change": ch})
        for row in icc.itertuples():
            g2 = school_general[row.form] ** 2
            rows.append({"year": y, "form": row.form, "construct": row.construct,
                         "district": row.icc * g2 * gd,
                         "school": row.icc * (g2 * gs + 1 - g2), "respondent": 1 - row.icc,
                         "change": row.icc * g2 * ch})
    out = pd.DataFrame(rows)
    between = out["district"] + out["school"]
    out["total"] = between + out["respondent"].fillna(0.0)
    out["icc_district"] = out["district"] / out["total"]
    out["icc_school"] = out["school"] / out["total"]
    out["district_share"] = out["district"] / between
    return out


def true_school_means(truth: Truth, form: str, construct: str, *, bank: Any,
                      year: int | None = None) -> pd.DataFrame:
    """Each school's true raw construct mean: the expected respondent mean of the construct's
    (reverse-recoded) items given the school's true effect, English respondents.

    Returns ``school_id district_id mean`` (and ``year``) for the given year (the first year, or
    the only one, when None).

    Notes
    -----
    ``x*_j | u ~ N(lambda_j u, 1 - lambda_j^2 ICC)`` (the within-school latent part has variance
    ``1 - ICC``), so ``E[code_j | u] = c_0 + sum_k (c_k - c_{k-1}) Phi((lambda_j u - tau_jk) /
    sqrt(1 - lambda_j^2 ICC))`` with ``c_k`` the scale's codes; the true mean is the average over
    the construct's items. Missingness is independent of the answers in the model, so this is
    also the expected mean of answered items.
    """
    it = truth.items[(truth.items["form"] == form) & (truth.items["construct"] == construct)]
    if it.empty:
        raise ValueError(f"truth has no items of form={form!r}, construct={construct!r}.")
    col = f"u.{form}.{construct}"
    if truth.panel is not None:
        yrs = sorted(truth.panel["year"].unique())
        y = yrs[0] if year is None else year
        if y not in yrs:
            raise ValueError(f"year={year!r} is not a year of the panel ({yrs}).")
        sch = truth.panel[truth.panel["year"] == y]
    else:
        if year is not None:
            raise ValueError("year= needs a panel simulation (a plan with simulation.years).")
        sch, y = truth.schools, None
    icc = float(truth.icc.set_index(["form", "construct"]).loc[(form, construct), "icc"])
    u = sch[col].to_numpy(float)
    m = np.zeros_like(u)
    for row in it.itertuples():
        codes = np.asarray(bank.scales[row.scale].codes, float)
        sd = math.sqrt(1 - row.loading ** 2 * icc)
        p = stats.norm.cdf((row.loading * u[:, None] - np.asarray(row.thresholds)[None, :]) / sd)
        m += codes[0] + (p * np.diff(codes)[None, :]).sum(axis=1)
    out = pd.DataFrame({"school_id": sch["school_id"].to_numpy(),
                        "district_id": sch["district_id"].to_numpy(), "mean": m / len(it)})
    if y is not None:
        out.insert(2, "year", y)
    return out


def _load_bank(bank: Any) -> Any:
    if bank is not None:
        return bank
    from instrument.bank import load_bank  # the shipped bank (issue: bank helper)
    return load_bank()


def simulate(plan: str | Path | Mapping[str, Any] | PopulationPlan | None = None,
             seed: int | None = None, bank: Any = None, *,
             respondent_seed: int | None = None) -> Simulation:
    """Simulate teacher and family responses, school outcomes and the generating truth.

    Parameters
    ----------
    plan : path, name, mapping or PopulationPlan, optional
        The population model (see ``analyses/default.yaml``); the shipped default when None.
    seed : int, optional
        Random seed; the plan's ``seed`` when None. The same seed gives identical output.
    bank : Bank, optional
        The item bank (uses ``items``, ``scales``, ``items_for``); the shipped bank when None.
    respondent_seed : int, optional
        Measurement replication: schools, their true scores (every year), item parameters and
        outcomes come from ``seed`` as usual, but everything below the school level (respondent
        counts, rosters, languages, latent scores, answers, missingness) is redrawn from this
        seed. None (default) draws them from ``seed``.

    Returns
    -------
    Simulation
        ``teacher`` and ``family`` ResponseSets, ``outcomes`` (DATA_CONTRACT school outcomes
        table), ``truth`` and ``meta`` (seed, plan name). With ``simulation.years`` in the plan
        (a panel), responses and outcomes hold every year stacked with a ``year`` column, and
        ``truth.panel`` / ``truth.variance`` hold per-year true scores, true change and true
        variance components.

    Notes
    -----
    The model is given in the module docstring. It is vectorised over respondents and items.

    References
    ----------
    Muthen, B. (1984). A general structural equation model with dichotomous, ordered categorical,
    and continuous latent variable indicators. Psychometrika, 49(1), 115-132 (latent response
    variables cut at thresholds).
    """
    p = load_plan(plan)
    if seed is None:
        seed = p.seed
    if seed is None:
        raise ValueError("seed= is required when the plan has no 'seed'; got None.")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed= must be a non-negative integer; got {seed!r}.")
    bank = _load_bank(bank)
    sim = p.simulation
    for form in ("teacher", "family"):
        if not bank.items_for(form):
            raise ValueError(f"the bank has no items on the {form} form; expected both forms.")
    ss = np.random.SeedSequence(int(seed))
    r_schools, r_teacher, r_family, r_out, r_it_teacher, r_it_family = (
        np.random.default_rng(s) for s in ss.spawn(6))
    # streams 7-9 serve panels only (so one-year plans draw exactly what they always drew)
    s_panel, s_panel_out, s_years = ss.spawn(3)
    r_panel, r_panel_out = np.random.default_rng(s_panel), np.random.default_rng(s_panel_out)
    ysp = sim.get("years")
    n_years = int(ysp["n"]) if ysp else 1
    first = int(ysp.get("first", DEFAULT_FIRST_YEAR)) if ysp else None
    year_labels = [first + t for t in range(n_years)] if ysp else [None]
    year_seqs = s_years.spawn(2 * n_years)
    resp_seqs = (np.random.SeedSequence(int(respondent_seed)).spawn(2 * n_years)
                 if respondent_seed is not None else None)
    r_items = {"teacher": r_it_teacher, "family": r_it_family}
    schools = _schools(sim["schools"], r_schools, r_panel)
    S = len(schools)
    cs = float(ysp["change_sd"]) if ysp else 0.0
    G = [schools["engagement"].to_numpy()]
    dG = [np.full(S, np.nan)]
    for _ in range(1, n_years):
        dG.append(cs * r_panel.standard_normal(S))
        G.append(G[-1] + dG[-1])
    item_tables, icc_tables, fc, rsets, rosters = [], [], {}, {}, {}
    truth_schools = schools[["school_id", "district_id", "engagement", "poverty_z"]].copy()
    panel_rows = [pd.DataFrame({"school_id": schools["school_id"], "district_id":
                                schools["district_id"], "year": y, "engagement": G[t],
                                "engagement_change": dG[t]})
                  for t, y in enumerate(year_labels)]
    for k, (form, rng0) in enumerate((("teacher", r_teacher), ("family", r_family))):
        fspec = sim["forms"][form]
        items = _item_parameters(bank, form, fspec, r_items[form])
        frames, roster_y, w = [], [], None
        for t, y in enumerate(year_labels):
            rng = rng0 if t == 0 else np.random.default_rng(year_seqs[2 * t + k])
            rr = np.random.default_rng(resp_seqs[2 * t + k]) if resp_seqs is not None else None
            rs, roster, icc_df, R, u, w = _simulate_form(form, fspec, bank, schools, items, rng,
                                                         engagement=G[t], w=w, respondent_rng=rr,
                                                         year=y)
            frames.append(rs.data)
            roster_y.append(roster)
            constructs = icc_df["construct"].tolist()
            for j, c in enumerate(constructs):
                if t == 0:
                    truth_schools[f"u.{form}.{c}"] = u[:, j]
                panel_rows[t][f"u.{form}.{c}"] = u[:, j]
        if len(frames) > 1:
            data = normalize_dtypes(pd.concat(frames, ignore_index=True), list(rs.items))
            rs = ResponseSet(form=form, data=data, items=rs.items, source="simulated")
        item_tables.append(items)
        icc_tables.append(icc_df)
        fc[form] = pd.DataFrame(R, index=constructs, columns=constructs)
        rsets[form] = rs
        rosters[form] = roster_y
    outc, effects = _outcomes(sim["outcomes"], schools, r_out)
    outc_years = [outc]
    for t in range(1, n_years):
        outc_years.append(_panel_outcomes(sim["outcomes"], ysp, schools, outc_years[-1],
                                          G[t - 1], dG[t], r_panel_out))
    if ysp:
        effects = pd.concat([effects, _change_effects(sim["outcomes"], ysp)], ignore_index=True)
    order = ["school_id", "district_id", "grade_band", "enrollment", "poverty", "el_share",
             "locale"] + [c for o in OUTCOMES for c in (o, f"{o}_prior")]
    frames = []
    for t, y in enumerate(year_labels):
        o = pd.concat([schools[["school_id", "district_id", "grade_band", "enrollment",
                                "poverty", "el_share", "locale"]], outc_years[t]], axis=1)[order]
        o["roster_teachers"] = rosters["teacher"][t]
        o["roster_families"] = rosters["family"][t]
        if y is not None:
            o.insert(2, "year", np.full(S, y, np.int64))
        frames.append(o)
    outcomes = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    items_all = pd.concat(item_tables, ignore_index=True)
    dif = items_all.loc[(items_all["threshold_shift"] != 0)
                        | (items_all["loading_es"] != items_all["loading"]),
                        ["form", "item_id", "threshold_shift"]].copy()
    dif["loading_diff"] = (items_all["loading_es"] - items_all["loading"]).loc[dif.index]
    icc_all = pd.concat(icc_tables, ignore_index=True)
    school_general = {f: float(sim["forms"][f]["school_general"]) for f in fc}
    panel = variance = None
    if ysp:
        panel = pd.concat(panel_rows, ignore_index=True)
        variance = _true_variance(sim["schools"], icc_all, school_general, year_labels, cs)
    truth = Truth(items=items_all, icc=icc_all, factor_correlation=fc,
                  school_general=school_general, schools=truth_schools, effects=effects,
                  dif=dif.reset_index(drop=True), panel=panel, variance=variance)
    opts = {"plan": p.name, "plan_path": p.path}
    if ysp:
        opts["years"] = year_labels
    if respondent_seed is not None:
        opts["respondent_seed"] = int(respondent_seed)
    meta = Meta(options=opts, seed=int(seed),
                data_hash=hash_frame(pd.concat([rsets["teacher"].data, rsets["family"].data])))
    return Simulation(teacher=rsets["teacher"], family=rsets["family"], outcomes=outcomes,
                      truth=truth, meta=meta)


def implied_code_covariance(truth: Truth, form: str, construct: str) -> pd.DataFrame:
    """Model-implied covariance matrix of the (reverse-recoded) codes of one construct's items.

    English respondents, no missing data; codes counted as 1 + number of thresholds exceeded.

    Notes
    -----
    ``corr(x*_j, x*_l) = lambda_j lambda_l`` (the construct's latent score has variance 1), so
    ``Cov(code_j, code_l) = sum_k sum_m [P(x*_j > tau_jk, x*_l > tau_lm) - P(x*_j > tau_jk)
    P(x*_l > tau_lm)]`` with bivariate-normal probabilities (Olsson, 1979, Psychometrika 44(4),
    443-460, for the latent-response model of ordinal items).
    """
    it = truth.items[(truth.items["form"] == form) & (truth.items["construct"] == construct)]
    lam = it["loading"].to_numpy()
    taus = [np.asarray(t, float) for t in it["thresholds"]]
    J = len(lam)
    cov = np.zeros((J, J))
    for a in range(J):
        pa = stats.norm.sf(taus[a])
        t = np.maximum.outer(taus[a], taus[a])
        cov[a, a] = float((stats.norm.sf(t) - np.outer(pa, pa)).sum())
        for b in range(a + 1, J):
            pb = stats.norm.sf(taus[b])
            r = lam[a] * lam[b]
            mvn = stats.multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]])
            pts = np.array([[-ta, -tb] for ta in taus[a] for tb in taus[b]])
            joint = np.atleast_1d(mvn.cdf(pts))
            cov[a, b] = cov[b, a] = float(joint.sum() - np.outer(pa, pb).sum())
    ids = it["item_id"].tolist()
    return pd.DataFrame(cov, index=ids, columns=ids)


def expected_icc_of_mean(truth: Truth, form: str, construct: str) -> tuple[float, float]:
    """Between-school and within-school variance of a respondent's mean item code (model-implied).

    The ICC of the raw construct mean (reverse-recoded items, English respondents, no missing
    data) is ``between / (between + within)``.

    Notes
    -----
    Given the school effect ``u ~ N(0, ICC)``, ``x*_j | u ~ N(lambda_j u, 1 - lambda_j^2 ICC)`` and
    ``E[code_j | u] = 1 + sum_k Phi((lambda_j u - tau_jk) / sqrt(1 - lambda_j^2 ICC))``.
    The between variance is ``Var_u(mean_j E[code_j | u])`` (Gauss-Hermite quadrature, 60 nodes);
    the total is ``sum(implied_code_covariance) / J^2``.
    """
    it = truth.items[(truth.items["form"] == form) & (truth.items["construct"] == construct)]
    icc = float(truth.icc.set_index(["form", "construct"]).loc[(form, construct), "icc"])
    lam = it["loading"].to_numpy()
    taus = [np.asarray(t, float) for t in it["thresholds"]]
    x, wts = np.polynomial.hermite_e.hermegauss(60)
    wts = wts / wts.sum()
    u = math.sqrt(icc) * x
    m = np.zeros_like(u)
    for lj, tj in zip(lam, taus):
        sd = math.sqrt(1 - lj * lj * icc)
        m += stats.norm.cdf((lj * u[:, None] - tj[None, :]) / sd).sum(axis=1)
    m /= len(lam)
    between = float(np.sum(wts * (m - np.sum(wts * m)) ** 2))
    total = float(implied_code_covariance(truth, form, construct).to_numpy().sum()) / len(lam) ** 2
    return between, total - between


def pipeline_stage(ctx: dict) -> dict:
    """The ``simulate_or_ingest`` stage of `instrument.pipeline.validate` (for the lead to register).

    Reads ``ctx["plan_path"]`` (None = shipped default plan), uses ``ctx["bank"]`` when present
    (else the shipped bank), simulates, writes teacher.csv, family.csv, outcomes.csv and truth.json
    under ``ctx["out_dir"] / "data"``, stores the `Simulation` in ``ctx["simulation"]`` and returns a
    JSON-able summary (no respondent ids).
    """
    sim = simulate(ctx.get("plan_path"), bank=ctx.get("bank"))
    ctx["simulation"] = sim
    paths = sim.write(Path(ctx["out_dir"]) / "data")
    return {"summary": sim.summary().frame, "meta": sim.meta.to_dict(),
            "files": {k: str(v) for k, v in paths.items()}}
