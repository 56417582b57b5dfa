"""A reader's package opened as a curious reader would: ``sqlite3`` and the file system only.

The study is made by ``study create`` from real DICOM with distinctive arm codes and
descriptions. The package must hold no arm code or description in any file or cell, no other
reader, no real case or subject id, no training case id, no coordinator path, no export id; every
file and folder has the same timestamp; and the order of its rows, folders, inodes and manifest
entries follows a random draw, not the arms.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from studies.create import create_study
from studies.export import answers_frame
from studies.package import merge_packages, pack_reader
from studies.store import Store
from tests.studies.conftest import make_series, write_cases_csv

REFERENCE, AI = "sense-conventional", "varnet-deeplearning"
PROTOCOL = f"""
title = "Knee study: {REFERENCE} versus {AI}"
design = "sequential"
seed = 20260101
washout_days = 28
training_cases = ["TRAINING-KNEE-7"]

[[arms]]
code = "{REFERENCE}"
description = "Conventional parallel imaging reconstruction"
reference = true

[[arms]]
code = "{AI}"
description = "End-to-end variational network"

[[readers]]
id = "rad-ada"
name = "Dr Ada Lovelace-Reader"

[[readers]]
id = "rad-bo"
name = "Dr Bo Otherreader"

[[findings]]
id = "acl"
label = "ACL tear"

[[questions]]
id = "likelihood"
text = "How likely is the finding present?"
type = "likert"
scope = "finding"
points = 4
labels = ["Definitely absent", "Probably absent", "Probably present", "Definitely present"]

[interchangeability]
question = "likelihood"
"""
CASE_IDS = ["KNEE-0001", "KNEE-0002", "KNEE-0003", "KNEE-0004", "TRAINING-KNEE-7"]


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study made by ``study create`` from real DICOM series."""
    from tests.studies.study_factory import FakeClock

    folder = tmp_path_factory.mktemp("coordinator-site-folder")
    (folder / "study.toml").write_text(PROTOCOL, encoding="utf-8")
    rows = []
    for i, case_id in enumerate(CASE_IDS):
        for arm in (REFERENCE, AI):
            make_series(folder / "dicom" / case_id / arm, n_slices=2, seed=i)
            rows.append(
                {
                    "case_id": case_id,
                    "subject_id": f"PATIENT-{i // 2:03d}",
                    "arm": arm,
                    "series_dir": f"dicom/{case_id}/{arm}",
                }
            )
    write_cases_csv(folder / "CASES.csv", rows)
    summary = create_study(
        folder / "study.toml", folder / "CASES.csv", folder / "study.sqlite", clock=FakeClock()
    )
    return summary.db_path


