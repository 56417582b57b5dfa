"""Write reconstructed magnitude images as a DICOM series (one file per slice).

Nothing in the files names the reconstruction method, the model or the input file: descriptions
are neutral, there are no private tags, UIDs are new (the study UID is derived from the input's
checksum so that every reconstruction of one input shares it).

Pixels are integers in a real range: 12 bits stored (0-4095) with no rescale (stored value =
displayed value), one intensity scale per series (the volume maximum maps to 4095; the scale
goes into the manifest), and the window in those stored units, so every viewer, dcmtk's
``dcm2pnm`` and pydicom's ``apply_voi_lut`` show the full grey range.

Geometry: when the raw file gave the orientation and slice positions (ISMRMRD), the series is
MR Image Storage with ImageOrientationPatient / ImagePositionPatient from them and
SpacingBetweenSlices the distance between neighbouring slice positions. When it did not
(fastMRI files), no orientation is invented: the series is Secondary Capture Image Storage
(modality MR), which has no Image Plane module, so a viewer shows no orientation letters and no
patient position; pixel spacing is kept.
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
    UID,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from recon_backend.data.fastmri_h5 import Geometry
from recon_backend.errors import ReconError

#: Neutral text written to every series whatever produced it (blinding).
SERIES_DESCRIPTION = "MR series"
PROTOCOL_NAME = "MR"
#: Stored pixel values: 12 bits.
BITS_STORED = 12
MAX_PIXEL = (1 << BITS_STORED) - 1
#: Slice positions closer than this (mm) to a common spacing count as evenly spaced.
_SPACING_TOLERANCE_MM = 1e-3
#: ISMRMRD ``sequence_type`` words -> DICOM ScanningSequence terms.
_SEQUENCE_TERMS = (
    ("echoplanar", "EP"),
    ("epi", "EP"),
    ("inversion", "IR"),
    ("spinecho", "SE"),
    ("tse", "SE"),
    ("fse", "SE"),
    ("gradientecho", "GR"),
    ("flash", "GR"),
    ("fisp", "GR"),
    ("gre", "GR"),
)


@dataclass(frozen=True)
class SeriesInfo:
    """What :func:`write_series` wrote."""

    series_dir: Path
    series_instance_uid: str
    study_instance_uid: str
    files: tuple[Path, ...]
    #: Stored value per image intensity unit (the volume maximum maps to ``MAX_PIXEL``).
    intensity_scale: float
    series_number: int
    sop_class_uid: str
    #: Distance between neighbouring slice positions (mm), ``None`` if not evenly spaced or
    #: unknown.
    spacing_between_slices_mm: float | None


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


def slice_positions(
    geometry: Geometry, rows: int, columns: int, spacing: tuple[float, float]
) -> list[np.ndarray]:
    """Patient position (LPS, mm) of the top-left pixel centre of each slice.

    The slice centre (ISMRMRD ``position``) is the image pixel ``(rows // 2, columns // 2)``,
    the centre of the centred FFT grid; the top-left pixel sits that many pixels back along the
    read-out (down the rows) and phase-encode (across) directions.
    """
    if not geometry.orientation_known:
        raise ReconError("slice positions need a known orientation")
    assert geometry.read_dir is not None and geometry.phase_dir is not None
    assert geometry.slice_centres_mm is not None
    down = _unit(geometry.read_dir)
    across = _unit(geometry.phase_dir)
    offset = down * spacing[0] * (rows // 2) + across * spacing[1] * (columns // 2)
    return [np.asarray(c, dtype=np.float64) - offset for c in geometry.slice_centres_mm]


def even_spacing(positions: Sequence[np.ndarray], normal: np.ndarray) -> float | None:
    """The distance between neighbouring slice positions when it is the same for all of them."""
    if len(positions) < 2:
        return None
    along = np.array([float(np.dot(p, normal)) for p in positions])
    steps = np.abs(np.diff(along))
    if steps.min() <= _SPACING_TOLERANCE_MM or steps.max() - steps.min() > _SPACING_TOLERANCE_MM:
        return None
    return float(steps.mean())


def scanning_sequence(geometry: Geometry) -> list[str]:
    """DICOM ScanningSequence from the header's ``sequence_type`` and inversion time.

    ``RM`` (research mode) when the sequence type is unknown; ``IR`` is added whenever the
    header has an inversion time above zero (an inversion pulse was played).
    """
    words = (geometry.sequence_type or "").lower().replace("_", "").replace(" ", "")
    terms: list[str] = []
    for word, term in _SEQUENCE_TERMS:
        if word in words and term not in terms:
            terms.append(term)
    if geometry.sequence.get("TI", 0.0) > 0 and "IR" not in terms:
        terms.append("IR")
    return terms or ["RM"]


def write_series(
    images: np.ndarray,
    geometry: Geometry,
    out_dir: Path,
    *,
    study_seed: str,
    patient_id: str,
    series_number: int = 1,
    pixel_spacing_mm: tuple[float, float] | None = None,
) -> SeriesInfo:
    """Write ``images`` ``(slices, rows, columns)`` as a new DICOM series folder ``out_dir``.

    The folder is written under a temporary name next to ``out_dir`` and renamed when complete,
    so a failed run leaves nothing half-written.

    Parameters
    ----------
    images
        Non-negative magnitude images (float), already on the reconSpace grid.
    geometry
        Pixel spacing, slice thickness, orientation and positions (when known).
    out_dir
        The series folder to create (must not exist).
    study_seed
        Text from which the study and frame-of-reference UIDs are derived (e.g. the input's
        sha256), so every reconstruction of the same input lands in one study.
    patient_id
        Patient ID to write (already pseudonymous).
    series_number
        SeriesNumber (distinct for each series of a study; the caller counts).
    pixel_spacing_mm
        Row and column spacing of ``images``; default the reconSpace field of view over matrix
        (the reconstruction reports the spacing it produced, see
        :meth:`Geometry.output_pixel_spacing_mm`).

    Returns
    -------
    SeriesInfo
        Folder, UIDs, file paths, intensity scale, series number, SOP class and slice spacing.
    """
    if images.ndim != 3 or not np.isfinite(images).all():
        raise ReconError(f"{out_dir}: images to export must be finite (slices, rows, columns)")
    if out_dir.exists():
        raise ReconError(f"{out_dir}: series folder exists already")
    if not 1 <= series_number <= 2**31 - 1:
        raise ReconError(f"{out_dir}: SeriesNumber {series_number} outside 1..2^31-1")
    n_slices, rows, columns = images.shape
    top = float(max(images.max(), 0.0))
    scale = MAX_PIXEL / top if top > 0 else 1.0
    # display window from a strided sample of stored values (no full-volume copy)
    sample = np.clip(images[:, ::4, ::4] * scale, 0, MAX_PIXEL)
    window_top = float(np.percentile(sample, 99.5)) if top > 0 else float(MAX_PIXEL)
    window_top = min(max(window_top, 2.0), float(MAX_PIXEL))
    study_uid = generate_uid(entropy_srcs=["study", study_seed])
    frame_uid = generate_uid(entropy_srcs=["frame", study_seed])
    series_uid = generate_uid()
    known = geometry.orientation_known and (
        geometry.slice_centres_mm is not None and len(geometry.slice_centres_mm) == n_slices
    )
    spacing = pixel_spacing_mm or geometry.pixel_spacing_mm
    positions: list[np.ndarray] = []
    normal = np.zeros(3)
    between: float | None = None
    if known:
        assert geometry.read_dir is not None and geometry.phase_dir is not None
        down, across = _unit(geometry.read_dir), _unit(geometry.phase_dir)
        normal = np.cross(across, down)
        positions = slice_positions(geometry, rows, columns, spacing)
        between = even_spacing(positions, normal)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    files = []
    sop_class = str(MRImageStorage if known else SecondaryCaptureImageStorage)
    try:
        for index in range(n_slices):
            ds = _slice_dataset(geometry, rows, columns, sop_class, spacing)
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.PatientID = patient_id[:64]
            ds.SeriesNumber = series_number
            ds.InstanceNumber = index + 1
            if known:
                ds.FrameOfReferenceUID = frame_uid
                ds.PositionReferenceIndicator = ""
                ds.ImagePositionPatient = [_ds_number(v) for v in positions[index]]
                ds.ImageOrientationPatient = [_ds_number(v) for v in (*across, *down)]
                ds.SliceLocation = _ds_number(float(np.dot(positions[index], normal)))
                if between is not None:
                    ds.SpacingBetweenSlices = _ds_number(between)
            ds.WindowCenter = _ds_number(window_top / 2)
            ds.WindowWidth = _ds_number(window_top)
            pixels = _quantise(images[index], scale)
            ds.SmallestImagePixelValue = int(pixels.min())
            ds.LargestImagePixelValue = int(pixels.max())
            ds.PixelData = pixels.tobytes()
            name = tmp_dir / f"IM{index + 1:04d}.dcm"
            ds.save_as(name, enforce_file_format=True)
            files.append(out_dir / name.name)
        os.replace(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return SeriesInfo(
        out_dir,
        str(series_uid),
        str(study_uid),
        tuple(files),
        intensity_scale=scale,
        series_number=series_number,
        sop_class_uid=str(sop_class),
        spacing_between_slices_mm=between,
    )


def _quantise(image: np.ndarray, scale: float) -> np.ndarray:
    """Stored values ``round(image * scale)`` in ``[0, MAX_PIXEL]`` (one slice at a time)."""
    return np.clip(np.rint(image * scale), 0, MAX_PIXEL).astype(np.uint16)


def _slice_dataset(
    geometry: Geometry, rows: int, columns: int, sop_class: str, spacing: tuple[float, float]
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = UID(sop_class)
    ds.Modality = "MR"
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
    # the raw data never say which side: empty Laterality = unknown (Type 2C)
    ds.Laterality = ""
    ds.Manufacturer = ""
    ds.PixelSpacing = [_ds_number(v) for v in spacing]
    # the pixels are the reconstruction only: no text is ever drawn into them
    ds.BurnedInAnnotation = "NO"
    if sop_class == SecondaryCaptureImageStorage:
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ConversionType = "WSD"
        ds.PatientOrientation = ""
    else:
        ds.ImageType = ["DERIVED", "PRIMARY", "OTHER"]
        ds.PatientPosition = ""
        _mr_dataset(ds, geometry)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = BITS_STORED
    ds.HighBit = BITS_STORED - 1
    ds.PixelRepresentation = 0
    return ds


def _mr_dataset(ds: Dataset, geometry: Geometry) -> None:
    """The MR Image module: sequence, timing and slice thickness from the header."""
    terms = scanning_sequence(geometry)
    ds.ScanningSequence = terms
    ds.SequenceVariant = "NONE"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "3D" if geometry.three_d else "2D"
    seq = geometry.sequence
    ds.RepetitionTime = _ds_number(seq["TR"]) if "TR" in seq else ""
    ds.EchoTime = _ds_number(seq["TE"]) if "TE" in seq else ""
    if "IR" in terms:
        ds.InversionTime = _ds_number(seq["TI"]) if "TI" in seq else ""
    if "flipAngle_deg" in seq:
        ds.FlipAngle = _ds_number(seq["flipAngle_deg"])
    ds.EchoTrainLength = ""
    if geometry.field_strength_t is not None:
        ds.MagneticFieldStrength = _ds_number(geometry.field_strength_t)
    ds.SliceThickness = _ds_number(geometry.slice_thickness_mm)
