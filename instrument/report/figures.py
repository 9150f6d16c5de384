"""Figures for the reports, drawn with matplotlib (Agg) from section data and embedded inline.

Each function takes the DataFrames a `instrument.report.adapters` reader returns and gives a
``data:image/svg+xml;base64,...`` URI (an ``<img>`` source), so a report is one self-contained
HTML file. SVG output is made byte-stable (fixed hash salt, no date) so re-rendering the same
results gives the same file. Functions return None when there is nothing to draw.
"""
from __future__ import annotations

import base64
import io
import math
import re
import textwrap
from typing import Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_mixed import MixedModeRenderer  # noqa: E402
from matplotlib.backends.backend_svg import RendererSVG  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BAND_COLOURS = ("#c0392b", "#e67e22", "#bdb76b", "#5dade2", "#1f618d")  # weakest -> strongest
INK, GREY, ACCENT, ACCENT2 = "#222222", "#8c8c8c", "#1f618d", "#b9770e"

MIN_PT = 8   # smallest printed text in a figure (figures are never wider than the page)
_RC = {"svg.hashsalt": "instrument-report", "svg.fonttype": "none", "font.size": 9,
       "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 10,
       "font.family": "DejaVu Sans"}


def band_colours(bands: Sequence[str]) -> dict[str, str]:
    """Colour of each band name, weakest to strongest (five bands; more reuse the ends)."""
    n = len(bands)
    idx = np.round(np.linspace(0, len(BAND_COLOURS) - 1, n)).astype(int) if n else []
    return {b: BAND_COLOURS[i] for b, i in zip(bands, idx)}


_SVG_ROOT = re.compile(r'<svg([^>]*?) width="[^"]*" height="[^"]*" viewBox="[^"]*"')


def _svg(fig: plt.Figure) -> str:
    """The figure as SVG text, cropped to its tight bounding box (the drawn artists, padded by
    ``savefig.pad_inches``), as ``savefig(bbox_inches="tight")`` crops it, but drawn once:
    ``savefig`` draws the figure twice for that (once to find the box, once to write), this
    draws it at its own size and crops with the SVG's ``viewBox``, ``width`` and ``height``
    (the box is measured with the renderer that drew, so its text extents are cached)."""
    dpi = fig.dpi
    buf = io.StringIO()
    try:
        fig.dpi = 72    # as savefig's SVG backend does: 1 figure unit = 1 pt
        w, h = fig.get_size_inches()
        renderer = MixedModeRenderer(fig, w, h, dpi, RendererSVG(
            w * 72, h * 72, buf, image_dpi=dpi, metadata={"Date": None}))
        fig.draw(renderer)
        box = fig.get_tightbbox(renderer).padded(plt.rcParams["savefig.pad_inches"])
        renderer.finalize()
    finally:
        fig.dpi = dpi
    x0, y0, bw, bh = (_short_float(v * 72) for v in (box.x0, h - box.y1, box.width, box.height))
    svg, n = _SVG_ROOT.subn(rf'<svg\1 width="{bw}pt" height="{bh}pt" viewBox="{x0} {y0} {bw} {bh}"',
                            buf.getvalue(), count=1)
    if n != 1:
        raise RuntimeError("matplotlib wrote an SVG root element without width, height and "
                           "viewBox; cannot crop the figure.")
    return svg


def _short_float(v: float) -> str:
    return f"{v:.6f}".rstrip("0").rstrip(".")


def _uri(fig: plt.Figure) -> str:
    try:
        svg = _svg(fig)
    finally:
        plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def loading_heatmap(loadings: pd.DataFrame, title: str = "") -> str | None:
    """Heatmap of standardised loadings (``std.all`` of the ``=~`` rows): items x factors."""
    if loadings is None or not len(loadings):
        return None
    col = "std.all" if "std.all" in loadings.columns else "est"
    items = list(dict.fromkeys(loadings["rhs"]))
    facs = list(dict.fromkeys(loadings["lhs"]))
    m = np.full((len(items), len(facs)), np.nan)
    for lhs, rhs, v in zip(loadings["lhs"], loadings["rhs"], loadings[col]):
        m[items.index(rhs), facs.index(lhs)] = float(v)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(1.2 + 1.0 * len(facs), 0.8 + 0.2 * len(items)))
        im = ax.imshow(np.ma.masked_invalid(m), cmap="Blues", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(facs)), facs, rotation=30, ha="right")
        ax.set_yticks(range(len(items)), items)
        for i in range(len(items)):
            for j in range(len(facs)):
                if not math.isnan(m[i, j]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=MIN_PT,
                            color="white" if m[i, j] > 0.6 else INK)
        fig.colorbar(im, ax=ax, fraction=0.05, label=f"standardised loading ({col})")
        ax.set_title(title)
        for s in ax.spines.values():
            s.set_visible(False)
        return _uri(fig)


