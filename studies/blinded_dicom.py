"""Write a blinded DICOM series from an allow-list: a new dataset per slice, nothing copied blindly.

Each blinded file is built from scratch. It holds only what display and geometry need and the
study's opaque identity; every other attribute of the source (whatever a scanner, a vendor's
deep-learning pipeline or a PACS put there, private tags, sequences and file meta included) is
simply never copied. Every arm gets the same encoding:

* file meta written fresh: MR Image Storage, explicit VR little endian, blindreader's own
  implementation class UID and version name, no source application entity title; where an arm
  of a case's series has no orientation or position (a reconstruction of a fastMRI file), every
  arm of that series is Secondary Capture Image Storage (modality MR) without Image Plane and
  Frame of Reference: no orientation is invented and the SOP class names no arm;
* patient, study and series identity: the opaque ids given by the caller (one identity per arm
  of a case, so the headers do not link the arms of a case or two cases of one subject), new
  UIDs, neutral descriptions, empty type 2 attributes;
* geometry re-formatted from numbers (so no text can travel in a number's spelling):
  ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness;
* pixels decoded, the source's modality rescale (and MONOCHROME1 inversion) applied, then mapped
  by one rule to unsigned 16 bit: ``stored = round((value - low) * 65535 / (high - low))`` with
  ``low = min(0, series minimum)`` and ``high`` the series maximum (zero stays zero, so intensity
  ratios are kept; the source's value scale, bit depth and LargestImagePixelValue do not survive);
* window recomputed by one rule: the 1st..99th percentile of the series (the viewer's automatic
  window);
* the PS3.15 record: PatientIdentityRemoved, DeidentificationMethod and its code sequence (CID
  7050: the Basic Profile and the Clean Graphics, Clean Structured Content and Clean Descriptors
  options, which writing from an allow-list fulfils), LongitudinalTemporalInformationModified.

Pixel data are not inspected for burned-in text (the Clean Pixel Data option is not claimed):
``studies.create`` refuses series that declare burned-in annotation instead.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, MRImageStorage, SecondaryCaptureImageStorage

from studies.dicom_series import MAX_MATRIX
from studies.errors import StudyError

#: (0002,0012) of every blinded file: blindreader's implementation class UID (fixed).
IMPLEMENTATION_CLASS_UID = UID("1.2.826.0.1.3680043.8.498.89482016169892040418417267785570616705")
#: (0002,0013) of every blinded file.
IMPLEMENTATION_VERSION_NAME = "BLINDREADER"

#: Neutral text written to the descriptive attributes of every arm.
NEUTRAL_TEXT = {
    "StudyDescription": "Blinded study",
    "SeriesDescription": "Blinded series",
    "ProtocolName": "Blinded",
}

#: (0012,0063) De-identification Method (LO, at most 64 characters).
DEIDENTIFICATION_METHOD = "blindreader: new dataset from an allow-list (PS3.15 Annex E)"

#: (0012,0064) De-identification Method Code Sequence: PS3.16 CID 7050 codes of what is applied.
DEIDENTIFICATION_CODES = (
    ("113100", "Basic Application Confidentiality Profile"),
    ("113103", "Clean Graphics Option"),
    ("113104", "Clean Structured Content Option"),
    ("113105", "Clean Descriptors Option"),
)

#: ImageType of every blinded file (the source's value, which vendors fill freely, is dropped).
IMAGE_TYPE = ["DERIVED", "SECONDARY", "OTHER"]

#: Stored values of a blinded file span 0 .. this.
MAX_STORED = 65535

#: Percentiles of the recomputed window (the viewer's automatic window).
WINDOW_PERCENTILES = (1.0, 99.0)

#: Attributes whose values differ between any two blinded series by construction (random ids,
#: per-slice numbering, values computed from the pixels). Everything else a blinded file holds is
#: the same for every arm, or geometry.
PER_SERIES_ATTRIBUTES = frozenset(
    {
        "MediaStorageSOPInstanceUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "PatientName",
        "PatientID",
        "ClinicalTrialSeriesID",
        "InstanceNumber",
        "WindowCenter",
        "WindowWidth",
        "PixelData",
    }
)
#: Geometry copied (as numbers) from the source.
GEOMETRY_ATTRIBUTES = frozenset(
    {"ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"}
)

_NATIVE_SYNTAXES = frozenset(
    {
        "1.2.840.10008.1.2",  # implicit VR little endian
        "1.2.840.10008.1.2.1",  # explicit VR little endian
        "1.2.840.10008.1.2.1.99",  # deflated explicit VR little endian
        "1.2.840.10008.1.2.2",  # explicit VR big endian
    }
)


@dataclass(frozen=True)
class BlindedIdentity:
    """The opaque identity written into one blinded series.

    ``patient_id`` (PatientID and PatientName) and ``study_uid`` are shared by the series of one
    arm of one case (one "exam") and by nothing else; ``series_id`` is the study's opaque series
    id (ClinicalTrialSeriesID and the folder name); ``frame_salt`` keys the new frame-of-reference
    UIDs, so series of one exam that shared a frame of reference still do.
    """

    patient_id: str
    study_uid: str
    series_id: str
    frame_salt: str


@dataclass(frozen=True)
class BlindedWrite:
    """What :func:`write_blinded_series` wrote.

    ``headers`` are the written datasets without pixel data (for the leak scan), ``volume`` the
    stored pixel values ``(slices, rows, columns)`` as written, ``grey_levels`` the levels their
    finest step resolves (:func:`grey_levels`: the source's bit depth survives the rescaling).
    """

    files: tuple[Path, ...]
    headers: tuple[Dataset, ...]
    volume: np.ndarray
    grey_levels: int
    digests: tuple[str, ...]  # sha256 of each file, as written


SourceInspector = Callable[[Path, Dataset], None]

#: Root of the UIDs blinded files get (pydicom's, under which it makes its own UIDs).
UID_ROOT = "1.2.826.0.1.3680043.8.498."
_UID_DIGITS = 64 - len(UID_ROOT)


def new_uid(*entropy: str) -> UID:
    """A new UID of exactly 64 characters: random, or derived from ``entropy`` (the same text
    gives the same UID). The fixed length keeps the files of every arm the same size."""
    low = 10 ** (_UID_DIGITS - 1)
    if entropy:
        digest = hashlib.sha256("\x1f".join(entropy).encode("utf-8")).digest()
        number = int.from_bytes(digest, "big") % (9 * low) + low
    else:
        number = secrets.randbelow(9 * low) + low
    return UID(f"{UID_ROOT}{number}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def read_source(path: Path) -> Dataset:
    """Read one source file completely (pixel data included).

    Raises
    ------
    StudyError
        One line naming the file: not readable, truncated, not DICOM.
    """
    try:
        return pydicom.dcmread(path)
    except Exception as exc:  # pydicom raises many kinds for broken files
        raise StudyError(f"{path}: cannot read DICOM file ({_one_line(exc)})") from None


def decode_pixels(path: Path, ds: Dataset) -> np.ndarray:
    """The slice's values as float64, modality rescale applied, MONOCHROME1 inverted.

    Raises
    ------
    StudyError
        One line naming the file: no or short PixelData, an impossible matrix, colour or
        multi-frame data, or pixel data that cannot be decoded (broken compressed data).
    """
    rows, columns = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if not (0 < rows <= MAX_MATRIX and 0 < columns <= MAX_MATRIX):
        raise StudyError(
            f"{path}: matrix {rows}x{columns} is not a plausible image "
            f"(expected 1..{MAX_MATRIX} rows and columns)"
        )
    if "PixelData" not in ds:
        raise StudyError(f"{path}: no PixelData (not an image, or a truncated file)")
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise StudyError(
            f"{path}: {photometric} with {samples} samples per pixel: only greyscale "
            "(MONOCHROME1/2) images can be blinded"
        )
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        raise StudyError(f"{path}: multi-frame DICOM is not supported (one file per slice)")
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if syntax in _NATIVE_SYNTAXES or not syntax:
        bits = int(getattr(ds, "BitsAllocated", 0) or 0)
        if bits not in (8, 16, 32):
            raise StudyError(f"{path}: BitsAllocated {bits} is not supported (8, 16 or 32)")
        expected = rows * columns * bits // 8
        got = len(ds.PixelData)
        if got < expected:
            raise StudyError(
                f"{path}: PixelData is short ({got} bytes; {rows}x{columns} at {bits} bits "
                f"needs {expected})"
            )
    try:
        stored = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise StudyError(f"{path}: cannot decode the pixel data ({_one_line(exc)})") from None
    if stored.shape != (rows, columns):
        raise StudyError(
            f"{path}: decoded pixel data has shape {stored.shape}, expected ({rows}, {columns})"
        )
    values = stored.astype(np.float64)
    slope = _number(getattr(ds, "RescaleSlope", None), 1.0)
    intercept = _number(getattr(ds, "RescaleIntercept", None), 0.0)
    if slope != 1.0 or intercept != 0.0:
        values = values * slope + intercept
    if photometric == "MONOCHROME1":
        values = -values
    return values


def _number(value: object, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def format_ds(value: float) -> str:
    """A decimal string for DS: fixed six decimals at most, no trailing zeros, no ``-0``."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _floats(ds: Dataset, keyword: str, count: int) -> list[float] | None:
    value = getattr(ds, keyword, None)
    if value is None or value == "":
        return None
    items = [value] if count == 1 else list(value)
    try:
        numbers = [float(v) for v in items]
    except (TypeError, ValueError):
        return None
    if len(numbers) != count or not all(math.isfinite(v) for v in numbers):
        return None
    return numbers


def to_stored(values: Sequence[np.ndarray]) -> np.ndarray:
    """Map a series' values to the blinded stored values by the one rule (see module doc)."""
    low = min(0.0, min(float(v.min()) for v in values))
    high = max(float(v.max()) for v in values)
    out = np.empty((len(values), *values[0].shape), dtype=np.uint16)
    if high <= low:
        out[:] = 0
        return out
    scale = MAX_STORED / (high - low)
    for k, v in enumerate(values):
        out[k] = np.clip(np.rint((v - low) * scale), 0, MAX_STORED).astype(np.uint16)
    return out


def window_of(volume: np.ndarray) -> tuple[float, float]:
    """(center, width) of the recomputed window: the series' 1st..99th percentile."""
    sample = volume[:, ::2, ::2] if volume.size > 2_000_000 else volume
    low, high = np.percentile(sample, WINDOW_PERCENTILES)
    width = max(float(high - low), 1.0)
    return float(round((low + high) / 2)), float(round(width))


def _deidentification(ds: Dataset) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    items = []
    for value, meaning in DEIDENTIFICATION_CODES:
        code = Dataset()
        code.CodeValue = value
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = meaning
        items.append(code)
    ds.DeidentificationMethodCodeSequence = DicomSequence(items)
    ds.LongitudinalTemporalInformationModified = "REMOVED"


def series_template(
    identity: BlindedIdentity,
    *,
    series_uid: str,
    shape: tuple[int, int],
    window: tuple[float, float],
    oriented: bool = True,
) -> Dataset:
    """Everything a blinded file of one series holds that is the same in every slice: the
    allow-list's constant part (see the module docstring). :func:`blinded_dataset` adds the rest.

    ``oriented`` False (some arm of the case's series has no ImageOrientationPatient or
    ImagePositionPatient): Secondary Capture Image Storage, which has no Image Plane or Frame
    of Reference module, for every arm of that series alike, so that the SOP class says nothing
    about the arm and no orientation is invented.
    """
    ds = Dataset()
    # SOP common
    ds.SOPClassUID = MRImageStorage if oriented else SecondaryCaptureImageStorage
    # patient (opaque), and the PS3.15 record
    ds.PatientName = identity.patient_id
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    _deidentification(ds)
    # general study
    ds.StudyInstanceUID = identity.study_uid
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.StudyDescription = NEUTRAL_TEXT["StudyDescription"]
    # general series, clinical trial series
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.Laterality = ""
    ds.PatientPosition = ""
    ds.SeriesDescription = NEUTRAL_TEXT["SeriesDescription"]
    ds.ProtocolName = NEUTRAL_TEXT["ProtocolName"]
    ds.ClinicalTrialCoordinatingCenterName = ""
    ds.ClinicalTrialSeriesID = identity.series_id
    # frame of reference, general equipment (type 2: present, empty)
    if oriented:
        ds.PositionReferenceIndicator = ""
    else:  # SC equipment: a workstation made it
        ds.ConversionType = "WSD"
        ds.BurnedInAnnotation = "NO"
    ds.Manufacturer = ""
    # MR image: acquisition details are not carried (they differ between protocols of the arms)
    ds.ImageType = list(IMAGE_TYPE)
    if oriented:
        ds.ScanningSequence = "RM"  # research mode
        ds.SequenceVariant = "NONE"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = ""
        ds.RepetitionTime = ""
        ds.EchoTime = ""
        ds.EchoTrainLength = ""
    else:  # general image: the patient orientation of the edges is unknown
        ds.PatientOrientation = ""
    # image pixel: one encoding for every arm
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    # VOI LUT: one rule for every arm
    ds.WindowCenter = format_ds(window[0])
    ds.WindowWidth = format_ds(window[1])
    return ds


def blinded_dataset(
    source: Dataset,
    template: Dataset,
    *,
    frame_salt: str,
    instance_number: int,
    pixels: np.ndarray,
) -> Dataset:
    """One new blinded dataset (with new file meta): ``template`` (:func:`series_template`)
    plus this slice's UIDs, number, geometry and pixels. Only geometry is read from
    ``source``, and only as numbers."""
    sop_uid = new_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = template.SOPClassUID
    oriented = template.SOPClassUID == MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds = Dataset(dict(template.items()))  # shares the elements: nothing below changes them
    ds.file_meta = meta
    ds.SOPInstanceUID = sop_uid
    # one new frame-of-reference UID per source frame of reference within the exam
    source_frame = str(getattr(source, "FrameOfReferenceUID", "") or "")
    if oriented:
        ds.FrameOfReferenceUID = new_uid(frame_salt, source_frame)
    ds.InstanceNumber = instance_number
    orientation = _floats(source, "ImageOrientationPatient", 6) if oriented else None
    position = _floats(source, "ImagePositionPatient", 3) if oriented else None
    spacing = _floats(source, "PixelSpacing", 2)
    thickness = _floats(source, "SliceThickness", 1)
    if orientation is not None:
        ds.ImageOrientationPatient = [format_ds(v) for v in orientation]
    if position is not None:
        ds.ImagePositionPatient = [format_ds(v) for v in position]
    if spacing is not None:
        ds.PixelSpacing = [format_ds(v) for v in spacing]
    ds.SliceThickness = format_ds(thickness[0]) if thickness is not None else ""
    ds.add_new(0x7FE00010, "OW", np.ascontiguousarray(pixels, dtype="<u2").tobytes())
    return ds


#: The elements :func:`blinded_dataset` adds to the template, slice by slice.
PER_SLICE_TAGS = tuple(
    sorted(
        Tag(k)
        for k in (
            "SOPInstanceUID",
            "SliceThickness",
            "InstanceNumber",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "FrameOfReferenceUID",
            "PixelSpacing",
            "PixelData",
        )
    )
)


def _encoded(ds: Dataset) -> bytes:
    """``ds`` as explicit VR little endian bytes (no preamble, no file meta)."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def _element(tag: BaseTag, vr: str, value: bytes) -> bytes:
    """One explicit VR little endian element (value padded to even length)."""
    if len(value) % 2:
        value += b"\x00" if vr == "UI" else b" "
    head = struct.pack("<HH", tag.group, tag.element) + vr.encode("ascii")
    if vr in ("OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OF", "OD", "OL", "OV"):
        return head + struct.pack("<HI", 0, len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def _slice_element(ds: Dataset, tag: BaseTag) -> bytes:
    """A per-slice element's bytes: the plain VRs by hand, anything else through pydicom."""
    elem = ds[tag]
    value = elem.value
    if elem.VR in ("UI", "DS", "IS") and value not in (None, ""):
        items = value if isinstance(value, list | tuple | MultiValue) else [value]
        return _element(tag, elem.VR, "\\".join(str(v) for v in items).encode("ascii"))
    if elem.VR == "OW" and isinstance(value, bytes):
        return _element(tag, "OW", value)
    return _encoded(Dataset({tag: elem}))


#: Stands in for the 64-character MediaStorageSOPInstanceUID while the file meta is encoded.
_UID_PLACEHOLDER = UID_ROOT + "9" * _UID_DIGITS
_MEDIA_UID_TAG = Tag("MediaStorageSOPInstanceUID")


class SeriesEncoder:
    """Encodes the files of one blinded series: the template's elements and the file meta
    once, each slice's own elements (:data:`PER_SLICE_TAGS`) and UID per file, joined in tag
    order.

    The bytes are those ``pydicom.dcmwrite(..., enforce_file_format=True)`` writes for the
    same dataset (a test checks it); encoding the constant part once makes writing a series
    several times faster.
    """

    def __init__(self, template: Dataset) -> None:
        if any(tag in template for tag in PER_SLICE_TAGS):
            raise ValueError("the template holds a per-slice element")
        segments: list[bytes] = []
        low = -1
        for high in [*PER_SLICE_TAGS, None]:
            part = {t: e for t, e in template.items() if low < t and (high is None or t < high)}
            segments.append(_encoded(Dataset(part)))
            low = high if high is not None else low
        self._segments = segments
        self._meta: bytes | None = None

    def _file_meta(self, meta: FileMetaDataset) -> bytes:
        uid = str(meta.MediaStorageSOPInstanceUID)
        if len(uid) != len(_UID_PLACEHOLDER):  # not one of ours: encode it as it is
            return _meta_bytes(meta)
        if self._meta is None:
            stand_in = FileMetaDataset()
            for tag, elem in meta.items():  # a new element for the UID: meta's is not changed
                if tag != _MEDIA_UID_TAG:
                    stand_in[tag] = elem
            stand_in.MediaStorageSOPInstanceUID = UID(_UID_PLACEHOLDER)
            self._meta = _meta_bytes(stand_in)
        return self._meta.replace(_UID_PLACEHOLDER.encode("ascii"), uid.encode("ascii"))

    def encode(self, ds: Dataset) -> bytes:
        """The file of one slice: preamble, prefix, file meta and dataset."""
        parts = [b"\x00" * 128, b"DICM", self._file_meta(ds.file_meta)]
        for segment, tag in zip(self._segments, PER_SLICE_TAGS, strict=False):
            parts.append(segment)
            if tag in ds:
                parts.append(_slice_element(ds, tag))
        parts.append(self._segments[-1])
        return b"".join(parts)


def _meta_bytes(meta: FileMetaDataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    return fp.getvalue()


def write_blinded_series(
    files: Sequence[Path],
    out_dir: Path,
    identity: BlindedIdentity,
    *,
    oriented: bool = True,
    inspect_source: SourceInspector | None = None,
) -> BlindedWrite:
    """Decode a source series and write its blinded copy as ``0001.dcm``, ``0002.dcm``, ...

    Parameters
    ----------
    files
        The source files in slice order (from :func:`studies.dicom_series.read_series`).
    out_dir
        The destination folder (created; it belongs to the caller's temporary image folder, so
        files are written in place).
    identity
        The opaque identity to write.
    oriented
        Write orientation and position (MR Image Storage); False: Secondary Capture without
        them (see :func:`series_template`).
    inspect_source
        Called with each source file's path and full dataset before it is dropped (the leak
        scan reads the source headers this way, without reading the files twice).

    Returns
    -------
    BlindedWrite

    Raises
    ------
    StudyError
        A source file cannot be read or decoded (one line naming the file), or the destination
        cannot be written.
    """
    if not files:
        raise StudyError(f"{out_dir}: no source files to blind")
    sources: list[Dataset] = []
    values: list[np.ndarray] = []
    for path in files:
        ds = read_source(path)
        if inspect_source is not None:
            inspect_source(path, ds)
        pixels = decode_pixels(path, ds)
        if values and pixels.shape != values[0].shape:
            raise StudyError(
                f"{path}: matrix {pixels.shape[0]}x{pixels.shape[1]} differs from "
                f"{values[0].shape[0]}x{values[0].shape[1]} of {files[0].name}"
            )
        values.append(pixels)
        del ds.PixelData
        sources.append(ds)
    volume = to_stored(values)
    del values
    window = window_of(volume)
    series_uid = new_uid()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    digests: list[str] = []
    headers: list[Dataset] = []
    template = series_template(
        identity, series_uid=series_uid, shape=volume.shape[1:], window=window, oriented=oriented
    )
    encoder = SeriesEncoder(template)
    for index, source in enumerate(sources, start=1):
        ds = blinded_dataset(
            source,
            template,
            frame_salt=identity.frame_salt,
            instance_number=index,
            pixels=volume[index - 1],
        )
        target = out_dir / f"{index:04d}.dcm"
        data = encoder.encode(ds)
        digests.append(hashlib.sha256(data).hexdigest())
        try:
            target.write_bytes(data)
        except Exception as exc:
            raise StudyError(
                f"{target}: cannot write the blinded copy ({_one_line(exc)})"
            ) from None
        del ds.PixelData
        ds.filename = str(target)
        written.append(target)
        headers.append(ds)
    return BlindedWrite(tuple(written), tuple(headers), volume, grey_levels(volume), tuple(digests))


def grey_levels(volume: np.ndarray) -> int:
    """The grey levels a blinded series resolves on its 0..65535 scale: ``65535 / step + 1``
    with ``step`` the finest difference between two values it uses. An 8-bit source keeps
    steps of 257 after the rescaling (256 levels), a 12-bit one steps of 16 (4096 levels),
    whatever the number of pixels; ``log2`` of it is the source's effective bit depth."""
    present = np.flatnonzero(np.bincount(volume.ravel(), minlength=1))
    if present.size < 2:
        return 1
    step = int(np.diff(present).min())
    return round(MAX_STORED / step) + 1


__all__ = [
    "DEIDENTIFICATION_CODES",
    "DEIDENTIFICATION_METHOD",
    "GEOMETRY_ATTRIBUTES",
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "NEUTRAL_TEXT",
    "PER_SERIES_ATTRIBUTES",
    "PER_SLICE_TAGS",
    "BlindedIdentity",
    "BlindedWrite",
    "SeriesEncoder",
    "blinded_dataset",
    "decode_pixels",
    "format_ds",
    "grey_levels",
    "new_uid",
    "read_source",
    "series_template",
    "to_stored",
    "window_of",
    "write_blinded_series",
]
