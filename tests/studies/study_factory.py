"""Small study databases for the store tests, built without DICOM (series are plain files).

``create_study`` (test_create.py) covers the DICOM path; the store, export, package and CLI tests
only need rows and a few files per series, which this builds in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from studies.cases import load_cases
from studies.db.engine import make_engine
from studies.db.migrate import upgrade
from studies.db.populate import SeriesCopy, opaque_id, write_study
from studies.image_digests import file_digests, sha256_of
from studies.protocol import parse_protocol
from studies.randomisation import ALGORITHM_VERSION, generate_assignments
from studies.record import KEY_INFO, head
from studies.store import Store
from studies.study_key import key_path, new_key, save_key

SEQUENTIAL_TOML = """
title = "Test sequential study"
design = "sequential"
seed = 7
washout_days = 28
training_cases = ["T1"]

[[arms]]
code = "conv"
description = "Conventional reconstruction"
reference = true

[[arms]]
code = "dl"
description = "Deep-learning reconstruction"

[[readers]]
id = "R1"
name = "Reader One"

[[readers]]
id = "R2"
name = "Reader Two"

[[findings]]
id = "acl"
label = "ACL tear"

[[findings]]
id = "mcl"
label = "MCL tear"

[[questions]]
id = "likelihood"
text = "How likely is the finding present?"
type = "likert"
scope = "finding"
points = 4
labels = ["Definitely absent", "Probably absent", "Probably present", "Definitely present"]

[[questions]]
id = "quality"
text = "Overall image quality"
type = "likert"
points = 4
labels = ["Non-diagnostic", "Limited", "Good", "Excellent"]

[[questions]]
id = "artifact"
text = "Artifacts present?"
type = "boolean"

[[questions]]
id = "artifact_kind"
text = "Which artifacts?"
type = "multi"
options = [{value = "motion", label = "Motion"}, {value = "aliasing", label = "Aliasing"}]
show_if = {question = "artifact", equals = true}

[[questions]]
id = "confidence"
text = "Diagnostic confidence"
type = "choice"
options = [{value = "low", label = "Low"}, {value = "high", label = "High"}]
required = false

[[questions]]
id = "snr"
text = "Estimated SNR"
type = "number"
minimum = 0
maximum = 100
required = false

[[questions]]
id = "comment"
text = "Comment"
type = "text"
max_length = 20
required = false

[interchangeability]
question = "likelihood"
margin = 0.05
threshold = 3
"""

PAIRED_TOML = """
title = "Test paired study"
design = "paired"
seed = 11
washout_days = 0

[[arms]]
code = "conv"
description = "Conventional reconstruction"
reference = true

[[arms]]
code = "dl"
description = "Deep-learning reconstruction"

[[readers]]
id = "R1"
name = "Reader One"

[[questions]]
id = "quality"
text = "Image quality"
type = "likert"
scope = "side"
points = 4
labels = ["Poor", "Fair", "Good", "Excellent"]

[[questions]]
id = "preference"
text = "Which side do you prefer?"
type = "preference"
"""

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
"""Where every test's ``FakeClock`` starts: a fixed instant, never compared with today."""


