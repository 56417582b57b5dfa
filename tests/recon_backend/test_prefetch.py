"""Read-ahead of k-space batches: a real background thread, reused buffers, errors carried over."""

from __future__ import annotations

import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from recon_backend.data import load_kspace, write_fastmri_h5
from recon_backend.data.subsample import create_mask_for_mask_type
from recon_backend.device import precision_policy
from recon_backend.errors import ReconError
from recon_backend.inference import reconstruct
from recon_backend.models import VarNet
from recon_backend.prefetch import BatchPrefetcher, host_buffer
from tests.recon_backend.conftest import MakeFile, simulate_kspace


@pytest.mark.parametrize("background", [True, False])
def test_batches_are_the_file_in_reused_buffers(fastmri_file: Path, background: bool) -> None:
    expected = load_kspace(fastmri_file).kspace
    volume = load_kspace(fastmri_file, lazy=True)
    seen, pointers = [], set()
    with BatchPrefetcher(volume, 2, background=background) as reader:
        for batch in reader:
            seen.append(batch.data.numpy().copy())
            pointers.add(batch.buffer.data_ptr())
            reader.release(batch)
    np.testing.assert_array_equal(np.concatenate(seen), expected)
    assert len(pointers) <= 2  # the ring: no new buffer per batch
    main = threading.current_thread().name
    assert (main in reader.reader_threads) == (not background)
    if background:
        assert reader.reader_threads == {"kspace-read-ahead"}


def test_in_memory_and_single_coil_and_complex128_sources(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=3, coils=1, height=16, width=12)
    single = write_fastmri_h5(tmp_path / "single.h5", kspace, single_coil=True)
    double = tmp_path / "double.h5"
    write_fastmri_h5(double, kspace)
    with h5py.File(double, "r+") as hf:
        data = hf["kspace"][()].astype(np.complex128)
        del hf["kspace"]
        hf.create_dataset("kspace", data=data)
    for volume in (load_kspace(single, lazy=True), load_kspace(double, lazy=True),
                   load_kspace(single)):  # fmt: skip
        with BatchPrefetcher(volume, 2) as reader:
            got = []
            for batch in reader:
                got.append(batch.data.numpy().copy())
                reader.release(batch)
        np.testing.assert_array_equal(np.concatenate(got), kspace)


def test_an_error_on_the_thread_reaches_the_consumer(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=5, coils=2, height=16, width=12)
    kspace[3, 1, 2, 2] = np.nan
    volume = load_kspace(write_fastmri_h5(tmp_path / "nan.h5", kspace), lazy=True)
    starts = []
    with pytest.raises(ReconError, match="slice 3") as info, BatchPrefetcher(volume, 2) as reader:
        for batch in reader:
            starts.append(batch.start)
            reader.release(batch)
    assert starts == [0] and "nan.h5" in str(info.value)


def test_a_consumer_that_stops_early_does_not_hang(make_fastmri_file: MakeFile) -> None:
    volume = load_kspace(make_fastmri_file("ten.h5", n_slices=10), lazy=True)
    reader = BatchPrefetcher(volume, 1)
    with pytest.raises(KeyError), reader:
        for _batch in reader:
            raise KeyError("consumer failed")  # never releases: the thread waits for a buffer
    assert not reader._thread.is_alive()


def test_non_finite_kspace_stops_the_cpu_reconstruction_naming_the_slice(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=4, coils=2, height=16, width=12)
    kspace[2, 0, 5, 3] = np.inf
    path = write_fastmri_h5(tmp_path / "inf.h5", kspace)
    mask = create_mask_for_mask_type("equispaced-fraction", [0.08], [4])
    torch.manual_seed(0)
    model = VarNet(num_cascades=1, sens_chans=2, sens_pools=2, chans=2, pools=2)
    for method in ("rss", "zero-filled", "cg-sense", "varnet"):
        with pytest.raises(ReconError, match="slice 2") as info:
            reconstruct(
                load_kspace(path, lazy=True),
                method,
                model=model if method == "varnet" else None,
                mask_func=mask,
                device="cpu",
            )
        assert str(path) in str(info.value)


def test_pinned_buffers_only_for_cuda(fastmri_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import recon_backend.inference as inference

    seen: list[dict[str, object]] = []
    real = inference.BatchPrefetcher

    def spy(volume, batch, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(kwargs)
        return real(volume, batch, **kwargs)

    monkeypatch.setattr(inference, "BatchPrefetcher", spy)
    reconstruct(load_kspace(fastmri_file, lazy=True), "rss", device="cpu")
    mask = create_mask_for_mask_type("equispaced-fraction", [0.08], [4])
    reconstruct(load_kspace(fastmri_file, lazy=True), "cg-sense", mask_func=mask, device="cpu")
    assert seen == [
        {"pinned": False, "background": False, "check": False},
        {"pinned": False, "background": False, "check": True},
    ]
    assert not host_buffer((2, 3), pinned=False).is_pinned()


def test_precision_policies_are_applied_recorded_and_restored() -> None:
    cpu = torch.device("cpu")
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with precision_policy(cpu, "fp32") as record:
        assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert record == {"policy": "fp32", "tf32_matmul": False, "tf32_cudnn": False,
                          "autocast_dtype": None, "fft_dtype": "complex64"}  # fmt: skip
    with precision_policy(cpu, "tf32") as record:
        assert torch.backends.cudnn.allow_tf32
        assert record["tf32_cudnn"] is False  # no effect on a CPU, and the record says so
    with precision_policy(cpu, "amp") as record:
        assert torch.is_autocast_enabled("cpu") and record["autocast_dtype"] == "bfloat16"
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    with pytest.raises(ReconError, match="--precision"), precision_policy(cpu, "fp8"):
        pass


def test_amp_keeps_the_ffts_in_float32(fastmri_file: Path) -> None:
    torch.manual_seed(0)
    model = VarNet(num_cascades=2, sens_chans=2, sens_pools=2, chans=4, pools=2)
    mask = create_mask_for_mask_type("equispaced-fraction", [0.08], [4])
    volume = load_kspace(fastmri_file, lazy=True)
    full = reconstruct(volume, "varnet", model=model, mask_func=mask, device="cpu")
    amp = reconstruct(volume, "varnet", model=model, mask_func=mask, device="cpu", precision="amp")
    assert amp.precision["autocast_dtype"] == "bfloat16" and amp.images.dtype == np.float32
    error = np.linalg.norm(amp.images - full.images) / np.linalg.norm(full.images)
    assert 0 < error < 0.05
