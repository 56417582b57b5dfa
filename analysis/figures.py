"""The report's figures, each written as a PNG file (matplotlib, Agg backend).

Every function takes plain tables, writes one PNG and returns its path; matplotlib is imported
inside the functions so that importing :mod:`analysis` stays light.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DPI = 110


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    """Write the figure through a temporary file so that a half-written PNG never remains."""
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def forest_plot(
    rows: Sequence[Mapping[str, Any]], margin: float, path: Path, *, title: str = ""
) -> Path:
    """Excess disagreement per finding with its 95% CI and the margin line.

    Parameters
    ----------
    rows : sequence of mappings
        Each with ``finding``, ``excess_disagreement``, ``ci_low``, ``ci_high`` and optionally
        ``interchangeable``.
    margin : float
        Interchangeability margin, drawn as a dashed vertical line.
    path : pathlib.Path
        PNG file to write.
    """
    plt = _pyplot()
    n = max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * n + 1.4))
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows, strict=True):
        est = _num(row.get("excess_disagreement"))
        low, high = _num(row.get("ci_low")), _num(row.get("ci_high"))
        colour = "tab:green" if row.get("interchangeable") else "tab:red"
        if math.isfinite(low) and math.isfinite(high):
            ax.plot([low, high], [yi, yi], color=colour, lw=2)
        if math.isfinite(est):
            ax.plot(est, yi, "o", color=colour, ms=6)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.axvline(margin, color="black", ls="--", lw=1, label=f"margin {margin:g}")
    ax.set_yticks(y, [str(r.get("finding", "")) for r in rows])
    ax.set_xlabel("excess disagreement (new - reference), 95% CI")
    ax.set_title(title or "Interchangeability per finding")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def score_distributions(
    scores: pd.DataFrame, path: Path, *, arms: Sequence[str], title: str = ""
) -> Path:
    """Stacked bars of the share of each score per arm, one panel per question.

    Parameters
    ----------
    scores : pandas.DataFrame
        Columns ``question, arm, value`` (ordinal scores).
    arms : sequence of str
        Arm order (reference first).
    """
    plt = _pyplot()
    questions = list(dict.fromkeys(scores["question"])) or [""]
    ncols = min(3, len(questions))
    nrows = math.ceil(len(questions) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows + 0.6), squeeze=False)
    all_values = sorted(pd.to_numeric(scores["value"], errors="coerce").dropna().unique())
    cmap = plt.get_cmap("RdYlGn", max(len(all_values), 2))
    for ax, question in zip(axes.flat, questions, strict=False):
        sub = scores[scores["question"] == question]
        values = pd.to_numeric(sub["value"], errors="coerce")
        bottom = np.zeros(len(arms))
        for k, v in enumerate(all_values):
            share = np.array(
                [
                    float(np.mean(values[sub["arm"] == arm] == v))
                    if (sub["arm"] == arm).any()
                    else 0.0
                    for arm in arms
                ]
            )
            ax.barh(list(arms), share, left=bottom, color=cmap(k), label=f"{v:g}")
            bottom += share
        ax.set_xlim(0, 1)
        ax.set_title(str(question), fontsize=9)
        ax.set_xlabel("share of reads", fontsize=8)
    for ax in list(axes.flat)[len(questions) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, title="score", loc="upper right", fontsize=7, title_fontsize=8)
    fig.suptitle(title or "Image-quality scores per arm", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.92, 0.95))
    return _save(fig, path)


def vgc_curves(curves: Sequence[Mapping[str, Any]], path: Path, *, title: str = "") -> Path:
    """Visual grading characteristic curves, one per question.

    Parameters
    ----------
    curves : sequence of mappings
        Each with ``question``, ``x`` (reference arm: share at or above each score), ``y`` (new
        arm: the same) and optionally ``auc``, ``ci_low``, ``ci_high``.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    for curve in curves:
        label = str(curve.get("question", ""))
        auc = _num(curve.get("auc"))
        if math.isfinite(auc):
            label += f" (AUC {auc:.2f}"
            low, high = _num(curve.get("ci_low")), _num(curve.get("ci_high"))
            if math.isfinite(low) and math.isfinite(high):
                label += f", {low:.2f}-{high:.2f}"
            label += ")"
        ax.plot(curve["x"], curve["y"], marker="o", ms=3, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("reference arm: share of scores >= k")
    ax.set_ylabel("new arm: share of scores >= k")
    ax.set_title(title or "Visual grading characteristics")
    ax.legend(loc="lower right", fontsize=7)
    return _save(fig, path)


def agreement_heatmaps(
    matrices: Mapping[str, pd.DataFrame], path: Path, *, title: str = "", label: str = ""
) -> Path:
    """Reader-by-reader agreement, one heat map per arm (same colour scale).

    Parameters
    ----------
    matrices : mapping of arm -> square DataFrame
        Reader x reader agreement (diagonal may be NaN).
    """
    plt = _pyplot()
    arms = list(matrices) or [""]
    # One reader order (R2 before R10) in every panel, so the panels can be compared cell by cell.
    readers = sorted(
        {str(r) for m in matrices.values() for r in m.index},
        key=lambda r: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", r)],
    )
    fig, axes = plt.subplots(1, len(arms), figsize=(3.9 * len(arms) + 0.8, 3.8), squeeze=False)
    image = None
    for ax, arm in zip(axes[0], arms, strict=True):
        mat = matrices.get(arm, pd.DataFrame())
        if not mat.empty:
            mat = mat.set_axis(mat.index.astype(str), axis=0).set_axis(
                mat.columns.astype(str), axis=1
            )
            mat = mat.reindex(index=readers, columns=readers)
        data = mat.to_numpy(dtype=float) if not mat.empty else np.full((1, 1), np.nan)
        image = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="viridis")
        ticks = [str(r) for r in mat.index]
        ax.set_xticks(range(len(ticks)), ticks, rotation=45, fontsize=7)
        ax.set_yticks(range(len(ticks)), ticks, fontsize=7)
        for (i, j), value in np.ndenumerate(data):
            if math.isfinite(value):
                colour = "white" if value < 0.6 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
        ax.set_title(f"arm {arm}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label=label or "agreement")
    fig.suptitle(title or "Reader-pair agreement", fontsize=10)
    return _save(fig, path)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
