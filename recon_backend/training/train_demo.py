"""Train the small demo VarNet on simulated k-space and evaluate it on held-out volumes.

Run::

    python -m recon_backend.training.train_demo --out recon_backend/weights/demo_varnet.pt --seed 0

Every step draws a fresh training slice from a random training family
(:func:`recon_backend.training.families.training_slice`: the MNI template's training slabs,
random phantoms, a pydicom-data abdomen image; 4-32 coils, several matrices, noise levels and
intensity scales), and a fresh equispaced-fraction mask (4x, centre fraction 0.08, the demo's
defaults, random offset), and
takes one Adam step on ``1 - SSIM`` (fastMRI's 7x7 SSIM) between the VarNet output and the
fully sampled root sum of squares, both cropped to the image. The learning rate follows a cosine
from ``--lr`` to ``--lr / 10``. ``--steps N`` fixes the run's length (and
so the schedule); without it, the length is set from the speed of the first steps to fill
``--minutes``. ``--minutes`` is also a hard cap (the CPU may be shared): a run cut short by it
says so in the record.

At the end the model is compared with zero filling and CG-SENSE on every held-out family
(:data:`recon_backend.training.families.HELDOUT_FAMILIES`, never seen in training) through the
production pipeline with the fastMRI metrics, and the weights (state dict) and a JSON record
(command, seed, hyper-parameters, time, held-out table per family) are written next to each
other. ``--evaluate-only --init W`` recomputes only the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from recon_backend import simulate
from recon_backend.data import load_kspace, make_geometry, write_fastmri_h5
from recon_backend.data.subsample import MaskFunc, create_mask_for_mask_type
from recon_backend.evaluate import volume_metrics
from recon_backend.fftc import ifft2c
from recon_backend.inference import reconstruct
from recon_backend.models import VarNet
from recon_backend.models.varnet import count_parameters
from recon_backend.training import families
from recon_backend.transforms import center_crop

Log = Callable[[str], None]


def ssim_map_mean(
    pred: torch.Tensor, target: torch.Tensor, data_range: torch.Tensor, win_size: int = 7
) -> torch.Tensor:
    """Mean SSIM of ``(B, H, W)`` images with fastMRI's loss definition (uniform 7x7 window,
    ``k1 = 0.01``, ``k2 = 0.03``, unbiased covariances), one ``data_range`` per image."""
    x, y = pred.unsqueeze(1), target.unsqueeze(1)
    kernel = torch.ones(1, 1, win_size, win_size, dtype=x.dtype) / win_size**2
    n = win_size**2
    cov_norm = n / (n - 1)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    c1, c2 = c1.view(-1, 1, 1, 1), c2.view(-1, 1, 1, 1)
    ux, uy = functional.conv2d(x, kernel), functional.conv2d(y, kernel)
    uxx, uyy = functional.conv2d(x * x, kernel), functional.conv2d(y * y, kernel)
    uxy = functional.conv2d(x * y, kernel)
    vx, vy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean()


def rss(coil_images: torch.Tensor) -> torch.Tensor:
    """Root sum of squares over dimension 1 of complex ``(B, C, H, W)`` images."""
    return (coil_images.real.square() + coil_images.imag.square()).sum(1).sqrt()


def training_example(
    rng: np.random.Generator, mask_func: MaskFunc, max_size: int
) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor]:
    """One simulated training slice: masked k-space, mask, centre width and target image.

    The slice comes from a random training family (:func:`families.training_slice`); the mask
    is never sampled on the zero-padded columns, as in the pipeline.
    """
    volume = families.training_slice(rng, max_size=max_size)
    kspace = torch.from_numpy(volume.kspace)
    target = center_crop(rss(ifft2c(kspace)), volume.image_size)
    mask, num_low = mask_func((1, 1, 1, kspace.shape[-1], 1))
    mask = mask.reshape(1, 1, 1, -1).clone()
    mask[..., : volume.padding[0]] = 0
    mask[..., volume.padding[1] :] = 0
    return kspace * mask + 0.0, mask, num_low, target


def cosine_lr(step: int, total: int, lr: float) -> float:
    """Cosine decay from ``lr`` to ``lr / 10`` over ``total`` steps."""
    progress = min(step / max(total, 1), 1.0)
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    model: VarNet, args: argparse.Namespace, rng: np.random.Generator, log: Log
) -> dict[str, Any]:
    """Run the training loop; returns what the JSON record says about training."""
    mask_func = create_mask_for_mask_type(
        args.mask, [args.center_fraction], [args.accel]
    )  # unseeded calls: seed its generator from ours
    mask_func.rng.seed(int(rng.integers(2**31)))
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    total = args.steps
    schedule = args.schedule_steps  # cosine length when it differs from the run's length
    budget = args.minutes * 60.0
    started = time.perf_counter()
    losses: list[float] = []
    step = 0
    model.train()
    stopped_by_time = False
    while total is None or step < total:
        if time.perf_counter() - started > budget:
            stopped_by_time = True  # the CPU is shared: never run far past the budget
            break
        kspace, mask, num_low, target = training_example(rng, mask_func, args.image_size)
        for group in optimiser.param_groups:
            # constant while the first steps are timed, so --steps N repeats a timed run exactly
            warm = step < args.timing_steps or total is None
            group["lr"] = args.lr if warm else cosine_lr(step, schedule or total or 1, args.lr)
        output = center_crop(model(kspace, mask, num_low), (target.shape[-2], target.shape[-1]))
        loss = 1 - ssim_map_mean(output, target, target.amax(dim=(-2, -1)))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        step += 1
        elapsed = time.perf_counter() - started
        if total is None and step == args.timing_steps:
            total = max(step + 1, int(budget / (elapsed / step)))
            log(f"{elapsed / step:.2f} s per step -> {total} steps in {args.minutes} min")
        if step % args.log_every == 0:
            recent = float(np.mean(losses[-args.log_every :]))
            log(f"step {step}/{total}  loss {recent:.4f}  {elapsed / 60:.1f} min")
    seconds = time.perf_counter() - started
    model.eval()
    return {
        "steps": step,
        "scheduled_steps": schedule or total,
        "stopped_by_time_cap": stopped_by_time,
        "seconds": round(seconds, 1),
        "final_loss_mean_last_50": float(np.mean(losses[-50:])),
        "loss": "1 - SSIM (fastMRI definition, 7x7 window) on the image crop",
        "optimiser": f"Adam, lr {args.lr} cosine to {args.lr / 10}, batch 1",
    }


def evaluate_families(
    model: VarNet, args: argparse.Namespace, log: Log
) -> dict[str, dict[str, Any]]:
    """Held-out table: per family, mean NMSE/PSNR/SSIM of zero filling, CG-SENSE and the VarNet.

    Each held-out volume is written as a real fastMRI HDF5 file and reconstructed by the
    production pipeline (:func:`recon_backend.inference.reconstruct`) with the demo's mask (4x
    equispaced-fraction, centre 0.08, seeded by the file name), so the table measures exactly
    what ``blindreader recon`` does. The volumes depend only on ``--eval-seed``.
    """
    table: dict[str, dict[str, Any]] = {}
    if args.heldout_volumes < 1:
        log("--heldout-volumes 0: no held-out evaluation")
        return table
    mask_func = create_mask_for_mask_type(args.mask, [args.center_fraction], [args.accel])
    methods = ("zero-filled", "cg-sense", "varnet")
    root = np.random.SeedSequence(args.eval_seed)
    family_names = list(families.HELDOUT_FAMILIES)
    with tempfile.TemporaryDirectory(prefix="heldout-") as tmp:
        for name, seq in zip(family_names, root.spawn(len(family_names)), strict=True):
            description, make = families.HELDOUT_FAMILIES[name]
            rng = np.random.default_rng(seq)
            rows: dict[str, list[dict[str, float | None]]] = {m: [] for m in methods}
            skipped = False
            for index in range(args.heldout_volumes):
                simulated = make(rng, index, args.heldout_slices)
                if simulated is None:
                    skipped = True
                    break
                path = write_fastmri_h5(
                    Path(tmp) / f"{name}_{index:02d}.h5",
                    simulated.kspace,
                    make_geometry(
                        simulated.kspace.shape, simulated.image_size, padding=simulated.padding
                    ),
                )
                volume = load_kspace(path, lazy=True)
                for method in methods:
                    result = reconstruct(
                        volume,
                        method,
                        model=model if method == "varnet" else None,
                        mask_func=mask_func,
                        device="cpu",
                        batch_size=1,
                        cg_iterations=args.cg_iterations,
                    )
                    assert result.reference is not None
                    rows[method].append(volume_metrics(result.reference, result.images))
            if skipped:
                log(f"{name}: skipped ({description}: its source is not installed)")
                table[name] = {"description": description, "skipped": True}
                continue
            summary = {
                method: {
                    key: float(np.mean([r[key] for r in found if r[key] is not None]))
                    for key in ("ssim", "psnr", "nmse")
                }
                for method, found in rows.items()
            }
            table[name] = {"description": description, "results": summary}
            log(f"{name}: " + "  ".join(f"{m} {summary[m]['ssim']:.4f}" for m in methods))
    return table


def write_outputs(model: VarNet, out: Path, record: dict[str, Any]) -> tuple[Path, Path]:
    """Write the state dict and the JSON record atomically (temporary file, then rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp)
    os.replace(tmp, out)
    record["weights_sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    record["weights_bytes"] = out.stat().st_size
    json_path = out.with_suffix(".json")
    tmp_json = json_path.with_name(json_path.name + ".tmp")
    tmp_json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_json, json_path)
    return out, json_path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (defaults: the committed demo model's settings)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--out", type=Path, required=True, help="weights file (.pt); .json beside it")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--minutes", type=float, default=25.0, help="time cap; sizes the run when no --steps"
    )
    p.add_argument("--steps", type=int, default=None, help="number of steps (lr schedule length)")
    p.add_argument("--timing-steps", type=int, default=10, help="steps timed to size the run")
    p.add_argument(
        "--schedule-steps",
        type=int,
        default=None,
        help="length of the cosine schedule when it differs from --steps (to repeat a run "
        "that the time cap cut short)",
    )
    p.add_argument("--init", type=Path, default=None, help="start from these weights")
    p.add_argument("--cascades", type=int, default=4)
    p.add_argument("--chans", type=int, default=8)
    p.add_argument("--pools", type=int, default=4)
    p.add_argument("--sens-chans", type=int, default=4)
    p.add_argument("--sens-pools", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument(
        "--image-size", type=int, default=96, help="largest training image (rows, pixels)"
    )
    p.add_argument("--mask", default="equispaced-fraction")
    p.add_argument("--accel", type=int, default=4)
    p.add_argument("--center-fraction", type=float, default=0.08)
    p.add_argument("--heldout-volumes", type=int, default=2, help="volumes per held-out family")
    p.add_argument("--heldout-slices", type=int, default=4)
    p.add_argument("--eval-seed", type=int, default=12345)
    p.add_argument("--cg-iterations", type=int, default=15)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 is fastest on a busy CPU)"
    )
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="only recompute the held-out table of --init and rewrite the record beside --out",
    )
    args = p.parse_args(argv)
    if args.evaluate_only and args.init is None:
        p.error("--evaluate-only needs --init WEIGHTS")
    if args.steps is None and args.minutes <= 0:
        p.error("--minutes must be positive (or give --steps)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and write the demo model; returns the JSON record."""
    args = parse_args(argv)

    def log(message: str) -> None:
        print(f"[{dt.datetime.now():%H:%M:%S}] {message}", flush=True)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    hparams = {
        "num_cascades": args.cascades,
        "sens_chans": args.sens_chans,
        "sens_pools": args.sens_pools,
        "chans": args.chans,
        "pools": args.pools,
    }
    model = VarNet(**hparams)
    if args.init is not None:
        model.load_state_dict(torch.load(args.init, map_location="cpu", weights_only=True))
    if args.evaluate_only:
        return _evaluate_only(model, args, log)
    simulate.template_volumes()  # read the template before the clock starts
    families.pydicom_mr_image(families.TRAINING_MR_FILE)
    log(f"VarNet {hparams}: {count_parameters(model):,} parameters")
    training = train(model, args, rng, log)
    log(f"trained {training['steps']} steps in {training['seconds'] / 60:.1f} min; evaluating")
    heldout = evaluate_families(model, args, log)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    sources = dict(families.TRAINING_SOURCES)
    if families.pydicom_mr_image(families.TRAINING_MR_FILE) is None:
        sources.pop("pydicom-abdomen")
    record: dict[str, Any] = {
        "description": "Demo VarNet trained on SIMULATED multi-coil k-space (MNI152 template, "
        "random phantoms and a pydicom-data abdomen image x synthetic coils and phase); for the "
        "demo only, not for clinical use.",
        "command": "python -m recon_backend.training.train_demo " + shlex.join(argv_list),
        "reproduce_exactly": "python -m recon_backend.training.train_demo "
        + shlex.join(
            [
                *_with_steps(argv_list, training["steps"], training["scheduled_steps"]),
                "--minutes",
                "1000",
            ]
        ),
        "seed": args.seed,
        "hparams": hparams,
        "n_parameters": count_parameters(model),
        "init": str(args.init) if args.init else None,
        "training": training
        | {
            "data": "recon_backend.training.families.training_slice: sources "
            f"{sources} (MNI template z in {[[r.start, r.stop] for r in simulate.TRAINING_Z]} "
            "only, any orientation, augmented); 64 to --image-size rows, aspect 0.75-1.25, "
            "4-32 coils (log-uniform), noise 0.0005-0.02 of the peak, intensity scale 1e-6 to "
            "1e3, 2x or no read-out oversampling, zero-padded columns in 30 % of slices; a "
            "fresh slice, coil set, phase, noise and mask every step",
            "max_image_size": args.image_size,
            "mask": {
                "type": args.mask,
                "accel": args.accel,
                "center_fraction": args.center_fraction,
            },
            "threads": args.threads,
        },
        "heldout": _heldout_record(args, heldout),
        "environment": _environment(),
    }
    weights, json_path = write_outputs(model, args.out, record)
    log(f"wrote {weights} and {json_path}")
    return record


def _heldout_record(args: argparse.Namespace, table: dict[str, Any]) -> dict[str, Any]:
    return {
        "data": "recon_backend.training.families.HELDOUT_FAMILIES (never seen in training), "
        "each volume written as a fastMRI HDF5 file and reconstructed by "
        "recon_backend.inference.reconstruct",
        "volumes_per_family": args.heldout_volumes,
        "slices_per_volume": args.heldout_slices,
        "eval_seed": args.eval_seed,
        "mask": f"{args.mask}, {args.accel}x, centre fraction {args.center_fraction}, seeded by "
        "tuple(map(ord, '<family>_NN.h5'))",
        "cg_sense_iterations": args.cg_iterations,
        "metrics": "fastMRI definitions against the fully sampled RSS; mean over volumes",
        "families": table,
    }


def _environment() -> dict[str, str]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _evaluate_only(model: VarNet, args: argparse.Namespace, log: Log) -> dict[str, Any]:
    """Re-run the held-out table for ``--init`` and rewrite the record beside ``--out``."""
    json_path = args.out.with_suffix(".json")
    record = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {}
    model.eval()
    record["heldout"] = _heldout_record(args, evaluate_families(model, args, log))
    record["heldout"]["evaluated"] = _environment()
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, json_path)
    log(f"rewrote the held-out table in {json_path}")
    return record


def _with_steps(argv: list[str], steps: int, schedule: int | None = None) -> list[str]:
    """``argv`` with ``--steps`` (and ``--schedule-steps`` when it differs) set, and no
    ``--minutes`` (a time cap would cut a slower machine short)."""
    out: list[str] = []
    skip = False
    dropped = ("--steps", "--schedule-steps", "--minutes")
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in dropped:
            skip = True
            continue
        if arg.startswith(tuple(f"{d}=" for d in dropped)):
            continue
        out.append(arg)
    out += ["--steps", str(steps)]
    if schedule is not None and schedule != steps:
        out += ["--schedule-steps", str(schedule)]
    return out


if __name__ == "__main__":
    main()
