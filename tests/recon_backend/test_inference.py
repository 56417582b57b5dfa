"""``reconstruct``: the same images as fastMRI's pipelines, batching, out-of-memory, bad input."""

from __future__ import annotations

import weakref
from pathlib import Path

import fastmri
import fastmri.models
import numpy as np
import pytest
import torch
from fastmri.data import subsample as fm_subsample
from fastmri.data import transforms as fm

from recon_backend.data import load_kspace, write_fastmri_h5
from recon_backend.data.ismrmrd_h5 import write_ismrmrd_h5
from recon_backend.data.subsample import create_mask_for_mask_type
from recon_backend.errors import ReconError
from recon_backend.inference import estimate_batch_size, mask_seed, reconstruct, volume_mask
from recon_backend.models import Unet, VarNet
from tests.recon_backend.conftest import MakeFile, simulate_kspace

ACCEL, CENTER = 4, 0.08


def _mask_func(kind: str = "equispaced-fraction"):
    return create_mask_for_mask_type(kind, [CENTER], [ACCEL])


def _fm_mask_func(kind: str = "equispaced_fraction"):
    return fm_subsample.create_mask_for_mask_type(kind, [CENTER], [ACCEL])


def _fastmri_slices(path: Path):
    volume = load_kspace(path)
    for index in range(volume.num_slices):
        yield index, volume.kspace[index]


@pytest.mark.parametrize(("ours", "theirs"), [("random", "random"), ("equispaced", "equispaced")])
def test_volume_mask_is_fastmris_for_the_file_name(
    fastmri_file: Path, ours: str, theirs: str
) -> None:
    volume = load_kspace(fastmri_file)
    mask = volume_mask(volume, _mask_func(ours))
    expected, num_low = _fm_mask_func(theirs)(
        (1, 64, 48, 2), None, tuple(map(ord, fastmri_file.name))
    )
    np.testing.assert_array_equal(mask.mask, expected.reshape(-1).numpy())
    assert mask.num_low_frequencies == num_low
    assert mask.seed == mask_seed(fastmri_file.name)


