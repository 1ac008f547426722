"""Figures of the trust report as inline, accessible, deterministic SVG strings (matplotlib, no pyplot).

Figures are built with :class:`matplotlib.figure.Figure` directly, so nothing touches pyplot's global
state or the process-wide backend: the image is rasterised by no GUI toolkit (Agg measures the text) and
written by the SVG backend. Text stays text (``svg.fonttype = "none"``), the hash salt is fixed and the
date left out, so the same data gives byte-identical SVG. Element ids carry a per-figure prefix so that
several figures can share one HTML page, and each ``<svg>`` has ``role="img"``, an ``aria-label`` and a
``<title>``. Missing values (None, NaN) are skipped, never plotted as zero.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from markupsafe import escape

__all__ = ["auc_forest_svg", "coefficients_svg", "reliability_svg"]

_RC = {"svg.hashsalt": "fedsante-trust-report", "svg.fonttype": "none", "font.family": "DejaVu Sans",
       "font.size": 10, "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 72}
# Okabe-Ito, safe for colour-blind readers; the pooled curve is black.
_COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#7F7F00", "#882255"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<"]
RAISES, LOWERS = "#B2182B", "#2166AC"  # coefficient bars: red raises risk, blue lowers it

_TEXT = {
    "en": {"rel_title": "Reliability: predicted risk against observed rate",
           "rel_x": "mean predicted risk in the tenth", "rel_y": "observed rate of the outcome",
           "perfect": "perfect calibration", "none": "no group to show",
           "auc_title": "AUC with 95% confidence interval, per group", "auc_x": "AUC (0.5 = chance)",
           "coef_title": "Model coefficients (log-odds per scale unit)",
           "coef_x": "coefficient (log-odds per scale unit)", "raises": "raises risk", "lowers": "lowers risk"},
    "fr": {"rel_title": "Fiabilité : risque prédit et taux observé", "rel_x": "risque prédit moyen du dixième",
           "rel_y": "taux observé de l'événement", "perfect": "calibration parfaite", "none": "aucun groupe à montrer",
           "auc_title": "AUC et intervalle de confiance à 95 %, par groupe", "auc_x": "AUC (0,5 = hasard)",
           "coef_title": "Coefficients du modèle (log du rapport de cotes par unité d'échelle)",
           "coef_x": "coefficient (log du rapport de cotes par unité d'échelle)", "raises": "augmente le risque",
           "lowers": "diminue le risque"},
}


def _num(value: object) -> float | None:
    """A finite float, or None for None, NaN, infinities and non-numbers.

    >>> _num(0.5), _num(None), _num(float("nan")), _num("x")
    (0.5, None, None, None)
    """
    try:
        value = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _text(lang: str) -> dict[str, str]:
    if lang not in _TEXT:
        raise ValueError(f"lang must be one of {sorted(_TEXT)}. Got {lang!r} instead.")
    return _TEXT[lang]


def _to_svg(fig: Figure, prefix: str, title: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prolog, ids prefixed, a ``<title>`` and an aria-label."""
    buf = io.StringIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08,
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    fig.clear()
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg, count=2)  # implied by the HTML parser for inline SVG
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{prefix}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    label = escape(title)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" class="plot" ', 1).replace(
        ">", f'>\n <title>{label}</title>', 1)


def _figure(width: float, height: float) -> tuple[Figure, object]:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        return fig, fig.add_subplot()


def reliability_svg(curves: Mapping[str, Sequence[Mapping] | None], *, lang: str = "en",
                    prefix: str = "reliability") -> str:
    """Reliability diagram: per group, observed rate against mean predicted risk in each bin, area by patients.

    ``curves`` maps a group label to its reliability list (``bin_low``, ``bin_high``, ``n``,
    ``mean_predicted``, ``observed_rate``); bins with a missing value and groups that are None are skipped.

    >>> svg = reliability_svg({"all": [{"n": 20, "mean_predicted": 0.2, "observed_rate": 0.25},
    ...                                {"n": 0, "mean_predicted": None, "observed_rate": None}]})
    >>> svg.startswith("<svg role=\\"img\\""), "<title>Reliability" in svg, "<?xml" in svg
    (True, True, False)
    """
    t = _text(lang)
    fig, ax = _figure(7.6, 5.0)
    with matplotlib.rc_context(_RC):
        ax.plot([0, 1], [0, 1], ls="--", color="#555555", lw=1, label=t["perfect"])
        points = {label: [(_num(b.get("mean_predicted")), _num(b.get("observed_rate")), _num(b.get("n")))
                          for b in curve or []] for label, curve in curves.items()}
        points = {label: [(x, y, n) for x, y, n in rows if x is not None and y is not None and n is not None and n > 0]
                  for label, rows in points.items()}
        points = {label: rows for label, rows in points.items() if rows}
        biggest = max((n for rows in points.values() for _, _, n in rows), default=1.0)
        for i, (label, rows) in enumerate(points.items()):
            colour = "#000000" if i == 0 else _COLOURS[(i - 1) % len(_COLOURS)]
            xs, ys, ns = zip(*rows)
            ax.plot(xs, ys, color=colour, lw=1.6 if i == 0 else 1, alpha=0.9)
            ax.scatter(xs, ys, s=[12 + 160 * n / biggest for n in ns], color=colour, marker=_MARKERS[i % len(_MARKERS)],
                       alpha=0.75, edgecolors="white", linewidths=0.5, label=label, zorder=3)
        if not points:
            ax.text(0.5, 0.55, t["none"], ha="center", color="#333333", bbox={"fc": "white", "ec": "none"})
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=t["rel_x"], ylabel=t["rel_y"], aspect="equal")
        ax.grid(color="#e5e5e5", lw=0.6)
        legend = ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, markerscale=0.6)
        for handle in legend.legend_handles:
            if hasattr(handle, "set_sizes"):
                handle.set_sizes([36])
    return _to_svg(fig, prefix, t["rel_title"])


