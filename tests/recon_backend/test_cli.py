"""``blindreader recon``: series + manifest end to end, repeated runs, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
import torch
from typer.testing import CliRunner

from blindreader.cli import app
from recon_backend.errors import ReconError
from recon_backend.manifest import ENTRY_KEYS
from recon_backend.models import VarNet
from recon_backend.pipeline import DEMO_VARNET, run_recon
from tests.recon_backend.conftest import MakeFile

PROVENANCE_KEYS = {
    "mask_type",
    "accel",
    "center_fraction",
    "seed",
    "model_file",
    "model_sha256",
    "model_hparams",
    "code_version",
    "device",
    "torch_version",
    "precision",
    "batch_size",
    "batch_halvings",
    "estimated_bytes_per_slice",
    "seconds",
    "peak_memory_bytes",
}


def _recon(*args: str) -> object:
    return CliRunner().invoke(app, ["recon", *args], catch_exceptions=False)


def test_recon_writes_series_and_manifest(fastmri_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _recon(str(fastmri_file), "--out", str(out), "--method", "cg-sense", "--device", "cpu")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    entries = json.loads((out / "manifest.json").read_text())
    assert len(entries) == 1
    entry = entries[0]
    assert tuple(entry) == ENTRY_KEYS
    assert entry["input"] == str(fastmri_file.resolve())
    assert entry["method"] == "cg-sense" and entry["n_slices"] == 3
    assert set(entry["provenance"]) >= PROVENANCE_KEYS
    prov = entry["provenance"]
    assert (prov["mask_type"], prov["accel"], prov["center_fraction"]) == (
        "equispaced-fraction",
        4,
        0.08,
    )
    assert prov["seed"] == [ord(c) for c in fastmri_file.name]
    assert prov["torch_version"] == torch.__version__ and prov["peak_memory_bytes"] > 0
    assert prov["precision"]["policy"] == "fp32" and prov["precision"]["fft_dtype"] == "complex64"
    acquisition = entry["acquisition"]
    assert acquisition["format"] == "fastmri" and acquisition["prewhitened"] is False
    assert acquisition["orientation"].startswith("unknown")
    assert entry["series_number"] == 1
    assert set(entry["metrics"]) == {"nmse", "psnr", "ssim"}
    assert 0 < entry["metrics"]["ssim"] < 1
    series = out / entry["series_dir"]
    datasets = [pydicom.dcmread(f) for f in sorted(series.iterdir())]
    assert len(datasets) == 3
    assert {ds.SeriesInstanceUID for ds in datasets} == {entry["series_instance_uid"]}
    for ds in datasets:
        text = " ".join(str(el.value) for el in ds.iterall() if el.keyword != "PixelData").lower()
        assert "cg-sense" not in text and fastmri_file.stem not in text
    assert "manifest" in result.output  # type: ignore[attr-defined]
    # a second method on the same input: the same study, the next SeriesNumber
    again = _recon(str(fastmri_file), "--out", str(out), "--method", "rss", "--device", "cpu")
    assert again.exit_code == 0, again.output  # type: ignore[attr-defined]
    second = json.loads((out / "manifest.json").read_text())[1]
    assert second["series_number"] == 2
    ds = pydicom.dcmread(next((out / second["series_dir"]).iterdir()))
    assert ds.SeriesNumber == 2 and ds.StudyInstanceUID == datasets[0].StudyInstanceUID


def test_unknown_precision_is_refused_before_any_work(fastmri_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(ReconError, match="--precision"):
        run_recon([fastmri_file], out, "rss", device="cpu", precision="fp8")
    assert not out.exists()


def test_running_again_adds_to_the_manifest(fastmri_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    for method in ("rss", "zero-filled", "zero-filled"):
        entries = run_recon([fastmri_file], out, method, device="cpu")
        assert len(entries) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["method"] for e in manifest] == ["rss", "zero-filled", "zero-filled"]
    dirs = [e["series_dir"] for e in manifest]
    assert len(set(dirs)) == 3 and all((out / d).is_dir() for d in dirs)
    assert manifest[0]["metrics"]["psnr"] is None  # identical to its own reference
    assert manifest[1]["metrics"] == manifest[2]["metrics"]  # same seeded mask, same images


def test_corrupt_manifest_stops_before_any_work(fastmri_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("[{")
    with pytest.raises(ReconError, match="left unchanged"):
        run_recon([fastmri_file], out, "rss", device="cpu")
    assert [p.name for p in out.iterdir()] == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "[{"


def test_varnet_with_model_file_records_its_checksum(
    make_fastmri_file: MakeFile, tmp_path: Path
) -> None:
    path = make_fastmri_file("knee.h5", n_slices=2)
    torch.manual_seed(0)
    weights = tmp_path / "small.pt"
    torch.save(
        VarNet(num_cascades=1, sens_chans=2, sens_pools=1, chans=2, pools=1).state_dict(), weights
    )
    entries = run_recon(
        [path], tmp_path / "out", "varnet", model_path=weights, device="cpu", batch_size=1
    )
    prov = entries[0]["provenance"]
    assert prov["model_hparams"]["num_cascades"] == 1
    assert len(prov["model_sha256"]) == 64 and prov["batch_size"] == 1


def test_unet_without_a_model_is_refused(fastmri_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ReconError, match="--model"):
        run_recon([fastmri_file], tmp_path / "out", "unet", device="cpu")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not DEMO_VARNET.is_file(), reason="the demo VarNet is not in this checkout")
def test_varnet_defaults_to_the_bundled_demo_model(fastmri_file: Path, tmp_path: Path) -> None:
    result = _recon(
        str(fastmri_file), "--out", str(tmp_path / "o"), "--method", "varnet", "--device", "cpu"
    )
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "bundled demo VarNet" in result.output  # type: ignore[attr-defined]
    entry = json.loads((tmp_path / "o" / "manifest.json").read_text())[0]
    assert entry["provenance"]["model_file"] == str(DEMO_VARNET)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["{file}", "--method", "magic"], "--method: 'magic'"),
        (["{file}", "--method", "zero-filled", "--mask", "spiral"], "--mask: 'spiral'"),
        (["{file}", "--method", "zero-filled", "--center-fraction", "1.5"], "--center-fraction"),
        (["{file}", "--method", "zero-filled", "--accel", "0"], "--accel"),
        (["{file}", "--method", "rss", "--device", "tpu"], "--device: 'tpu'"),
        (["{file}", "--method", "unet", "--model", "nowhere.pt"], "nowhere.pt"),
    ],
)
def test_bad_options_are_recon_errors(
    fastmri_file: Path, tmp_path: Path, args: list[str], fragment: str
) -> None:
    argv = [a.replace("{file}", str(fastmri_file)) for a in args]
    with pytest.raises(ReconError) as info:
        _recon(*argv, "--out", str(tmp_path / "o"))
    assert fragment in str(info.value)
    assert not (tmp_path / "o").exists()


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "blindreader",
            "recon",
            "missing.h5",
            "--method",
            "rss",
            "--out",
            "o",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["blindreader: error: missing.h5: input file not found"]
