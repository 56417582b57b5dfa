"""``benchmarks/gpu.sh``: says so without a GPU; its Python part runs end to end on the CPU."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    shutil.which("nvidia-smi") is not None, reason="a GPU machine: gpu.sh would really run"
)
def test_gpu_script_says_there_is_no_gpu() -> None:
    run = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu.sh"), "/nonexistent-out"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "no NVIDIA GPU" in run.stdout and "nothing measured" in run.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine")
def test_gpu_bench_without_cuda_measures_nothing(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks import gpu_bench

    assert gpu_bench.main(["--out", str(tmp_path)]) == gpu_bench.NO_GPU_STATUS
    assert list(tmp_path.iterdir()) == []


def test_gpu_bench_smoke_run_on_the_cpu(tmp_path: Path) -> None:
    """Every step of the GPU benchmark on tiny data on the CPU: the script is known to work."""
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_bench.py"), "--device", "cpu",
         "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = json.loads((tmp_path / "gpu_smoke.json").read_text())
    assert {"varnet ours", "varnet fastMRI", "rss ours", "rss fastMRI"} <= set(
        report["interleaved"]
    )
    assert report["precision"]["policy"] == "fp32"
    assert report["difference_vs_cpu"]["fp32"]["relative_l2"] == 0.0
    assert "| varnet ours |" in (tmp_path / "gpu_smoke.md").read_text()
