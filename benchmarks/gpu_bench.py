"""GPU benchmark (run by ``benchmarks/gpu.sh``): the official VarNet on fastMRI knee-sized slices.

Measures, in one process and interleaved (3 repeats):

* the official fastMRI VarNet (12 cascades, 18 channels, sensitivity U-Net 8 channels; seeded
  random weights, speed and memory do not depend on their values) on simulated 15-coil 640x368
  k-space: slices/s and peak GPU memory (``torch.cuda.max_memory_allocated``), ours
  (``reconstruct``: read-ahead thread, pinned buffers, default batch from the memory model)
  against fastMRI 0.3.0's own per-slice loop (``VarNetDataTransform`` + its ``VarNet``);
* our batch sizes 1, 2, 4, 8: slices/s, peak memory and the memory model's estimate;
* rss and zero-filled: ours against fastMRI's loop;
* the output difference of our GPU VarNet (fp32 and tf32 policies) against the same model on
  the CPU, on the first slice.

Without a CUDA GPU it says so and exits with status 2, measuring nothing. ``--smoke`` runs
every step on tiny data on any device (the test suite uses it on the CPU so the script is known
to work before a GPU ever runs it).

Results: a markdown table on standard output and in ``<out>/gpu.md``, raw numbers in
``<out>/gpu.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from recon_backend.data import load_kspace, make_geometry, write_fastmri_h5  # noqa: E402
from recon_backend.data.subsample import create_mask_for_mask_type  # noqa: E402
from recon_backend.device import PeakMemory  # noqa: E402
from recon_backend.inference import reconstruct  # noqa: E402
from recon_backend.memory_model import slice_bytes  # noqa: E402
from recon_backend.models import VarNet  # noqa: E402
from recon_backend.models.loading import OFFICIAL_VARNET  # noqa: E402

NO_GPU_STATUS = 2


def simulated_file(folder: Path, n_slices: int, coils: int, height: int, width: int) -> Path:
    """A fully sampled fastMRI-layout file: a phantom x smooth coils, 2x read-out oversampling."""
    from recon_backend.simulate import simulate_kspace
    from recon_backend.training.families import random_phantom

    rng = np.random.default_rng(0)
    images = np.stack([random_phantom((height // 2, width), rng) for _ in range(n_slices)])
    kspace = simulate_kspace(images, coils, rng, noise_std=0.002) * np.float32(1e-4)
    geometry = make_geometry(kspace.shape, (height // 2, min(width, height // 2)))
    return write_fastmri_h5(folder / "knee_layout_sim.h5", kspace, geometry)


def fastmri_loop(path: Path, method: str, model: torch.nn.Module | None, device: str) -> np.ndarray:
    """fastMRI 0.3.0's per-slice path on ``device`` (h5py read, its transform, its model)."""
    import fastmri
    import h5py
    from fastmri.data import subsample, transforms

    mask_func = subsample.create_mask_for_mask_type("equispaced_fraction", [0.08], [4])
    volume = load_kspace(path, lazy=True)
    rows, cols = volume.geometry.recon_size
    attrs = {"padding_left": 0, "padding_right": volume.kspace.shape[-1],
             "recon_size": (rows, cols, 1)}  # fmt: skip
    transform = transforms.VarNetDataTransform(mask_func=mask_func) if method == "varnet" else None
    outputs = []
    with torch.no_grad(), h5py.File(path) as hf:
        for index in range(hf["kspace"].shape[0]):
            kspace = hf["kspace"][index]
            if method == "varnet":
                assert transform is not None and model is not None
                s = transform(kspace, None, None, attrs, path.name, index)
                out = model(s.masked_kspace[None].to(device), s.mask[None].to(device),
                            s.num_low_frequencies)  # fmt: skip
                out = transforms.center_crop(out, s.crop_size)
            else:
                k = transforms.to_tensor(kspace).to(device)
                if method == "zero-filled":
                    k = transforms.apply_mask(k, mask_func, seed=tuple(map(ord, path.name)))[0]
                image = transforms.complex_center_crop(fastmri.ifft2c(k), (rows, cols))
                out = fastmri.rss(fastmri.complex_abs(image))
            outputs.append(out.cpu().numpy())
    return np.concatenate(outputs)


def ours(path: Path, method: str, model: torch.nn.Module | None, device: str,
         batch: int | None = None, precision: str = "fp32") -> Any:  # fmt: skip
    mask_func = create_mask_for_mask_type("equispaced-fraction", [0.08], [4])
    return reconstruct(
        load_kspace(path, lazy=True), method, model=model, mask_func=mask_func,
        device=device, batch_size=batch, with_reference=False, precision=precision,
    )  # fmt: skip