def category_use_bars(cu: pd.DataFrame, title: str = "",
                      labels: Mapping[int, str] | None = None,
                      legend_title: str = "category") -> str | None:
    """Stacked horizontal bars: share of answers in each response category, one bar per item.

    ``labels`` maps each category code to its label (the item bank's response scale, in the
    report's language): the legend shows the labels, in code order, including categories no one
    chose; without it the legend shows the codes.
    """
    if cu is None or not len(cu):
        return None
    wide = cu.pivot_table(index="item_id", columns="category", values="share", aggfunc="first",
                          sort=False).fillna(0.0)
    wide.columns = [int(c) if float(c).is_integer() else c for c in wide.columns]
    if labels:
        wide = wide.reindex(columns=sorted(set(wide.columns) | set(labels)), fill_value=0.0)
    cats = sorted(wide.columns)
    names = [textwrap.fill(str(labels.get(c, c)) if labels else str(c), 18) for c in cats]
    shades = plt.get_cmap("YlGnBu")(np.linspace(0.15, 0.95, len(cats)))
    ncols = len(cats) if not labels else min(len(cats), 3)
    rows = math.ceil(len(cats) / ncols)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.2 * len(wide)))
        # one collection of rectangles per category (as barh draws them, 0.8 high), not one
        # artist per bar: the same picture for a fraction of matplotlib's work
        left, y = np.zeros(len(wide)), np.arange(len(wide), dtype=float)
        for i, c in enumerate(cats):
            v = wide[c].to_numpy(float)
            x0, x1, y0, y1 = left, left + v, y - 0.4, y + 0.4
            boxes = np.stack([np.column_stack(p) for p in
                              ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], axis=1)
            ax.add_collection(PolyCollection(boxes, facecolors=[shades[i]], edgecolors="white",
                                             linewidths=0.4, label=names[i]))
            left = x1
        ax.autoscale_view()                  # the data limits with the axes' margins
        ax.set_yticks(range(len(wide)), wide.index)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of answers")
        ax.legend(title=legend_title, ncols=ncols, loc="lower center",
                  bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=MIN_PT, title_fontsize=MIN_PT)
        if title:
            ax.set_title(title, pad=28 + 14 * rows)
        return _uri(fig)


def reliability_vs_k(icc: pd.DataFrame, targets: Sequence[tuple[float, str]] = (),
                     curve: pd.DataFrame | None = None, k_max: int = 60,
                     title: str = "", by_form: bool = False,
                     tr: Callable[[str], str] = str) -> str | None:
    """Reliability of a school mean against respondents per school, one line per construct.

    ``tr`` translates the axis and legend text (the Spanish brief passes its translator).

    Uses the ``curve`` table when the results give one, else Spearman-Brown from ICC(1):
    k ICC1 / (1 + (k - 1) ICC1) (Bliese, 2000). ``targets`` are (reliability, label) lines.
    """
    if icc is None or not len(icc):
        return None
    k = np.arange(1, k_max + 1)
    forms = list(dict.fromkeys(icc["form"])) if "form" in icc.columns else [""]
    seen: set[str] = set()
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.0, 3.4))
        for r in icc.to_dict("records"):
            form = str(r.get("form") or "")
            lab = " / ".join(x for x in (form, str(r["construct"])) if x)
            style: dict = {"lw": 1.2, "label": lab}
            if by_form:
                style = {"lw": 1.0, "color": (ACCENT, ACCENT2, GREY)[forms.index(form) % 3],
                         "label": None if form in seen else tr(f"{form or 'all'} form, each "
                                                              "line one construct")}
                seen.add(form)
            elif form != (forms[0] if forms else ""):
                style["ls"] = "--"
            if curve is not None:
                sel = curve[(curve["construct"] == r["construct"])
                            & ((curve["form"] == r.get("form")) if "form" in curve else True)]
                ax.plot(sel["k"], sel["reliability"], **style)
            else:
                i1 = float(r["icc1"])
                ax.plot(k, k * i1 / (1 + (k - 1) * i1), **style)
        for t, lab in targets:
            ax.axhline(t, color=GREY, lw=0.8, ls=":")
            ax.text(k_max, t, f" {lab}", va="center", fontsize=MIN_PT, color=GREY)
        ax.set_ylim(0, 1)
        ax.set_xlim(1, k_max)
        ax.set_xlabel(tr("respondents per school (k)"))
        ax.set_ylabel(tr("reliability of the school mean"))
        ax.legend(fontsize=MIN_PT, ncols=1 if by_form else 2, frameon=False,
                  loc="lower right")
        ax.set_title(title)
        return _uri(fig)


def _wrap_step(step: str, width: int = 11) -> str:
    """An invariance step name broken at spaces onto lines of at most ``width`` characters."""
    return textwrap.fill(str(step), width=width, break_long_words=False)


