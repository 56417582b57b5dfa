"""ISMRMRD files from the ISMRMRD project's own generator (Debian ``ismrmrd-tools``).

``ismrmrd_generate_cartesian_shepp_logan`` writes a multi-coil Shepp-Logan scan with optional
noise scans, readout oversampling, acceleration with an interleaved calibration block and
repetitions. Files are then edited with the ``ismrmrd`` package where a test needs something the
generator does not write (discarded samples, orientation, averages, contrasts, another reconSpace).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import ismrmrd
import numpy as np
import pydicom
import pytest
import torch

from recon_backend.cg_sense import cg_sense
from recon_backend.data import load_kspace, load_volumes
from recon_backend.errors import ReconError
from recon_backend.fftc import ifft2c
from recon_backend.inference import reconstruct
from recon_backend.pipeline import run_recon
from recon_backend.transforms import center_crop, rss
from tests.dicom_tools import dciodvfy_errors

GENERATOR = "ismrmrd_generate_cartesian_shepp_logan"


def generate(path: Path, *args: str) -> Path:
    """Run the ISMRMRD generator (skip where ismrmrd-tools is not installed)."""
    tool = shutil.which(GENERATOR)
    if tool is None:
        pytest.skip(f"{GENERATOR} not installed (Debian package ismrmrd-tools)")
    subprocess.run([tool, "-o", str(path), *args], check=True, capture_output=True, timeout=120)
    return path


def rewrite(
    source: Path,
    target: Path,
    edit: Callable[[int, ismrmrd.Acquisition], ismrmrd.Acquisition | None],
    xml_edit: Callable[[str], str] = lambda x: x,
) -> Path:
    """Copy ``source`` to ``target`` through ``edit(number, acquisition)`` (None drops it)."""
    with ismrmrd.Dataset(str(source), "dataset", create_if_needed=False) as old:
        xml = old.read_xml_header()
        xml = xml.decode() if isinstance(xml, bytes) else xml
        acquisitions = [old.read_acquisition(n) for n in range(old.number_of_acquisitions())]
    with ismrmrd.Dataset(str(target), "dataset", create_if_needed=True) as new:
        new.write_xml_header(xml_edit(xml))
        for number, acq in enumerate(acquisitions):
            edited = edit(number, acq)
            if edited is not None:
                new.append_acquisition(edited)
    return target


def _reference_image(tmp_path: Path, matrix: int = 64, coils: int = 8) -> np.ndarray:
    """The noiseless fully sampled RSS of the generator's phantom (cropped to reconSpace)."""
    path = generate(tmp_path / "full.h5", "-m", str(matrix), "-c", str(coils), "-n", "0")
    volume = load_kspace(path)
    image = rss(center_crop(ifft2c(torch.from_numpy(volume.kspace)), (matrix, matrix)), dim=1)
    return image.numpy()


