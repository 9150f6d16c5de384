"""Report figures are legible: no two labels overlap and no text is smaller than MIN_PT."""
from __future__ import annotations

import io
import itertools
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from instrument.report import figures as F

STEPS = ["configural", "thresholds", "metric", "scalar", "scalar (partial)", "strict"]


def _ladder(cfi: list, rmsea: list) -> pd.DataFrame:
    return pd.DataFrame({"step": STEPS, "cfi.delta": cfi, "rmsea.delta": rmsea})


@pytest.fixture
def delta_figure():
    ladders = {"family by language": _ladder([None, 0.0, -0.001, -0.006, 0.0, -0.0003],
                                             [None, -0.0003, 0.003, 0.0085, -0.0001, 0.0005]),
               "teacher by grade_band": _ladder([None, 0.0, 0.0, 0.0, None, 0.0],
                                                [None, 0.0, 0.0, 0.0, None, 0.0])}
    fig = F.invariance_delta_figure(ladders, {"cfi.delta": (-0.01, "Chen (2007)"),
                                              "rmsea.delta": (0.015, "Chen (2007)")})
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def _ink(fig, artists) -> dict:
    """Pixels each artist paints: drawn alone (the others in ``artists`` hidden) against the
    figure with all of them hidden. Rotated labels are compared by their glyphs, not their
    axis-aligned boxes."""
    for a in artists:
        a.set_visible(False)
    fig.canvas.draw()
    base = np.asarray(fig.canvas.buffer_rgba()).copy()
    out = {}
    for a in artists:
        a.set_visible(True)
        fig.canvas.draw()
        out[a] = (np.asarray(fig.canvas.buffer_rgba()) != base).any(axis=2)
        a.set_visible(False)
    for a in artists:
        a.set_visible(True)
    return out


def _name(a) -> str:
    return a.get_text() if hasattr(a, "get_text") else type(a).__name__


def test_invariance_delta_tick_labels_do_not_overlap(delta_figure):
    labels = [t for ax in delta_figure.axes for t in ax.get_xticklabels() if t.get_text()]
    assert [t.get_text().replace("\n", " ") for t in labels] == STEPS * 2
    assert all(t.get_fontsize() >= F.MIN_PT for t in labels)
    ink = _ink(delta_figure, labels + list(delta_figure.legends))
    for a, b in itertools.combinations(ink, 2):
        assert not (ink[a] & ink[b]).any(), f"{_name(a)!r} and {_name(b)!r} overlap"


def test_invariance_delta_legend_clear_of_axes_and_labels(delta_figure):
    r = delta_figure.canvas.get_renderer()
    (legend,) = delta_figure.legends
    box = legend.get_window_extent(r)
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[:2] == ["family by language", "teacher by grade_band"]
    assert "ΔCFI -0.01" in labels[2] and "ΔRMSEA +0.015" in labels[2]
    for ax in delta_figure.axes:
        assert not box.overlaps(ax.get_window_extent(r)), "legend covers a panel"


def test_invariance_delta_draws_no_bar_for_the_baseline(delta_figure):
    ax = delta_figure.axes[0]
    # 5 steps with a delta for the first ladder, 4 for the second (its partial step is absent)
    assert len(ax.patches) == 5 + 4


def test_svg_is_cropped_as_savefig_tight_crops_it():
    # a label sticking out left of the figure, so the tight box is not the figure's own
    def make():
        fig, ax = plt.subplots(figsize=(3.0, 2.0))
        ax.barh(["a rather long category label", "b"], [1, 2])
        ax.set_title("title")
        return fig
    fig = make()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    fig = make()
    ours = F._svg(fig)
    plt.close(fig)
    root = r'<svg[^>]* width="([0-9.]+)pt" height="([0-9.]+)pt" viewBox="([^"]*)"'
    w0, h0, _ = re.search(root, buf.getvalue()).groups()
    w1, h1, box = re.search(root, ours).groups()
    assert float(w1) == pytest.approx(float(w0), abs=0.01)
    assert float(h1) == pytest.approx(float(h0), abs=0.01)
    x0, y0, bw, bh = (float(v) for v in box.split())
    assert x0 < 0                      # the label's extent, left of the figure, is kept
    assert (bw, bh) == pytest.approx((float(w1), float(h1)))
    assert ours.count("<svg") == 1 and "a rather long category label" in ours


def test_category_use_bars_stack_each_items_shares(monkeypatch):
    """One bar per item, top to bottom in the table's order, its segments the categories' shares
    stacked from 0 to 1; the legend names every category of the scale, chosen or not."""
    cu = pd.DataFrame({"item_id": ["a", "a", "a", "b", "b"], "category": [1, 2, 4, 1, 4],
                       "share": [0.2, 0.5, 0.3, 0.6, 0.4]})
    drawn = {}
    monkeypatch.setattr(F, "_uri", lambda fig: drawn.setdefault("fig", fig) and "uri")
    F.category_use_bars(cu, labels={1: "no", 2: "rarely", 3: "often", 4: "always"})
    ax = drawn["fig"].axes[0]
    spans = {}
    for coll, cat in zip(ax.collections, (1, 2, 3, 4)):
        for row, path in enumerate(coll.get_paths()):
            x, y = path.vertices[:, 0], path.vertices[:, 1]
            spans[row, cat] = (round(x.min(), 9), round(x.max(), 9), y.mean())
    assert [spans[0, c][:2] for c in (1, 2, 3, 4)] == [(0, 0.2), (0.2, 0.7), (0.7, 0.7), (0.7, 1)]
    assert [spans[1, c][:2] for c in (1, 2, 3, 4)] == [(0, 0.6), (0.6, 0.6), (0.6, 0.6), (0.6, 1)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b"]
    lo, hi = sorted(ax.get_ylim())
    assert lo < spans[0, 1][2] < spans[1, 1][2] < hi and ax.yaxis_inverted()   # a above b
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["no", "rarely", "often",
                                                                   "always"]
    plt.close(drawn["fig"])
