"""Scan blinded series for anything that could tell a reader which arm they are looking at.

Run on the de-identified copies. Three kinds of leak:

* text: a header text element (recursively, sequences included) contains an arm code or an arm
  description from the protocol, or a reconstruction / vendor deep-learning keyword;
* geometry: the arms of one case differ in matrix (rows x columns), pixel spacing or number of
  slices;
* header: the arms of one case differ in an attribute that describes how the image was made
  (:data:`COMPARED_ATTRIBUTES`, e.g. ImageType or BitsStored).

Keywords match whole words: a keyword counts only when no letter stands right before or after
it, so ``DL`` matches ``Recon_DL`` and ``DL4x`` but not ``handle``; short upper-case keywords
(``AI``, ``DL``, ``AIR``, ``DLR``) match case-sensitively so ordinary words like "air" pass.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset

from studies.dicom_series import SeriesInfo, read_header
from studies.errors import StudyError
from studies.protocol import Protocol

#: Case-insensitive keyword patterns (regular expressions, matched between non-letters).
KEYWORDS_ANY_CASE = (
    r"deep",
    r"deep[\s_-]*learning",
    r"deep[\s_-]*resolve",
    r"var[\s_-]*net",
    r"u[\s_-]?net",
    r"recon",
    r"reconstruct(?:ion|ed)?",
    r"swift[\s_-]*mr",
    r"subtle[\s_-]*mr",
    r"aice",
    r"sonic[\s_-]*dl",
    r"zero[\s_-]*fill(?:ed|ing)?",
    r"cg[\s_-]*sense",
    r"compressed[\s_-]*sens(?:e|ing)",
    r"neural",
    r"fast[\s_-]*mri",
    r"dl[\s_-]*recon",
    r"precise[\s_-]*image",
)
#: Case-sensitive keywords (short acronyms that are ordinary words in lower case).
KEYWORDS_EXACT_CASE = ("AI", "DL", "DLR", "AIR", "CNN", "GAN")

#: Attributes compared between the arms of one case (first slice of each series).
COMPARED_ATTRIBUTES = (
    "Modality",
    "ImageType",
    "Manufacturer",
    "ManufacturerModelName",
    "SoftwareVersions",
    "SequenceName",
    "ScanningSequence",
    "SequenceVariant",
    "ScanOptions",
    "MRAcquisitionType",
    "ParallelAcquisitionTechnique",
    "SliceThickness",
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
)

_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
#: Written by :func:`studies.deidentify.blind_series` with random opaque ids (e.g. ``s-3a12f0``):
#: not scanned, as random hex could spell a short arm code by chance.
OPAQUE_ID_ATTRIBUTES = frozenset({"PatientName", "PatientID", "ClinicalTrialSeriesID"})
_SPACING_TOLERANCE = 1e-3  # mm


@dataclass(frozen=True)
class Leak:
    """One thing that could unblind a reader.

    ``kind`` is "arm code", "arm description", "keyword", "matrix", "pixel spacing",
    "slice count" or "header difference"; ``file`` the file (or series folder) it was found in;
    ``tag`` the attribute; ``text`` the offending text or the difference.
    """

    kind: str
    file: str
    tag: str
    text: str
    case: str = ""
    arm: str = ""

    def __str__(self) -> str:
        parts = [f"case {self.case}" if self.case else "", f"arm {self.arm}" if self.arm else ""]
        where = ", ".join(p for p in parts if p)
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.file}: {self.tag}: {self.kind}: {self.text}"


SeriesInput = SeriesInfo | Sequence[Dataset]


def _word(pattern: str) -> str:
    return rf"(?<![A-Za-z])(?:{pattern})(?![A-Za-z])"


def text_patterns(protocol: Protocol) -> list[tuple[str, str, re.Pattern[str]]]:
    """The (kind, what, compiled pattern) triples the text scan looks for."""
    patterns: list[tuple[str, str, re.Pattern[str]]] = []
    for arm in protocol.arms:
        patterns.append(("arm code", arm.code, re.compile(_word(re.escape(arm.code)), re.I)))
        description = r"\s+".join(re.escape(w) for w in arm.description.split())
        if description:
            patterns.append(("arm description", arm.description, re.compile(description, re.I)))
    for keyword in KEYWORDS_ANY_CASE:
        patterns.append(("keyword", keyword, re.compile(_word(keyword), re.I)))
    for keyword in KEYWORDS_EXACT_CASE:
        patterns.append(("keyword", keyword, re.compile(_word(re.escape(keyword)))))
    return patterns


def scan_for_leaks(
    series: Mapping[str, Sequence[SeriesInput]],
    protocol: Protocol,
    *,
    case_ids: Sequence[str] | None = None,
) -> list[Leak]:
    """Scan blinded series for arm leaks.

    Parameters
    ----------
    series
        ``{arm code: [series of case 0, series of case 1, ...]}``: every arm's list holds one
        entry per case, in the same case order. An entry is a :class:`SeriesInfo` (its files'
        headers are read) or a sequence of datasets (one per slice).
    protocol
        The protocol: its arm codes and descriptions are searched for.
    case_ids
        Names of the cases, in that order, for the report (default: "1", "2", ...).

    Returns
    -------
    list[Leak]
        Every leak found ([] when the series are clean).

    Raises
    ------
    StudyError
        The arms' lists differ in length, or a file cannot be read.
    """
    lengths = {arm: len(entries) for arm, entries in series.items()}
    if len(set(lengths.values())) > 1:
        raise StudyError(f"leak scan: arms have different numbers of cases: {lengths}")
    n_cases = next(iter(lengths.values()), 0)
    names = list(case_ids) if case_ids is not None else [str(i + 1) for i in range(n_cases)]
    if len(names) != n_cases:
        raise StudyError(f"leak scan: {len(names)} case ids for {n_cases} cases")
    patterns = text_patterns(protocol)
    matched: dict[str, list[tuple[str, str]]] = {}  # text -> (kind, what); slices repeat texts
    leaks: list[Leak] = []
    for i, case in enumerate(names):
        loaded = {arm: _load(entries[i]) for arm, entries in series.items()}
        for arm, (_, slices) in loaded.items():
            # The same text in every slice is one leak: name the first file and count the rest.
            found: dict[tuple[str, str, str], tuple[str, int]] = {}
            for file, ds in slices:
                for tag, text in _texts(ds):
                    if text not in matched:
                        matched[text] = [(k, w) for k, w, pat in patterns if pat.search(text)]
                    for kind, what in matched[text]:
                        key = (kind, tag, f"{text!r} contains {what!r}")
                        first, count = found.get(key, (file, 0))
                        found[key] = (first, count + 1)
            for (kind, tag, text), (file, count) in found.items():
                more = f" (in {count} files)" if count > 1 else ""
                leaks.append(Leak(kind, file, tag, text + more, case, arm))
        leaks.extend(_compare_arms(case, loaded))
    return leaks


def _load(entry: SeriesInput) -> tuple[str, list[tuple[str, Dataset]]]:
    if isinstance(entry, SeriesInfo):
        return str(entry.folder), [(str(p), read_header(p)) for p in entry.files]
    slices = [(_ds_name(ds, j), ds) for j, ds in enumerate(entry)]
    label = slices[0][0] if slices else "<empty series>"
    return label, slices


def _ds_name(ds: Dataset, index: int) -> str:
    filename = getattr(ds, "filename", None)
    return str(filename) if filename else f"<dataset {index + 1}>"


def _texts(ds: Dataset, prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for elem in ds:
        name = f"{prefix}{elem.tag} {elem.keyword or elem.name}"
        if elem.VR == "SQ":
            for j, item in enumerate(elem.value):
                found.extend(_texts(item, f"{name}[{j}] > "))
        elif elem.keyword in OPAQUE_ID_ATTRIBUTES and not prefix:
            continue
        elif elem.VR in _TEXT_VRS and elem.value not in (None, ""):
            value = elem.value
            if isinstance(value, str | bytes):
                text = value.decode("latin-1") if isinstance(value, bytes) else value
            else:
                text = "\\".join(str(v) for v in value)
            found.append((name, str(text)))
    return found


@dataclass(frozen=True)
class _Summary:
    matrix: tuple[int, int] | None
    spacing: tuple[float, ...] | None
    n_slices: int
    attributes: dict[str, str | tuple[str, ...] | None]


def _compare_arms(
    case: str, loaded: Mapping[str, tuple[str, list[tuple[str, Dataset]]]]
) -> list[Leak]:
    leaks: list[Leak] = []
    arms = list(loaded)
    summaries = {arm: _summary(slices) for arm, (_, slices) in loaded.items()}
    ref = arms[0] if arms else ""
    for arm in arms[1:]:
        a, b = summaries[ref], summaries[arm]
        label = loaded[arm][0]
        pair = f"{ref} vs {arm}"
        if a.matrix != b.matrix:
            text = f"{pair}: {_fmt(a.matrix)} vs {_fmt(b.matrix)}"
            leaks.append(Leak("matrix", label, "Rows x Columns", text, case, arm))
        if not _close(a.spacing, b.spacing):
            text = f"{pair}: {a.spacing} vs {b.spacing}"
            leaks.append(Leak("pixel spacing", label, "PixelSpacing", text, case, arm))
        if a.n_slices != b.n_slices:
            text = f"{pair}: {a.n_slices} vs {b.n_slices}"
            leaks.append(Leak("slice count", label, "number of slices", text, case, arm))
        for keyword in COMPARED_ATTRIBUTES:
            va, vb = a.attributes.get(keyword), b.attributes.get(keyword)
            if va != vb:
                text = f"{pair}: {va!r} vs {vb!r}"
                leaks.append(Leak("header difference", label, keyword, text, case, arm))
    return leaks


def _summary(slices: list[tuple[str, Dataset]]) -> _Summary:
    if not slices:
        return _Summary(None, None, 0, {})
    first = slices[0][1]
    spacing = getattr(first, "PixelSpacing", None)
    attributes: dict[str, str | tuple[str, ...] | None] = {}
    for keyword in COMPARED_ATTRIBUTES:
        value = getattr(first, keyword, None)
        if value is None or value == "":
            attributes[keyword] = None
        elif isinstance(value, str | int | float):
            attributes[keyword] = str(value)
        else:
            attributes[keyword] = tuple(str(v) for v in value)
    rows, columns = getattr(first, "Rows", None), getattr(first, "Columns", None)
    return _Summary(
        matrix=(int(rows), int(columns)) if rows is not None and columns is not None else None,
        spacing=tuple(float(v) for v in spacing) if spacing else None,
        n_slices=len(slices),
        attributes=attributes,
    )


def _fmt(matrix: object) -> str:
    if isinstance(matrix, tuple) and len(matrix) == 2:
        return f"{matrix[0]}x{matrix[1]}"
    return str(matrix)


def _close(a: object, b: object) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(
            abs(float(x) - float(y)) <= _SPACING_TOLERANCE for x, y in zip(a, b, strict=True)
        )
    return a == b


__all__ = [
    "COMPARED_ATTRIBUTES",
    "KEYWORDS_ANY_CASE",
    "KEYWORDS_EXACT_CASE",
    "OPAQUE_ID_ATTRIBUTES",
    "Leak",
    "scan_for_leaks",
    "text_patterns",
]