def invariance_delta_figure(ladders: Mapping[str, pd.DataFrame],
                            cutoffs: Mapping[str, tuple[float, str]] = {}) -> plt.Figure | None:
    """The figure behind `invariance_delta` (kept open so tests can measure its layout).

    One panel per Δ-fit index, one bar (with a dot at its value, so a change of 0 stays
    visible) per step and ladder; steps without a Δ (the configural baseline) get no bar. Step
    names are wrapped and rotated so that no two tick labels overlap; one legend (ladders and
    the dashed limit lines) sits under the panels, clear of the bars and the labels.
    """
    keys = [k for k in ("cfi.delta", "rmsea.delta")
            if any(k in t.columns for t in ladders.values())]
    if not keys:
        return None
    steps: list[str] = []
    for t in ladders.values():
        steps += [s for s in t["step"] if s not in steps]
    with plt.rc_context(_RC):
        fig, axes = plt.subplots(1, len(keys), figsize=(3.3 * len(keys), 2.9), squeeze=False)
        width = 0.8 / max(len(ladders), 1)
        for ax, key in zip(axes[0], keys):
            for i, (lab, t) in enumerate(ladders.items()):
                if key not in t.columns:
                    continue
                v = pd.to_numeric(t[key], errors="coerce").to_numpy(float)
                x = np.array([steps.index(s) + (i - (len(ladders) - 1) / 2) * width
                              for s in t["step"]])
                ok = ~np.isnan(v)
                colour = (ACCENT, ACCENT2, GREY)[i % 3]
                ax.bar(x[ok], v[ok], width=width, label=lab, color=colour)
                ax.plot(x[ok], v[ok], "o", ms=3, color=colour)
            if key in cutoffs:
                ax.axhline(cutoffs[key][0], color=INK, lw=0.8, ls="--")
            ax.axhline(0, color=GREY, lw=0.6)
            ax.set_xticks(range(len(steps)), [_wrap_step(s) for s in steps], rotation=35,
                          ha="right", rotation_mode="anchor", fontsize=MIN_PT)
            ax.tick_params(axis="y", labelsize=MIN_PT)
            ax.set_xlim(-0.6, len(steps) - 0.4)
            ax.set_title("Δ" + key.split(".")[0].upper() + " against the previous step")
        handles = [Patch(color=(ACCENT, ACCENT2, GREY)[i % 3], label=lab)
                   for i, lab in enumerate(ladders)]
        shown = [k for k in keys if k in cutoffs]
        if shown:
            srcs = ", ".join(dict.fromkeys(cutoffs[k][1] for k in shown))
            handles.append(Line2D([], [], color=INK, lw=0.8, ls="--", label="limit: " + "; ".join(
                f"Δ{k.split('.')[0].upper()} {cutoffs[k][0]:+g}" for k in shown) + f" ({srcs})"))
        rows = math.ceil(len(handles) / 2)
        fig.legend(handles=handles, loc="lower center", ncols=2, frameon=False,
                   fontsize=MIN_PT, bbox_to_anchor=(0.5, 0.0))
        fig.tight_layout(rect=(0, 0.07 * rows + 0.02, 1, 1))
        return fig


def invariance_delta(ladders: Mapping[str, pd.DataFrame],
                     cutoffs: Mapping[str, tuple[float, str]] = {}) -> str | None:
    """Δ-fit (ΔCFI, ΔRMSEA) per invariance step and form; dashed lines at the rule thresholds."""
    f = invariance_delta_figure(ladders, cutoffs)
    if f is None:
        return None
    with plt.rc_context(_RC):
        return _uri(f)


def forest_plot(coef: pd.DataFrame) -> str | None:
    """Forest plot of the score's coefficient per outcome: percentage points per SD of the score.

    The point is ``100 * est * sd`` and the interval ``100 * ci * sd`` (``sd`` of the school
    score from the linker's effects table); without ``sd`` the raw coefficient is drawn.
    """
    if coef is None or not len(coef):
        return None
    per_sd = coef["sd"].notna().all()
    f = 100 * coef["sd"] if per_sd else 1.0
    est, lo, hi = coef["est"] * f, coef["ci.lower"] * f, coef["ci.upper"] * f
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.0, 0.9 + 0.45 * len(coef)))
        y = np.arange(len(coef))
        ax.errorbar(est, y, xerr=[est - lo, hi - est], fmt="s", color=ACCENT, ecolor=INK,
                    capsize=3, ms=5)
        ax.axvline(0, color=GREY, lw=0.8, ls="--")
        ax.set_yticks(y, [f"{o} ({fm})" if fm else str(o)
                          for o, fm in zip(coef["outcome"], coef.get("form", [""] * len(coef)))])
        ax.invert_yaxis()
        ax.set_xlabel("percentage points per SD of the school score (95% CI)" if per_sd
                      else "coefficient of the score (95% CI)")
        return _uri(fig)


