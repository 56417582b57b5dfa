"""Blinding: no visible text (labels, buttons, tooltips, window titles, list items, line edits,
accessible names) names an arm, a patient, a source file or a series folder. Also saves the
screenshots of the reader picker, worklist, sequential and paired views for people to look at."""

from __future__ import annotations

import re

import pydicom
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QLabel,
    QLineEdit,
    QListWidget,
    QWidget,
)

from studies.api import AnswerKey
from tests.reader_app.conftest import PATIENT_NAMES


def visible_texts(window: QWidget) -> list[str]:
    """Every text a reader can see or hover in the window's visible widgets."""
    texts = [window.windowTitle()]
    for widget in [window, *window.findChildren(QWidget)]:
        if not widget.isVisible():
            continue
        texts += [widget.toolTip(), widget.windowTitle(), widget.accessibleName(),
                  widget.statusTip(), widget.whatsThis()]  # fmt: skip
        if isinstance(widget, QLabel | QAbstractButton):
            texts.append(widget.text())
        if isinstance(widget, QLineEdit):
            texts += [widget.text(), widget.placeholderText()]
        if isinstance(widget, QListWidget):
            for i in range(widget.count()):
                texts += [widget.item(i).text(), widget.item(i).toolTip()]
    return [t for t in texts if t]


def forbidden_terms(study_dir, store) -> list[str]:
    """Arm codes and descriptions, patient names and ids, case / subject ids, source and study
    file names and folder names."""
    terms = []
    for arm in store.protocol.arms:
        terms += [arm.code, arm.description]
    for name in PATIENT_NAMES:
        terms += [name, *name.split("^")]
    source = study_dir.parent
    for folder in (source / "src").iterdir():
        terms.append(folder.name)
        for file in folder.iterdir():
            terms += [file.name, file.stem]
            terms.append(str(pydicom.dcmread(file, stop_before_pixels=True).PatientID))
    terms += [line.split(",")[0] for line in (source / "CASES.csv").read_text().splitlines()[1:]]
    for folder in store.images_dir.iterdir():
        terms.append(folder.name)
        terms += [f.name for f in folder.iterdir()]
    terms += [store.images_dir.name, "sqlite"]
    return sorted(set(terms))


def leaks(texts: list[str], terms: list[str]) -> list[tuple[str, str]]:
    found = []
    for text in texts:
        for term in terms:
            if re.search(r"(?<![A-Za-z0-9])" + re.escape(term) + r"(?![A-Za-z0-9])", text, re.I):
                found.append((term, text))
    return found


def check_page(ws, terms, must_show: str) -> None:
    QApplication.processEvents()
    texts = visible_texts(ws.window)
    assert any(must_show in t for t in texts), (must_show, texts)  # the walker sees the page
    assert leaks(texts, terms) == []


def test_the_walker_finds_a_planted_leak(make_study, workstation):
    db = make_study("paired")
    ws = workstation(db)
    terms = forbidden_terms(db.parent, ws.store)
    ws.window.picker.continue_button.setToolTip("Shows varnet first")
    assert leaks(visible_texts(ws.window), terms) == [("varnet", "Shows varnet first")]


def test_sequential_study_shows_nothing_unblinding(make_study, workstation, artifacts_dir):
    db = make_study("sequential")
    ws = workstation(db)
    terms = forbidden_terms(db.parent, ws.store)
    assert "varnet" in terms and "Quixote" in terms and "IM0001.dcm" in terms
    check_page(ws, terms, "Who is reading?")
    ws.window.grab().save(str(artifacts_dir / "reader-picker.png"))
    ws.window.picker.choose()
    check_page(ws, terms, "Welcome, Dr Ada Reader")  # the start page (nothing read yet)
    ws.window.grab().save(str(artifacts_dir / "start-page.png"))
    ws.controller.show_worklist()
    check_page(ws, terms, "Session 1")
    ws.window.grab().save(str(artifacts_dir / "worklist.png"))
    assert ws.window.worklist.open_session(1)
    ws.wait_images()
    for key, value in (
        (AnswerKey("likelihood", "acl"), 3),
        (AnswerKey("quality"), 4),
        (AnswerKey("artifact"), True),
        (AnswerKey("artifact_kind"), ["motion"]),
    ):
        ws.controller.set_answer(key, value)  # fmt: skip
    ws.panel.rows[AnswerKey("likelihood", "meniscus")].setFocus()
    for _ in range(3):
        ws.reading.panes.panes[0].view.step_slice(1)
    check_page(ws, terms, "Case 1 of 4")
    ws.window.grab().save(str(artifacts_dir / "reading-sequential.png"))


def test_paired_study_shows_nothing_unblinding(make_study, workstation, artifacts_dir):
    db = make_study("paired")
    ws = workstation(db)
    terms = forbidden_terms(db.parent, ws.store)
    ws.window.picker.choose()
    assert ws.window.worklist.open_session(1)
    ws.wait_images()
    assert len(ws.reading.panes.panes) == 2
    ws.controller.set_answer(AnswerKey("quality", side="left"), 3)
    ws.controller.set_answer(AnswerKey("preference"), "right")
    assert not ws.panel.rows[AnswerKey("reason")].isHidden()
    check_page(ws, terms, "Right image")
    ws.window.grab().save(str(artifacts_dir / "reading-paired.png"))
    ws.settle()
    # the stored preference is the reader's side; the panel shows the side, not the arm
    assert (
        ws.store.assignment(ws.state.assignment.assignment_id).answers[AnswerKey("preference")]
        == "right"
    )
