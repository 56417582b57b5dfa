"""Read one DICOM series folder: its files in slice order and the geometry the study needs.

Files are recognised by content (the DICOM preamble), not by extension; hidden files (names that
start with ".") are skipped, anything else that is not a DICOM image is an error, as is a folder
that holds more than one series.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from studies.errors import StudyError

#: Largest matrix accepted (rows or columns); MR images are at most 1024 in practice.
MAX_MATRIX = 8192
#: Secondary Capture SOP classes (single frame and the multi-frame ones): screenshots and
#: exports that may carry burned-in text.
SECONDARY_CAPTURE_ROOT = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class SeriesInfo:
    """One DICOM series on disk, its files sorted along the slice normal.

    ``pixel_spacing`` is (row spacing, column spacing) in mm from PixelSpacing; ``slice_spacing``
    is the median distance between neighbouring slice positions (None without positions).
    ``burned_in`` says why the pixels may carry burned-in text (empty when nothing says so):
    BurnedInAnnotation YES, or a Secondary Capture image that does not say NO.
    """

    folder: Path
    files: tuple[Path, ...]
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    slice_spacing: float | None
    n_slices: int
    modality: str
    series_description: str
    series_instance_uid: str
    study_instance_uid: str
    manufacturer: str
    burned_in: str = ""
    oriented: bool = True  # every file has ImageOrientationPatient and ImagePositionPatient


def _has_geometry(ds: Dataset) -> bool:
    orientation = getattr(ds, "ImageOrientationPatient", None)
    position = getattr(ds, "ImagePositionPatient", None)
    if not orientation or not position:
        return False
    return len(orientation) == 6 and len(position) == 3


def read_header(path: Path) -> Dataset:
    """Read one DICOM file's header (no pixel data).

    Raises
    ------
    StudyError
        The file cannot be read or is not DICOM.
    """
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        raise StudyError(f"{path}: not a DICOM file (no DICOM preamble)") from None
    except Exception as exc:  # pydicom raises many kinds of errors for broken files
        raise StudyError(f"{path}: cannot read DICOM file ({type(exc).__name__}: {exc})") from None


def read_series(folder: Path | str) -> SeriesInfo:
    """Read a series folder: list its DICOM files, sort them and summarise the geometry.

    Slices are sorted by ImagePositionPatient projected on the slice normal (the cross product
    of the ImageOrientationPatient row and column directions); when a file lacks position or
    orientation, by InstanceNumber; when that is missing too, by file name.

    Parameters
    ----------
    folder
        The series folder (flat: one file per slice).

    Returns
    -------
    SeriesInfo

    Raises
    ------
    StudyError
        The folder is missing or empty, holds a sub-folder, a file that is not a readable DICOM
        image, more than one series, slices of different matrix size, or two slices at one
        position; each message names the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StudyError(f"{folder}: series folder not found")
    headers: list[tuple[Path, Dataset]] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            raise StudyError(f"{path}: unexpected sub-folder in a series folder (expected files)")
        ds = read_header(path)
        for keyword in ("Rows", "Columns"):
            if keyword not in ds:
                raise StudyError(f"{path}: not a DICOM image ({keyword} missing)")
            value = int(ds[keyword].value or 0)
            if not 0 < value <= MAX_MATRIX:
                raise StudyError(
                    f"{path}: {keyword} {value} is not a plausible image size "
                    f"(expected 1..{MAX_MATRIX})"
                )
        if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
            raise StudyError(f"{path}: multi-frame DICOM is not supported (one file per slice)")
        headers.append((path, ds))
    if not headers:
        raise StudyError(f"{folder}: no DICOM files in the series folder")

    first_path, first = headers[0]
    series_uid = str(getattr(first, "SeriesInstanceUID", ""))
    for path, ds in headers[1:]:
        uid = str(getattr(ds, "SeriesInstanceUID", ""))
        if uid != series_uid:
            raise StudyError(
                f"{path}: SeriesInstanceUID {uid!r} differs from {series_uid!r} of "
                f"{first_path.name} (one folder must hold one series)"
            )
        if (ds.Rows, ds.Columns) != (first.Rows, first.Columns):
            raise StudyError(
                f"{path}: matrix {ds.Rows}x{ds.Columns} differs from "
                f"{first.Rows}x{first.Columns} of {first_path.name}"
            )

    burned = [(path, why) for path, ds in headers if (why := burned_in_reason(ds))]
    burned_in = ""
    if burned:
        more = f" (and {len(burned) - 1} more files)" if len(burned) > 1 else ""
        burned_in = f"{burned[0][0]}: {burned[0][1]}{more}"
    ordered, positions = _sort_slices(headers)
    spacing = getattr(first, "PixelSpacing", None)
    thickness = getattr(first, "SliceThickness", None)
    slice_spacing = None
    if positions is not None and len(positions) > 1:
        slice_spacing = float(np.median(np.diff(positions)))
    return SeriesInfo(
        folder=folder,
        files=tuple(path for path, _ in ordered),
        rows=int(first.Rows),
        columns=int(first.Columns),
        pixel_spacing=(float(spacing[0]), float(spacing[1])) if spacing else None,
        slice_thickness=float(thickness) if thickness not in (None, "") else None,
        slice_spacing=slice_spacing,
        n_slices=len(ordered),
        modality=str(getattr(first, "Modality", "")),
        series_description=str(getattr(first, "SeriesDescription", "")),
        series_instance_uid=series_uid,
        study_instance_uid=str(getattr(first, "StudyInstanceUID", "")),
        manufacturer=str(getattr(first, "Manufacturer", "")),
        burned_in=burned_in,
        oriented=all(_has_geometry(ds) for _, ds in headers),
    )


def burned_in_reason(ds: Dataset) -> str:
    """Why a header says its pixels may carry burned-in text ("" when nothing says so)."""
    burned = str(getattr(ds, "BurnedInAnnotation", "") or "").strip().upper()
    if burned == "YES":
        return "BurnedInAnnotation is YES (text is burned into the pixels)"
    sop_class = str(getattr(ds, "SOPClassUID", "") or "")
    if sop_class.startswith(SECONDARY_CAPTURE_ROOT) and burned != "NO":
        return (
            "Secondary Capture image without BurnedInAnnotation NO "
            "(burned-in text cannot be ruled out)"
        )
    return ""


def _sort_slices(
    headers: list[tuple[Path, Dataset]],
) -> tuple[list[tuple[Path, Dataset]], list[float] | None]:
    """Sort slices along the normal; returns the order and the sorted positions (or None)."""
    if all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for _, ds in headers):
        orientation = np.asarray(headers[0][1].ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        keyed = [
            (float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal)), path, ds)
            for path, ds in headers
        ]
        keyed.sort(key=lambda item: (item[0], item[1].name))
        for (a, path_a, _), (b, path_b, _) in itertools.pairwise(keyed):
            if abs(a - b) < 1e-4:
                raise StudyError(
                    f"{path_b}: same slice position as {path_a.name} "
                    "(duplicate slice, or two series in one folder)"
                )
        return [(p, d) for _, p, d in keyed], [k for k, _, _ in keyed]
    if all("InstanceNumber" in ds and ds.InstanceNumber is not None for _, ds in headers):
        return sorted(headers, key=lambda item: (int(item[1].InstanceNumber), item[0].name)), None
    return sorted(headers, key=lambda item: item[0].name), None


__all__ = ["MAX_MATRIX", "SeriesInfo", "burned_in_reason", "read_header", "read_series"]
