"""A real window on a real X server (Xvfb, Debian's ``xvfb``, installed by ``make test-tools``):
at 1366x768 and at 1920x1080 every control of the reading view lies on the screen and a
session of multi-series exams (sequential, with a training case; and paired) is read to its end
by keyboard. The child process saves screenshots of the real screen to test-artifacts/xvfb/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reader_app.conftest import KNEE_SERIES

REPO_ROOT = Path(__file__).resolve().parents[2]
XVFB = shutil.which("Xvfb")

pytestmark = pytest.mark.skipif(
    XVFB is None, reason="Xvfb is not installed (make test-tools installs Debian's xvfb)"
)


def start_xvfb(width: int, height: int) -> tuple[subprocess.Popen[bytes], str]:
    """An Xvfb server on a free display number (it writes the number to a pipe)."""
    read_end, write_end = os.pipe()
    assert XVFB is not None
    server = subprocess.Popen(
        [XVFB, "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24",
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    return server, f":{number}"


@pytest.fixture
def studies(study_template, tmp_path) -> list[Path]:
    """Fresh copies (each run reads them) of a sequential and a paired study of knee exams."""
    folder = tmp_path
    sequential = study_template(
        folder / "s", "sequential", n_cases=3, n_slices=8, size=96, series=KNEE_SERIES,
        layout="1x2", training=True,
    )  # fmt: skip
    paired = study_template(
        folder / "p", "paired", n_cases=2, n_slices=8, size=96, series=KNEE_SERIES, layout="1x2"
    )
    return [sequential, paired]


@pytest.fixture
def xvfb_out(artifacts_dir: Path) -> Iterator[Path]:
    out = artifacts_dir / "xvfb"
    out.mkdir(exist_ok=True)
    yield out


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)], ids=["1366x768", "1920x1080"])
def test_a_session_is_read_to_its_end_by_keyboard_in_a_real_window(studies, xvfb_out, size):
    server, display = start_xvfb(*size)
    try:
        env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb",
               "PYTHONPATH": str(REPO_ROOT)}  # fmt: skip
        env.pop("WAYLAND_DISPLAY", None)
        done = subprocess.run(
            [sys.executable, "-m", "tests.reader_app.xvfb_reader", str(xvfb_out),
             *map(str, studies)],
            capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300, check=False,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["platform"] == "xcb" and report["screen"] == list(size)
    sequential, paired = report["studies"]
    for entry in (sequential, paired):
        assert entry["window_fits"], entry["window"]
        assert entry["off_screen"] == [], entry["off_screen"]
        assert entry["rows_off_screen"] == [], entry["rows_off_screen"]
        assert entry["n_read"] == entry["n_session"]
        assert entry["finished"] == "Session 1 finished"
        assert entry["full_screen"] == list(size)
    assert sequential["n_read"] == 4  # the training case and three exams
    assert any("training-feedback" in s for s in sequential["shots"])
    for name in sequential["shots"] + paired["shots"]:
        assert (xvfb_out / name).stat().st_size > 5_000
