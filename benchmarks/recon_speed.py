"""Reconstruction speed at the limit: ours against the bare pipeline and fastMRI's loop.

Everything runs in one process, interleaved (the order rotates every repeat), several repeats
(9 for rss / zero-filled, 3 for the others). Seconds are the fastest repeat (the one least
disturbed by the other jobs on this shared machine); ratios are given as the ratio of the fastest
repeats and as the median of the per-repeat ratios with their range.

* **bare**: the floor for ``rss`` / ``zero-filled``: h5py ``read_direct`` of each slice into one
  preallocated buffer, the mask multiplied in place, one unshifted ``torch.fft.ifft2`` into a
  preallocated buffer, the ``fftshift`` and crop as one index gather, root sum of squares.
* **ours**: ``recon_backend.inference.reconstruct`` at its default batch (``with_reference``
  off, like the others; the "ours + reference" column also computes the fully sampled RSS
  that the manifest's metrics need).
* **fastMRI**: fastMRI 0.3.0's own per-slice loop (h5py read, its transforms, its model).

Run (``--threads`` defaults to 1, as the issue's measurements)::

    .venv/bin/python benchmarks/recon_speed.py speed      # ours vs bare vs fastMRI
    .venv/bin/python benchmarks/recon_speed.py batch      # default batch per method (CPU)
    .venv/bin/python benchmarks/recon_speed.py memory     # peak 10 vs 40 slices, fresh processes
    .venv/bin/python benchmarks/recon_speed.py model      # bytes per slice vs the memory model
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.test_bench_recon_pipeline import (  # noqa: E402
    RECON,
    _fastmri_reference,
    make_input,
    make_models,
)
from recon_backend.data import load_kspace  # noqa: E402
from recon_backend.data.subsample import create_mask_for_mask_type  # noqa: E402
from recon_backend.inference import reconstruct, volume_mask  # noqa: E402
from recon_backend.models.loading import load_model  # noqa: E402

METHODS = ("rss", "zero-filled", "cg-sense", "varnet", "unet")


def bare(path: Path, method: str) -> np.ndarray:
    """The bare rss / zero-filled pipeline, slice by slice, into preallocated buffers."""
    with h5py.File(path, "r") as hf:
        dataset = hf["kspace"]
        n, coils, height, width = dataset.shape
        buffer = np.empty((1, coils, height, width), dtype=np.complex64)
        tensor = torch.from_numpy(buffer)
        work = torch.empty_like(tensor)
        rows = torch.arange((height - RECON[0]) // 2, (height + RECON[0]) // 2) + height // 2
        cols = torch.arange((width - RECON[1]) // 2, (width + RECON[1]) // 2) + width // 2
        rows, cols = rows % height, cols % width
        out = np.empty((n, *RECON), dtype=np.float32)
        mask = None
        if method == "zero-filled":
            volume = load_kspace(path, lazy=True)
            drawn = volume_mask(
                volume, create_mask_for_mask_type("equispaced-fraction", [0.08], [4])
            )
            mask = torch.from_numpy(drawn.mask).reshape(1, 1, 1, -1)
        for index in range(n):
            dataset.read_direct(buffer, np.s_[index : index + 1])
            if mask is not None:
                tensor.mul_(mask).add_(0.0)
            torch.fft.ifft2(tensor, dim=(-2, -1), norm="ortho", out=work)
            crop = work[:, :, rows[:, None], cols[None, :]]
            out[index] = torch.sqrt((crop.abs() ** 2).sum(1))[0].numpy()
    return out


def _ours(path: Path, method: str, model: torch.nn.Module | None, batch: int | None,
          reference: bool) -> Callable[[], np.ndarray]:  # fmt: skip
    mask_func = create_mask_for_mask_type("equispaced-fraction", [0.08], [4])

    def run() -> np.ndarray:
        volume = load_kspace(path, lazy=True)
        return reconstruct(
            volume, method, model=model, mask_func=mask_func, device="cpu",
            batch_size=batch, with_reference=reference,
        ).images  # fmt: skip

    return run


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run, ``repeats`` times, the order rotated every repeat."""
    names = list(runs)
    for name in names:  # warm-up: first-call costs (imports, FFT plans) out of the numbers
        runs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            started = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - started)
    return times


def _ratio(a: list[float], b: list[float]) -> str:
    """Ratio of the fastest runs (the least disturbed by other load), then the median of the
    per-repeat ratios with their range."""
    ratios = np.array(a) / np.array(b)
    return (
        f"{min(a) / min(b):.2f}; median {np.median(ratios):.2f} "
        f"({ratios.min():.2f}-{ratios.max():.2f})"
    )


