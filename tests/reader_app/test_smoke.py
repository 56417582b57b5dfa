from PySide6.QtCore import Qt


def test_open_read_one_case(make_study, workstation, qtbot, artifacts_dir):
    ws = workstation(make_study("sequential"))
    ws.window.picker.choose()
    assert ws.window.stack.currentWidget() is ws.window.worklist
    ws.window.worklist.open_selected()
    assert ws.window.stack.currentWidget() is ws.reading
    ws.wait_images()
    ws.window.grab().save(str(artifacts_dir / "smoke.png"))
    print(ws.window.windowTitle())
    print(list(ws.panel.rows))
