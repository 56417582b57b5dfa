"""The arm leak scan: arm words in source headers (also inside longer words), geometry and header
differences between the blinded arms, grey levels; a clean pair passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from studies.blinded_dicom import BlindedIdentity, write_blinded_series
from studies.dicom_series import read_series
from studies.errors import StudyError
from studies.leak_scan import (
    Leak,
    TextScanner,
    compare_grey_levels,
    scan_for_leaks,
    scan_source_headers,
    text_terms,
    text_words,
)
from studies.protocol import Protocol
from tests.studies.conftest import make_series


def blinded_pair(tmp_path: Path, a: dict | None = None, b: dict | None = None):
    """Make the two arms of one case, blind them, return their blinded headers."""
    out = []
    for arm, extra in (("conventional", a or {}), ("dl", b or {})):
        make_series(tmp_path / "src" / arm, **{"n_slices": 3, **extra})
        info = read_series(tmp_path / "src" / arm)
        identity = BlindedIdentity(f"p-{arm}", pydicom.uid.generate_uid(), f"s-{arm}", arm)
        written = write_blinded_series(info.files, tmp_path / "blind" / arm, identity)
        out.append(list(written.headers))
    return out


def scan(protocol: Protocol, conv, dl) -> list[Leak]:
    return scan_for_leaks({"conventional": [conv], "dl": [dl]}, protocol, case_ids=["K1"])


def source_scan(protocol: Protocol, conv: dict, dl: dict, tmp_path: Path) -> list[Leak]:
    series = {}
    for arm, tags in (("conventional", conv), ("dl", dl)):
        files = make_series(tmp_path / arm, 2, **tags)
        series[arm] = [(str(p), pydicom.dcmread(p, stop_before_pixels=True)) for p in files]
    return scan_source_headers("K1", series, protocol)


def test_clean_pair_passes(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path)
    assert scan(knee_protocol, conv, dl) == []


def test_words_split_at_case_changes_and_digits():
    words = text_words("PD_DLrecon AIRecon tse2dDL PDdl MAIN Handle air")
    assert {"DL", "recon", "AI", "Recon", "PD", "dl", "MAIN", "Handle", "air"} <= words
    assert "AI" not in text_words("MAIN") and "dl" not in text_words("Handle")


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("PD COR AIR Recon DL", "AIR"),
        ("PD COR AIR Recon DL", "DL"),
        ("PD_DLrecon", "dl"),  # the arm code inside a longer word
        ("PDdl_cor", "dl"),
        ("dl4x", "dl"),
        ("T2_DeepResolve_Boost", "deepresolve"),
        ("varnet_v2", "varnet"),
        ("U-Net", "unet"),
        ("SwiftMR", "swiftmr"),
        ("AiCE", "aice"),
        ("sonicDL", "sonicdl"),
        ("zero-filled", "zerofill"),
        ("CG-SENSE", "cgsense"),
        ("DLR_4x", "DLR"),
        ("fs_AI", "AI"),
        ("Deep learning reconstruction from 4x undersampled k-space", "arm description"),
        ("knee_conventionalRecon", "conventional"),  # a long arm code inside a word
        ("denoised by network", "denois"),
    ],
)
def test_terms_are_found_in_a_source_header(
    tmp_path: Path, knee_protocol: Protocol, value: str, what: str
):
    leaks = source_scan(knee_protocol, {}, {"SeriesDescription": value}, tmp_path)
    assert len(leaks) == 1, leaks  # one text, one leak naming every term in it
    leak = leaks[0]
    if what == "arm description":
        assert "arm description" in leak.kind
    else:
        assert repr(what) in leak.text.split(" contains ")[1] and leak.text.endswith("(in 2 files)")
    assert all(x.source and x.arm == "dl" and x.case == "K1" for x in leaks)
    assert all("[source header; not copied]" in str(x) for x in leaks)


@pytest.mark.parametrize(
    "value", ["air coil", "Handle", "Aided", "DIRECT", "T2 TSE", "MAIN", "deeper", "ORIGINAL"]
)
def test_ordinary_words_do_not_trip(tmp_path: Path, knee_protocol: Protocol, value: str):
    assert source_scan(knee_protocol, {}, {"SeriesDescription": value}, tmp_path) == []


def test_text_every_arm_shares_is_not_a_leak(tmp_path: Path, knee_protocol: Protocol):
    # A reconstruction kernel named in both arms (vendor vocabulary) cannot tell them apart ...
    tags = {"SequenceName": "recon kernel B", "ImageType": ["ORIGINAL", "PRIMARY", "DL"]}
    assert source_scan(knee_protocol, tags, tags, tmp_path / "same") == []
    # ... but a different value in one arm is reported for each arm that has it.
    other = {"SequenceName": "recon kernel DL"}
    leaks = source_scan(knee_protocol, {"SequenceName": "recon kernel B"}, other, tmp_path / "b")
    assert {x.arm for x in leaks} == {"conventional", "dl"}
    assert any(x.arm == "dl" and "'DL'" in x.text for x in leaks)


def test_file_meta_private_and_nested_texts_are_scanned(tmp_path: Path, knee_protocol: Protocol):
    files = make_series(tmp_path / "dl", 1)
    ds = pydicom.dcmread(files[0])
    ds.file_meta.SourceApplicationEntityTitle = "DLRECON_AE"
    ds.file_meta.ImplementationVersionName = "FASTMRI_0.3"
    block = ds.private_block(0x0043, "GEMS_RECON", create=True)
    block.add_new(0x01, "LO", "AIR Recon DL 75%")
    item = pydicom.Dataset()
    item.ContributionDescription = "VarNet inference"
    ds.ContributingEquipmentSequence = [item]
    ds.save_as(files[0], enforce_file_format=True)
    clean = make_series(tmp_path / "conv", 1)
    series = {
        "conventional": [(str(clean[0]), pydicom.dcmread(clean[0]))],
        "dl": [(str(files[0]), pydicom.dcmread(files[0]))],
    }
    tags = {x.tag.split(" ", 1)[1] for x in scan_source_headers("K1", series, knee_protocol)}
    assert "SourceApplicationEntityTitle" in tags
    assert "ImplementationVersionName" in tags
    assert any(
        "ContributionDescription" in t and "ContributingEquipmentSequence" in t for t in tags
    )
    assert any("Private" in t or "0043" in t for t in tags)


def test_patient_names_and_ids_are_not_searched():
    scanner = TextScanner(text_terms_for("a", "b"))
    ds = pydicom.Dataset()
    ds.PatientName = "Smith^B"
    ds.PatientID = "A-B-77"
    assert scanner.scan(ds) == []
    ds.SeriesDescription = "tse B"
    assert [hit[0] for hit in scanner.scan(ds)] == ["arm code"]


def text_terms_for(*codes: str):
    from studies.protocol import parse_protocol
    from tests.studies.study_factory import PAIRED_TOML

    text = PAIRED_TOML.replace('code = "conv"', f'code = "{codes[0]}"')
    text = text.replace('code = "dl"', f'code = "{codes[1]}"')
    return text_terms(parse_protocol(text))


def test_matrix_difference(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path, a={"rows": 8, "cols": 8}, b={"rows": 16, "cols": 8})
    leaks = scan(knee_protocol, conv, dl)
    assert [(x.kind, x.text) for x in leaks] == [("matrix", "conventional vs dl: 8x8 vs 16x8")]


def test_pixel_spacing_difference(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path, b={"pixel_spacing": (0.25, 0.25)})
    leaks = scan(knee_protocol, conv, dl)
    assert [x.kind for x in leaks] == ["pixel spacing"]
    assert "(0.5, 0.5) vs (0.25, 0.25)" in leaks[0].text


def test_tiny_spacing_rounding_is_not_a_leak(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path, b={"pixel_spacing": (0.5000001, 0.5)})
    assert scan(knee_protocol, conv, dl) == []


def test_slice_count_thickness_and_spacing_differences(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path / "n", b={"n_slices": 4})
    assert [(x.kind, x.text) for x in scan(knee_protocol, conv, dl)] == [
        ("slice count", "conventional vs dl: 3 vs 4")
    ]
    conv, dl = blinded_pair(tmp_path / "t", b={"slice_thickness": 2.0})
    kinds = [x.kind for x in scan(knee_protocol, conv, dl)]
    assert kinds == ["slice thickness", "slice spacing"]  # positions step by the thickness
    conv, dl = blinded_pair(tmp_path / "g", b={"slice_gap": 0.3})
    leaks = scan(knee_protocol, conv, dl)
    assert [(x.kind, x.text) for x in leaks] == [
        ("slice spacing", "conventional vs dl: 3.000 mm vs 3.300 mm")
    ]


def test_any_other_blinded_header_difference_is_reported(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path)
    for ds in dl:
        ds.SeriesDescription = "changed after blinding"
    leaks = scan(knee_protocol, conv, dl)
    assert [(x.kind, x.tag) for x in leaks] == [("header difference", "SeriesDescription")]


def test_grey_levels():
    assert compare_grey_levels("K1", {"conventional": 4000, "dl": 1100}) == []
    leaks = compare_grey_levels("K1", {"conventional": 4000, "dl": 256}, "src/dl")
    assert [(x.kind, x.arm, x.file) for x in leaks] == [("grey levels", "dl", "src/dl")]
    assert "4000 vs 256 grey levels (12.0 vs 8.0 bits)" in leaks[0].text


def test_several_cases_and_bad_shapes(tmp_path: Path, knee_protocol: Protocol):
    c1 = blinded_pair(tmp_path / "1")
    c2 = blinded_pair(tmp_path / "2", b={"n_slices": 2})
    leaks = scan_for_leaks({"conventional": [c1[0], c2[0]], "dl": [c1[1], c2[1]]}, knee_protocol)
    assert [(x.case, x.kind) for x in leaks] == [("2", "slice count")]
    with pytest.raises(StudyError, match="different numbers of cases"):
        scan_for_leaks({"conventional": [c1[0], c2[0]], "dl": [c1[1]]}, knee_protocol)


def test_series_on_disk_are_read(tmp_path: Path, knee_protocol: Protocol):
    blinded_pair(tmp_path)
    conv = read_series(tmp_path / "blind" / "conventional")
    dl = read_series(tmp_path / "blind" / "dl")
    assert scan(knee_protocol, conv, dl) == []
    arr = pydicom.dcmread(dl.files[0]).pixel_array
    assert arr.dtype == np.uint16
