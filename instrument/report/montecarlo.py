"""The technical report's Monte Carlo section: dynamic fit index cut-offs beside the fixed ones,
and the field-test power study with its recommended design.

Keys read
---------
``results["dfi"]``, per form (one `DFIResult.to_dict()` or a mapping label -> one)
    ``cutoffs`` frame ``level index cutoff rule sensitivity magnitude``; ``misspecifications``
    frame ``level kind lhs rhs magnitude``; ``fitted`` (srmr, rmsea, cfi); ``verdict`` frame
    ``index fitted level``; ``n``, ``reps``, ``estimator``.
``results["power"]``
    a `PowerResult.to_dict()`: ``table`` (one row per design cell), ``recommended`` (schools,
    respondents, targets, assumptions), ``form``, ``estimator``, ``plan``.

Either key may be absent (the section then says so); `instrument dfi ... --into RESULTS` and
`instrument power ... --into RESULTS` add them to a results file.
"""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from instrument import rules
from instrument.report.adapters import NOT_AVAILABLE, Section, as_frame
from instrument.results import Table

__all__ = ["read_montecarlo", "montecarlo_section", "power_curves"]

_FIXED = {"srmr": rules.FIT_SRMR_HU_BENTLER, "rmsea": rules.FIT_RMSEA_HU_BENTLER,
          "cfi": rules.FIT_CFI_HU_BENTLER}


def _is_dfi(d: Any) -> bool:
    return isinstance(d, Mapping) and "cutoffs" in d and "verdict" in d


def read_montecarlo(results: Mapping[str, Any]) -> Section:
    """DFI results per form and the power study (either may be missing)."""
    dfi = results.get("dfi")
    per_form = {}
    if _is_dfi(dfi):
        per_form = {"model": dfi}
    elif isinstance(dfi, Mapping):
        per_form = {str(k): v for k, v in dfi.items() if _is_dfi(v)}
    pw = results.get("power")
    pw = pw if isinstance(pw, Mapping) and "table" in pw else None
    if not per_form and pw is None:
        return Section("montecarlo", False, NOT_AVAILABLE + " (run `instrument dfi` or "
                       "`instrument power` with --into RESULTS)")
    data = {"dfi": {k: {"cutoffs": as_frame(v["cutoffs"]), "verdict": as_frame(v["verdict"]),
                        "misspecifications": as_frame(v["misspecifications"]),
                        "fitted": dict(v["fitted"]), "n": int(v["n"]), "reps": int(v["reps"]),
                        "estimator": str(v["estimator"])} for k, v in per_form.items()}}
    if pw is not None:
        data["power"] = {"table": as_frame(pw["table"]), "recommended": dict(pw["recommended"]),
                         "form": pw.get("form", ""), "estimator": pw.get("estimator", ""),
                         "plan": pw.get("plan", "")}
    return Section("montecarlo", True, "", data)


def _dfi_table(label: str, d: Mapping[str, Any]) -> Table:
    cuts = d["cutoffs"]
    rows = [{"cut-off": "Hu & Bentler (1999), fixed",
             **{k.upper(): r.threshold for k, r in _FIXED.items()}, "misspecification": ""}]
    miss = d["misspecifications"]
    for lev, g in cuts.groupby("level", sort=True):
        row = {"cut-off": "correct model (95th percentile)" if lev == 0 else f"DFI level {lev}"}
        for r in g.itertuples(index=False):
            row[r.index.upper()] = r.cutoff
        added = miss[miss["level"] == lev] if lev else miss.iloc[0:0]
        row["misspecification"] = "; ".join(
            f"{a} {'=~' if k == 'cross_loading' else '~~'} {b} ({m:.3f})"
            for k, a, b, m in zip(added["kind"], added["lhs"], added["rhs"], added["magnitude"]))
        rows.append(row)
    rows.append({"cut-off": "this model (fitted)",
                 **{k.upper(): v for k, v in d["fitted"].items()}, "misspecification": ""})
    scaled = " (RMSEA and CFI scaled)" if d["estimator"] != "ML" else ""
    rule = ("95/5 rule (90/10 where 95/5 separates nothing)" if d["estimator"] == "ML" else
            "cut-off at the correct model's 95th percentile, sensitivity >= 50%")
    notes = [f"{d['reps']} replications per population of N = {d['n']}, {d['estimator']} "
             f"refits{scaled}; {rule}. Blank: no cut-off. Levels add the misspecifications "
             "listed (cumulative), as in McNeish & Wolf's dynamic fit index cut-offs; on the "
             "dynamic package's Holzinger-Swineford example this engine's refits equal "
             "lavaan's on the same data and its level-1 cut-offs are within .002 of the "
             "published ones."]
    for r in d["verdict"].itertuples(index=False):
        lv = int(r.level)
        notes.append(f"{r.index.upper()} {r.fitted:.3f}: " +
                     ("within the level-1 cut-off." if lv == 0 else
                      f"misfit at least as large as level {lv}."))
    return Table(f"Dynamic and fixed fit cut-offs: {label}", pd.DataFrame(rows), notes, 3)


