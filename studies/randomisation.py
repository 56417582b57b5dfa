"""Seeded, counterbalanced reading assignments, generated once when a study is created.

Sequential design (mixed sessions, as in Johnson et al., Radiology 2023): one session per arm;
each reader reads every case once per arm, each arm of a case in a different session. Arms are
given to *subjects* (all cases of a subject show the same arm within a session, so a session
never shows one subject on two arms), cycling through the arms from session to session. Which arm
a subject starts on is balanced twice: per reader over the subjects, and per subject over the
readers (counts differ by at most one). Readers are taken in groups of ``len(arms)``: the first
reader of a group gets a random balanced start vector, the others the same vector shifted by one
arm each, so every subject starts once on every arm within a group.

Paired design: one session; every reader reads every case once as a left/right pair. Per reader
the non-reference arm is on the left in half the pairs (within one), within each ``sequence``
stratum and overall; readers are taken in pairs whose sides are mirror images, so per case the
sides are balanced across readers too.

Training cases come first in session 1 in protocol order and are left out of every balance.
Orders within a session are random per reader, and redrawn when they repeat an earlier reader's
order (when the session has enough cases for that). All randomness comes from
``numpy.random.default_rng`` seeded from ``SeedSequence(seed)``: the same protocol, cases and seed
give identical assignments on any machine, whatever the row order of CASES.csv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from studies.cases import CaseRow, cases_by_id
from studies.errors import StudyError
from studies.protocol import Protocol

#: Stored with the study: bump when the algorithm changes what a seed produces.
ALGORITHM_VERSION = "blindreader-assignments/1"

_ORDER_REDRAWS = 50


@dataclass(frozen=True)
class PlannedAssignment:
    """One read: which reader, in which session and position, sees which case on which arm(s).

    Sequential design: ``arm`` is the arm shown, ``left_arm``/``right_arm`` are None. Paired
    design: ``arm`` is None and ``left_arm``/``right_arm`` say which arm is on which side.
    """

    reader_id: str
    session_index: int  # 1-based
    position: int  # 1-based within the session
    case_id: str
    arm: str | None
    left_arm: str | None
    right_arm: str | None
    is_training: bool


@dataclass(frozen=True)
class _Case:
    case_id: str
    subject_id: str
    sequence: str


def generate_assignments(
    protocol: Protocol, cases: list[CaseRow], seed: int
) -> list[PlannedAssignment]:
    """Generate every reader's assignments for a study.

    Parameters
    ----------
    protocol
        The study protocol (design, arms, readers, training cases).
    cases
        The rows of CASES.csv (one per case and arm; every case must have every arm).
    seed
        The seed (>= 0), normally ``protocol.seed``.

    Returns
    -------
    list[PlannedAssignment]
        Sorted by reader (protocol order), session and position.

    Raises
    ------
    StudyError
        A case lacks one of the protocol's arms, a training case is not among the cases, or
        the seed is negative.
    """
    if seed < 0:
        raise StudyError(f"seed must be >= 0 (got {seed})")
    all_cases = _collect_cases(protocol, cases)
    training_ids = list(protocol.training_cases)
    missing = [c for c in training_ids if c not in all_cases]
    if missing:
        raise StudyError(f"training case(s) not among the cases: {', '.join(missing)}")
    study_cases = [all_cases[c] for c in sorted(all_cases) if c not in set(training_ids)]
    training = [all_cases[c] for c in training_ids]

    design_seq, *reader_seqs = np.random.SeedSequence(seed).spawn(len(protocol.readers) + 1)
    design_rng = np.random.default_rng(design_seq)
    reader_rngs = [np.random.default_rng(s) for s in reader_seqs]
    if protocol.design == "sequential":
        return _sequential(protocol, study_cases, training, design_rng, reader_rngs)
    return _paired(protocol, study_cases, training, design_rng, reader_rngs)


def _collect_cases(protocol: Protocol, rows: list[CaseRow]) -> dict[str, _Case]:
    collected: dict[str, _Case] = {}
    for case_id, arms in cases_by_id(rows).items():
        lacking = [a for a in protocol.arm_codes if a not in arms]
        if lacking:
            raise StudyError(f"case {case_id!r} has no series for arm(s) {', '.join(lacking)}")
        row = next(iter(arms.values()))
        collected[case_id] = _Case(case_id, row.subject_id, row.sequence)
    return collected


def _balanced(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """A random vector of n values in 0..k-1 whose value counts differ by at most one."""
    offset = int(rng.integers(k))
    values = (np.arange(n) + offset) % k
    return rng.permutation(values)


def _distinct_order(
    items: list[tuple[str, str | None, str | None, str | None]],
    rng: np.random.Generator,
    seen: set[tuple[str, ...]],
) -> list[tuple[str, str | None, str | None, str | None]]:
    """A random order of items whose case order repeats none in ``seen`` where possible."""
    order: list[tuple[str, str | None, str | None, str | None]] = []
    possible = math.factorial(len(items)) if len(items) < 20 else math.inf
    for _ in range(_ORDER_REDRAWS):
        order = [items[i] for i in rng.permutation(len(items))]
        case_order = tuple(item[0] for item in order)
        if case_order not in seen or possible <= len(seen):
            break
    seen.add(tuple(item[0] for item in order))
    return order


def _sequential(
    protocol: Protocol,
    study_cases: list[_Case],
    training: list[_Case],
    design_rng: np.random.Generator,
    reader_rngs: list[np.random.Generator],
) -> list[PlannedAssignment]:
    arms = [protocol.reference_arm.code] + [a.code for a in protocol.other_arms]
    k = len(arms)
    subjects = sorted({c.subject_id for c in study_cases})
    n_readers = len(protocol.readers)
    # start[r, s]: index into `arms` of the arm subject s is shown on in reader r's session 1.
    start = np.zeros((n_readers, len(subjects)), dtype=np.int64)
    reader_slots = design_rng.permutation(n_readers)
    base = np.zeros(len(subjects), dtype=np.int64)
    for slot, reader in enumerate(reader_slots):
        if slot % k == 0:
            base = _balanced(len(subjects), k, design_rng)
        start[reader] = (base + slot % k) % k
    subject_index = {s: i for i, s in enumerate(subjects)}

    planned: list[PlannedAssignment] = []
    seen: list[set[tuple[str, ...]]] = [set() for _ in range(k)]
    for r, (reader, rng) in enumerate(zip(protocol.readers, reader_rngs, strict=True)):
        for session in range(1, k + 1):
            position = 0
            if session == 1:
                for t, case in enumerate(training):
                    # A training subject that is also read in the study keeps its session-1 arm.
                    s = subject_index.get(case.subject_id)
                    arm = arms[int(start[r, s])] if s is not None else arms[t % k]
                    position += 1
                    planned.append(
                        PlannedAssignment(
                            reader.id, 1, position, case.case_id, arm, None, None, True
                        )
                    )
            items: list[tuple[str, str | None, str | None, str | None]] = [
                (
                    c.case_id,
                    arms[int((start[r, subject_index[c.subject_id]] + session - 1) % k)],
                    None,
                    None,
                )
                for c in study_cases
            ]
            for case_id, shown, _, _ in _distinct_order(items, rng, seen[session - 1]):
                position += 1
                planned.append(
                    PlannedAssignment(
                        reader.id, session, position, case_id, shown, None, None, False
                    )
                )
    return planned


def _paired(
    protocol: Protocol,
    study_cases: list[_Case],
    training: list[_Case],
    design_rng: np.random.Generator,
    reader_rngs: list[np.random.Generator],
) -> list[PlannedAssignment]:
    reference = protocol.reference_arm.code
    other = protocol.other_arms[0].code
    strata: dict[str, list[_Case]] = {}
    for case in study_cases:
        strata.setdefault(case.sequence, []).append(case)
    stratum_names = sorted(strata)
    n_readers = len(protocol.readers)
    # other_left[r][case_id]: whether the non-reference arm is on the left for reader r.
    other_left: list[dict[str, bool]] = [{} for _ in range(n_readers)]
    reader_slots = design_rng.permutation(n_readers)
    base: dict[str, bool] = {}
    for slot, reader in enumerate(reader_slots):
        if slot % 2 == 0:
            base = _balanced_sides(strata, stratum_names, design_rng)
            other_left[reader] = dict(base)
        else:
            other_left[reader] = {c: not left for c, left in base.items()}

    planned: list[PlannedAssignment] = []
    seen: set[tuple[str, ...]] = set()
    for r, (reader, rng) in enumerate(zip(protocol.readers, reader_rngs, strict=True)):
        position = 0
        for t, case in enumerate(training):
            left, right = (other, reference) if t % 2 == 0 else (reference, other)
            position += 1
            planned.append(
                PlannedAssignment(reader.id, 1, position, case.case_id, None, left, right, True)
            )
        items: list[tuple[str, str | None, str | None, str | None]] = []
        for case in study_cases:
            left, right = (other, reference) if other_left[r][case.case_id] else (reference, other)
            items.append((case.case_id, None, left, right))
        for case_id, _, left_arm, right_arm in _distinct_order(items, rng, seen):
            position += 1
            planned.append(
                PlannedAssignment(reader.id, 1, position, case_id, None, left_arm, right_arm, False)
            )
    return planned


def _balanced_sides(
    strata: dict[str, list[_Case]], names: list[str], rng: np.random.Generator
) -> dict[str, bool]:
    """Sides balanced within each stratum; odd strata share their extra pair out evenly."""
    odd = [name for name in names if len(strata[name]) % 2 == 1]
    first_extra = int(rng.integers(2))
    extra = {
        name: bool((i + first_extra) % 2)
        for i, name in enumerate(odd[int(j)] for j in rng.permutation(len(odd)))
    }
    sides: dict[str, bool] = {}
    for name in names:
        cases = strata[name]
        half = len(cases) // 2
        values = [True] * half + [False] * half
        if len(cases) % 2:
            values.append(extra[name])
        for case, index in zip(cases, rng.permutation(len(cases)), strict=True):
            sides[case.case_id] = values[int(index)]
    return sides


__all__ = ["ALGORITHM_VERSION", "PlannedAssignment", "generate_assignments"]
