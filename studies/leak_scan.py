"""Scan for anything that could tell a reader which arm they are looking at.

Blinded files are written from an allow-list (:mod:`studies.blinded_dicom`), so what a source
header says never reaches them, and every text they hold is the same in every arm. What can still
tell the arms apart, and what this scan reports:

* **source text**: a text element of a *source* header (file meta, sequences and private elements
  included) names an arm (its code or description) or a reconstruction / vendor deep-learning
  term, and not every arm of the case has the same text. It is not copied, but it says the
  source labels its arm: check that no such label is burned into the pixels, and that the arms
  are not swapped in CASES.csv.
* **geometry**: the arms of one case differ in matrix, pixel spacing, slice count, slice
  thickness or slice spacing (blinding keeps geometry, so these reach the reader).
* **header difference**: any other attribute of the blinded headers differs between the arms of
  a case (ids, numbering, the computed window and the slice positions aside). By construction
  nothing should; this is the net under the allow-list.
* **pixel statistics**: the arms of one case use very different numbers of grey levels (e.g. an
  8-bit arm beside a 12-bit one: banding, and gaps in the histogram a curious reader can count).
  Whether the image statistics tell the arms apart across cases is the distinguishability
  report's question (:mod:`studies.distinguishability`), not a per-case leak.

How text matches: short arm codes and acronyms (fewer than :data:`SUBSTRING_MIN` letters, e.g.
``dl``, ``AI``) match as words, where a word also ends at a change of case or at a digit, so
``DLrecon``, ``PDdl``, ``dl4x`` and ``Recon_DL`` name ``dl`` while ``handle`` and ``MAIN`` do not;
longer arm codes and vendor terms match anywhere, inside longer words too, with spaces, ``_`` and
``-`` ignored (``T2_DeepResolve_Boost``, ``knee_conventionalRecon``). Acronyms that are ordinary
words in lower case (``AI``, ``DL``, ``AIR``) match case-sensitively, so "air coil" passes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from studies.blinded_dicom import GEOMETRY_ATTRIBUTES, PER_SERIES_ATTRIBUTES
from studies.dicom_series import SeriesInfo, read_header
from studies.errors import StudyError
from studies.protocol import Protocol

#: Arm codes with at least this many letters also match inside longer words.
SUBSTRING_MIN = 4

#: Terms matched as words, case-insensitively.
WORD_TERMS = ("deep", "recon", "neural", "aice")
#: Terms matched as words, case-sensitively (ordinary words in lower case).
EXACT_WORD_TERMS = ("AI", "DL", "DLR", "AIR", "CNN", "GAN")
#: Terms matched anywhere (lower case, separators dropped), inside longer words too.
SUBSTRING_TERMS = (
    "deeplearning",
    "deepresolve",
    "deeprecon",
    "dlrecon",
    "airrecon",
    "varnet",
    "unet",
    "swiftmr",
    "subtlemr",
    "sonicdl",
    "preciseimage",
    "smartspeed",
    "cleariq",
    "reconstruct",
    "zerofill",
    "cgsense",
    "compressedsens",
    "fastmri",
    "denois",
    "neuralnet",
)

#: Attributes not searched in source headers: the patient's own identity (names and ids that
#: can hold any letters by chance); the blinded copies never carry them.
_IDENTITY_ATTRIBUTES = frozenset({"PatientID", "OtherPatientIDs", "IssuerOfPatientID"})
_IDENTITY_TAGS = frozenset(tag_for_keyword(k) for k in _IDENTITY_ATTRIBUTES)
_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UR", "UT"})
_SPACING_TOLERANCE = 1e-3  # mm
#: Arms whose grey-level counts differ by at least this factor (2 bits) are reported.
GREY_LEVEL_RATIO = 4.0

_RUNS = re.compile(r"[A-Za-z]+|[0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z][a-z]+|[a-z]+")
_UPPER = re.compile(r"[A-Z]{2,}")
_LOWER = re.compile(r"[a-z]{2,}")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Leak:
    """One thing that could unblind a reader.

    ``kind`` is "arm code", "arm description", "keyword" (text of a source header; several
    joined by "and" when one text holds several), "matrix",
    "pixel spacing", "slice count", "slice thickness", "slice spacing", "header difference" or
    "grey levels"; ``file`` the file (or series folder) it was found in; ``tag`` the attribute;
    ``text`` the offending text or the difference; ``source`` is True for text found in a source
    header (not copied into the blinded files).
    """

    kind: str
    file: str
    tag: str
    text: str
    case: str = ""
    arm: str = ""
    source: bool = False

    def __str__(self) -> str:
        parts = [f"case {self.case}" if self.case else "", f"arm {self.arm}" if self.arm else ""]
        where = ", ".join(p for p in parts if p)
        prefix = f"{where}: " if where else ""
        note = " [source header; not copied]" if self.source else ""
        return f"{prefix}{self.file}: {self.tag}: {self.kind}: {self.text}{note}"


@dataclass(frozen=True)
class Term:
    """One thing the text scan looks for, and how it matches (see the module docstring)."""

    kind: str
    what: str
    word: str | None = None  # lower-case word
    exact_word: str | None = None  # case-sensitive word
    substring: str | None = None  # lower case, separators dropped
    phrase: re.Pattern[str] | None = None

    def found_in(self, text: str, words: set[str], lower_words: set[str], compact: str) -> bool:
        """Whether the term occurs in ``text`` (with its words and compact form precomputed)."""
        return bool(
            (self.word is not None and self.word in lower_words)
            or (self.exact_word is not None and self.exact_word in words)
            or (self.substring is not None and self.substring in compact)
            or (self.phrase is not None and self.phrase.search(text))
        )


def text_words(text: str) -> set[str]:
    """The words of a text: letter and digit runs, their camel-case parts and case runs."""
    found: set[str] = set()
    for run in _RUNS.findall(text):
        found.add(run)
        if run[0].isalpha():
            found.update(_CAMEL.findall(run))
            found.update(_UPPER.findall(run))
            found.update(_LOWER.findall(run))
    return found


def compact(text: str) -> str:
    """Lower case with everything but letters and digits dropped."""
    return _SEPARATORS.sub("", text.lower())


def text_terms(protocol: Protocol) -> list[Term]:
    """The terms the source-text scan looks for: arm codes and descriptions, vendor terms."""
    terms: list[Term] = []
    for arm in protocol.arms:
        code = compact(arm.code)
        plain = arm.code.isalpha()
        terms.append(
            Term(
                "arm code",
                arm.code,
                word=arm.code.lower() if plain else None,
                substring=code if (len(code) >= SUBSTRING_MIN or not plain) else None,
            )
        )
        words = re.findall(r"[A-Za-z0-9]+", arm.description)
        if words:  # any separators between the words: "Deep-learning" = "deep learning"
            pattern = r"[^A-Za-z0-9]*".join(re.escape(w) for w in words)
            terms.append(Term("arm description", arm.description, phrase=re.compile(pattern, re.I)))
    terms.extend(Term("keyword", t, word=t) for t in WORD_TERMS)
    terms.extend(Term("keyword", t, exact_word=t) for t in EXACT_WORD_TERMS)
    terms.extend(Term("keyword", t, substring=t) for t in SUBSTRING_TERMS)
    return terms


def _texts(ds: Dataset, prefix: str = "") -> Iterator[tuple[str, Dataset, BaseTag, str]]:
    """``(prefix, dataset, tag, text)`` for every text value, without converting the elements
    that hold none (reading values is most of the cost of a scan)."""
    for elem in ds.elements():
        tag = elem.tag
        vr = elem.VR
        if vr is None:  # implicit VR: the dictionary (a private one through its creator) knows
            if tag.is_private:
                vr = ds[tag].VR
            else:
                try:
                    vr = dictionary_VR(tag)
                except KeyError:
                    continue
        if vr == "SQ":
            for j, item in enumerate(ds[tag].value or []):
                yield from _texts(item, f"{prefix}{_name(ds, tag)}[{j}] > ")
        elif vr in _TEXT_VRS and tag not in _IDENTITY_TAGS:
            value = elem.value
            if value is None or value in ("", b""):
                continue
            if isinstance(value, bytes):
                text = value.decode("latin-1").rstrip("\x00 ")
            elif isinstance(value, str):
                text = value
            else:
                text = "\\".join(str(v) for v in value)
            if text:
                yield prefix, ds, tag, text


def _name(ds: Dataset, tag: BaseTag) -> str:
    keyword = keyword_for_tag(tag)
    if not keyword:
        keyword = ds[tag].name
    return f"{tag} {keyword}"


def header_texts(ds: Dataset) -> list[tuple[str, str]]:
    """Every text value of a dataset as ``(tag name, text)``: sequences, private elements and
    the file meta included; names and patient ids left out (see ``_IDENTITY_ATTRIBUTES``)."""
    meta = getattr(ds, "file_meta", None)
    found = (
        [(prefix + _name(d, tag), text) for prefix, d, tag, text in _texts(meta)] if meta else []
    )
    found.extend((prefix + _name(d, tag), text) for prefix, d, tag, text in _texts(ds))
    return found


class TextScanner:
    """Finds the protocol's terms in header texts; remembers texts already matched (the same
    text repeats in every slice of a series)."""

    def __init__(self, terms: Sequence[Term]) -> None:
        self.terms = list(terms)
        self._cache: dict[str, list[Term]] = {}

    def matches(self, text: str) -> list[Term]:
        """The terms found in ``text``."""
        hit = self._cache.get(text)
        if hit is None:
            words = text_words(text)
            lower = {w.lower() for w in words}
            squeezed = compact(text)
            hit = [t for t in self.terms if t.found_in(text, words, lower, squeezed)]
            self._cache[text] = hit
        return hit

    def scan(self, ds: Dataset) -> list[tuple[str, str, str, str]]:
        """``(kind, tag, text, what)`` for every term found in one header (file meta first)."""
        meta = getattr(ds, "file_meta", None)
        found: list[tuple[str, str, str, str]] = []
        for dataset in (meta, ds):
            if dataset is None:
                continue
            for prefix, d, tag, text in _texts(dataset):
                terms = self.matches(text)
                if terms:
                    name = prefix + _name(d, tag)
                    found.extend((term.kind, name, text, term.what) for term in terms)
        return found


Hit = tuple[str, str, str, str, str]  # (file, kind, tag, text, what)


def source_text_leaks(case: str, hits: Mapping[str, Iterable[Hit]]) -> list[Leak]:
    """The source-text leaks of one case from each arm's ``(file, kind, tag, text, what)`` hits.

    A finding (the same term in the same attribute with the same text) that every arm of the
    case shares cannot tell the arms apart (vendor vocabulary such as a reconstruction kernel
    named in both arms); one that some arms lack is a leak. One text is one leak, naming every
    term found in it, the first file and how many files hold it.
    """
    found: dict[str, dict[tuple[str, str, str, str], tuple[str, int]]] = {}
    for arm, arm_hits in hits.items():
        per_arm = found.setdefault(arm, {})
        for file, kind, tag, text, what in arm_hits:
            key = (kind, tag, text, what)
            first, count = per_arm.get(key, (file, 0))
            per_arm[key] = (first, count + 1)
    shared = set.intersection(*(set(f) for f in found.values())) if found else set()
    leaks = []
    for arm, per_arm in found.items():
        texts: dict[tuple[str, str], list[tuple[str, str, str, int]]] = {}
        for (kind, tag, text, what), (file, count) in per_arm.items():
            if (kind, tag, text, what) not in shared:
                texts.setdefault((tag, text), []).append((kind, what, file, count))
        for (tag, text), terms in texts.items():
            kinds = list(dict.fromkeys(kind for kind, _, _, _ in terms))
            names = ", ".join(repr(what) for _, what, _, _ in terms)
            file, count = terms[0][2], max(count for *_, count in terms)
            more = f" (in {count} files)" if count > 1 else ""
            message = f"{text!r} contains {names}{more}"
            leaks.append(Leak(" and ".join(kinds), file, tag, message, case, arm, source=True))
    return leaks


def scan_source_headers(
    case: str, series: Mapping[str, Iterable[tuple[str, Dataset]]], protocol: Protocol
) -> list[Leak]:
    """Scan the source headers of one case's arms (``{arm: [(file, dataset), ...]}``) for arm
    words and vendor terms that not every arm shares (see :func:`source_text_leaks`)."""
    scanner = TextScanner(text_terms(protocol))
    hits = {
        arm: [(file, *hit) for file, ds in files for hit in scanner.scan(ds)]
        for arm, files in series.items()
    }
    return source_text_leaks(case, hits)


SeriesInput = SeriesInfo | Sequence[Dataset]


def scan_for_leaks(
    series: Mapping[str, Sequence[SeriesInput]],
    protocol: Protocol | None = None,
    *,
    case_ids: Sequence[str] | None = None,
) -> list[Leak]:
    """Compare the blinded series of each case between its arms.

    Parameters
    ----------
    series
        ``{arm code: [series of case 0, series of case 1, ...]}``: every arm's list holds one
        entry per case, in the same case order. An entry is a :class:`SeriesInfo` (its files'
        headers are read) or a sequence of datasets (one per slice, in slice order).
    protocol
        Orders the arms as the protocol does (each arm is compared with the first); without
        it, the order of ``series``.
    case_ids
        Names of the cases, in that order, for the report (default: "1", "2", ...).

    Returns
    -------
    list[Leak]
        Geometry and header differences ([] when the arms of every case match).

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
    codes = protocol.arm_codes if protocol is not None else []
    arms = [a for a in codes if a in series] + [a for a in series if a not in codes]
    leaks: list[Leak] = []
    for i, case in enumerate(names):
        loaded = {arm: _load(series[arm][i]) for arm in arms}
        leaks.extend(_compare_arms(case, loaded))
    return leaks