def power_curves(table: pd.DataFrame) -> str | None:
    """Power of the fit rule, DIF detection and the linker contrast against the number of
    schools, one line per respondents-per-school level."""
    from instrument.report.figures import _RC, _uri, plt
    if table is None or not len(table):
        return None
    panels = [(c, t) for c, t in (("p_fit_pass", "CFA fit passes"), ("dif_power", "DIF detected"),
                                  ("link_power", "P10-P90 contrast significant"),
                                  ("gates_pass", "schools passing the gates"))
              if c in table.columns and table[c].notna().any()]
    if not panels:
        return None
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.4), squeeze=False)
        for ax, (col, title) in zip(axes[0], panels):
            for r, g in table.groupby("respondents", sort=True):
                g = g.sort_values("schools")
                ax.plot(g["schools"], g[col], marker="o", label=f"{r:g} per school")
            ax.axhline(rules.POWER_TARGET.threshold, color="#8c8c8c", ls=":", lw=1)
            ax.set_ylim(0, 1.02)
            ax.set_title(title)
            ax.set_xlabel("schools")
        axes[0][0].set_ylabel("share of replications")
        axes[0][-1].legend(frameon=False, fontsize=7)
        return _uri(fig)


def montecarlo_section(sec: Section, num: Any) -> dict:
    """Template context of the section: ``na`` or ``dfi`` tables, ``power`` table, figure and
    the recommended design."""
    if not sec.available:
        return {"na": sec.reason}
    out: dict = {"dfi": [num.table(_dfi_table(k, v)) for k, v in sec["dfi"].items()]}
    pw = sec.get("power")
    if pw:
        t = pw["table"]
        cols = [c for c in ("schools", "respondents", "convergence", "p_fit_pass", "dif_power",
                            "dif_false_alarm", "icc2", "gates_pass", "link_power",
                            "link_ci_width", "loading_relbias", "loading_coverage")
                if c in t.columns]
        out["power"] = num.table(Table(
            f"Power of the {pw['form']} field test by design ({pw['estimator']})",
            t[cols].assign(respondents=t["respondents"].map(lambda v: f"{v:g}")),
            [f"Shares of replications simulated from plan {pw['plan']} (Monte Carlo standard "
             "errors in the results file). p_fit_pass: CFA passes Hu & Bentler's cut-offs; "
             "dif_power / dif_false_alarm: planted DIF items flagged / other items flagged; "
             "link_power: the 95% CI of the P10-P90 contrast excludes 0."], 3))
        out["power_fig"] = num.figure(power_curves(t), "Power by number of schools",
                                      f"Dotted line: the {rules.POWER_TARGET.threshold:g} target.")
        rec = pw["recommended"]
        if rec.get("schools"):
            out["recommended"] = (f"Recommended design: {rec['schools']} schools with "
                                  f"{rec['respondents']:g} respondents per school on average, the "
                                  "smallest design in the grid meeting every target ("
                                  + "; ".join(rec.get("targets", [])) + ").")
        else:
            out["recommended"] = ("No design in the grid meets every target ("
                                  + "; ".join(rec.get("targets", [])) + ").")
        out["assumptions"] = list(rec.get("assumptions", []))
    return out


def cited_sources() -> list[str]:
    """Sources of the rules the section applies."""
    return [rules.MCNEISH_WOLF_2023, rules.MCNEISH_WOLF_ONE, rules.MCNEISH_2023_CAT,
            rules.POWER_TARGET.source]

