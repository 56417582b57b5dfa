"""The arm leak scan: every kind of leak is found, a clean pair passes."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from studies.deidentify import blind_series
from studies.dicom_series import SeriesInfo, read_series
from studies.errors import StudyError
from studies.leak_scan import Leak, scan_for_leaks
from studies.protocol import Protocol
from tests.studies.conftest import make_series


def blinded_pair(tmp_path: Path, a: dict | None = None, b: dict | None = None):
    """Make the two arms of one case, blind them, return their SeriesInfo."""
    study = "1.2.826.0.1.3680043.8.498.77"
    uid_map: dict[str, str] = {}
    out = []
    for arm, extra in (("conventional", a or {}), ("dl", b or {})):
        make_series(tmp_path / "src" / arm, **{"n_slices": 3, "study_uid": study, **extra})
        blind_series(
            read_series(tmp_path / "src" / arm),
            tmp_path / "blind" / arm,
            opaque_series_id=f"S{len(out)}",
            opaque_patient_id="P1",
            uid_map=uid_map,
        )
        out.append(read_series(tmp_path / "blind" / arm))
    return out


def scan(protocol: Protocol, conv: SeriesInfo, dl: SeriesInfo) -> list[Leak]:
    return scan_for_leaks({"conventional": [conv], "dl": [dl]}, protocol, case_ids=["K1"])


def test_clean_pair_passes(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path)
    assert scan(knee_protocol, conv, dl) == []


def test_raw_vendor_series_description_leaks_but_blinding_removes_it(
    tmp_path: Path, knee_protocol: Protocol
):
    make_series(tmp_path / "raw", 2, SeriesDescription="PD COR AIR Recon DL")
    make_series(tmp_path / "ref", 2)
    leaks = scan(knee_protocol, read_series(tmp_path / "ref"), read_series(tmp_path / "raw"))
    found = {(leak.tag.split()[-1], leak.text.split(" contains ")[-1].split()[0]) for leak in leaks}
    assert ("SeriesDescription", "'dl'") in found  # the arm code
    assert ("SeriesDescription", "'AIR'") in found
    assert ("SeriesDescription", "'DL'") in found
    assert ("SeriesDescription", "'recon'") in found
    assert all(leak.arm == "dl" and leak.case == "K1" for leak in leaks if "Series" in leak.tag)
    leak = next(x for x in leaks if "SeriesDescription" in x.tag)
    assert "(in 2 files)" in leak.text and leak.file.endswith("slice000.dcm")
    assert "K1" in str(leak) and "SeriesDescription" in str(leak)
    conv, dl = blinded_pair(tmp_path / "b", b={"SeriesDescription": "PD COR AIR Recon DL"})
    assert scan(knee_protocol, conv, dl) == []


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("SequenceName", "Deep Resolve", "deep"),
        ("SequenceName", "varnet_v2", "var[\\s_-]*net"),
        ("SequenceName", "UNet", "u[\\s_-]?net"),
        ("SequenceName", "SwiftMR", "swift[\\s_-]*mr"),
        ("SequenceName", "AiCE", "aice"),
        ("SequenceName", "sonicDL", "sonic[\\s_-]*dl"),
        ("SequenceName", "zero-filled", "zero[\\s_-]*fill(?:ed|ing)?"),
        ("SequenceName", "CG-SENSE", "cg[\\s_-]*sense"),
        ("SequenceName", "DLR_4x", "DLR"),
        ("SequenceName", "fs_AI", "AI"),
        ("ImageType", ["DERIVED", "PRIMARY", "DL"], "DL"),
    ],
)
def test_keywords_are_found(tmp_path: Path, knee_protocol: Protocol, keyword, value, expected):
    conv, dl = blinded_pair(tmp_path, a={keyword: value}, b={keyword: value})
    leaks = [x for x in scan(knee_protocol, conv, dl) if x.kind == "keyword"]
    assert any(x.text.endswith(f"contains {expected!r} (in 3 files)") for x in leaks), leaks
    assert {x.arm for x in leaks} == {"conventional", "dl"}


@pytest.mark.parametrize(
    "value", ["air coil", "Handle", "Aided", "DIRECT", "T2 TSE", "MAIN", "deeper", "ORIGINAL"]
)
def test_ordinary_words_do_not_trip(tmp_path: Path, knee_protocol: Protocol, value: str):
    conv, dl = blinded_pair(tmp_path, a={"SequenceName": value}, b={"SequenceName": value})
    assert scan(knee_protocol, conv, dl) == []


def test_arm_description_is_found(tmp_path: Path, knee_protocol: Protocol):
    text = "Conventional  parallel-imaging reconstruction"  # extra space: still found
    conv, dl = blinded_pair(tmp_path)
    conv_copy = blind_then_set(conv, "ManufacturerModelName", text)
    leaks = scan(knee_protocol, conv_copy, dl)
    assert any(x.kind == "arm description" and x.arm == "conventional" for x in leaks)


def blind_then_set(series: SeriesInfo, keyword: str, value: str) -> list[pydicom.Dataset]:
    """Datasets of a blinded series with one attribute set (the scan takes datasets too)."""
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in series.files]
    for ds in datasets:
        setattr(ds, keyword, value)
    return datasets


def test_arm_code_in_any_text_tag(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path)
    leaks = scan(knee_protocol, conv, blind_then_set(dl, "SequenceName", "tse_dl"))
    codes = [x for x in leaks if x.kind == "arm code"]
    assert codes and codes[0].tag.endswith("SequenceName") and "'dl'" in codes[0].text
    assert codes[0].file == str(dl.files[0])


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


def test_slice_count_difference(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path, b={"n_slices": 4})
    leaks = scan(knee_protocol, conv, dl)
    assert [(x.kind, x.text) for x in leaks] == [("slice count", "conventional vs dl: 3 vs 4")]


def test_header_difference(tmp_path: Path, knee_protocol: Protocol):
    conv, dl = blinded_pair(tmp_path, b={"ImageType": ["DERIVED", "SECONDARY"], "BitsStored": 16})
    leaks = scan(knee_protocol, conv, dl)
    differing = {x.tag for x in leaks if x.kind == "header difference"}
    assert differing == {"ImageType", "BitsStored"}


def test_several_cases_and_bad_shapes(tmp_path: Path, knee_protocol: Protocol):
    c1 = blinded_pair(tmp_path / "1")
    c2 = blinded_pair(tmp_path / "2", b={"n_slices": 2})
    leaks = scan_for_leaks({"conventional": [c1[0], c2[0]], "dl": [c1[1], c2[1]]}, knee_protocol)
    assert [(x.case, x.kind) for x in leaks] == [("2", "slice count")]
    with pytest.raises(StudyError, match="different numbers of cases"):
        scan_for_leaks({"conventional": [c1[0], c2[0]], "dl": [c1[1]]}, knee_protocol)


def test_opaque_ids_do_not_trip_short_arm_codes(tmp_path: Path, knee_protocol: Protocol):
    protocol = knee_protocol.model_copy(
        update={
            "arms": [
                a.model_copy(update={"code": c})
                for a, c in zip(knee_protocol.arms, "ab", strict=True)
            ]
        }
    )
    conv, dl = blinded_pair(tmp_path)
    datasets = blind_then_set(dl, "ClinicalTrialSeriesID", "s-3a12b4")
    for ds in datasets:
        ds.PatientID = ds.PatientName = "p-9b0a1"
    assert scan_for_leaks({"a": [conv], "b": [datasets]}, protocol) == []
    datasets = blind_then_set(dl, "SequenceName", "tse 3b4")
    leaks = scan_for_leaks({"a": [conv], "b": [datasets]}, protocol)
    assert [(x.kind, x.tag.split()[-1]) for x in leaks] == [
        ("arm code", "SequenceName"),
        ("header difference", "SequenceName"),
    ]