def every_cell(db: Path) -> list[tuple[str, str, str]]:
    """(table, column, text) of every cell of every table."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out = []
    for (table,) in con.execute("select name from sqlite_master where type = 'table'"):
        cursor = con.execute(f'select * from "{table}"')
        names = [d[0] for d in cursor.description]
        for row in cursor:
            out += [(table, n, str(v)) for n, v in zip(names, row, strict=True) if v is not None]
    con.close()
    return out


def forbidden_terms(main: Path, reader_shown: str) -> list[str]:
    con = sqlite3.connect(main)
    terms = [r[0] for r in con.execute("select code from arm")]
    terms += [r[0] for r in con.execute("select description from arm")]
    terms += [
        r[0] for r in con.execute("select name from reader where reader_id != ?", (reader_shown,))
    ]
    terms += [
        r[0]
        for r in con.execute("select reader_id from reader where reader_id != ?", (reader_shown,))
    ]
    terms += [r[0] for r in con.execute('select case_id from "case"')]
    terms += [r[0] for r in con.execute("select subject_id from subject")]
    terms += [
        r[0]
        for r in con.execute('select export_id from "case" union select export_id from subject')
    ]
    con.close()
    return terms


def find(term: str, text: str) -> bool:
    pattern = r"(?<![A-Za-z0-9])" + re.escape(term) + r"(?![A-Za-z0-9])"
    return re.search(pattern, text, flags=re.IGNORECASE) is not None


def test_a_package_holds_no_arm_no_other_reader_and_no_coordinator_path(
    created: Path, tmp_path: Path, clock
) -> None:
    pkg = tmp_path / "pkg-bo"
    pack_reader(created, "rad-bo", pkg, clock=clock, rng=np.random.default_rng(1))
    terms = forbidden_terms(created, "rad-bo")
    paths = [str(created.parent), str(created.parent.resolve()), os.environ["BLINDREADER_KEY_DIR"]]
    assert len(terms) > 20
    # every cell of the package database
    for table, column, text in every_cell(pkg / "study.sqlite"):
        for term in terms:
            assert not find(term, text), (term, table, column, text[:200])
        for path in paths:
            assert path not in text, (path, table, column)
    # every byte of every file (the database file itself, the manifest, every DICOM file)
    files = [p for p in pkg.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes().decode("latin-1")
        for term in terms + paths:
            assert not find(term, data), (term, path.relative_to(pkg))
        assert not any(find(term, path.name) for term in terms)
    # the stand-in arms: one per shown (case, arm), random codes, no description, no reference
    con = sqlite3.connect(pkg / "study.sqlite")
    arms = con.execute("select code, description, reference from arm").fetchall()
    (n_series,) = con.execute("select count(*) from series").fetchone()
    (n_arms_shown,) = con.execute("select count(distinct arm_pk) from series").fetchone()
    (protocol,) = con.execute("select protocol_toml from study").fetchone()
    (events,) = con.execute("select group_concat(payload_json, ' ') from event").fetchone()
    con.close()
    # (the training case is read once, on one arm)
    assert len(arms) == n_series == n_arms_shown == 2 * (len(CASE_IDS) - 1) + 1
    assert all(code.startswith("x-") and desc == "" and ref == 0 for code, desc, ref in arms)
    assert (
        'code = "arm1"' in protocol
        and "seed = 0" in protocol
        and "interchangeability" not in protocol
    )
    assert "Dr Bo Otherreader" in protocol and "training_cases" in protocol
    assert "package_id" in events and "os_user" not in events
    manifest = json.loads((pkg / "manifest.json").read_text())
    assert manifest["reader_id"] == "rad-bo" and manifest["study_title"] == "Reader study"
    assert {"seq", "hash", "mac"} <= set(manifest["anchor"])


def test_every_file_and_folder_of_a_package_has_one_neutral_time(
    created: Path, tmp_path: Path, clock
) -> None:
    pkg = tmp_path / "pkg"
    pack_reader(created, "rad-ada", pkg, clock=clock)
    stamps = {p.stat().st_mtime for p in [pkg, *pkg.rglob("*")]}
    assert len(stamps) == 1
    (stamp,) = stamps
    assert stamp % 86400 == 0  # midnight UTC of the packing day: says nothing


def _arm_of_series(main: Path) -> tuple[dict[str, str], dict[str, str]]:
    """series opaque id -> arm code, and -> case id (the coordinator's key, to test against)."""
    con = sqlite3.connect(main)
    rows = con.execute(
        "select s.opaque_id, a.code, c.case_id from series s join arm a on a.id = s.arm_pk "
        'join "case" c on c.id = s.case_pk'
    ).fetchall()
    con.close()
    return {s: a for s, a, _ in rows}, {s: c for s, _, c in rows}


def _orders(pkg: Path) -> dict[str, list[str]]:
    """Series in every order a curious reader can see: rows, folder inodes, manifest."""
    con = sqlite3.connect(pkg / "study.sqlite")
    by_rowid = [r[0] for r in con.execute("select opaque_id from series order by rowid")]
    con.close()
    folders = list((pkg / "study_images").iterdir())
    by_inode = [p.name for p in sorted(folders, key=lambda p: p.stat().st_ino)]
    manifest = json.loads((pkg / "manifest.json").read_text())
    by_manifest = list(dict.fromkeys(f.split("/")[1] for f in manifest["files"]))
    return {"rows": by_rowid, "inodes": by_inode, "manifest": by_manifest}


def test_no_order_in_a_package_follows_the_arms(created: Path, tmp_path: Path, clock) -> None:
    arm_of, case_of = _arm_of_series(created)
    seen: dict[str, set[tuple[str, ...]]] = {"rows": set(), "inodes": set(), "manifest": set()}
    for seed in range(4):
        pkg = tmp_path / f"pkg{seed}"
        pack_reader(created, "rad-ada", pkg, clock=clock, rng=np.random.default_rng(seed))
        orders = _orders(pkg)
        for name, order in orders.items():
            assert sorted(order) == sorted(orders["rows"]) and len(order) == 9
            # within each case: which arm comes first?
            first: dict[str, str] = {}
            for series in order:
                first.setdefault(case_of[series], arm_of[series])
            seen[name].add(tuple(first[c] for c in CASE_IDS[:-1]))
    for name in ("rows", "inodes"):
        # four packs, four draws: the arm that comes first per case is not fixed
        assert len(seen[name]) > 1, name
        assert (REFERENCE,) * (len(CASE_IDS) - 1) not in seen[name] or len(seen[name]) > 1
    # the manifest lists files by opaque folder name: sorted, the same in every pack, and
    # the names are random, so that order says nothing either
    assert len(seen["manifest"]) == 1


def test_the_blinded_export_shares_no_id_with_a_package(
    created: Path, tmp_path: Path, clock
) -> None:
    pkg = tmp_path / "pkg"
    pack_reader(created, "rad-ada", pkg, clock=clock)
    with Store.open(created, clock=clock) as store:
        frame = answers_frame(store)
        ids = set(frame["case"]) | set(frame["subject"])
        con = sqlite3.connect(created)
        ids |= {
            r[0]
            for r in con.execute('select export_id from "case" union select export_id from subject')
        }
        con.close()
    cells = " ".join(text for _, _, text in every_cell(pkg / "study.sqlite"))
    data = " ".join(p.read_bytes().decode("latin-1") for p in pkg.rglob("*") if p.is_file())
    assert ids and not any(i in cells or i in data for i in ids)


def test_preferences_are_stored_by_side_and_mapped_to_arms_at_merge(tmp_path: Path, clock) -> None:
    from studies.api import AnswerKey
    from tests.studies.study_factory import build_study

    db = build_study(tmp_path, design="paired", n_cases=2)
    pack_reader(db, "R1", tmp_path / "pkg", clock=clock)
    with Store.open(tmp_path / "pkg" / "study.sqlite", clock=clock) as pkg:
        for view in pkg.assignments("R1", 1):
            for side in ("left", "right"):
                pkg.record_answer(view.assignment_id, AnswerKey("quality", None, side), 3)
            pkg.record_answer(view.assignment_id, AnswerKey("preference"), "right")
            pkg.complete_assignment(view.assignment_id)
    con = sqlite3.connect(tmp_path / "pkg" / "study.sqlite")
    assert {r[0] for r in con.execute("select arm_value from answer")} == {None}
    assert {r[0] for r in con.execute("select arm_value from answer_revision")} == {None}
    con.close()
    merge_packages(db, [tmp_path / "pkg"], clock=clock)
    with Store.open(db, clock=clock) as main:
        frame = answers_frame(main, unblinded=True)
        assert main.verify().ok
    prefs = frame[frame["question"] == "preference"]
    right_arms = frame[(frame["question"] == "quality") & (frame["side"] == "right")]
    assert sorted(prefs["value"]) == sorted(right_arms["arm"])  # "right" became the right arm
