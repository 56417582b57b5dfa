"""fastMRI HDF5 reading and writing: round trips, header facts as fastMRI reads them, bad files."""

from __future__ import annotations

from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest
from fastmri.data.mri_data import SliceDataset

from recon_backend.data import KspaceVolume, load_kspace, make_geometry, write_fastmri_h5
from recon_backend.data.fastmri_h5 import H5Kspace, build_header, parse_header
from recon_backend.errors import ReconError
from tests.recon_backend.conftest import simulate_kspace


def test_round_trip_multicoil(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=2, coils=3, height=32, width=24)
    rss = np.abs(kspace[:, 0, 8:24]).astype(np.float32)
    path = write_fastmri_h5(
        tmp_path / "a.h5",
        kspace,
        recon_matrix=(16, 24),
        pixel_spacing_mm=(0.5, 0.75),
        slice_thickness_mm=4.0,
        attrs={"acquisition": "CORPD_FBK", "patient_id": "abc"},
        reconstruction_rss=rss,
    )
    volume = load_kspace(path)
    assert isinstance(volume, KspaceVolume)
    assert volume.kspace.dtype == np.complex64
    np.testing.assert_array_equal(volume.kspace, kspace)
    assert volume.multicoil and volume.fully_sampled and volume.num_slices == 2
    assert volume.attrs["acquisition"] == "CORPD_FBK"
    assert volume.attrs["patient_id"] == "abc"
    assert volume.attrs["max"] == pytest.approx(float(rss.max()))
    np.testing.assert_array_equal(volume.reference, rss)
    g = volume.geometry
    assert g.encoded_matrix == (32, 24, 1)
    assert g.recon_size == (16, 24)
    assert g.pixel_spacing_mm == pytest.approx((0.5, 0.75))
    assert g.slice_thickness_mm == pytest.approx(4.0)
    assert (g.padding_left, g.padding_right) == (0, 24)


def test_single_coil_is_read_with_one_coil(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=2, coils=1, height=32, width=24)
    path = write_fastmri_h5(tmp_path / "s.h5", kspace, single_coil=True)
    with h5py.File(path) as hf:
        assert hf["kspace"].shape == (2, 32, 24)
    volume = load_kspace(path)
    assert volume.kspace.shape == (2, 1, 32, 24) and not volume.multicoil
    np.testing.assert_array_equal(volume.kspace, kspace)
    lazy = load_kspace(path, lazy=True)
    np.testing.assert_array_equal(lazy.kspace[1], kspace[1])


def test_lazy_reads_only_requested_slices(fastmri_file: Path) -> None:
    eager = load_kspace(fastmri_file)
    lazy = load_kspace(fastmri_file, lazy=True)
    assert isinstance(lazy.kspace, H5Kspace)
    assert lazy.kspace.shape == eager.kspace.shape
    np.testing.assert_array_equal(lazy.kspace[1:3], eager.kspace[1:3])
    np.testing.assert_array_equal(lazy.kspace[-1], eager.kspace[-1])
    np.testing.assert_array_equal(np.asarray(lazy.kspace), eager.kspace)


def test_geometry_matches_fastmri_metadata(tmp_path: Path) -> None:
    """Padding and sizes as fastMRI's SliceDataset derives them from the same header."""
    kspace = simulate_kspace(n_slices=1, coils=2, height=40, width=30)
    kspace[..., :3] = 0
    kspace[..., 27:] = 0
    geometry = make_geometry(kspace.shape, (20, 20), padding=(3, 27))
    path = write_fastmri_h5(tmp_path / "p.h5", kspace, geometry)
    metadata, num_slices = SliceDataset._retrieve_metadata(None, path)  # type: ignore[arg-type]
    ours = load_kspace(path).geometry
    assert num_slices == 1
    assert (ours.padding_left, ours.padding_right) == (
        metadata["padding_left"],
        metadata["padding_right"],
    )
    assert ours.encoded_matrix == metadata["encoding_size"]
    assert ours.recon_matrix == metadata["recon_size"]
    assert (ours.padding_left, ours.padding_right) == (3, 27)