def contrast_chart(effects: pd.DataFrame, labels: Mapping[str, str] | None = None,
                   tr: Callable[[str], str] = str) -> str | None:
    """P10 -> P90 contrasts with 95% CIs: the school score against poverty, per outcome
    (``labels`` names the predictors; ``tr`` translates the axis text)."""
    if effects is None or not len(effects):
        return None
    outcomes = list(dict.fromkeys(effects["outcome"]))
    preds = [p for p in ("score", "poverty") if p in set(effects["predictor"])]
    labels = labels or {"score": "school score", "poverty": "poverty"}
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.2, 0.9 + 0.55 * len(outcomes)))
        h = 0.8 / max(len(preds), 1)
        for i, p in enumerate(preds):
            sel = effects[effects["predictor"] == p].set_index("outcome").reindex(outcomes)
            y = np.arange(len(outcomes)) + (i - (len(preds) - 1) / 2) * h
            v = sel["contrast_pp"].to_numpy(float)
            err = [v - sel["ci.lower_pp"].to_numpy(float), sel["ci.upper_pp"].to_numpy(float) - v]
            ax.barh(y, v, height=h, color=(ACCENT, ACCENT2)[i % 2], label=labels.get(p, p),
                    xerr=err, error_kw={"ecolor": INK, "capsize": 2, "lw": 0.8})
        ax.axvline(0, color=INK, lw=0.8)
        ax.set_yticks(range(len(outcomes)), outcomes)
        ax.invert_yaxis()
        ax.set_xlabel(tr("change in outcome from 10th to 90th percentile (percentage points, "
                         "95% CI)"))
        # above the axes in one row: inside them it covers the bars of the first outcome
        ax.legend(frameon=False, fontsize=MIN_PT, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=len(preds))
        return _uri(fig)


def scree_plot(values: pd.DataFrame, title: str = "") -> str | None:
    """Parallel analysis: observed eigenvalues against the simulated ones, per factor number."""
    if values is None or not len(values) or "observed" not in values.columns:
        return None
    x = values["factor"].to_numpy(float)
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(5.2, 2.8))
        ax.plot(x, values["observed"].to_numpy(float), "o-", color=ACCENT, ms=3,
                label="observed data")
        for col, lab, ls in (("sim.quantile", "simulated (quantile)", "--"),
                             ("sim.mean", "simulated (mean)", ":")):
            if col in values.columns:
                ax.plot(x, values[col].to_numpy(float), ls, color=ACCENT2, lw=1, label=lab)
        ax.axhline(0, color=GREY, lw=0.5)
        ax.set_xlabel("factor number")
        ax.set_ylabel("eigenvalue")
        ax.legend(frameon=False, fontsize=MIN_PT)
        ax.set_title(title)
        return _uri(fig)


def district_dots(rollup: pd.DataFrame, state: float | None = None,
                  title: str = "", tr: Callable[[str], str] = str) -> str | None:
    """District scores (1-99) with 95% intervals, sorted; suppressed districts marked, no score.

    ``rollup`` holds one row per district (``unit score ci.lower ci.upper suppressed``);
    ``state`` draws the state value as a vertical line.
    """
    if rollup is None or not len(rollup):
        return None
    shown = rollup[~rollup["suppressed"].astype(bool)].sort_values("score")
    hidden = rollup[rollup["suppressed"].astype(bool)]
    labels = [*shown["unit"].astype(str), *hidden["unit"].astype(str)]
    with plt.rc_context(_RC):
        fig, ax = plt.subplots(figsize=(6.2, 0.8 + 0.16 * len(labels)))
        y = np.arange(len(shown))
        s = shown["score"].to_numpy(float)
        ax.errorbar(s, y, xerr=[s - shown["ci.lower"].to_numpy(float),
                                shown["ci.upper"].to_numpy(float) - s],
                    fmt="o", ms=3, color=ACCENT, ecolor=GREY, lw=0.8, capsize=0)
        for j in range(len(hidden)):
            ax.text(50, len(shown) + j, tr("suppressed: too few reported schools"), fontsize=MIN_PT,
                    ha="center", va="center", color=GREY)
        if state is not None and state == state:
            ax.axvline(state, color=ACCENT2, lw=1, ls="--", label=tr("state") + f" {state:.0f}")
            ax.legend(frameon=False, fontsize=MIN_PT, loc="lower right")
        ax.set_yticks(range(len(labels)), labels, fontsize=MIN_PT)
        ax.set_ylim(len(labels) - 0.5, -0.5)
        ax.set_xlim(1, 99)
        ax.set_xlabel(tr("district score (1-99) with 95% interval"))
        ax.set_title(title)
        return _uri(fig)
