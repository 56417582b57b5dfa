"""Write reconstructed magnitude images as a DICOM MR Image Storage series (one file per slice).

Nothing in the files names the reconstruction method, the model or the input file: descriptions
are neutral, there are no private tags, UIDs are new (the study and frame of reference UIDs are
derived from the input's checksum so that every reconstruction of one input shares them).
Pixels are 16-bit unsigned with one ``RescaleSlope`` for the whole series, so grey levels keep
65536 steps over ``[0, volume max]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from recon_backend.data.fastmri_h5 import Geometry
from recon_backend.errors import ReconError

#: Neutral text written to every series whatever produced it (blinding).
SERIES_DESCRIPTION = "MR series"
PROTOCOL_NAME = "MR"
_MAX_PIXEL = 65535


@dataclass(frozen=True)
class SeriesInfo:
    """What :func:`write_series` wrote."""

    series_dir: Path
    series_instance_uid: str
    study_instance_uid: str
    files: tuple[Path, ...]
    rescale_slope: float


def _ds_number(value: float) -> str:
    """A decimal string of at most 16 characters (DICOM DS)."""
    for digits in range(10, 3, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise ValueError(f"cannot write {value} as a DICOM decimal string")


def _unit(vector: Sequence[float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def slice_positions(geometry: Geometry, n_slices: int, rows: int, columns: int) -> list[np.ndarray]:
    """Patient position (mm) of the top-left pixel centre of each slice.

    Slices are centred on their acquisition positions when the header has them (ISMRMRD), else
    stacked along the slice normal with the slice spacing (default: the thickness), the volume
    centred on the origin.
    """
    down = _unit(geometry.read_dir)
    across = _unit(geometry.phase_dir)
    row_step, col_step = geometry.pixel_spacing_mm
    normal = np.cross(across, down)
    spacing = geometry.slice_spacing_mm or geometry.slice_thickness_mm
    if geometry.slice_centres_mm is not None and len(geometry.slice_centres_mm) == n_slices:
        centres = [np.asarray(c, dtype=np.float64) for c in geometry.slice_centres_mm]
    else:
        centres = [normal * spacing * (i - (n_slices - 1) / 2) for i in range(n_slices)]
    offset = down * row_step * (rows // 2) + across * col_step * (columns // 2)
    return [centre - offset for centre in centres]


def write_series(
    images: np.ndarray,
    geometry: Geometry,
    out_dir: Path,
    *,
    study_seed: str,
    patient_id: str,
) -> SeriesInfo:
    """Write ``images`` ``(slices, rows, columns)`` as a new DICOM series folder ``out_dir``.

    The folder is written under a temporary name next to ``out_dir`` and renamed when complete,
    so a failed run leaves nothing half-written.

    Parameters
    ----------
    images
        Non-negative magnitude images (float).
    geometry
        Pixel spacing, slice thickness, orientation and positions.
    out_dir
        The series folder to create (must not exist).
    study_seed
        Text from which the study and frame-of-reference UIDs are derived (e.g. the input's
        sha256), so every reconstruction of the same input lands in one study.
    patient_id
        Patient ID to write (already pseudonymous).

    Returns
    -------
    SeriesInfo
        Folder, UIDs, file paths and the rescale slope used.
    """
    if images.ndim != 3 or not np.isfinite(images).all():
        raise ReconError(f"{out_dir}: images to export must be finite (slices, rows, columns)")
    if out_dir.exists():
        raise ReconError(f"{out_dir}: series folder exists already")
    n_slices, rows, columns = images.shape
    top = float(max(images.max(), 0.0))
    slope = float(_ds_number(top / _MAX_PIXEL)) if top > 0 else 1.0
    # display window from a strided sample: no full-volume copy
    window_top = float(np.percentile(images[:, ::4, ::4], 99.5)) if top > 0 else 1.0
    study_uid = generate_uid(entropy_srcs=["study", study_seed])
    frame_uid = generate_uid(entropy_srcs=["frame", study_seed])
    series_uid = generate_uid()
    down = _unit(geometry.read_dir)
    across = _unit(geometry.phase_dir)
    normal = np.cross(across, down)
    positions = slice_positions(geometry, n_slices, rows, columns)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    files = []
    try:
        for index in range(n_slices):
            ds = _slice_dataset(geometry, rows, columns)
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.FrameOfReferenceUID = frame_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.PatientID = patient_id[:64]
            ds.InstanceNumber = index + 1
            ds.ImagePositionPatient = [_ds_number(v) for v in positions[index]]
            ds.ImageOrientationPatient = [_ds_number(v) for v in (*across, *down)]
            ds.SliceLocation = _ds_number(float(np.dot(positions[index], normal)))
            ds.RescaleSlope = _ds_number(slope)
            ds.RescaleIntercept = "0"
            ds.RescaleType = "US"
            ds.WindowCenter = _ds_number(window_top / 2)
            ds.WindowWidth = _ds_number(max(window_top, slope))
            ds.PixelData = _quantise(images[index], slope).tobytes()
            name = tmp_dir / f"IM{index + 1:04d}.dcm"
            ds.save_as(name, enforce_file_format=True)
            files.append(out_dir / name.name)
        os.replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return SeriesInfo(out_dir, str(series_uid), str(study_uid), tuple(files), slope)


def _quantise(image: np.ndarray, slope: float) -> np.ndarray:
    """Stored values ``round(image / slope)`` in ``[0, 65535]`` (one slice at a time)."""
    return np.clip(np.rint(image / slope), 0, _MAX_PIXEL).astype(np.uint16)


def _slice_dataset(geometry: Geometry, rows: int, columns: int) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.Modality = "MR"
    ds.ImageType = ["DERIVED", "PRIMARY", "M", "ND"]
    ds.PatientName = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = ""
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.ProtocolName = PROTOCOL_NAME
    ds.SeriesNumber = 1
    ds.Manufacturer = ""
    ds.PositionReferenceIndicator = ""
    ds.ScanningSequence = "RM"
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.PatientPosition = ""
    seq = geometry.sequence
    ds.RepetitionTime = _ds_number(seq["TR"]) if "TR" in seq else ""
    ds.EchoTime = _ds_number(seq["TE"]) if "TE" in seq else ""
    if "TI" in seq:
        ds.InversionTime = _ds_number(seq["TI"])
    if "flipAngle_deg" in seq:
        ds.FlipAngle = _ds_number(seq["flipAngle_deg"])
    ds.EchoTrainLength = ""
    if geometry.field_strength_t is not None:
        ds.MagneticFieldStrength = _ds_number(geometry.field_strength_t)
    ds.SliceThickness = _ds_number(geometry.slice_thickness_mm)
    ds.SpacingBetweenSlices = _ds_number(geometry.slice_spacing_mm or geometry.slice_thickness_mm)
    ds.PixelSpacing = [_ds_number(v) for v in geometry.pixel_spacing_mm]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    return ds
