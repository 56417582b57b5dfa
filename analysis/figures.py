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


class _Figures:
    """The few matplotlib entry points the figures use, without pyplot.

    Figures are plain ``matplotlib.figure.Figure`` objects rendered by the Agg canvas: no
    global figure registry, so nothing to close and no garbage collection pass per figure
    (``pyplot.close`` runs one, which cost seconds in a report with a large heap).
    """

    @staticmethod
    def subplots(*args: Any, figsize: tuple[float, float], **kwargs: Any) -> tuple[Any, Any]:
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize)
        return fig, fig.subplots(*args, **kwargs)

    @staticmethod
    def get_cmap(name: str, n: int) -> Any:
        import matplotlib

        return matplotlib.colormaps[name].resampled(n)

    @staticmethod
    def Line2D(*args: Any, **kwargs: Any) -> Any:
        from matplotlib.lines import Line2D

        return Line2D(*args, **kwargs)


def _pyplot() -> _Figures:
    return _Figures()


def _save(fig: Any, path: Path) -> Path:
    """Write the figure through a temporary file so that a half-written PNG never remains."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    FigureCanvasAgg(fig)
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format="png")
    tmp.replace(path)
    return path


def forest_plot(
    rows: Sequence[Mapping[str, Any]],
    margin: float,
    path: Path,
    *,
    title: str = "",
    secondary: Sequence[Mapping[str, Any]] = (),
    primary_label: str = "primary",
    secondary_label: str = "secondary",
    xlabel: str = "excess disagreement (new - reference), share of reader pairs",
) -> Path:
    """Excess disagreement per finding with its 95% CI and the margin line.

    Parameters
    ----------
    rows : sequence of mappings
        Each with ``finding``, ``excess_disagreement``, ``ci_low``, ``ci_high`` and optionally
        ``interchangeable`` (the decision: green when it passes, red when not).
    margin : float
        Interchangeability margin, drawn as a dashed vertical line.
    path : pathlib.Path
        PNG file to write.
    secondary : sequence of mappings, optional
        The same findings under another analysis (e.g. the other reader model), drawn as a thin
        grey interval just below each primary one.
    """
    plt = _pyplot()
    n = max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(7.0, 0.5 * n + 1.5))
    y = np.arange(len(rows))[::-1].astype(float)
    by_finding = {str(r.get("finding")): r for r in secondary}
    _intervals(ax, rows, y, lw=2.2, ms=6)
    for yi, row in zip(y, rows, strict=True):
        other = by_finding.get(str(row.get("finding")))
        if other is not None:
            o_low, o_high = _num(other.get("ci_low")), _num(other.get("ci_high"))
            if math.isfinite(o_low) and math.isfinite(o_high):
                ax.plot([o_low, o_high], [yi - 0.25, yi - 0.25], color="grey", lw=1.0)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.axvline(margin, color="black", ls="--", lw=1, label=f"margin {margin:g}")
    handles = [
        plt.Line2D([], [], color="tab:green", lw=2.2, label=f"{primary_label}: passes"),
        plt.Line2D([], [], color="tab:red", lw=2.2, label=f"{primary_label}: not shown"),
        plt.Line2D([], [], color="black", ls="--", lw=1, label=f"margin {margin:g}"),
    ]
    if secondary:
        handles.append(plt.Line2D([], [], color="grey", lw=1.0, label=secondary_label))
    ax.set_yticks(y, [str(r.get("finding", "")) for r in rows])
    ax.set_xlabel(xlabel)
    ax.set_title(title or "Interchangeability per finding")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
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


def _intervals(ax: Any, rows: Sequence[Mapping[str, Any]], y: Any, *, lw: float, ms: float) -> None:
    """Draw each row's estimate and CI at height y (green when it passes, red when not)."""
    for yi, row in zip(y, rows, strict=True):
        est = _num(row.get("excess_disagreement"))
        low, high = _num(row.get("ci_low")), _num(row.get("ci_high"))
        colour = "tab:green" if row.get("interchangeable") else "tab:red"
        if math.isfinite(low) and math.isfinite(high):
            ax.plot([low, high], [yi, yi], color=colour, lw=lw)
        if math.isfinite(est):
            ax.plot(est, yi, "o", color=colour, ms=ms)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def per_reader_heatmap(
    matrix: pd.DataFrame, path: Path, *, title: str = "", label: str = ""
) -> Path:
    """Readers (columns) x findings (rows): each reader's own excess disagreement.

    A diverging scale centred on 0 (red: the reader disagrees more with colleagues on the new
    arm than on the reference; blue: less); the value is printed in every cell.
    """
    plt = _pyplot()
    data = matrix.to_numpy(dtype=float)
    limit = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 0.1
    limit = max(limit, 0.02)
    fig, ax = plt.subplots(figsize=(1.0 * data.shape[1] + 3.2, 0.42 * data.shape[0] + 1.6))
    image = ax.imshow(data, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(data.shape[1]), [str(c) for c in matrix.columns], fontsize=8)
    ax.set_yticks(range(data.shape[0]), [str(i) for i in matrix.index], fontsize=8)
    for (i, j), value in np.ndenumerate(data):
        if math.isfinite(value):
            ax.text(j, i, f"{value:+.3f}", ha="center", va="center", fontsize=6.5)
    ax.set_xlabel("reader")
    fig.colorbar(image, ax=ax, label=label or "excess disagreement (share of reader pairs)")
    ax.set_title(title or "Each reader's excess disagreement")
    return _save(fig, path)


