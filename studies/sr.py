"""DICOM SR measurement reports (TID 1500, Comprehensive SR) of the ROIs and rulers readers drew,
written with highdicom: one file per reader, case and arm.

Each report references the blinded images that were measured (their SOP instances, series and
study) and holds one TID 1410 planar ROI measurement group per drawn answer: the region as an
SCOORD on its image (ELLIPSE: major then minor axis end points; freehand: a closed POLYLINE;
ruler: an open POLYLINE of its two ends) and its values (mean and SD in the image's stored units,
area in mm2; length in mm). Image coordinates are DICOM's (the top-left pixel's centre is
0.5, 0.5), the store's too, so points go in unchanged.

An SR export is **unblinded**: a report is tied to the real (blinded) series of one arm and so
says which arm a reader measured on. It is a coordinator's export, logged like the CSV exports.
Why one file per arm: each arm's blinded series carries its own patient and study identity (so
headers never link the arms of a case), and an SR belongs to the study of its evidence.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from studies.errors import StudyError
from studies.record import head

if TYPE_CHECKING:
    from pydicom import Dataset

    from studies.export import DrawnAnswer
    from studies.store import Store

#: The device that writes the reports (Manufacturer of the SR series).
MANUFACTURER = "blindreader"
#: Local codes for the ROI names of the protocol (no standard code names "the muscle ROI").
LOCAL_SCHEME = "99BLINDREADER"


def ellipse_axes(points: Sequence[Sequence[float]]) -> np.ndarray:
    """The SCOORD ELLIPSE of an axis-aligned ellipse given by two box corners: the major axis'
    end points, then the minor axis' (4 x 2, column then row)."""
    (xa, ya), (xb, yb) = points
    cx, cy = (xa + xb) / 2.0, (ya + yb) / 2.0
    a, b = abs(xb - xa) / 2.0, abs(yb - ya) / 2.0
    horizontal = [[cx - a, cy], [cx + a, cy]]
    vertical = [[cx, cy - b], [cx, cy + b]]
    return np.asarray(horizontal + vertical if a >= b else vertical + horizontal, dtype=float)


def graphic_data(shape: str, points: Sequence[Sequence[float]]) -> tuple[str, np.ndarray]:
    """(graphic type, graphic data) of a stored shape."""
    if shape == "ellipse":
        return "ELLIPSE", ellipse_axes(points)
    data = np.asarray(points, dtype=float)
    if shape == "freehand":
        data = np.vstack([data, data[:1]])  # a closed polyline ends where it starts
    return "POLYLINE", data


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _group(item: DrawnAnswer, question_text: str, roi_name: str, image: Dataset, index: int) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    value = item.value
    graphic_type, data = graphic_data(value["shape"], value["points"])
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues(graphic_type),
        graphic_data=data,
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=image.SOPClassUID,
            referenced_sop_instance_uid=image.SOPInstanceUID,
        ),
    )
    arbitrary = hd.sr.CodedConcept("[arb'U]", "UCUM", "arbitrary unit")
    measurements = []
    for key, name, unit in (
        ("mean", codes.SCT.Mean, arbitrary),
        ("sd", codes.SCT.StandardDeviation, arbitrary),
        ("area_mm2", codes.SCT.Area, codes.UCUM.SquareMillimeter),
        ("length_mm", codes.SCT.Length, codes.UCUM.Millimeter),
    ):
        if value.get(key) is not None:
            measurements.append(hd.sr.Measurement(name=name, value=float(value[key]), unit=unit))
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=hd.UID(), identifier=f"{item.question} {index}"
        ),
        referenced_region=region,
        finding_type=hd.sr.CodedConcept(roi_name, LOCAL_SCHEME, question_text),
        measurements=measurements,
    )