def sql_time(at: datetime) -> str:
    """``at`` as the store writes a time into SQLite (what an attacker's ``sqlite3`` writes)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def iso_time(at: datetime) -> str:
    """``at`` as ``verify`` quotes a stored time."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def write_cases_csv(
    folder: Path, n_cases: int, arms: tuple[str, ...], *, training: bool, truth: bool = True
) -> Path:
    """CASES.csv with ``n_cases`` cases (2 per subject) plus training case T1 if asked."""
    lines = ["case_id,subject_id,arm,series_dir" + (",truth_acl,truth_mcl" if truth else "")]
    ids = [f"C{i:02d}" for i in range(1, n_cases + 1)] + (["T1"] if training else [])
    for i, case_id in enumerate(ids):
        for arm in arms:
            row = f"{case_id},P{i // 2:02d},{arm},src/{case_id}_{arm}"
            lines.append(row + (f",{i % 2},{'' if i == 0 else 1}" if truth else ""))
    for case_id in ids:
        for arm in arms:
            (folder / "src" / f"{case_id}_{arm}").mkdir(parents=True, exist_ok=True)
    path = folder / "CASES.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_study(
    folder: Path,
    *,
    design: str = "sequential",
    n_cases: int = 4,
    n_slices: int = 3,
    name: str = "study.sqlite",
    keyed: bool = True,
    protocol_text: str | None = None,
) -> Path:
    """Build a study database in ``folder`` (rows plus ``n_slices`` small files per series).

    Like ``study create``, the study gets a key in the key folder (the suite's, see
    ``tests/conftest.py``) unless ``keyed`` is False. ``protocol_text`` replaces the design's
    protocol (its arms must be conv and dl).
    """
    text = protocol_text or (SEQUENTIAL_TOML if design == "sequential" else PAIRED_TOML)
    protocol = parse_protocol(text, "test.toml")
    cases_csv = write_cases_csv(
        folder,
        n_cases,
        tuple(protocol.arm_codes),
        training=design == "sequential",
        truth=bool(protocol.findings),
    )
    cases = load_cases(cases_csv, protocol)
    planned = generate_assignments(protocol, cases, protocol.seed)
    db = folder / name
    images = folder / f"{db.stem}_images"
    taken: set[str] = set()
    series: dict[tuple[str, str, str], SeriesCopy] = {}
    for row in cases:
        sid = opaque_id("s", taken)
        (images / sid).mkdir(parents=True)
        names = [f"{k + 1:04d}.dcm" for k in range(n_slices)]
        for name in names:
            (images / sid / name).write_bytes(f"not really DICOM: {sid}/{name}".encode())
        digests = [sha256_of(images / sid / name) for name in names]
        series[row.key] = SeriesCopy(sid, sid, n_slices, file_digests(names, digests))
    engine = make_engine(db)
    upgrade(engine)
    from sqlalchemy.orm import Session

    key = new_key()
    with Session(engine) as s, s.begin():
        s.info[KEY_INFO] = key if keyed else None
        study = write_study(
            s,
            protocol=protocol,
            protocol_toml=text,
            cases=cases,
            planned=planned,
            series=series,
            images_dir=images.name,
            algorithm_version=ALGORITHM_VERSION,
            created_at=START - timedelta(days=1),
        )
        created = head(s)
        study_id = study.id
    engine.dispose()
    if keyed:
        assert created is not None
        save_key(
            key,
            study_id,
            key_path(study_id),
            details={"anchor": {"seq": created.seq, "hash": created.hash, "at": "create"}},
        )
    return db


def answer_all(store: Store, assignment_id: str, *, grade: int = 3) -> None:
    """Give every required answer of an assignment (artifact: no)."""
    from studies.api import AnswerKey

    protocol = store.protocol
    for question in protocol.questions:
        if not question.required:
            continue
        for key in store.keys_of(question):
            if question.type == "likert":
                store.record_answer(assignment_id, key, grade)
            elif question.type == "boolean":
                store.record_answer(assignment_id, key, False)
            elif question.type == "preference":
                store.record_answer(assignment_id, key, "left")
            elif question.type == "choice":
                store.record_answer(assignment_id, key, question.options[0].value)
    del AnswerKey


def read_with_random_grades(db: Path, rng: np.random.Generator) -> None:
    """Both sessions of every reader read a washout apart, each likert answer a random grade
    1..4 from ``rng`` (booleans no, choices the first option; multi is left out)."""
    clock = FakeClock()
    with Store.open(db, clock=clock) as store:
        for session in (1, 2):
            for reader in [r.id for r in store.protocol.readers]:
                for view in store.assignments(reader, session):
                    for question in store.protocol.questions:
                        if not question.required or question.type == "multi":
                            continue  # multi is shown only when an artifact is reported
                        for key in store.keys_of(question):
                            if question.type == "likert":
                                value: object = int(rng.integers(1, 5))
                            elif question.type == "boolean":
                                value = False
                            else:
                                value = question.options[0].value
                            store.record_answer(view.assignment_id, key, value)
                    store.complete_assignment(view.assignment_id)
            clock.advance(days=29)


def finish_session(
    store: Store, reader_id: str, index: int, step: Callable[[], None] = lambda: None
) -> None:
    """Answer and complete every assignment of one session."""
    for view in store.assignments(reader_id, index):
        answer_all(store, view.assignment_id)
        store.complete_assignment(view.assignment_id)
        step()