def cross_arm_heatmaps(
    panels: Mapping[str, pd.DataFrame],
    path: Path,
    *,
    title: str = "",
    label: str = "share of cases with the same dichotomised grade",
) -> Path:
    """Reader-pair agreement within and across arms: one panel per pair type, one colour scale.

    ``panels`` maps a panel title (e.g. ``"reference (rows) vs reference"``, ``"new (rows) vs
    reference"``) to a reader x reader matrix; in the across-arm panel the diagonal is each
    reader with themself between arms.
    """
    plt = _pyplot()
    names = list(panels) or [""]
    fig, axes = plt.subplots(1, len(names), figsize=(3.9 * len(names) + 0.9, 3.9), squeeze=False)
    image = None
    for ax, name in zip(axes[0], names, strict=True):
        mat = panels.get(name, pd.DataFrame())
        data = mat.to_numpy(dtype=float) if not mat.empty else np.full((1, 1), np.nan)
        image = ax.imshow(data, vmin=0.0, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(mat.shape[1]), [str(c) for c in mat.columns], rotation=45, fontsize=7)
        ax.set_yticks(range(mat.shape[0]), [str(r) for r in mat.index], fontsize=7)
        for (i, j), value in np.ndenumerate(data):
            if math.isfinite(value):
                colour = "white" if value < 0.6 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=colour)
        ax.set_title(name, fontsize=8.5)
        ax.set_xlabel("reader (columns)", fontsize=7)
        ax.set_ylabel("reader (rows)", fontsize=7)
    if image is not None:
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label=label)
    fig.suptitle(title or "Reader-pair agreement within and across arms", fontsize=10)
    return _save(fig, path)


