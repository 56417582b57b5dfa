"""Reconstruction pipeline benchmarks (issue 3): seconds per slice and peak memory per method,
peak memory of a 40-slice volume against a 10-slice one at the same batch size, and our
pipeline against fastMRI 0.3.0's per-slice transforms and models on the same files.

Inputs are simulated fastMRI-layout files: 15 coils, 320x184 k-space (half a fastMRI knee slice,
2x readout oversampling), reconstructed to 160x160. Models have random weights (speed and memory
do not depend on the values): VarNet in the demo configuration (4 cascades, 8 channels;
the bundled demo weights when present) and a small U-Net (32 channels, 4 pools).

Each memory figure comes from a fresh Python process running ``run_recon`` (read, reconstruct,
metrics, DICOM, manifest): its peak resident set size while that runs (the kernel's ``VmHWM``
mark, reset just before; ``recon_backend.device.PeakMemory``), and that peak minus the resident
size just before ``run_recon`` (imports done) as the increment.

Run:
    .venv/bin/python -m pytest benchmarks/test_bench_recon_pipeline.py -q --benchmark-enable
    .venv/bin/python benchmarks/test_bench_recon_pipeline.py    # the table in results/
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from recon_backend.data import load_kspace, write_fastmri_h5  # noqa: E402
from recon_backend.data.subsample import create_mask_for_mask_type  # noqa: E402
from recon_backend.inference import reconstruct  # noqa: E402
from recon_backend.models import Unet, VarNet  # noqa: E402
from recon_backend.pipeline import DEMO_VARNET  # noqa: E402
from tests.recon_backend.conftest import simulate_kspace  # noqa: E402

COILS, HEIGHT, WIDTH, RECON = 15, 320, 184, (160, 160)
DEMO_CONFIG = {"num_cascades": 4, "sens_chans": 4, "sens_pools": 4, "chans": 8, "pools": 4}
UNET_CONFIG = {"in_chans": 1, "out_chans": 1, "chans": 32, "num_pool_layers": 4}
METHODS = ("rss", "zero-filled", "cg-sense", "varnet", "unet")
BATCH = 4
#: Fresh processes per memory figure (the median is reported).
RUNS = 3


def make_input(folder: Path, n_slices: int) -> Path:
    """A fully sampled simulated volume written as a fastMRI file."""
    kspace = simulate_kspace(n_slices, COILS, HEIGHT, WIDTH, seed=n_slices, noise=0.01)
    return write_fastmri_h5(folder / f"sim_{n_slices}.h5", kspace, recon_matrix=RECON)


def make_models(folder: Path) -> dict[str, Path]:
    """Weights files for the network methods (random, seeded; the demo VarNet when present)."""
    torch.manual_seed(0)
    varnet = DEMO_VARNET
    if not DEMO_VARNET.is_file():
        varnet = folder / "varnet_demo_config.pt"
        torch.save(VarNet(**DEMO_CONFIG).state_dict(), varnet)
    unet = folder / "unet_small.pt"
    torch.save(Unet(**UNET_CONFIG).state_dict(), unet)
    return {"varnet": varnet, "unet": unet}


def measure(path: Path, method: str, batch: int, model: Path | None, reference: bool) -> dict:
    """Run one reconstruction in a fresh process; returns seconds and memory (bytes)."""
    args = [sys.executable, str(Path(__file__).resolve()), "measure", str(path), method, str(batch)]
    args += [str(model) if model else "-", "fastmri" if reference else "ours"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _measure_here(path: Path, method: str, batch: int, model: Path | None, impl: str) -> dict:
    # import everything run_recon imports lazily, so the increment is data, not library code
    import fastmri.models  # noqa: F401
    import pydicom  # noqa: F401
    import skimage.metrics  # noqa: F401

    import recon_backend.evaluate
    import recon_backend.export
    import recon_backend.models.loading  # noqa: F401
    from recon_backend.device import PeakMemory, process_rss_bytes
    from recon_backend.pipeline import run_recon

    baseline = process_rss_bytes()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out, PeakMemory(torch.device("cpu")) as peak:
        if impl == "ours":
            entry = run_recon(
                [path], Path(out), method, model_path=model, device="cpu", batch_size=batch
            )[0]
            n_slices = entry["n_slices"]
            recon_seconds = entry["provenance"]["seconds"]
        else:
            recon_started = time.perf_counter()
            n_slices = _fastmri_reference(path, method, model)
            recon_seconds = time.perf_counter() - recon_started
    seconds = time.perf_counter() - started
    # warm timing: the same work again in this process (first-call costs excluded)
    warm_started = time.perf_counter()
    if impl == "ours":
        warm_seconds = _ours_reconstruct_only(path, method, batch, model)
    else:
        warm_started = time.perf_counter()
        _fastmri_reference(path, method, model)
        warm_seconds = time.perf_counter() - warm_started
    return {
        "warm_seconds_per_slice": warm_seconds / n_slices,
        "seconds": seconds,
        "seconds_per_slice": seconds / n_slices,
        "recon_seconds_per_slice": recon_seconds / n_slices,
        "n_slices": n_slices,
        "baseline_rss": baseline,
        "peak_rss": peak.peak_bytes,
        "peak_increment": peak.peak_bytes - baseline,
    }


def _ours_reconstruct_only(path: Path, method: str, batch: int, model_path: Path | None) -> float:
    """Seconds of ``reconstruct`` alone (what ``provenance.seconds`` records)."""
    from recon_backend.models.loading import load_model

    model = load_model(model_path, method)[0] if model_path else None  # type: ignore[arg-type]
    mask_func = create_mask_for_mask_type("equispaced-fraction", [0.08], [4])
    volume = load_kspace(path, lazy=True)
    result = reconstruct(
        volume, method, model=model, mask_func=mask_func, device="cpu", batch_size=batch
    )
    return result.seconds


def _fastmri_reference(path: Path, method: str, model_path: Path | None) -> int:
    """fastMRI 0.3.0's own per-slice path on the same file (data transform + model), no DICOM."""
    import fastmri
    import fastmri.models
    import h5py
    from fastmri.data import subsample, transforms

    mask_func = subsample.create_mask_for_mask_type("equispaced_fraction", [0.08], [4])
    with h5py.File(path) as hf:
        n_slices = hf["kspace"].shape[0]
    if method == "varnet":
        model = fastmri.models.VarNet(**DEMO_CONFIG)
        transform = transforms.VarNetDataTransform(mask_func=mask_func)
    elif method == "unet":
        model = fastmri.models.Unet(**UNET_CONFIG)
        transform = transforms.UnetDataTransform("multicoil", mask_func=mask_func)
    else:
        model, transform = None, None
    if model is not None and model_path is not None:
        model.load_state_dict(torch.load(model_path, weights_only=True))
        model.eval()
    attrs = {"padding_left": 0, "padding_right": WIDTH, "recon_size": (*RECON, 1)}
    outputs = []
    with torch.no_grad():
        for index in range(n_slices):
            with h5py.File(path) as hf:
                kspace = hf["kspace"][index]
            if method == "varnet":
                s = transform(kspace, None, None, attrs, path.name, index)
                out = model(s.masked_kspace[None], s.mask[None], s.num_low_frequencies)
                out = transforms.center_crop(out, s.crop_size)
            elif method == "unet":
                s = transform(kspace, None, None, attrs, path.name, index)
                out = model(s.image[None, None])[0, 0] * s.std + s.mean
            else:
                k = transforms.to_tensor(kspace)
                if method == "zero-filled":
                    k = transforms.apply_mask(k, mask_func, seed=tuple(map(ord, path.name)))[0]
                image = transforms.complex_center_crop(fastmri.ifft2c(k), RECON)
                out = fastmri.rss(fastmri.complex_abs(image))
            outputs.append(out.numpy())
    return n_slices


