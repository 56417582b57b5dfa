"""Real study databases for the viewer tests: phantom DICOM series, a protocol with every
question type and CASES.csv, built with ``studies.create.create_study``, opened with ``Store``."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.studies.conftest import make_series
from tests.studies.study_factory import START, FakeClock

SEQUENTIAL_TOML = """
title = "Knee reading study"
design = "sequential"
seed = 5
washout_days = {washout}

[[arms]]
code = "conv"
description = "Conventional SENSE reconstruction"
reference = true

[[arms]]
code = "varnet"
description = "Variational network reconstruction"

[[readers]]
id = "R1"
name = "Dr Ada Reader"

[[readers]]
id = "R2"
name = "Dr Bo Reader"

[[findings]]
id = "acl"
label = "ACL tear"

[[findings]]
id = "meniscus"
label = "Medial meniscal tear"

[[questions]]
id = "likelihood"
text = "Likelihood the finding is present"
type = "likert"
scope = "finding"
points = 4
labels = ["Definitely absent", "Probably absent", "Probably present", "Definitely present"]
group = "findings"

[[questions]]
id = "quality"
text = "Overall image quality"
type = "likert"
points = 4
labels = ["Non-diagnostic", "Limited", "Good", "Excellent"]
group = "image quality"

[[questions]]
id = "artifact"
text = "Artifacts present?"
type = "boolean"
group = "image quality"

[[questions]]
id = "artifact_kind"
text = "Which artifacts?"
type = "multi"
options = [{{value = "motion", label = "Motion"}}, {{value = "aliasing", label = "Aliasing"}}]
show_if = {{question = "artifact", equals = true}}
group = "image quality"

[[questions]]
id = "confidence"
text = "Diagnostic confidence"
type = "choice"
options = [{{value = "low", label = "Low"}}, {{value = "high", label = "High"}}]
required = false
group = "confidence"

[[questions]]
id = "effusion_mm"
text = "Effusion depth"
type = "number"
minimum = 0
maximum = 50
unit = "mm"
required = false
group = "confidence"

[[questions]]
id = "comment"
text = "Comment"
type = "text"
max_length = 40
required = false
group = "confidence"
"""

PAIRED_TOML = """
title = "Paired quality study"
design = "paired"
seed = 9
washout_days = 0

[[arms]]
code = "conv"
description = "Conventional SENSE reconstruction"
reference = true

[[arms]]
code = "varnet"
description = "Variational network reconstruction"

[[readers]]
id = "R1"
name = "Dr Ada Reader"

[[questions]]
id = "quality"
text = "Image quality"
type = "likert"
scope = "side"
points = 4
labels = ["Poor", "Fair", "Good", "Excellent"]
group = "image quality"

[[questions]]
id = "preference"
text = "Which image do you prefer?"
type = "preference"
group = "preference"

[[questions]]
id = "reason"
text = "Main reason"
type = "choice"
options = [{value = "sharp", label = "Sharper"}, {value = "noise", label = "Less noise"}]
show_if = {question = "preference", in = ["left", "right"]}
group = "preference"
"""

#: Source names that must never be visible to the reader (checked by the blinding test).
PATIENT_NAMES = ("Quixote^Alonso", "Panza^Sancho", "Dulcinea^Toboso", "Rocinante^Horse")


def phantom(n_slices: int, rows: int, cols: int, seed: int) -> np.ndarray:
    """A knee-like phantom (uint16): ellipses that change over the slices, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    y = (y - rows / 2) / (rows / 2)
    x = (x - cols / 2) / (cols / 2)
    volume = np.zeros((n_slices, rows, cols), dtype=np.float64)
    for k in range(n_slices):
        t = (k + 1) / (n_slices + 1)
        body = (x / 0.8) ** 2 + (y / 0.9) ** 2 < 1
        bone1 = ((x + 0.05) / 0.45) ** 2 + ((y + 0.45 - 0.1 * t) / 0.35) ** 2 < 1
        bone2 = ((x - 0.05) / 0.42) ** 2 + ((y - 0.45 + 0.1 * t) / 0.3) ** 2 < 1
        lesion = ((x - 0.3 * t) / 0.08) ** 2 + (y / 0.08) ** 2 < 1
        image = 600 * body + 900 * (bone1 | bone2) + 1200 * lesion
        volume[k] = image + rng.normal(0, 40, size=(rows, cols))
    return np.clip(volume, 0, 4095).astype(np.uint16)