def measurement_report(
    store: Store, items: Sequence[DrawnAnswer], images: Sequence[Dataset], number: int
) -> Dataset:
    """One TID 1500 report of one reader's drawn answers on one case and arm.

    ``images`` are the measured blinded images (one per item, same order).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    reader = items[0].row.reader
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        # the reader's id as a one-component person name (the trailing caret says so)
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name=f"{reader}^"
        ),
    )
    groups = []
    for index, (item, image) in enumerate(zip(items, images, strict=True), start=1):
        question = store.protocol.question(item.question)
        groups.append(_group(item, question.text, question.roi or "ruler", image, index))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=hd.sr.CodedConcept("25045-6", "LN", "MR"),
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    unique: dict[str, Dataset] = {str(ds.SOPInstanceUID): ds for ds in images}
    now = store.now()
    with warnings.catch_warnings():
        # The blinded patient name is one opaque component: not a mistake, nothing to warn of.
        warnings.filterwarnings("ignore", "The string .* person name", UserWarning)
        sr = _comprehensive(hd, list(unique.values()), report, number)
    stamp_date, stamp_time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    # highdicom stamps its own clock; the product's dates come from the study's clock.
    sr.ContentDate, sr.ContentTime = stamp_date, stamp_time
    sr.InstanceCreationDate, sr.InstanceCreationTime = stamp_date, stamp_time
    if "SeriesDate" in sr:
        sr.SeriesDate, sr.SeriesTime = stamp_date, stamp_time
    _identify_local_scheme(sr)
    return sr


def _identify_local_scheme(sr: Dataset) -> None:
    """Declare the local coding scheme of the ROI names (PS3.3 C.12.1.1.2.1)."""
    from pydicom import Dataset as PydicomDataset
    from pydicom.sequence import Sequence as PydicomSequence

    item = PydicomDataset()
    item.CodingSchemeDesignator = LOCAL_SCHEME
    item.CodingSchemeName = "blindreader protocol ROI names"
    item.CodingSchemeResponsibleOrganization = "the study's coordinator"
    existing = list(getattr(sr, "CodingSchemeIdentificationSequence", []))
    sr.CodingSchemeIdentificationSequence = PydicomSequence([*existing, item])


def _comprehensive(hd: Any, evidence: list[Dataset], report: Any, number: int) -> Dataset:
    return hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=900 + number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description="Measurement report",
        is_complete=True,
    )


def export_sr(store: Store, out: Path | str) -> list[Path]:
    """Write one SR file per reader, case and arm with drawn answers into folder ``out``.

    Returns
    -------
    list[Path]
        The files written (``SR_<reader>_<case>_<arm>.dcm``).

    Raises
    ------
    StudyError
        A reader's package; ``out`` exists and is not an empty folder; no ROI was drawn; a
        measured image is missing.
    """
    import pydicom

    from studies.export import drawn_answers

    if store.origin == "package":
        raise StudyError(
            f"{store.source}: a reader's package; export from the main study after `study merge`"
        )
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudyError(f"{out}: the SR export needs a new or empty folder")
    items = drawn_answers(store)
    if not items:
        raise StudyError(f"{store.source}: no ROI or ruler was drawn: no SR to write")
    groups: dict[tuple[str, str, str], list[DrawnAnswer]] = {}
    for item in items:
        key = (item.row.reader, item.row.case_id, item.arm or "")
        groups.setdefault(key, []).append(item)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    digest = hashlib.sha256()
    for number, ((reader, case, arm), members) in enumerate(sorted(groups.items()), start=1):
        images = []
        for item in members:
            key = _answer_key(item)
            _, path = store.measured_image(
                item.row.assignment_id, key, item.value["series"], item.value["slice"]
            )
            images.append(pydicom.dcmread(path, stop_before_pixels=True))
        sr = measurement_report(store, members, images, number)
        path = out / f"SR_{_safe(reader)}_{_safe(case)}_{_safe(arm)}.dcm"
        sr.save_as(path, enforce_file_format=True)
        digest.update(path.read_bytes())
        written.append(path)
    _log(store, out, len(written), digest.hexdigest())
    return written


def _answer_key(item: DrawnAnswer) -> Any:
    from studies.api import AnswerKey

    return AnswerKey(item.question, None, item.side)  # type: ignore[arg-type]


def _log(store: Store, out: Path, n_files: int, sha256: str) -> None:
    """The export's ``export_run`` row and event, and an anchor of the record (as for CSVs)."""
    from studies.export import record_export

    now = store.now()
    with store.writing() as s:
        record_export(
            s, what="sr", path=out, unblinded=True, n_rows=n_files, sha256=sha256, now=now
        )
        at_head = head(s)
    if at_head is not None:
        store.publish_anchor(at_head, "export sr (unblinded)", now)


__all__ = ["LOCAL_SCHEME", "ellipse_axes", "export_sr", "graphic_data", "measurement_report"]
