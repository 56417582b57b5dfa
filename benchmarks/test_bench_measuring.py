"""ROI overlay benchmark (issue 14): a slice change on two linked 512x512 panes with and without
the measurement overlay (6 shapes on every slice: ellipses, 200-vertex freehand outlines and
rulers, 144 stored shapes in all), interleaved in blocks so the shared machine's load falls on
both alike.

Run (prints the numbers; results in ``benchmarks/RESULTS.md``)::

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest benchmarks/test_bench_measuring.py -q -s
"""

from __future__ import annotations

import os
import time

import numpy as np
from PySide6.QtGui import QImage

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks.test_bench_reader import render_all, series_volumes, shown, stats_ms
from reader_app.images import CaseImages
from studies.api import AnswerKey
from studies.protocol import Question

N_SLICES = 24


def _shapes(state, questions: dict[str, Question]) -> None:
    rng = np.random.default_rng(14)
    for index in range(N_SLICES):
        for k in range(6):
            qid = f"roi{index}_{k}"
            kind = ("ellipse", "freehand", "line")[k % 3]
            questions[qid] = Question(
                id=qid, text=qid, type="distance" if kind == "line" else "roi",
                roi=None if kind == "line" else "tissue", scope="side",
            )  # fmt: skip
            cx, cy = rng.uniform(100, 400, size=2)
            if kind == "freehand":
                t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
                points = np.column_stack([cx + 40 * np.cos(t), cy + 30 * np.sin(t)]).tolist()
            else:
                points = [[cx - 30, cy - 20], [cx + 30, cy + 20]]
            value = {"series": "series", "slice": index, "shape": kind, "points": points,
                     "mean": 100.0, "sd": 10.0, "area_mm2": 50.0, "length_mm": 12.0}  # fmt: skip
            for side in ("left", "right"):
                state.answers[AnswerKey(qid, None, side)] = value


def test_slice_change_with_and_without_rois(qtbot):
    images = CaseImages("plain", (series_volumes("series", 2, N_SLICES, 512, 1),))
    plain_state, plain_area = shown(qtbot, 2, (1, 1), images)
    roi_images = CaseImages("rois", (series_volumes("series", 2, N_SLICES, 512, 1),))
    roi_state, roi_area = shown(qtbot, 2, (1, 1), roi_images)
    questions: dict[str, Question] = {}
    _shapes(roi_state, questions)
    roi_area.enable_measurements(questions, lambda *_: None)
    setups = {"plain": (plain_area.panes, plain_state), "rois": (roi_area.panes, roi_state)}
    targets = {
        name: [QImage(p.size(), QImage.Format.Format_ARGB32_Premultiplied) for p in panes]
        for name, (panes, _) in setups.items()
    }
    samples: dict[str, list[float]] = {"plain": [], "rois": []}
    for block in range(12):
        for name, (panes, state) in setups.items():
            for i in range(20):
                step = block * 20 + i
                start = time.perf_counter()
                state.view.set_slice(step % N_SLICES)
                render_all(panes, targets[name])
                samples[name].append(time.perf_counter() - start)
    plain = stats_ms(samples["plain"][20:])
    rois = stats_ms(samples["rois"][20:])
    assert roi_area.panes[0].roi is not None and len(roi_area.panes[0].roi.shapes()) == 6
    print(
        f"\nslice change, two 512x512 panes: median {plain[0]:.2f} ms, p95 {plain[1]:.2f} ms"
        f"\n  with 6 shapes per slice (144 stored): median {rois[0]:.2f} ms, p95 {rois[1]:.2f} ms"
        f" (ratio of medians {rois[0] / plain[0]:.2f}x)"
    )
    assert rois[0] < 10.0  # the slice-change target of issue 5 holds with the overlay