def test_rss_and_zero_filled_equal_fastmri(fastmri_file: Path) -> None:
    volume = load_kspace(fastmri_file, lazy=True)
    rss = reconstruct(volume, "rss", device="cpu")
    zero = reconstruct(volume, "zero-filled", mask_func=_mask_func(), device="cpu", batch_size=2)
    fm_func = _fm_mask_func()
    seed = tuple(map(ord, fastmri_file.name))
    for index, kspace in _fastmri_slices(fastmri_file):
        k = fm.to_tensor(kspace)
        target = fastmri.rss(
            fastmri.complex_abs(fm.complex_center_crop(fastmri.ifft2c(k), (32, 48)))
        )
        masked, _, _ = fm.apply_mask(k, fm_func, seed=seed, padding=(0, 48))
        zero_filled = fastmri.rss(
            fastmri.complex_abs(fm.complex_center_crop(fastmri.ifft2c(masked), (32, 48)))
        )
        np.testing.assert_allclose(rss.images[index], target.numpy(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(zero.images[index], zero_filled.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(rss.reference, rss.images)
    np.testing.assert_array_equal(zero.reference, rss.images)
    assert rss.mask is None and zero.mask is not None and zero.batch_size == 2


def test_unet_equals_fastmri_unet_data_transform_and_model(fastmri_file: Path) -> None:
    torch.manual_seed(0)
    theirs = fastmri.models.Unet(1, 1, chans=4, num_pool_layers=2).eval()
    ours = Unet(1, 1, chans=4, num_pool_layers=2)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    volume = load_kspace(fastmri_file, lazy=True)
    result = reconstruct(volume, "unet", model=ours, mask_func=_mask_func(), device="cpu")
    transform = fm.UnetDataTransform("multicoil", mask_func=_fm_mask_func())
    contents = load_kspace(fastmri_file)
    attrs = {"recon_size": (32, 48, 1)}
    for index, kspace in _fastmri_slices(fastmri_file):
        sample = transform(kspace, None, None, attrs, fastmri_file.name, index)
        with torch.no_grad():
            output = theirs(sample.image[None, None])[0, 0] * sample.std + sample.mean
        np.testing.assert_allclose(result.images[index], output.numpy(), rtol=1e-5, atol=1e-6)
    assert contents.fully_sampled and result.reference is not None


def test_varnet_equals_fastmri_varnet_data_transform_and_model(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=2, coils=4, height=64, width=48)
    kspace[..., :2] = 0
    kspace[..., 46:] = 0
    from recon_backend.data import make_geometry

    geometry = make_geometry(kspace.shape, (32, 32), padding=(2, 46))
    path = write_fastmri_h5(tmp_path / "file_knee_sim.h5", kspace, geometry)
    torch.manual_seed(1)
    config = {"num_cascades": 2, "sens_chans": 4, "sens_pools": 2, "chans": 4, "pools": 2}
    theirs = fastmri.models.VarNet(**config).eval()
    ours = VarNet(**config)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    result = reconstruct(
        load_kspace(path, lazy=True), "varnet", model=ours, mask_func=_mask_func(), device="cpu"
    )
    transform = fm.VarNetDataTransform(mask_func=_fm_mask_func())
    attrs = {"padding_left": 2, "padding_right": 46, "recon_size": (32, 32, 1)}
    for index, k in _fastmri_slices(path):
        sample = transform(k, None, None, attrs, path.name, index)
        with torch.no_grad():
            output = theirs(
                sample.masked_kspace[None], sample.mask[None], sample.num_low_frequencies
            )
        expected = fm.center_crop(output, sample.crop_size)[0]
        np.testing.assert_allclose(result.images[index], expected.numpy(), rtol=1e-4, atol=1e-6)
        assert result.mask is not None
        np.testing.assert_array_equal(
            result.mask.mask.astype(bool), sample.mask.reshape(-1).numpy()
        )


def test_test_layout_file_derives_the_centre_width_as_fastmri(tmp_path: Path) -> None:
    """A fastMRI test file (``mask`` in the file) with a 29-column centre: fastMRI uses 28."""
    kspace = simulate_kspace(n_slices=2, coils=4, height=64, width=80)
    mask = np.zeros(80, bool)
    mask[::4] = True
    mask[26:55] = True  # 29 columns, asymmetric about column 40
    from recon_backend.data import make_geometry

    path = write_fastmri_h5(
        tmp_path / "file_test.h5",
        kspace * mask,
        make_geometry(kspace.shape, (32, 64)),
        mask=mask,
    )
    torch.manual_seed(3)
    config = {"num_cascades": 2, "sens_chans": 4, "sens_pools": 2, "chans": 4, "pools": 2}
    theirs = fastmri.models.VarNet(**config).eval()
    ours = VarNet(**config)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    result = reconstruct(load_kspace(path, lazy=True), "varnet", model=ours, device="cpu")
    assert result.mask is not None
    squeezed = torch.from_numpy(mask.astype(np.float32)).reshape(1, 1, 1, -1, 1)
    _, fastmri_low = theirs.sens_net.get_pad_and_num_low_freqs(squeezed, 0)
    assert result.mask.num_low_frequencies == int(fastmri_low) == 28
    transform = fm.VarNetDataTransform()
    attrs = {"padding_left": 0, "padding_right": 80, "recon_size": (32, 64, 1)}
    for index, k in _fastmri_slices(path):
        sample = transform(k, mask, None, attrs, path.name, index)
        with torch.no_grad():
            output = theirs(
                sample.masked_kspace[None], sample.mask[None], sample.num_low_frequencies
            )
        expected = fm.center_crop(output, sample.crop_size)[0]
        np.testing.assert_allclose(result.images[index], expected.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("seed", range(30))
def test_centre_width_of_any_mask_is_fastmris(seed: int) -> None:
    from recon_backend.inference import low_frequencies_from_mask

    rng = np.random.default_rng(seed)
    width = int(rng.integers(8, 120))
    mask = rng.random(width) < rng.uniform(0.1, 0.9)
    lo = int(rng.integers(0, width))
    mask[lo : lo + int(rng.integers(0, width // 2 + 1))] = True
    theirs = fastmri.models.VarNet(num_cascades=1, sens_chans=1, chans=1, sens_pools=1, pools=1)
    tensor = torch.from_numpy(mask.astype(np.float32)).reshape(1, 1, 1, -1, 1)
    _, expected = theirs.sens_net.get_pad_and_num_low_freqs(tensor, 0)
    assert low_frequencies_from_mask(mask) == int(expected)


def test_batch_size_does_not_change_the_images(make_fastmri_file: MakeFile) -> None:
    path = make_fastmri_file("five.h5", n_slices=5)
    volume = load_kspace(path, lazy=True)
    one = reconstruct(volume, "cg-sense", mask_func=_mask_func(), device="cpu", batch_size=1)
    three = reconstruct(volume, "cg-sense", mask_func=_mask_func(), device="cpu", batch_size=3)
    np.testing.assert_allclose(one.images, three.images, rtol=1e-4, atol=1e-7)


class _OutOfMemoryAbove(torch.nn.Module):
    """A real U-Net that fails like a full GPU when given more than ``limit`` slices."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.calls: list[int] = []
        self.failed: list[weakref.ref[torch.Tensor]] = []
        torch.manual_seed(2)
        self.unet = Unet(1, 1, chans=4, num_pool_layers=2)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.calls.append(int(image.shape[0]))
        if image.shape[0] > self.limit:
            work = image * 2  # memory the failed batch held
            self.failed.append(weakref.ref(work))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.unet(image)


def test_out_of_memory_halves_the_batch_and_keeps_finished_slices(
    make_fastmri_file: MakeFile,
) -> None:
    path = make_fastmri_file("oom.h5", n_slices=5)
    volume = load_kspace(path, lazy=True)
    model = _OutOfMemoryAbove(limit=2)
    result = reconstruct(
        volume, "unet", model=model, mask_func=_mask_func(), device="cpu", batch_size=4
    )
    expected = reconstruct(
        volume, "unet", model=model.unet, mask_func=_mask_func(), device="cpu", batch_size=1
    )
    np.testing.assert_allclose(result.images, expected.images, rtol=1e-5, atol=1e-6)
    assert model.calls == [4, 2, 2, 1]
    assert result.batch_size == 2 and result.halvings == 1


def test_out_of_memory_frees_the_failed_batch_before_halving(
    make_fastmri_file: MakeFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recon_backend.inference as inference

    model = _OutOfMemoryAbove(limit=1)
    alive_at_free: list[bool] = []
    real_free = inference.free_cached_memory

    def checking_free(device: torch.device) -> None:
        alive_at_free.append(any(ref() is not None for ref in model.failed))
        real_free(device)

    monkeypatch.setattr(inference, "free_cached_memory", checking_free)
    volume = load_kspace(make_fastmri_file("oom2.h5", n_slices=4), lazy=True)
    reconstruct(volume, "unet", model=model, mask_func=_mask_func(), device="cpu", batch_size=4)
    assert model.calls == [4, 2, 1, 1, 1, 1]
    assert alive_at_free == [False, False]


def test_a_runtime_error_that_mentions_memory_is_not_taken_for_one(fastmri_file: Path) -> None:
    class Worded(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("CUDA out of memory (but raised as a plain RuntimeError)")

    with pytest.raises(RuntimeError, match="plain RuntimeError"):
        reconstruct(
            load_kspace(fastmri_file), "unet", model=Worded(), mask_func=_mask_func(), device="cpu"
        )


def test_out_of_memory_with_one_slice_is_a_clear_error(fastmri_file: Path) -> None:
    with pytest.raises(ReconError, match="out of memory") as info:
        reconstruct(
            load_kspace(fastmri_file),
            "unet",
            model=_OutOfMemoryAbove(0),
            mask_func=_mask_func(),
            device="cpu",
        )
    assert fastmri_file.name in str(info.value)


def test_other_runtime_errors_are_not_retried(fastmri_file: Path) -> None:
    class Broken(torch.nn.Module):
        def forward(self, image: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        reconstruct(
            load_kspace(fastmri_file), "unet", model=Broken(), mask_func=_mask_func(), device="cpu"
        )


def test_undersampled_file_uses_its_own_mask_and_has_no_reference(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=2, coils=4, height=64, width=48)
    mask = np.zeros(48, bool)
    mask[::4] = True
    mask[22:26] = True
    path = write_fastmri_h5(tmp_path / "test_file.h5", kspace * mask, mask=mask)
    volume = load_kspace(path)
    result = reconstruct(volume, "zero-filled", device="cpu")
    assert result.reference is None and result.mask is not None and result.mask.seed is None
    np.testing.assert_array_equal(result.mask.mask, mask.astype(np.float32))
    assert result.mask.num_low_frequencies == 4
    with pytest.raises(ReconError, match="undersampled") as info:
        reconstruct(volume, "rss", device="cpu")
    assert str(path) in str(info.value)


def test_ismrmrd_input_reconstructs_like_fastmri_layout(tmp_path: Path) -> None:
    kspace = simulate_kspace(n_slices=2, coils=2, height=32, width=24)
    from recon_backend.data import make_geometry

    raw = write_ismrmrd_h5(tmp_path / "raw.h5", kspace, make_geometry(kspace.shape))
    h5 = write_fastmri_h5(tmp_path / "raw_fastmri.h5", kspace)
    a = reconstruct(load_kspace(raw), "rss", device="cpu")
    b = reconstruct(load_kspace(h5), "rss", device="cpu")
    np.testing.assert_array_equal(a.images, b.images)


def test_bad_requests(fastmri_file: Path) -> None:
    volume = load_kspace(fastmri_file)
    with pytest.raises(ReconError, match="--method"):
        reconstruct(volume, "magic")
    with pytest.raises(ReconError, match="needs a model"):
        reconstruct(volume, "varnet", mask_func=_mask_func())
    with pytest.raises(ReconError, match="--batch-size"):
        reconstruct(volume, "rss", batch_size=0)
    with pytest.raises(ReconError, match="needs a mask"):
        reconstruct(volume, "zero-filled", device="cpu")


def test_auto_batch_is_bounded_and_independent_of_slice_count(make_fastmri_file: MakeFile) -> None:
    from recon_backend.inference import CPU_DEFAULT_BATCH
    from recon_backend.memory_model import slice_bytes

    ten = load_kspace(make_fastmri_file("ten.h5", n_slices=10), lazy=True)
    forty = load_kspace(make_fastmri_file("forty.h5", n_slices=40), lazy=True)
    cpu = torch.device("cpu")
    for method, default in CPU_DEFAULT_BATCH.items():
        assert estimate_batch_size(ten, method, cpu) == estimate_batch_size(forty, method, cpu)
        assert estimate_batch_size(forty, method, cpu) == default
    per_slice = slice_bytes("zero-filled", 4, 64, 48)
    # the measured default shrinks when the memory model says it would not fit
    assert estimate_batch_size(forty, "zero-filled", cpu, budget_bytes=per_slice * 1) == 1
    assert estimate_batch_size(forty, "zero-filled", cpu, budget_bytes=1) == 1
    # a GPU takes as many as the memory model fits, up to the cap
    gpu = torch.device("cuda")
    assert estimate_batch_size(forty, "varnet", gpu, budget_bytes=1 << 40) == 16
    per_varnet = slice_bytes("varnet", 4, 64, 48)
    assert estimate_batch_size(forty, "varnet", gpu, budget_bytes=per_varnet * 5 + 1) == 5
    assert estimate_batch_size(forty, "zero-filled", gpu, budget_bytes=per_slice * 3) == 3


def test_device_choice_on_this_machine() -> None:
    from recon_backend.device import resolve_device

    expected = "cuda" if torch.cuda.is_available() else None
    assert resolve_device("cpu") == torch.device("cpu")
    if expected is None:
        assert resolve_device("auto").type in ("mps", "cpu")
        with pytest.raises(ReconError, match="cuda"):
            resolve_device("cuda")
    else:
        assert resolve_device("auto").type == "cuda"
    with pytest.raises(ReconError, match="--device"):
        resolve_device("gpu")


def test_peak_memory_is_measured_on_the_cpu(fastmri_file: Path) -> None:
    result = reconstruct(load_kspace(fastmri_file, lazy=True), "rss", device="cpu")
    assert result.peak_memory_bytes > 10 * 2**20  # at least the interpreter and torch
    assert result.seconds > 0 and result.device.startswith("cpu")