def compare_grey_levels(case: str, levels: Mapping[str, int], label: str = "") -> list[Leak]:
    """A leak when the arms of a case use grey-level counts that differ by
    :data:`GREY_LEVEL_RATIO` or more (see the module docstring)."""
    arms = list(levels)
    if len(arms) < 2:
        return []
    ref = arms[0]
    leaks = []
    for arm in arms[1:]:
        a, b = max(levels[ref], 1), max(levels[arm], 1)
        if max(a, b) / min(a, b) >= GREY_LEVEL_RATIO:
            text = (
                f"{ref} vs {arm}: {a} vs {b} grey levels ({math.log2(a):.1f} vs "
                f"{math.log2(b):.1f} bits): the coarser arm may show banding and its histogram gaps"
            )
            leaks.append(Leak("grey levels", label, "pixel values", text, case, arm))
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


@dataclass(frozen=True)
class _Summary:
    matrix: tuple[int, int] | None
    spacing: tuple[float, ...] | None
    thickness: float | None
    slice_spacing: float | None
    n_slices: int
    other: dict[str, str]


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

        def add(
            kind: str, tag: str, text: str, label: str = label, arm: str = arm, pair: str = pair
        ) -> None:
            leaks.append(Leak(kind, label, tag, f"{pair}: {text}", case, arm))

        if a.matrix != b.matrix:
            add("matrix", "Rows x Columns", f"{_fmt(a.matrix)} vs {_fmt(b.matrix)}")
        if not _close(a.spacing, b.spacing):
            add("pixel spacing", "PixelSpacing", f"{a.spacing} vs {b.spacing}")
        if a.n_slices != b.n_slices:
            add("slice count", "number of slices", f"{a.n_slices} vs {b.n_slices}")
        if not _close(a.thickness, b.thickness):
            add("slice thickness", "SliceThickness", f"{a.thickness} vs {b.thickness}")
        if not _close(a.slice_spacing, b.slice_spacing):
            text = f"{_mm(a.slice_spacing)} vs {_mm(b.slice_spacing)}"
            add("slice spacing", "ImagePositionPatient (distance between slices)", text)
        for keyword in sorted(set(a.other) | set(b.other)):
            va, vb = a.other.get(keyword), b.other.get(keyword)
            if va != vb:
                add("header difference", keyword, f"{va!r} vs {vb!r}")
    return leaks


