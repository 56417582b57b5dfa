"""Readers sign in: the picker asks a reader's passphrase (``study readers set-passphrase``),
refuses a wrong one, and the package a reader takes home asks for it too."""

from __future__ import annotations

from PySide6.QtCore import Qt

from reader_app.errors import ReaderAppError
from studies.package import pack_reader
from studies.store import Store

PASSPHRASE = "blue heron at dawn"


def _protect(db, clock) -> None:
    with Store.open(db, clock=clock) as store:
        store.set_passphrase("R1", PASSPHRASE)


def test_the_picker_asks_the_passphrase_of_a_reader_who_has_one(
    make_study, workstation, clock, artifacts_dir
) -> None:
    db = make_study("sequential")
    _protect(db, clock)
    ws = workstation(db)
    picker = ws.window.picker
    assert picker.list.currentItem().data(Qt.ItemDataRole.UserRole) == "R1"
    assert picker.passphrase.isVisible()
    assert picker.passphrase.echoMode() == picker.passphrase.EchoMode.Password
    picker.choose()  # nothing typed
    assert ws.state.reader is None and "Type your passphrase" in picker.error.text()
    ws.qtbot.keyClicks(picker.passphrase, "not my passphrase")
    ws.qtbot.keyClick(picker.passphrase, Qt.Key.Key_Return)
    assert ws.state.reader is None
    assert picker.error.text() == "Wrong passphrase for Dr Ada Reader: try again."
    ws.window.grab().save(str(artifacts_dir / "reader-picker-wrong-passphrase.png"))
    try:  # no way round the picker through the controller either
        ws.controller.select_reader("R1")
        raise AssertionError("select_reader let R1 in without the passphrase")
    except ReaderAppError as exc:
        assert "signs in with a passphrase" in str(exc)
    picker.passphrase.clear()
    ws.qtbot.keyClicks(picker.passphrase, PASSPHRASE)
    ws.qtbot.keyClick(picker.passphrase, Qt.Key.Key_Return)
    assert ws.state.reader is not None and ws.state.reader.reader_id == "R1"
    assert ws.window.stack.currentWidget() is ws.window.start  # a first day: the start page
    ws.controller.change_reader()  # back at the picker: the next person signs in again
    assert ws.state.reader is None and picker.passphrase.text() == ""
    picker.list.setCurrentRow(1)  # R2 has no passphrase
    assert not picker.passphrase.isVisible()
    # Return on the reader list (where the arrows left the focus); sent to the list itself, as
    # which widget has the focus right after a page change depends on the window manager
    ws.qtbot.keyClick(picker.list, Qt.Key.Key_Return)
    assert ws.state.reader is not None and ws.state.reader.reader_id == "R2"
    kinds = [k for k in _event_kinds(ws.store) if k in ("signed_in", "sign_in_refused")]
    assert kinds == ["sign_in_refused", "signed_in", "signed_in"]


def test_a_package_opened_in_the_viewer_asks_the_passphrase(
    make_study, workstation, clock, tmp_path, artifacts_dir
) -> None:
    db = make_study("sequential")
    _protect(db, clock)
    pack_reader(db, "R1", tmp_path / "pkg", clock=clock)
    ws = workstation(tmp_path / "pkg" / "study.sqlite")
    picker = ws.window.picker
    assert picker.list.count() == 1 and picker.passphrase.isVisible()
    ws.window.grab().save(str(artifacts_dir / "reader-picker-package-passphrase.png"))
    ws.qtbot.keyClicks(picker.passphrase, PASSPHRASE)
    ws.qtbot.keyClick(picker.passphrase, Qt.Key.Key_Return)
    assert ws.state.reader is not None and ws.state.reader.reader_id == "R1"


def _event_kinds(store) -> list[str]:
    from sqlalchemy import select

    from studies.db.models import Event

    with store.reading() as s:
        return list(s.execute(select(Event.kind).order_by(Event.seq)).scalars())
