"""ISMRMRD HDF5 input: acquisitions sorted by encoding counters into fastMRI layout."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest

from recon_backend.data import load_kspace, make_geometry
from recon_backend.data.fastmri_h5 import build_header
from recon_backend.data.ismrmrd_h5 import noise_whitener, read_ismrmrd_h5, write_ismrmrd_h5
from recon_backend.errors import ReconError
from tests.recon_backend.conftest import simulate_kspace


def _write_shuffled(
    path: Path, kspace: np.ndarray, seed: int, noise_lines: int = 2, image_lines: bool = True
) -> list[np.ndarray]:
    """Write one acquisition per (slice, line) in random order, plus noise scans to skip."""
    n_slices, n_coils, _height, width = kspace.shape
    geometry = make_geometry(kspace.shape)
    rng = np.random.default_rng(seed)
    order = [(s, line) for s in range(n_slices) for line in range(width) if image_lines]
    rng.shuffle(order)
    noise_scans = []
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as dataset:
        dataset.write_xml_header(build_header(geometry, n_coils, n_slices))
        for _ in range(noise_lines):
            noise = ismrmrd.Acquisition.from_array(
                (rng.standard_normal((n_coils, kspace.shape[2])) * 1e3).astype(np.complex64)
            )
            noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
            dataset.append_acquisition(noise)
            noise_scans.append(noise.data.copy())
        for s, line in order:
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(kspace[s, :, :, line]))
            acq.idx.slice = s
            acq.idx.kspace_encode_step_1 = line
            acq.position[:] = (0.0, 0.0, 5.0 * s)
            acq.read_dir[:] = (0.0, 1.0, 0.0)
            acq.phase_dir[:] = (1.0, 0.0, 0.0)
            dataset.append_acquisition(acq)
    return noise_scans


def test_shuffled_acquisitions_are_sorted_by_counters(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=3, coils=2, height=16, width=12)
    path = tmp_path / "raw.h5"
    noise = _write_shuffled(path, kspace, seed=3)
    volume = load_kspace(path)
    # the two noise scans prewhiten every line
    whitener, _ = noise_whitener(noise, 1.0, 1.0, path)
    expected = np.einsum("dc,schw->sdhw", whitener, kspace)
    np.testing.assert_allclose(volume.kspace, expected, rtol=1e-4, atol=1e-9)
    assert volume.acquisition["prewhitened"] and volume.acquisition["noise_scans"] == 2
    assert volume.fully_sampled
    assert volume.geometry.slice_centres_mm == ((0.0, 0.0, 0.0), (0.0, 0.0, 5.0), (0.0, 0.0, 10.0))
    assert volume.geometry.read_dir == (0.0, 1.0, 0.0)


def test_writer_round_trip_with_padding_and_undersampling(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=2, coils=3, height=16, width=12)
    geometry = replace(
        make_geometry(kspace.shape, padding=(1, 11)),
        read_dir=(0.0, 1.0, 0.0),
        phase_dir=(1.0, 0.0, 0.0),
        slice_centres_mm=((1.0, 2.0, 3.0), (1.0, 2.0, 6.0)),
    )
    mask = np.zeros(12, bool)
    mask[[1, 3, 5, 6, 7, 9]] = True
    expected = kspace * mask
    path = write_ismrmrd_h5(tmp_path / "u.h5", kspace, geometry, sampling_mask=mask)
    read, read_geometry, read_mask = read_ismrmrd_h5(path)
    np.testing.assert_array_equal(read, expected)
    np.testing.assert_array_equal(read_mask, mask)
    assert (read_geometry.padding_left, read_geometry.padding_right) == (1, 11)
    assert read_geometry.slice_centres_mm == geometry.slice_centres_mm
    assert not load_kspace(path).fully_sampled


def test_no_image_acquisitions(tmp_path: Path) -> None:
    path = tmp_path / "noise_only.h5"
    _write_shuffled(path, simulate_kspace(1, 2, 16, 12), 1, image_lines=False)
    with pytest.raises(ReconError, match="no image acquisitions") as info:
        load_kspace(path)
    assert str(path) in str(info.value)


def test_line_outside_the_matrix(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=1, coils=2, height=16, width=12)
    path = write_ismrmrd_h5(tmp_path / "x.h5", kspace, make_geometry(kspace.shape))
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=False) as dataset:
        acq = ismrmrd.Acquisition.from_array(np.ones((2, 16), np.complex64))
        acq.idx.kspace_encode_step_1 = 40
        dataset.append_acquisition(acq)
    with pytest.raises(ReconError, match="kspace_encode_step_1 40") as info:
        load_kspace(path)
    assert str(path) in str(info.value)


def test_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr.h5"
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as dataset:
        dataset.write_xml_header("<ismrmrdHeader")
        dataset.append_acquisition(ismrmrd.Acquisition.from_array(np.ones((1, 4), np.complex64)))
    with pytest.raises(ReconError, match="not valid XML") as info:
        load_kspace(path)
    assert str(path) in str(info.value)


def test_plain_hdf5_without_dataset_is_not_ismrmrd(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as hf:
        hf.create_group("dataset")
    with pytest.raises(ReconError, match="not an ISMRMRD file"):
        read_ismrmrd_h5(path)
