"""Assignments: property tests over random study sizes, determinism, and bad input."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studies.cases import CaseRow
from studies.errors import StudyError
from studies.protocol import Protocol
from studies.randomisation import ALGORITHM_VERSION, PlannedAssignment, generate_assignments

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_protocol(
    design: str, n_arms: int, n_readers: int, training: list[str] | None = None
) -> Protocol:
    arms = [{"code": "ref", "description": "Reference", "reference": True}] + [
        {"code": f"a{i}", "description": f"Arm {i}"} for i in range(1, n_arms)
    ]
    return Protocol.model_validate(
        {
            "title": "t",
            "design": design,
            "seed": 1,
            "arms": arms,
            "readers": [{"id": f"R{i + 1}", "name": f"Reader {i + 1}"} for i in range(n_readers)],
            "questions": [
                {"id": "q", "text": "Q", "type": "likert", "points": 2, "labels": ["a", "b"]}
            ],
            "training_cases": training or [],
        }
    )


def make_rows(
    protocol: Protocol, subject_sizes: list[int], n_sequences: int, training: list[str]
) -> list[CaseRow]:
    """Cases c000.. grouped into subjects of the given sizes; training cases get own subjects."""
    rows: list[CaseRow] = []
    index = 0
    for s, size in enumerate(subject_sizes):
        for _ in range(size):
            sequence = f"seq{index % n_sequences}"
            for arm in protocol.arm_codes:
                rows.append(CaseRow(f"c{index:03d}", f"s{s:02d}", arm, Path("."), sequence, {}))
            index += 1
    for t, case_id in enumerate(training):
        for arm in protocol.arm_codes:
            rows.append(CaseRow(case_id, f"train{t}", arm, Path("."), "seq0", {}))
    return rows


@st.composite
def studies(draw: st.DrawFn, design: str) -> tuple[Protocol, list[CaseRow], int]:
    n_cases = draw(st.integers(1, 40))
    sizes: list[int] = []
    while sum(sizes) < n_cases:
        sizes.append(min(draw(st.integers(1, 3)), n_cases - sum(sizes)))
    n_arms = draw(st.integers(2, 3)) if design == "sequential" else 2
    n_readers = draw(st.integers(1, 8))
    n_sequences = draw(st.integers(1, 3))
    training = [f"T{i}" for i in range(draw(st.integers(0, 2)))]
    protocol = make_protocol(design, n_arms, n_readers, training)
    rows = make_rows(protocol, sizes, n_sequences, training)
    rows = draw(st.permutations(rows))  # the row order of CASES.csv must not matter
    seed = draw(st.integers(0, 2**32 - 1))
    return protocol, list(rows), seed


def spread(counts: Counter[str], keys: list[str]) -> int:
    values = [counts.get(k, 0) for k in keys]
    return max(values) - min(values)


def check_positions(assignments: list[PlannedAssignment], protocol: Protocol) -> None:
    by_session: dict[tuple[str, int], list[PlannedAssignment]] = defaultdict(list)
    for a in assignments:
        by_session[(a.reader_id, a.session_index)].append(a)
    assert {r for r, _ in by_session} == {r.id for r in protocol.readers}
    for (_, session), items in by_session.items():
        assert 1 <= session <= protocol.n_sessions
        assert [a.position for a in items] == list(range(1, len(items) + 1))
        training = [a.case_id for a in items if a.is_training]
        if session == 1:
            assert training == list(protocol.training_cases)  # first, in protocol order
            assert all(a.is_training for a in items[: len(training)])
        else:
            assert training == []


def check_orders_differ(assignments: list[PlannedAssignment], n_study_cases: int) -> None:
    """Within each session, no two readers read the cases in the same order."""
    if n_study_cases < 4:
        return  # 3! = 6 orders cannot always tell 8 readers apart
    orders: dict[tuple[str, int], list[str]] = defaultdict(list)
    for a in assignments:
        if not a.is_training:
            orders[(a.reader_id, a.session_index)].append(a.case_id)
    for session in {s for _, s in orders}:
        per_reader = [tuple(order) for (_, s), order in orders.items() if s == session]
        assert len(set(per_reader)) == len(per_reader)


@SETTINGS
@given(studies("sequential"))
def test_sequential_properties(study: tuple[Protocol, list[CaseRow], int]):
    protocol, rows, seed = study
    assignments = generate_assignments(protocol, rows, seed)
    arms = protocol.arm_codes
    training = set(protocol.training_cases)
    subject_of = {r.case_id: r.subject_id for r in rows}
    cases = sorted({r.case_id for r in rows} - training)
    check_positions(assignments, protocol)
    assert all(a.left_arm is None and a.right_arm is None for a in assignments)

    first_arm: dict[str, Counter[str]] = defaultdict(Counter)  # case -> arm -> readers
    for reader in protocol.readers:
        mine = [a for a in assignments if a.reader_id == reader.id and not a.is_training]
        # Every case once per arm ...
        assert Counter((a.case_id, a.arm) for a in mine) == Counter(
            (c, arm) for c in cases for arm in arms
        )
        for session in range(1, protocol.n_sessions + 1):
            in_session = [a for a in mine if a.session_index == session]
            # ... each arm of a case in a different session (every case once per session) ...
            assert sorted(a.case_id for a in in_session) == cases
            # ... and a subject on one arm only within a session.
            subject_arms: dict[str, set[str | None]] = defaultdict(set)
            for a in in_session:
                subject_arms[subject_of[a.case_id]].add(a.arm)
            assert all(len(s) == 1 for s in subject_arms.values())
        session1 = [a for a in mine if a.session_index == 1]
        # Per reader: subjects starting on each arm differ by at most one.
        starts = Counter(
            next(iter(arm_set))
            for arm_set in _subject_arms(session1, subject_of).values()
            if arm_set
        )
        assert spread(starts, arms) <= 1
        for a in session1:
            assert a.arm is not None
            first_arm[a.case_id][a.arm] += 1
    # Per case: readers starting on each arm differ by at most one.
    for case in cases:
        assert spread(first_arm[case], arms) <= 1
    check_orders_differ(assignments, len(cases))


def _subject_arms(
    items: list[PlannedAssignment], subject_of: dict[str, str]
) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for a in items:
        assert a.arm is not None
        out[subject_of[a.case_id]].add(a.arm)
    return out


@SETTINGS
@given(studies("paired"))
def test_paired_properties(study: tuple[Protocol, list[CaseRow], int]):
    protocol, rows, seed = study
    assignments = generate_assignments(protocol, rows, seed)
    check_positions(assignments, protocol)
    reference = protocol.reference_arm.code
    other = protocol.other_arms[0].code
    training = set(protocol.training_cases)
    sequence_of = {r.case_id: r.sequence for r in rows}
    cases = sorted({r.case_id for r in rows} - training)
    other_left_by_case: Counter[str] = Counter()
    for reader in protocol.readers:
        mine = [a for a in assignments if a.reader_id == reader.id]
        assert all(a.session_index == 1 and a.arm is None for a in mine)
        assert all({a.left_arm, a.right_arm} == {reference, other} for a in mine)
        study_reads = [a for a in mine if not a.is_training]
        # Every pair once.
        assert sorted(a.case_id for a in study_reads) == cases
        # The AI arm on the left in half the pairs, overall and within each sequence.
        sides = Counter("other" if a.left_arm == other else "ref" for a in study_reads)
        assert spread(sides, ["other", "ref"]) <= 1
        for sequence in {sequence_of[c] for c in cases}:
            within = Counter(
                "other" if a.left_arm == other else "ref"
                for a in study_reads
                if sequence_of[a.case_id] == sequence
            )
            assert spread(within, ["other", "ref"]) <= 1
        for a in study_reads:
            other_left_by_case[a.case_id] += a.left_arm == other
    # Per case across readers the sides are balanced too.
    n_readers = len(protocol.readers)
    for case in cases:
        assert abs(2 * other_left_by_case[case] - n_readers) <= 1
    check_orders_differ(assignments, len(cases))


@pytest.mark.parametrize("design", ["sequential", "paired"])
def test_orders_differ_even_when_few_orders_exist(design: str):
    # 4 cases allow 24 orders; 8 readers drawing freely would collide most of the time.
    protocol = make_protocol(design, 2, 8)
    rows = make_rows(protocol, [1, 1, 1, 1], 1, [])
    for seed in range(20):
        check_orders_differ(generate_assignments(protocol, rows, seed), 4)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["sequential", "paired"]), studies("sequential"), st.data())
def test_same_seed_identical_different_seed_different(design, study, data):
    protocol, rows, seed = study
    if design == "paired":
        protocol = make_protocol("paired", 2, len(protocol.readers), protocol.training_cases)
        rows = [r for r in rows if r.arm in protocol.arm_codes]
    first = generate_assignments(protocol, rows, seed)
    shuffled = data.draw(st.permutations(rows))
    assert generate_assignments(protocol, list(shuffled), seed) == first
    n_cases = len({r.case_id for r in rows} - set(protocol.training_cases))
    if n_cases >= 6:
        other_seed = data.draw(st.integers(0, 2**32 - 1).filter(lambda s: s != seed))
        assert generate_assignments(protocol, rows, other_seed) != first


def test_known_output_pins_the_algorithm():
    """A fixed input gives a fixed output; if this changes, bump ALGORITHM_VERSION."""
    protocol = make_protocol("sequential", 2, 6, ["T0"])
    rows = make_rows(protocol, [1, 2, 3, 1, 2, 3, 1], 2, ["T0"])
    text = repr(generate_assignments(protocol, rows, 20261121))
    paired = make_protocol("paired", 2, 3)
    text += repr(generate_assignments(paired, make_rows(paired, [2] * 9, 3, []), 5))
    assert ALGORITHM_VERSION == "blindreader-assignments/1"
    assert hashlib.sha256(text.encode()).hexdigest() == KNOWN_SHA256


KNOWN_SHA256 = "83e5d753fa7cc03bae030293bfb6abc6ca67697b34295e18475a290dd4820b0c"


def test_a_case_missing_an_arm_is_refused():
    protocol = make_protocol("sequential", 2, 2)
    rows = [
        r for r in make_rows(protocol, [2], 1, []) if not (r.case_id == "c001" and r.arm == "a1")
    ]
    with pytest.raises(StudyError, match="case 'c001' has no series for arm\\(s\\) a1"):
        generate_assignments(protocol, rows, 1)


def test_training_case_must_be_among_the_cases():
    protocol = make_protocol("paired", 2, 2, ["T0", "T9"])
    rows = make_rows(protocol, [2], 1, ["T0"])
    with pytest.raises(StudyError, match="training case\\(s\\) not among the cases: T9"):
        generate_assignments(protocol, rows, 1)


def test_negative_seed_is_refused():
    protocol = make_protocol("paired", 2, 2)
    with pytest.raises(StudyError, match="seed must be >= 0"):
        generate_assignments(protocol, make_rows(protocol, [1], 1, []), -5)


def test_shipped_knee_protocol_170_cases(knee_protocol: Protocol):
    rows = make_rows(knee_protocol, [2] * 85, 1, [])
    assignments = generate_assignments(knee_protocol, rows, knee_protocol.seed)
    assert len(assignments) == 170 * 2 * 6
    for reader in knee_protocol.readers:
        first = Counter(
            a.arm for a in assignments if a.reader_id == reader.id and a.session_index == 1
        )
        # 85 subjects of two cases each: 43 start on one arm, 42 on the other.
        assert sorted(first.values()) == [84, 86]