def speed(folder: Path, repeats: int, methods: tuple[str, ...] = METHODS) -> None:
    path = make_input(folder, 10)
    models = make_models(folder)
    n = 10
    print("| method | ours s/slice | ours + reference | bare s/slice | fastMRI s/slice "
          "| ours / bare: fastest; median (range) "
          "| ours / fastMRI: fastest; median (range) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for method in methods:
        model = load_model(models[method], method)[0] if method in models else None  # type: ignore[arg-type]
        runs: dict[str, Callable[[], object]] = {
            "ours": _ours(path, method, model, None, False),
        }
        if method != "rss":
            runs["ours+ref"] = _ours(path, method, model, None, True)
        if method in ("rss", "zero-filled"):
            runs["bare"] = lambda m=method: bare(path, m)
        if method != "cg-sense":
            runs["fastmri"] = lambda m=method: _fastmri_reference(path, m, models.get(m))
        times = interleaved(
            runs, repeats if method in ("rss", "zero-filled") else max(3, repeats // 3)
        )
        med = {k: float(np.min(v)) / n for k, v in times.items()}
        ref = f"{med['ours+ref']:.4f}" if "ours+ref" in med else "(same)"
        bare_s = f"{med['bare']:.4f}" if "bare" in med else "n/a"
        fm = f"{med['fastmri']:.4f}" if "fastmri" in med else "n/a"
        vs_bare = _ratio(times["ours"], times["bare"]) if "bare" in times else "n/a"
        vs_fm = _ratio(times["ours"], times["fastmri"]) if "fastmri" in times else "n/a"
        print(f"| {method} | {med['ours']:.4f} | {ref} | {bare_s} | {fm} | {vs_bare} | {vs_fm} |",
              flush=True)  # fmt: skip


def batch_sizes(folder: Path, repeats: int) -> None:
    path = make_input(folder, 8)
    models = make_models(folder)
    sizes = (1, 2, 4, 8)
    print("| method | " + " | ".join(f"batch {b} s/slice" for b in sizes) + " | fastest |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for method in METHODS:
        model = load_model(models[method], method)[0] if method in models else None  # type: ignore[arg-type]
        runs = {str(b): _ours(path, method, model, b, False) for b in sizes}
        times = interleaved(
            runs, repeats if method in ("rss", "zero-filled") else max(3, repeats // 3)
        )
        med = {k: float(np.min(v)) / 8 for k, v in times.items()}
        best = min(med, key=med.__getitem__)
        print(f"| {method} | " + " | ".join(f"{med[str(b)]:.4f}" for b in sizes) + f" | {best} |",
              flush=True)  # fmt: skip


def _peak_in_fresh_process(
    path: Path, method: str, model: Path | None, threads: int, batch: int | None = None
) -> int:
    code = (
        "import sys, json, torch; from pathlib import Path;"
        f"torch.set_num_threads({threads});"
        "from benchmarks.recon_speed import peak_here;"
        f"print(json.dumps(peak_here(Path({str(path)!r}), {method!r}, "
        f"{str(model)!r} if {model is not None} else None, {batch!r})))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=1800, check=True)  # fmt: skip
    return int(json.loads(proc.stdout.strip().splitlines()[-1]))


def peak_here(path: Path, method: str, model_path: str | None, batch: int | None = None) -> int:
    """Peak RSS increment of ``run_recon`` (default batch) in this process, in bytes."""
    import pydicom  # noqa: F401
    import skimage.metrics  # noqa: F401

    import recon_backend.evaluate
    import recon_backend.export  # noqa: F401
    from recon_backend.device import PeakMemory, process_rss_bytes
    from recon_backend.pipeline import run_recon

    model = Path(model_path) if model_path else None
    load_model(model, method) if model else None  # type: ignore[arg-type]  # warm the imports
    baseline = process_rss_bytes()
    with tempfile.TemporaryDirectory() as out, PeakMemory(torch.device("cpu")) as peak:
        run_recon([path], Path(out), method, model_path=model, device="cpu", batch_size=batch)
    return peak.peak_bytes - baseline


def memory_model_table(folder: Path, threads: int) -> None:
    """Bytes per slice: (peak at batch 3 - peak at batch 1) / 2, against the memory model."""
    from recon_backend.memory_model import slice_bytes

    path = make_input(folder, 6)
    models = make_models(folder)
    hparams = {"varnet": {"chans": 8, "sens_chans": 4}, "unet": {"chans": 32}}
    kspace_mib = 15 * 320 * 184 * 8 / 2**20
    print(f"one coil array K = {kspace_mib:.1f} MiB (15 x 320 x 184 complex64)\n")
    print("| method | measured MiB/slice | in K | memory model MiB/slice | model / measured |")
    print("|---|---|---|---|---|")
    for method in METHODS:
        one = _peak_in_fresh_process(path, method, models.get(method), threads, 1)
        three = _peak_in_fresh_process(path, method, models.get(method), threads, 3)
        measured = (three - one) / 2
        model = slice_bytes(method, 15, 320, 184, crop=RECON, hparams=hparams.get(method))
        print(f"| {method} | {measured / 2**20:.1f} | {measured / 2**20 / kspace_mib:.1f} "
              f"| {model / 2**20:.1f} | {model / max(measured, 1):.2f} |", flush=True)  # fmt: skip


def memory(folder: Path, runs: int, threads: int, methods: tuple[str, ...] = METHODS) -> None:
    files = {n: make_input(folder, n) for n in (10, 40)}
    models = make_models(folder)
    print(f"| method | + MiB 10 slices (median of {runs}) | + MiB 40 slices | 40 / 10 |")
    print("|---|---|---|---|")
    for method in methods:
        values = {
            n: float(np.median([
                _peak_in_fresh_process(files[n], method, models.get(method), threads)
                for _ in range(runs)
            ]))
            for n in (10, 40)
        }  # fmt: skip
        print(f"| {method} | {values[10] / 2**20:.0f} | {values[40] / 2**20:.0f} "
              f"| {values[40] / values[10]:.3f} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "batch", "memory", "model"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{platform.machine()} {platform.processor()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), 15 coils 320x184 -> 160x160\n")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.what == "speed":
            speed(folder, args.repeats, tuple(args.methods))
        elif args.what == "batch":
            batch_sizes(folder, args.repeats)
        elif args.what == "model":
            memory_model_table(folder, args.threads)
        else:
            memory(folder, max(1, args.repeats // 2), args.threads, tuple(args.methods))


if __name__ == "__main__":
    main()