def write_series(
    folder: Path, n_slices: int, size: int, seed: int, patient: str, **tags: object
) -> list[Path]:
    """A phantom MR series (real DICOM, rescale slope 2 / intercept -10, a patient name)."""
    files = make_series(
        folder, n_slices, size, size, identifying=False, private=False, seed=seed,
        file_name=lambda i: f"IM{i + 1:04d}.dcm", PatientName=patient, PatientID=f"ID{seed}",
        RescaleSlope=2, RescaleIntercept=-10, RescaleType="US", **tags,
    )  # fmt: skip
    volume = phantom(n_slices, size, size, seed)
    orientation = tags.get("ImageOrientationPatient")
    normal = np.cross(*np.reshape(orientation, (2, 3))) if orientation is not None else None
    for index, (path, pixels) in enumerate(zip(files, volume, strict=True)):
        ds = pydicom.dcmread(path)
        ds.PixelData = pixels.tobytes()
        if normal is not None:  # slices step along this plane's normal
            ds.ImagePositionPatient = [float(v) for v in normal * 3.0 * index]
        ds.save_as(path, enforce_file_format=True)
    return files


#: Plane geometry of the knee exam's series, by the label's first three letters:
#: (ImageOrientationPatient, PixelSpacing (row, column) in mm).
PLANES: dict[str, tuple[list[float], list[float]]] = {
    "cor": ([1, 0, 0, 0, 0, -1], [0.4, 0.4]),
    "sag": ([0, 1, 0, 0, 0, -1], [0.6, 0.3]),  # rows twice as far apart as columns
    "ax_": ([1, 0, 0, 0, 1, 0], [0.4, 0.4]),
}
KNEE_SERIES = ("cor_pd", "sag_t2fs", "ax_pdfs")

INSTRUCTIONS = """# Knee reading study

Grade each **finding** on the 4-point likelihood scale, then the image quality.

* Read the images as you would in clinical practice.
* Your answers are saved as you give them.
"""

TRAINING_REFERENCE = """
[[training_reference]]
case = "train01"
explanation = "Reference read by the **study lead**: intact ACL, no meniscal tear."
answers = {{ likelihood = {{ acl = 1, meniscus = 1 }}, quality = 4, artifact = false }}
"""


def protocol_text(
    design: str, washout: int, series: tuple[str, ...], layout: str, training: bool
) -> str:
    """The test protocol of a design, with instructions, hanging and training as asked."""
    text = SEQUENTIAL_TOML.format(washout=washout) if design == "sequential" else PAIRED_TOML
    head = f'instructions = """{INSTRUCTIONS}"""\n'
    if training:
        head += 'training_cases = ["train01"]\n'
    tail = ""
    if series:
        tail += f'\n[hanging]\nlayout = "{layout}"\nseries = {list(series)!r}\n'.replace("'", '"')
    if training:
        tail += TRAINING_REFERENCE.format()
    return head + text + tail


def write_source(
    folder: Path,
    design: str,
    n_cases: int,
    n_slices: int,
    size: int,
    washout: int,
    *,
    series: tuple[str, ...] = (),
    layout: str = "1x1",
    training: bool = False,
) -> tuple[Path, Path]:
    """Protocol file, CASES.csv and DICOM series of a small study; with ``series`` each case is
    an exam of those labelled series (a ``series`` column), hung in the protocol's ``layout``."""
    protocol_path = folder / "protocol.toml"
    protocol_path.write_text(
        protocol_text(design, washout, series, layout, training), encoding="utf-8"
    )
    lines = ["case_id,subject_id,arm,series_dir" + (",series" if series else "")]
    ids = [(f"case{i + 1:02d}", f"subj{i + 1:02d}") for i in range(n_cases)]
    if training:
        ids.append(("train01", "subjT"))
    for i, (case_id, subject) in enumerate(ids):
        for j, arm in enumerate(("conv", "varnet")):
            patient = PATIENT_NAMES[i % len(PATIENT_NAMES)]
            for k, label in enumerate(series or ("",)):
                series_dir = f"src/{subject}_{arm}_series" + (f"_{label}" if label else "")
                tags: dict[str, object] = {}
                if label:
                    orientation, spacing = PLANES[label[:3]]
                    tags = {"ImageOrientationPatient": orientation, "PixelSpacing": spacing}
                seed = 100 * i + 10 * k + j
                write_series(folder / series_dir, n_slices + k, size, seed, patient, **tags)
                lines.append(
                    f"{case_id},{subject},{arm},{series_dir}" + (f",{label}" if label else "")
                )
    cases_csv = folder / "CASES.csv"
    cases_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return protocol_path, cases_csv