def _summary(slices: list[tuple[str, Dataset]]) -> _Summary:
    if not slices:
        return _Summary(None, None, None, None, 0, {})
    first = slices[0][1]
    spacing = getattr(first, "PixelSpacing", None)
    thickness = getattr(first, "SliceThickness", None)
    rows, columns = getattr(first, "Rows", None), getattr(first, "Columns", None)
    other: dict[str, str] = {}
    for ds in (getattr(first, "file_meta", None), first):
        for elem in ds or []:
            keyword = elem.keyword or str(elem.tag)
            if keyword in PER_SERIES_ATTRIBUTES or keyword in GEOMETRY_ATTRIBUTES:
                continue
            if keyword in ("Rows", "Columns", "FileMetaInformationGroupLength"):
                continue
            other[keyword] = _value_text(elem.value)
    return _Summary(
        matrix=(int(rows), int(columns)) if rows is not None and columns is not None else None,
        spacing=tuple(float(v) for v in spacing) if spacing else None,
        thickness=float(thickness) if thickness not in (None, "") else None,
        slice_spacing=_slice_spacing([ds for _, ds in slices]),
        n_slices=len(slices),
        other=other,
    )


def _value_text(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str | int | float):
        return str(value)
    try:
        return "\\".join(_value_text(v) for v in value)  # type: ignore[attr-defined]
    except TypeError:
        return str(value)