def test_header_is_valid_ismrmrd_xml() -> None:
    geometry = make_geometry((2, 4, 64, 48), sequence={"TR": 2500.0, "TE": 30.0})
    header = ismrmrd.xsd.CreateFromDocument(build_header(geometry, num_coils=4, num_slices=2))
    assert header.encoding[0].reconSpace.matrixSize.x == 32
    assert header.sequenceParameters.TR == [2500.0]
    assert parse_header(build_header(geometry, 4, 2), "x") == geometry.__class__(
        **{**geometry.__dict__, "slice_spacing_mm": None}
    )


def test_undersampled_file_keeps_its_mask(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=1, coils=2, height=32, width=24)
    mask = np.zeros(24, bool)
    mask[::3] = True
    mask[10:14] = True
    path = write_fastmri_h5(tmp_path / "u.h5", kspace * mask, mask=mask)
    volume = load_kspace(path)
    assert not volume.fully_sampled
    np.testing.assert_array_equal(volume.sampling_mask, mask)


# --- bad inputs: a ReconError that names the file and the field ----------------------------


def _expect_error(path: Path, *fragments: str, lazy: bool = False) -> None:
    with pytest.raises(ReconError) as info:
        volume = load_kspace(path, lazy=lazy)
        volume.kspace[:]
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.h5", "not found")


def test_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "notes.h5"
    path.write_text("this is not HDF5")
    _expect_error(path, "not a readable HDF5 file")


def test_no_kspace(tmp_path: Path) -> None:
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as hf:
        hf.create_dataset("image", data=np.zeros((2, 2)))
    _expect_error(path, "'kspace'", "image")


def test_wrong_rank(tmp_path: Path) -> None:
    path = tmp_path / "rank.h5"
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", data=np.zeros((4, 4), np.complex64))
    _expect_error(path, "kspace", "rank 2")


def test_real_kspace(tmp_path: Path) -> None:
    path = tmp_path / "real.h5"
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", data=np.zeros((1, 2, 4, 4), np.float32))
    _expect_error(path, "kspace", "complex")


@pytest.mark.parametrize("lazy", [False, True])
def test_non_finite_values(tmp_path: Path, lazy: bool) -> None:
    kspace = simulate_kspace(n_slices=3, coils=2, height=16, width=12)
    kspace[2, 1, 3, 4] = np.nan
    path = write_fastmri_h5(tmp_path / "nan.h5", kspace)
    _expect_error(path, "kspace", "non-finite", "slice 2", lazy=lazy)


def test_missing_header(tmp_path: Path) -> None:
    path = tmp_path / "nohdr.h5"
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", data=np.zeros((1, 2, 4, 4), np.complex64))
    _expect_error(path, "ismrmrd_header")


def _write_with_header(path: Path, header: bytes) -> Path:
    with h5py.File(path, "w") as hf:
        hf.create_dataset("kspace", data=np.zeros((1, 2, 8, 6), np.complex64))
        hf.create_dataset("ismrmrd_header", data=np.bytes_(header))
    return path


def test_unparsable_header(tmp_path: Path) -> None:
    path = _write_with_header(tmp_path / "bad.h5", b"<ismrmrdHeader><encoding>")
    _expect_error(path, "ismrmrd_header", "not valid XML")


def test_header_missing_element(tmp_path: Path) -> None:
    header = build_header(make_geometry((1, 2, 8, 6)), 2, 1)
    header = header.replace("<reconSpace>", "<reconSpaceX>").replace(
        "</reconSpace>", "</reconSpaceX>"
    )
    path = _write_with_header(tmp_path / "miss.h5", header.encode())
    _expect_error(path, "ismrmrd_header", "reconSpace")


def test_header_element_not_a_number(tmp_path: Path) -> None:
    header = build_header(make_geometry((1, 2, 8, 6)), 2, 1)
    start = header.index("<center>")
    header = header[:start] + "<center>middle" + header[header.index("</center>") :]
    path = _write_with_header(tmp_path / "nan_hdr.h5", header.encode())
    _expect_error(path, "kspace_encoding_step_1.center", "'middle'")


def test_writer_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    write_fastmri_h5(path, simulate_kspace(n_slices=1, coils=1, height=16, width=12))
    with pytest.raises(ReconError, match="rank"):
        write_fastmri_h5(path, np.zeros((8, 6), np.complex64))
    assert load_kspace(path).kspace.shape == (1, 1, 16, 12)
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"]