def timed(run: Callable[[], object], device: str) -> tuple[float, int]:
    """Seconds and peak device memory of one call."""
    dev = torch.device(device)
    with PeakMemory(dev) as peak:
        started = time.perf_counter()
        run()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - started
    return seconds, peak.peak_bytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "benchmarks/gpu.sh: no CUDA GPU visible to torch "
            f"(torch {torch.__version__}, torch.cuda.is_available() is False): nothing measured"
        )
        return NO_GPU_STATUS
    coils, height, width = (4, 64, 40) if args.smoke else (15, 640, 368)
    config = (
        {"num_cascades": 2, "sens_chans": 2, "sens_pools": 2, "chans": 4, "pools": 2}
        if args.smoke
        else dict(OFFICIAL_VARNET)
    )
    slices = 2 if args.smoke else args.slices
    repeats = 1 if args.smoke else args.repeats
    device = args.device
    name = torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu"
    report: dict[str, Any] = {
        "device": name,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "varnet": config,
        "kspace": [slices, coils, height, width],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = simulated_file(Path(tmp), slices, coils, height, width)
        torch.manual_seed(0)
        model = VarNet(**config).eval()
        import fastmri.models

        theirs = fastmri.models.VarNet(**config).eval()
        theirs.load_state_dict(model.state_dict())
        theirs.to(device)
        runs: dict[str, Callable[[], object]] = {
            "varnet ours": lambda: ours(path, "varnet", model, device),
            "varnet fastMRI": lambda: fastmri_loop(path, "varnet", theirs, device),
            "rss ours": lambda: ours(path, "rss", None, device),
            "rss fastMRI": lambda: fastmri_loop(path, "rss", None, device),
            "zero-filled ours": lambda: ours(path, "zero-filled", None, device),
            "zero-filled fastMRI": lambda: fastmri_loop(path, "zero-filled", None, device),
        }
        for run in runs.values():  # warm-up (cuDNN plans, FFT plans)
            run()
        measured: dict[str, list[tuple[float, int]]] = {k: [] for k in runs}
        for repeat in range(repeats):
            names = list(runs)
            names = names[repeat % len(names) :] + names[: repeat % len(names)]
            for key in names:
                measured[key].append(timed(runs[key], device))
        report["interleaved"] = {
            key: {
                "slices_per_s": slices / float(np.median([s for s, _ in values])),
                "peak_bytes": int(max(m for _, m in values)),
            }
            for key, values in measured.items()
        }
        default = ours(path, "varnet", model, device)
        report["default_batch"] = default.batch_size
        report["precision"] = default.precision
        sweep = {}
        for batch in (1, 2, 4) if args.smoke else (1, 2, 4, 8):
            try:
                seconds, peak = timed(
                    lambda b=batch: ours(path, "varnet", model, device, b), device
                )
            except Exception as exc:
                sweep[batch] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            sweep[batch] = {
                "slices_per_s": slices / seconds,
                "peak_bytes": peak,
                "model_estimate_bytes": batch
                * slice_bytes("varnet", coils, height, width, hparams=config),
            }
        report["batch_sweep"] = sweep
        # output difference against the CPU on the first slice (same weights, fp32 and tf32)
        first = Path(tmp) / "first.h5"
        kspace = load_kspace(path).kspace[:1]
        write_fastmri_h5(first, kspace, load_kspace(path).geometry)
        model_cpu_state = {k: v.cpu() for k, v in model.state_dict().items()}
        cpu_model = VarNet(**config).eval()
        cpu_model.load_state_dict(model_cpu_state)
        cpu = ours(first, "varnet", cpu_model, "cpu")
        differences = {}
        for policy in ("fp32", "tf32"):
            gpu = ours(first, "varnet", model, device, precision=policy)
            diff = gpu.images - cpu.images
            differences[policy] = {
                "max_abs_relative_to_max": float(np.abs(diff).max() / np.abs(cpu.images).max()),
                "relative_l2": float(np.linalg.norm(diff) / np.linalg.norm(cpu.images)),
            }
        report["difference_vs_cpu"] = differences
    report["seconds"] = round(time.perf_counter() - started, 1)
    text = render(report)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "_smoke" if args.smoke else ""
    (args.out / f"gpu{suffix}.md").write_text(text + "\n", encoding="utf-8")
    (args.out / f"gpu{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


def render(report: dict[str, Any]) -> str:
    """The markdown written to ``gpu.md``."""
    mib = 2**20
    lines = [
        f"# GPU benchmark ({report['device']}, torch {report['torch']}, CUDA {report['cuda']}, "
        f"{report['date']})",
        "",
        f"k-space {report['kspace']} (slices, coils, H, W); VarNet {report['varnet']}; "
        f"default batch {report['default_batch']}; precision {report['precision']}; "
        f"whole run {report['seconds']} s.",
        "",
        "| run (same process, interleaved) | slices/s | peak GPU MiB |",
        "|---|---|---|",
    ]
    for key, value in report["interleaved"].items():
        lines.append(f"| {key} | {value['slices_per_s']:.2f} | {value['peak_bytes'] / mib:.0f} |")
    lines += [
        "",
        "| our VarNet batch | slices/s | peak MiB | memory model MiB |",
        "|---|---|---|---|",
    ]
    for batch, value in report["batch_sweep"].items():
        if "error" in value:
            lines.append(f"| {batch} | {value['error']} | | |")
            continue
        lines.append(
            f"| {batch} | {value['slices_per_s']:.2f} | {value['peak_bytes'] / mib:.0f} "
            f"| {value['model_estimate_bytes'] / mib:.0f} |"
        )
    lines += ["", "| policy | max abs diff / max (vs CPU) | relative L2 |", "|---|---|---|"]
    for policy, value in report["difference_vs_cpu"].items():
        lines.append(
            f"| {policy} | {value['max_abs_relative_to_max']:.2e} | {value['relative_l2']:.2e} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