def _populate(protocol_path: Path, cases_csv: Path, db: Path) -> None:
    """Build the study database with ``create_study`` (copy, de-identify, leak scan), created
    the day before the tests' clocks start."""
    from studies.create import create_study

    create_study(protocol_path, cases_csv, db, clock=FakeClock(START - timedelta(days=1)))


StudyMaker = Callable[..., Path]


@pytest.fixture(scope="session")
def study_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StudyMaker]:
    """``make(design, n_cases=4, n_slices=6, size=64, washout=28, series=(), layout="1x1",
    training=False)`` -> a fresh copy of a study database (built once per combination, copied
    per test so each test writes its own); ``series`` makes every case a multi-series exam."""

    built: dict[tuple[object, ...], Path] = {}
    root = tmp_path_factory.mktemp("viewer-studies")

    def make(
        target: Path,
        design: str = "sequential",
        *,
        n_cases: int = 4,
        n_slices: int = 6,
        size: int = 64,
        washout: int = 28,
        series: tuple[str, ...] = (),
        layout: str = "1x1",
        training: bool = False,
    ) -> Path:
        key = (design, n_cases, n_slices, size, washout, series, layout, training)
        if key not in built:
            folder = root / f"study-{hashlib.sha256(repr(key).encode()).hexdigest()[:12]}"
            folder.mkdir()
            protocol_path, cases_csv = write_source(
                folder, design, n_cases, n_slices, size, washout,
                series=series, layout=layout, training=training,
            )  # fmt: skip
            (folder / "study").mkdir()
            db = folder / "study" / "study.sqlite"
            _populate(protocol_path, cases_csv, db)
            built[key] = db
        source = built[key].parent.parent  # protocol, CASES.csv, src/ and study/
        destination = target / "source"
        shutil.copytree(source, destination)
        return destination / "study" / built[key].name

    yield make


@pytest.fixture
def make_study(study_template: StudyMaker, tmp_path: Path) -> StudyMaker:
    """A fresh study database in this test's folder (see ``study_template``)."""

    def make(design: str = "sequential", **kwargs: object) -> Path:
        return study_template(tmp_path, design, **kwargs)

    return make


class Workstation:
    """The real main window on a real store, as ``blindreader read`` builds it."""

    def __init__(self, qtbot, db: Path, clock: FakeClock | None = None, **controller_kwargs):
        from reader_app.controller import ReadingController
        from reader_app.widgets.main_window import MainWindow
        from studies.store import Store

        self.qtbot = qtbot
        self.store = Store.open(db, clock=clock)
        controller_kwargs.setdefault("black_frame_ms", 5)
        self.controller = ReadingController(self.store, **controller_kwargs)
        self.state = self.controller.state
        self.window = MainWindow(self.controller)
        qtbot.addWidget(self.window)
        self.window.resize(1280, 800)
        self.window.show()
        qtbot.waitExposed(self.window)
        self.closed = False

    @property
    def reading(self):
        return self.window.reading

    @property
    def panel(self):
        return self.window.reading.panel

    def wait_images(self) -> None:
        """Wait until the current case's images are painted."""
        self.settle()
        self.qtbot.waitUntil(
            lambda: (
                self.state.images is not None and all(p.has_image for p in self.reading.panes.panes)
            ),
            timeout=5000,
        )

    def settle(self) -> None:
        """Wait until every write has committed (answers show as saved, the next case is open)."""
        self.qtbot.waitUntil(lambda: self.controller.settled, timeout=10000)

    def close(self) -> None:
        if not self.closed:
            self.window.close()
            self.store.close()
            self.closed = True


@pytest.fixture
def workstation(qtbot, clock: FakeClock) -> Iterator[Callable[..., Workstation]]:
    """``open(db, clock=None, **controller_kwargs)`` -> a shown :class:`Workstation`.

    Without ``clock`` the workstation runs on the test's ``clock`` fixture.
    """
    from reader_app.widgets.theme import apply_theme

    apply_theme(qtbot_app())
    opened: list[Workstation] = []

    default_clock = clock

    def open_(db: Path, clock: FakeClock | None = None, **kwargs: object) -> Workstation:
        ws = Workstation(qtbot, db, clock or default_clock, **kwargs)
        opened.append(ws)
        return ws

    yield open_
    for ws in opened:
        ws.close()


@pytest.fixture(autouse=True)
def _settings_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Remembered window sizes go to a folder of the test run, never to the user's settings."""
    from PySide6.QtCore import QSettings

    folder = tmp_path_factory.mktemp("qsettings")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))
    yield


def qtbot_app():
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    assert isinstance(app, QApplication)
    return app
