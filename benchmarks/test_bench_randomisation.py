"""Assignment generation for 170 cases x 6 readers, both designs (issue 4).

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_randomisation.py --benchmark-enable``.
The 170 cases belong to 85 subjects (two cases each) in two sequence types.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from studies.cases import CaseRow
from studies.protocol import Protocol
from studies.randomisation import generate_assignments

N_CASES = 170
N_READERS = 6


def study(design: str) -> tuple[Protocol, list[CaseRow]]:
    protocol = Protocol.model_validate(
        {
            "title": "benchmark",
            "design": design,
            "seed": 1,
            "arms": [
                {"code": "conventional", "description": "Conventional", "reference": True},
                {"code": "dl", "description": "Deep-learning reconstruction"},
            ],
            "readers": [{"id": f"R{i + 1}", "name": f"Reader {i + 1}"} for i in range(N_READERS)],
            "questions": [
                {"id": "q", "text": "Q", "type": "likert", "points": 2, "labels": ["a", "b"]}
            ],
        }
    )
    rows = [
        CaseRow(f"c{i:03d}", f"s{i // 2:03d}", arm, Path("."), ("PD", "T2")[i % 2], {})
        for i in range(N_CASES)
        for arm in ("conventional", "dl")
    ]
    return protocol, rows


@pytest.mark.parametrize("design", ["sequential", "paired"])
def test_bench_generate_assignments(benchmark, design: str):
    protocol, rows = study(design)
    result = benchmark(generate_assignments, protocol, rows, 20261121)
    expected = N_CASES * N_READERS * (2 if design == "sequential" else 1)
    assert len(result) == expected