def _slice_spacing(datasets: Sequence[Dataset]) -> float | None:
    """Median distance between neighbouring slices along the normal (None without geometry)."""
    if len(datasets) < 2:
        return None
    try:
        orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        along = sorted(
            float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal))
            for ds in datasets
        )
    except (AttributeError, ValueError, TypeError):
        return None
    return float(np.median(np.diff(along)))


def _mm(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.3f} mm"


def _fmt(matrix: object) -> str:
    if isinstance(matrix, tuple) and len(matrix) == 2:
        return f"{matrix[0]}x{matrix[1]}"
    return str(matrix)


def _close(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= _SPACING_TOLERANCE
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b):
        return all(
            abs(float(x) - float(y)) <= _SPACING_TOLERANCE for x, y in zip(a, b, strict=True)
        )
    return a == b


__all__ = [
    "EXACT_WORD_TERMS",
    "GREY_LEVEL_RATIO",
    "SUBSTRING_MIN",
    "SUBSTRING_TERMS",
    "WORD_TERMS",
    "Hit",
    "Leak",
    "Term",
    "TextScanner",
    "compact",
    "compare_grey_levels",
    "header_texts",
    "scan_for_leaks",
    "scan_source_headers",
    "source_text_leaks",
    "text_terms",
    "text_words",
]