# --- pytest ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("recon_bench")
    return {"8": make_input(folder, 8), **make_models(folder)}


@pytest.mark.parametrize("method", METHODS)
def test_bench_reconstruct(benchmark, inputs: dict[str, Path], method: str) -> None:
    from recon_backend.models.loading import load_model

    volume = load_kspace(inputs["8"], lazy=True)
    model = None
    if method in ("varnet", "unet"):
        model, _ = load_model(inputs[method], method)  # type: ignore[arg-type]
    mask_func = create_mask_for_mask_type("equispaced-fraction", [0.08], [4])

    def run():
        return reconstruct(
            volume, method, model=model, mask_func=mask_func, device="cpu", batch_size=BATCH
        )

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info["slices"] = volume.num_slices
    benchmark.extra_info["peak_memory_bytes"] = result.peak_memory_bytes
    assert np.isfinite(result.images).all() and result.images.shape == (8, *RECON)


def median_increment(path: Path, method: str, model: Path | None, runs: int = RUNS) -> float:
    """Median peak-memory increment over ``runs`` fresh processes (allocator noise is ~10%)."""
    values = [measure(path, method, BATCH, model, False)["peak_increment"] for _ in range(runs)]
    return float(np.median(values))


@pytest.mark.parametrize("method", ["zero-filled", "cg-sense"])
def test_peak_memory_does_not_grow_with_slices(tmp_path: Path, method: str) -> None:
    models = make_models(tmp_path)
    ten, forty = make_input(tmp_path, 10), make_input(tmp_path, 40)
    model = models.get(method)
    small = median_increment(ten, method, model)
    large = median_increment(forty, method, model)
    assert large <= 1.10 * small, (small, large)