def auc_forest_svg(rows: Sequence[tuple[str, float | None, float | None, float | None]], *, lang: str = "en",
                   prefix: str = "auc-forest") -> str:
    """Forest plot of the AUC: one row per ``(label, auc, low, high)`` from the top, with its 95% CI.

    Rows whose AUC is missing are left out; a missing bound draws the point alone. A dashed line marks 0.5.

    >>> svg = auc_forest_svg([("all hospitals", 0.8, 0.75, 0.85), ("hidden", None, None, None)])
    >>> "hidden" in svg, "all hospitals" in svg
    (False, True)
    """
    t = _text(lang)
    kept = [(str(label), _num(auc), _num(low), _num(high)) for label, auc, low, high in rows if _num(auc) is not None]
    fig, ax = _figure(6.4, 0.9 + 0.34 * max(len(kept), 1))
    with matplotlib.rc_context(_RC):
        ax.axvline(0.5, ls="--", color="#555555", lw=1)
        for i, (label, auc, low, high) in enumerate(kept):
            y = len(kept) - 1 - i
            if low is not None and high is not None:
                ax.hlines(y, low, high, color="#0072B2", lw=2)
            ax.plot([auc], [y], marker="D" if i == 0 else "o", color="#000000" if i == 0 else "#0072B2", ms=6)
            ax.annotate(f"{auc:.2f}", (auc, y), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=7.5)
        if not kept:
            ax.text(0.7, 0, t["none"], ha="center", va="center", color="#333333")
        ax.set_yticks(range(len(kept)), [label for label, *_ in reversed(kept)])
        lows = [v for _, auc, low, _ in kept for v in (auc, low) if v is not None]
        ax.set(xlim=(min([0.45, *lows]) - 0.02, 1.0), ylim=(-0.7, max(len(kept), 1) - 0.3), xlabel=t["auc_x"])
        ax.grid(axis="x", color="#e5e5e5", lw=0.6)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
    return _to_svg(fig, prefix, t["auc_title"])


def coefficients_svg(features: Sequence[Mapping], *, lang: str = "en", prefix: str = "coefficients") -> str:
    """Horizontal bars of each feature's coefficient, in the given order from the top, red if it raises risk.

    >>> svg = coefficients_svg([{"feature": "age", "coef": 0.3}, {"feature": "thalach", "coef": -0.5},
    ...                         {"feature": "chol", "coef": None}])
    >>> "age" in svg, "thalach" in svg, "chol" in svg
    (True, True, False)
    """
    t = _text(lang)
    kept = [(str(f.get("feature")), _num(f.get("coef"))) for f in features if _num(f.get("coef")) is not None]
    fig, ax = _figure(6.4, 0.9 + 0.3 * max(len(kept), 1))
    with matplotlib.rc_context(_RC):
        names = [name for name, _ in reversed(kept)]
        values = [coef for _, coef in reversed(kept)]
        ax.barh(range(len(kept)), values, color=[RAISES if v > 0 else LOWERS for v in values], height=0.65)
        ax.axvline(0, color="#333333", lw=0.8)
        ax.set_yticks(range(len(kept)), names)
        ax.set_xlabel(t["coef_x"])
        if not kept:
            ax.text(0, 0, t["none"], ha="center", va="center", color="#333333")
        ax.grid(axis="x", color="#e5e5e5", lw=0.6)
        ax.tick_params(axis="y", length=0)
        ax.legend(handles=[Patch(color=RAISES, label=t["raises"]),
                           Patch(color=LOWERS, label=t["lowers"])],
                  loc="lower right", frameon=False, fontsize=8)
    return _to_svg(fig, prefix, t["coef_title"])