def flow_diagram(
    steps: Sequence[tuple[str, int | str]],
    exclusions: Sequence[tuple[int, str, int | str]],
    path: Path,
    *,
    title: str = "",
) -> Path:
    """A STARD-style flow diagram: the main boxes top to bottom, exclusions to the right.

    Parameters
    ----------
    steps : sequence of (label, count)
        The main flow (cases in, read, analysed ...).
    exclusions : sequence of (after_step, label, count)
        A side box leaving the flow after step ``after_step`` (0-based).
    """
    plt = _pyplot()
    n = len(steps)
    fig, ax = plt.subplots(figsize=(8.6, 1.15 * n + 0.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, n * 1.3)
    ax.axis("off")
    box = {"boxstyle": "round,pad=0.35", "facecolor": "#eef4fb", "edgecolor": "#1f5fa8"}
    side = {"boxstyle": "round,pad=0.3", "facecolor": "#fff4e5", "edgecolor": "#b26a00"}
    ys = [n * 1.3 - 0.65 - 1.3 * i for i in range(n)]
    for i, (label, count) in enumerate(steps):
        ax.text(3.2, ys[i], f"{label}\nn = {count}", ha="center", va="center", fontsize=8.5,
                bbox=box)  # fmt: skip
        if i + 1 < n:
            ax.annotate("", xy=(3.2, ys[i + 1] + 0.38), xytext=(3.2, ys[i] - 0.38),
                        arrowprops={"arrowstyle": "->", "color": "#1f5fa8"})  # fmt: skip
    for after, label, count in exclusions:
        y = (ys[after] + ys[min(after + 1, n - 1)]) / 2 if after + 1 < n else ys[after]
        ax.annotate("", xy=(6.0, y), xytext=(3.2, y),
                    arrowprops={"arrowstyle": "->", "color": "#b26a00"})  # fmt: skip
        ax.text(6.15, y, f"{label}\nn = {count}", ha="left", va="center", fontsize=7.5,
                bbox=side)  # fmt: skip
    ax.set_title(title or "Flow of cases", fontsize=10)
    return _save(fig, path)


def drift_plot(
    frame: pd.DataFrame,
    path: Path,
    *,
    value: str,
    ylabel: str,
    title: str = "",
) -> Path:
    """Per reader, the mean of ``value`` by position in the session (one line per session).

    ``frame`` needs ``reader, session, position_bin, <value>`` (position_bin: the centre of a
    bin of positions); a panel per reader, all on the same y scale.
    """
    plt = _pyplot()
    readers = sorted(
        {str(r) for r in frame["reader"]},
        key=lambda r: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", r)],
    )
    ncols = min(3, max(len(readers), 1))
    nrows = math.ceil(max(len(readers), 1) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(3.5 * ncols, 2.5 * nrows + 0.5), squeeze=False, sharey=True
    )
    values = pd.to_numeric(frame[value], errors="coerce")
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.05 * (high - low or 1.0)
    for ax, reader in zip(axes.flat, readers, strict=False):
        part = frame[frame["reader"].astype(str) == reader]
        for session, rows in part.groupby("session", sort=True):
            ax.plot(rows["position_bin"], rows[value], marker="o", ms=3, lw=1.2,
                    label=f"session {session}")  # fmt: skip
        ax.set_title(f"reader {reader}", fontsize=9)
        ax.set_xlabel("position in session", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_ylim(low - pad, high + pad)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(readers) :]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right", fontsize=7)
    fig.suptitle(title or "Drift over the reading sessions", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.9, 0.95))
    return _save(fig, path)


def power_curve(
    rows: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    target: float | None = None,
    title: str = "",
    xlabel: str = "cases",
) -> Path:
    """Power against the number of cases, with Monte-Carlo 95% error bars.

    ``rows``: ``n_cases``, ``power``, ``power_low``, ``power_high`` and optionally ``series``
    (one line per series, e.g. per number of readers).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    frame = pd.DataFrame(list(rows))
    if "series" not in frame:
        frame["series"] = ""
    for series, part in frame.groupby("series", sort=False):
        part = part.sort_values("n_cases")
        err = np.vstack(
            [part["power"] - part["power_low"], part["power_high"] - part["power"]]
        ).clip(min=0)
        ax.errorbar(part["n_cases"], part["power"], yerr=err, marker="o", ms=4, capsize=3,
                    label=str(series) or None)  # fmt: skip
    if target is not None:
        ax.axhline(target, color="black", ls="--", lw=1, label=f"target power {target:g}")
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("power (share of simulated studies declared interchangeable)")
    ax.set_title(title or "Power")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def forest_panels(panels: Sequence[Mapping[str, Any]], path: Path, *, title: str = "") -> Path:
    """Several forest plots side by side, one per analysis, findings in the same order.

    Each panel: ``title``, ``rows`` (as :func:`forest_plot`), ``margin`` and ``xlabel`` (its own
    scale: the squared-difference measure is in squared grade units).
    """
    plt = _pyplot()
    n_panels = max(len(panels), 1)
    n_rows = max((len(p["rows"]) for p in panels), default=1)
    fig, axes = plt.subplots(
        1, n_panels, figsize=(3.1 * n_panels + 2.2, 0.42 * n_rows + 1.7), squeeze=False,
        sharey=True,
    )  # fmt: skip
    for k, (ax, panel) in enumerate(zip(axes[0], panels, strict=False)):
        rows = list(panel["rows"])
        y = np.arange(len(rows))[::-1]
        _intervals(ax, rows, y, lw=2.0, ms=4)
        margin = float(panel["margin"])
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.axvline(margin, color="black", ls="--", lw=1)
        ax.set_title(f"{panel['title']}\n(margin {margin:g})", fontsize=8)
        ax.set_xlabel(str(panel.get("xlabel", "excess disagreement")), fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(axis="x", alpha=0.3)
        if k == 0:
            ax.set_yticks(y, [str(r.get("finding", "")) for r in rows])
    fig.suptitle(title or "Sensitivity analyses", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save(fig, path)