# --- the table ---------------------------------------------------------------------------------


def _mib(n: float) -> str:
    return f"{n / 2**20:.0f}"


def main(sections: Sequence[str] = ("speed", "memory")) -> None:
    """Print the markdown tables recorded in ``benchmarks/results/recon_pipeline.md``."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models = make_models(folder)
        files = {n: make_input(folder, n) for n in (10, 40)}
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}\n")
        if "speed" in sections:
            speed_table(files[10], models)
        if "memory" in sections:
            memory_table(files, models)


def speed_table(path: Path, models: dict[str, Path]) -> None:
    """Seconds per slice and peak memory, ours against fastMRI's per-slice loop (10 slices)."""
    print(
        "| method | ours warm s/slice | fastMRI warm s/slice | ours cold whole run s/slice "
        "| fastMRI cold s/slice | ours peak MiB (+ over start) | fastMRI peak MiB (+ over start) |"
    )
    print("|---|---|---|---|---|---|---|")
    for method in METHODS:
        model = models.get(method)
        ours = measure(path, method, BATCH, model, reference=False)
        ref = None if method == "cg-sense" else measure(path, method, BATCH, model, True)
        ref_s = f"{ref['recon_seconds_per_slice']:.3f}" if ref else "n/a"
        ref_w = f"{ref['warm_seconds_per_slice']:.3f}" if ref else "n/a"
        ref_m = f"{_mib(ref['peak_rss'])} (+{_mib(ref['peak_increment'])})" if ref else "n/a"
        print(
            f"| {method} | {ours['warm_seconds_per_slice']:.3f} | {ref_w} "
            f"| {ours['seconds_per_slice']:.3f} | {ref_s} "
            f"| {_mib(ours['peak_rss'])} (+{_mib(ours['peak_increment'])}) | {ref_m} |",
            flush=True,
        )


def memory_table(files: dict[int, Path], models: dict[str, Path]) -> None:
    """Median peak-memory increment of 40 slices against 10 at the same batch size."""
    print(
        f"\n| method | + MiB 10 slices (median of {RUNS}) | + MiB 40 slices "
        f"(median of {RUNS}) | 40 / 10 |"
    )
    print("|---|---|---|---|")
    for method in ("zero-filled", "cg-sense", "varnet"):
        model = models.get(method)
        a = median_increment(files[10], method, model)
        b = median_increment(files[40], method, model)
        print(f"| {method} | {_mib(a)} | {_mib(b)} | {b / a:.3f} |", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "measure":
        _, _, file, meth, batch_text, model_text, impl_name = sys.argv
        result = _measure_here(
            Path(file),
            meth,
            int(batch_text),
            None if model_text == "-" else Path(model_text),
            impl_name,
        )
        print(json.dumps(result))
    else:
        main(sys.argv[1:] or ("speed", "memory"))
