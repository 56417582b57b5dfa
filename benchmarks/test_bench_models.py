"""Model benchmarks (issue 3): our VarNet and U-Net against fastMRI 0.3.0's on the same inputs.

Seconds per slice (inference, float32, batch 1, median of the repeats after one warm-up) and
the peak increase of resident memory during one forward pass (sampled every 5 ms), for the
official configurations (VarNet 12 cascades / 18 channels, U-Net 256 channels) and small ones
(the demo VarNet, a 32-channel U-Net). Every measurement runs in a fresh Python process, ours
and the reference alternately, on identical weights and inputs.

Run the table (what ``benchmarks/results/recon_models.md`` records)::

    .venv/bin/python benchmarks/test_bench_models.py [--threads 1] [--repeats 3]

or the quick pytest-benchmark cases (small configurations only)::

    .venv/bin/python -m pytest benchmarks/test_bench_models.py --benchmark-enable -q
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: name -> (kind, constructor kwargs, input description)
CASES: dict[str, tuple[str, dict[str, int], dict[str, int]]] = {
    "varnet-official": (
        "varnet",
        {"num_cascades": 12, "sens_chans": 8, "sens_pools": 4, "chans": 18, "pools": 4},
        {"coils": 15, "height": 320, "width": 184},
    ),
    "varnet-demo": (
        "varnet",
        {"num_cascades": 4, "sens_chans": 4, "sens_pools": 4, "chans": 8, "pools": 4},
        {"coils": 8, "height": 320, "width": 160},
    ),
    "unet-official": (
        "unet",
        {"in_chans": 1, "out_chans": 1, "chans": 256, "num_pool_layers": 4},
        {"height": 160, "width": 160},
    ),
    "unet-small": (
        "unet",
        {"in_chans": 1, "out_chans": 1, "chans": 32, "num_pool_layers": 4},
        {"height": 320, "width": 320},
    ),
}


def build(case: str, impl: str) -> tuple[torch.nn.Module, tuple[Any, ...]]:
    """The model (seeded random weights, same for both implementations) and its inputs."""
    import fastmri.models as ref

    from recon_backend.models import Unet, VarNet

    kind, config, shape = CASES[case]
    classes = {
        "ours": {"varnet": VarNet, "unet": Unet},
        "fastmri": {"varnet": ref.VarNet, "unet": ref.Unet},
    }
    torch.manual_seed(0)
    with torch.device("meta"):
        skeleton = classes["fastmri"][kind](**config)
    state = {k: torch.randn(v.shape) * 0.05 for k, v in skeleton.state_dict().items()}
    del skeleton
    model = classes[impl][kind](**config)
    model.load_state_dict(state)
    model.eval()
    gen = torch.Generator().manual_seed(1)
    if kind == "unet":
        return model, (torch.randn(1, 1, shape["height"], shape["width"], generator=gen),)
    width = shape["width"]
    kspace = torch.randn(1, shape["coils"], shape["height"], width, 2, generator=gen)
    mask = torch.zeros(1, 1, 1, width, 1)
    mask[..., ::4, :] = 1
    num_low = round(width * 0.08)
    start = (width - num_low + 1) // 2
    mask[..., start : start + num_low, :] = 1
    return model, (kspace * mask + 0.0, mask.bool(), num_low)


def measure(case: str, impl: str, repeats: int, threads: int) -> dict[str, Any]:
    """Time one model in this process; peak memory is the RSS increase during a forward pass."""
    from recon_backend.device import PeakMemory, process_rss_bytes, release_freed_memory

    cpu = torch.device("cpu")
    torch.set_num_threads(threads)
    model, inputs = build(case, impl)
    release_freed_memory(cpu)  # the temporary state dict is gone; give its pages back
    with torch.inference_mode():
        before = process_rss_bytes()
        with PeakMemory(cpu) as peak:  # RSS sampled during one forward pass (the warm-up)
            model(*inputs)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(*inputs)
            times.append(time.perf_counter() - started)
    return {
        "case": case,
        "impl": impl,
        "seconds": statistics.median(times),
        "peak_increase_mib": max(0, peak.peak_bytes - before) / 2**20,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def run_table(cases: list[str], repeats: int, threads: int) -> list[dict[str, Any]]:
    """Measure every case with both implementations (alternating, fresh process each)."""
    rows = []
    for case in cases:
        for impl in ("fastmri", "ours") if len(rows) % 4 == 0 else ("ours", "fastmri"):
            command = [sys.executable, __file__, "measure", case, impl, str(repeats), str(threads)]
            out = subprocess.run(command, check=True, capture_output=True, text=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"  {case} {impl}: {rows[-1]['seconds']:.3f} s", file=sys.stderr, flush=True)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: per case, both implementations and our speed-up."""
    lines = [
        "| model | input | params | fastMRI s/slice | ours s/slice | speed-up | "
        "fastMRI peak MiB | ours peak MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["case"], r["impl"]): r for r in rows}
    for case in dict.fromkeys(r["case"] for r in rows):
        ref, ours = by[(case, "fastmri")], by[(case, "ours")]
        shape = CASES[case][2]
        described = "x".join(str(shape[k]) for k in ("coils", "height", "width") if k in shape)
        lines.append(
            f"| {case} | {described} | {ours['parameters'] / 1e6:.1f} M | {ref['seconds']:.3f} | "
            f"{ours['seconds']:.3f} | {ref['seconds'] / ours['seconds']:.2f}x | "
            f"{ref['peak_increase_mib']:.0f} | {ours['peak_increase_mib']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: ``measure CASE IMPL REPEATS THREADS`` (internal) or the whole table."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "measure":
        case, impl, repeats, threads = argv[1], argv[2], int(argv[3]), int(argv[4])
        print(json.dumps(measure(case, impl, repeats, threads)))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args(argv)
    rows = run_table(args.cases, args.repeats, args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.repeats} repeats\n")
    print(format_table(rows))


@pytest.mark.parametrize("case", ["varnet-demo", "unet-small"])
@pytest.mark.parametrize("impl", ["fastmri", "ours"])
def test_bench_small_models(benchmark, case, impl):
    model, inputs = build(case, impl)
    with torch.inference_mode():
        out = benchmark(model, *inputs)
    assert torch.isfinite(out).all()


if __name__ == "__main__":
    main()