def _fit(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``image`` scaled by least squares onto ``reference`` (prewhitening changes the scale)."""
    return image * float(np.vdot(image, reference).real / np.vdot(image, image).real)


def _nrmse(reference: np.ndarray, image: np.ndarray) -> float:
    return float(np.linalg.norm(image - reference) / np.linalg.norm(reference))


def test_calibration_lines_are_used_and_counted(tmp_path: Path) -> None:
    reference = _reference_image(tmp_path)
    path = generate(tmp_path / "acc.h5", "-m", "64", "-c", "8", "-a", "4", "-w", "32", "-n", "0")
    volumes = load_volumes(path)
    assert len(volumes) == 4  # the generator shifts the pattern over 4 repetitions
    for volume in volumes:
        record = volume.acquisition
        assert record["calibration_lines"] == 24 and record["calibration_and_imaging_lines"] == 8
        assert record["calibration_mode"] == "interleaved"
        assert volume.sampling_mask is not None
        assert int(volume.sampling_mask[16:48].sum()) == 32  # the whole block is sampled
    result = reconstruct(volumes[0], "cg-sense", device="cpu")
    assert result.mask is not None and result.mask.num_low_frequencies == 32
    # with the block the sensitivities are good: CG-SENSE far better than zero filling
    zero = reconstruct(volumes[0], "zero-filled", device="cpu")
    scale = float(
        np.vdot(result.images, reference).real / np.vdot(result.images, result.images).real
    )
    error = _nrmse(reference, result.images[0] * scale)
    zscale = float(np.vdot(zero.images, reference).real / np.vdot(zero.images, zero.images).real)
    assert error < 0.3 and error < 0.6 * _nrmse(reference, zero.images[0] * zscale)


def test_repetitions_become_separate_series(tmp_path: Path) -> None:
    path = generate(tmp_path / "reps.h5", "-m", "32", "-c", "4", "-r", "3")
    volumes = load_volumes(path)
    assert [v.series["repetition"] for v in volumes] == [0, 1, 2]
    assert all(v.fully_sampled for v in volumes)
    # noise differs between repetitions: nothing was averaged together
    assert not np.allclose(volumes[0].kspace, volumes[1].kspace)
    with pytest.raises(ReconError, match="holds 3 series"):
        load_kspace(path)
    out = tmp_path / "out"
    entries = run_recon([path], out, "rss", device="cpu")
    assert [e["acquisition"]["series"]["repetition"] for e in entries] == [0, 1, 2]
    assert [e["series_number"] for e in entries] == [1, 2, 3]
    assert len({e["series_dir"] for e in entries}) == 3
    numbers = {
        pydicom.dcmread(next((out / e["series_dir"]).iterdir())).SeriesNumber for e in entries
    }
    assert numbers == {1, 2, 3}
    again = run_recon([path], out, "zero-filled", device="cpu")
    assert [e["series_number"] for e in again] == [4, 5, 6]


def test_noise_scan_prewhitens_and_says_so(tmp_path: Path) -> None:
    plain = generate(tmp_path / "plain.h5", "-m", "32", "-c", "4")
    noisy = generate(tmp_path / "noise.h5", "-m", "32", "-c", "4", "-C")
    assert load_kspace(plain).acquisition["prewhitened"] is False
    volume = load_kspace(noisy)
    record = volume.acquisition
    assert record["prewhitened"] is True and record["noise_scans"] == 1
    assert record["noise_samples"] > 0

    # correlated channel noise: after whitening the noise scan itself is white
    mixing = np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.complex64)
    rng = np.random.default_rng(0)

    def correlate(number: int, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
        data = acq.data[:2]
        noise = (rng.standard_normal(data.shape) + 1j * rng.standard_normal(data.shape)) * 0.05
        out = ismrmrd.Acquisition.from_array((mixing @ (data + noise)).astype(np.complex64))
        head = acq.getHead()
        head.active_channels = head.available_channels = 2
        out.setHead(head)
        return out

    noise_only = rewrite(noisy, tmp_path / "corr.h5", correlate)
    from recon_backend.data.ismrmrd_h5 import noise_whitener

    with ismrmrd.Dataset(str(noise_only), "dataset", create_if_needed=False) as dataset:
        scan = dataset.read_acquisition(0)
        assert scan.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
        samples = scan.data
    whitener, _ = noise_whitener([samples], 1.0, 1.0, noise_only)
    white = whitener @ samples
    covariance = white @ white.conj().T / (white.shape[1] - 1)
    np.testing.assert_allclose(covariance, np.eye(2), atol=1e-5)
    assert load_kspace(noise_only).acquisition["prewhitened"] is True


def test_discarded_samples_are_dropped(tmp_path: Path) -> None:
    source = generate(tmp_path / "src.h5", "-m", "32", "-c", "4")
    pre, post = 5, 3
    rng = np.random.default_rng(1)

    def pad(number: int, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
        data = acq.data
        junk = lambda n: (rng.standard_normal((data.shape[0], n)) * 1e3).astype(np.complex64)  # noqa: E731
        out = ismrmrd.Acquisition.from_array(np.concatenate([junk(pre), data, junk(post)], axis=1))
        head = acq.getHead()
        head.number_of_samples = data.shape[1] + pre + post
        head.discard_pre, head.discard_post = pre, post
        head.center_sample = acq.center_sample + pre
        out.setHead(head)
        return out

    padded = rewrite(source, tmp_path / "padded.h5", pad)
    np.testing.assert_array_equal(load_kspace(padded).kspace, load_kspace(source).kspace)
    assert load_kspace(padded).acquisition["discard_pre_post"] == [[pre, post, 32]]


def test_recon_space_is_honoured_with_the_right_spacing(tmp_path: Path) -> None:
    source = generate(tmp_path / "src.h5", "-m", "32", "-c", "4")  # encoded 64 x 32, FOV 600x300

    def bigger(xml: str) -> str:
        recon = re.search(r"<reconSpace>.*?</reconSpace>", xml, re.S)
        assert recon is not None
        block = re.sub(r"<x>32</x>", "<x>64</x>", recon.group(0), count=1)
        block = re.sub(r"<y>32</y>", "<y>64</y>", block, count=1)
        return xml.replace(recon.group(0), block)

    path = rewrite(source, tmp_path / "interp.h5", lambda n, a: a, bigger)
    volume = load_kspace(path)
    assert volume.geometry.recon_matrix[:2] == (64, 64)
    result = reconstruct(volume, "rss", device="cpu")
    # 300 mm of the oversampled 600 mm readout = 32 encoded pixels, resampled to 64
    assert result.crop == (32, 32) and result.images.shape[1:] == (64, 64)
    assert result.pixel_spacing_mm == pytest.approx((300 / 64, 300 / 64))
    plain = reconstruct(load_kspace(source), "rss", device="cpu")
    assert plain.images.shape[1:] == (32, 32)
    assert plain.pixel_spacing_mm == pytest.approx((300 / 32, 300 / 32))
    # the interpolated image is the same object at twice the sampling
    np.testing.assert_allclose(result.images[0, ::2, ::2].sum(), plain.images[0].sum(), rtol=0.05)
    out = tmp_path / "out"
    (entry,) = run_recon([path], out, "rss", device="cpu")
    ds = pydicom.dcmread(next((out / entry["series_dir"]).iterdir()))
    assert (ds.Rows, ds.Columns) == (64, 64)
    assert [float(v) for v in ds.PixelSpacing] == pytest.approx([300 / 64, 300 / 64])
    assert entry["acquisition"]["resampled_to"] == [64, 64]


def _oriented(number: int, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
    """A coronal slice: readout head-to-foot (+z down the rows is -S: foot), phase left-right."""
    acq.read_dir[:] = (0.0, 0.0, -1.0)
    acq.phase_dir[:] = (1.0, 0.0, 0.0)
    acq.slice_dir[:] = (0.0, 1.0, 0.0)
    acq.position[:] = (10.0, -20.0, 30.0)
    return acq


def test_orientation_and_position_come_from_the_acquisitions(tmp_path: Path) -> None:
    source = generate(tmp_path / "src.h5", "-m", "32", "-c", "4")
    path = rewrite(source, tmp_path / "cor.h5", _oriented)
    volume = load_kspace(path)
    assert volume.geometry.read_dir == (0.0, 0.0, -1.0)
    assert volume.acquisition["orientation"].startswith("from the acquisitions")
    out = tmp_path / "out"
    (entry,) = run_recon([path], out, "rss", device="cpu")
    (file,) = sorted((out / entry["series_dir"]).iterdir())
    ds = pydicom.dcmread(file)
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage
    # rows along the phase direction (patient left), columns down the readout (feet)
    assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 0, -1]
    spacing = 300 / 32
    expected = np.array([10.0, -20.0, 30.0]) - spacing * 16 * np.array([1, 0, -1])
    np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], expected, atol=1e-4)
    assert dciodvfy_errors(file) == []


def test_no_orientation_in_the_file_is_left_unknown(tmp_path: Path) -> None:
    path = generate(tmp_path / "plain.h5", "-m", "32", "-c", "4")
    out = tmp_path / "out"
    (entry,) = run_recon([path], out, "rss", device="cpu")
    assert entry["acquisition"]["orientation"].startswith("unknown")
    (file,) = sorted((out / entry["series_dir"]).iterdir())
    ds = pydicom.dcmread(file)
    assert "ImageOrientationPatient" not in ds and "ImagePositionPatient" not in ds
    assert dciodvfy_errors(file) == []


def test_averages_are_averaged_and_contrasts_kept_apart(tmp_path: Path) -> None:
    source = generate(tmp_path / "src.h5", "-m", "32", "-c", "4", "-r", "2", "-n", "0.1")

    def as_average(number: int, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
        acq.idx.average = acq.idx.repetition
        acq.idx.repetition = 0
        return acq

    averaged = rewrite(source, tmp_path / "avg.h5", as_average)
    (volume,) = load_volumes(averaged)
    first, second = load_volumes(source)
    np.testing.assert_allclose(volume.kspace, (first.kspace + second.kspace) / 2, rtol=1e-5)
    assert volume.acquisition["averages"] == 2

    def as_contrast(number: int, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
        acq.idx.contrast = acq.idx.repetition
        acq.idx.repetition = 0
        return acq

    contrasts = load_volumes(rewrite(source, tmp_path / "con.h5", as_contrast))
    assert [v.series["contrast"] for v in contrasts] == [0, 1]
    np.testing.assert_array_equal(contrasts[1].kspace, second.kspace)


def test_partitions_become_slices(tmp_path: Path) -> None:
    source = generate(tmp_path / "src.h5", "-m", "32", "-c", "2", "-n", "0")
    partitions = 4
    rng = np.random.default_rng(3)
    weights = rng.standard_normal(partitions) + 1j * rng.standard_normal(partitions)
    # object = phantom x weights[z]: its kz spectrum is the FFT of the weights
    spectrum = np.fft.fftshift(np.fft.fft(np.fft.ifftshift(weights), norm="ortho"))

    def three_d(xml: str) -> str:
        xml = xml.replace("<z>1</z>", f"<z>{partitions}</z>", 1)
        xml = re.sub(
            r"(<encodedSpace>.*?<fieldOfView_mm>.*?<z>)[^<]*", r"\g<1>24", xml, count=1, flags=re.S
        )
        xml = re.sub(
            r"(<reconSpace>.*?<fieldOfView_mm>.*?<z>)[^<]*", r"\g<1>24", xml, count=1, flags=re.S
        )
        xml = xml.replace(
            "</encodingLimits>",
            "<kspace_encoding_step_2><minimum>0</minimum><maximum>3</maximum>"
            "<center>2</center></kspace_encoding_step_2></encodingLimits>",
        )
        return xml.replace("<reconSpace><matrixSize><x>32</x><y>32</y><z>1</z>", "")

    lines: list[ismrmrd.Acquisition] = []
    with ismrmrd.Dataset(str(source), "dataset", create_if_needed=False) as old:
        xml = old.read_xml_header()
        xml = xml.decode() if isinstance(xml, bytes) else xml
        for n in range(old.number_of_acquisitions()):
            acq = old.read_acquisition(n)
            for kz in range(partitions):
                line = ismrmrd.Acquisition.from_array(
                    (acq.data * spectrum[kz]).astype(np.complex64)
                )
                line.setHead(acq.getHead())
                line.idx.kspace_encode_step_2 = kz
                lines.append(line)
    path = tmp_path / "3d.h5"
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as new:
        new.write_xml_header(three_d(xml))
        for line in lines:
            new.append_acquisition(line)
    volume = load_kspace(path)
    assert volume.kspace.shape[0] == partitions and volume.geometry.three_d
    flat = load_kspace(source).kspace[0]
    for z in range(partitions):
        np.testing.assert_allclose(volume.kspace[z], flat * weights[z], rtol=1e-4, atol=1e-5)
    assert volume.geometry.slice_thickness_mm == pytest.approx(6.0)


def test_separate_calibration_scans_are_refused(tmp_path: Path) -> None:
    source = generate(tmp_path / "src.h5", "-m", "32", "-c", "4", "-a", "2", "-w", "8")
    path = rewrite(
        source,
        tmp_path / "sep.h5",
        lambda n, a: a,
        lambda xml: xml.replace(">interleaved<", ">separate<"),
    )
    with pytest.raises(ReconError, match="calibrationMode 'separate'") as info:
        load_volumes(path)
    assert str(path) in str(info.value)


def test_a_silent_channel_in_the_noise_scan_is_a_clear_error(tmp_path: Path) -> None:
    source = generate(tmp_path / "src.h5", "-m", "32", "-c", "4", "-C")

    def silence(number: int, acq: ismrmrd.Acquisition) -> ismrmrd.Acquisition:
        if acq.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT):
            data = acq.data.copy()
            data[2] = 0
            out = ismrmrd.Acquisition.from_array(data)
            out.setHead(acq.getHead())
            return out
        return acq

    path = rewrite(source, tmp_path / "dead.h5", silence)
    with pytest.raises(ReconError, match="noise covariance is singular") as info:
        load_volumes(path)
    assert str(path) in str(info.value)


def test_cg_sense_uses_the_block_for_its_sensitivities(tmp_path: Path) -> None:
    """The same acquisition reconstructed with the block and with a 1-column centre."""
    reference = _reference_image(tmp_path)
    path = generate(tmp_path / "acc.h5", "-m", "64", "-c", "8", "-a", "4", "-w", "32", "-n", "0")
    volume = load_volumes(path)[0]
    mask = torch.from_numpy(volume.sampling_mask.astype(np.float32)).reshape(1, 1, 1, -1)
    kspace = torch.from_numpy(volume.kspace)
    results = {}
    for width in (32, 1):
        image = center_crop(cg_sense(kspace, mask, width).abs(), (64, 64)).numpy()
        results[width] = _nrmse(reference, _fit(image[0], reference[0]))
    assert results[32] < 0.5 * results[1]
