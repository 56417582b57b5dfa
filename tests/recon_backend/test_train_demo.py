"""The demo training script: a tiny run finishes and writes a loadable model and its record."""

from __future__ import annotations

import json

import torch

from recon_backend.models import VarNet
from recon_backend.models.loading import load_model
from recon_backend.training import train_demo

TINY = [
    "--steps", "2", "--cascades", "1", "--chans", "4", "--pools", "2",
    "--sens-chans", "2", "--sens-pools", "2", "--image-size", "64",
    "--heldout-volumes", "1", "--heldout-slices", "2", "--log-every", "1",
    "--cg-iterations", "3",
]  # fmt: skip


def test_tiny_training_run_writes_weights_and_record(tmp_path, capsys):
    out = tmp_path / "weights" / "tiny.pt"
    threads = torch.get_num_threads()
    record = train_demo.main(["--out", str(out), "--seed", "3", "--threads", str(threads), *TINY])
    model, hparams = load_model(out, "varnet")
    assert isinstance(model, VarNet)
    assert hparams == {"num_cascades": 1, "sens_chans": 2, "sens_pools": 2, "chans": 4, "pools": 2}
    stored = json.loads(out.with_suffix(".json").read_text())
    assert stored == record
    assert stored["training"]["steps"] == 2 and stored["seed"] == 3
    assert stored["command"].startswith("python -m recon_backend.training.train_demo --out ")
    assert stored["reproduce_exactly"].endswith("--steps 2 --minutes 1000")
    families = stored["heldout"]["families"]
    assert set(families) == {"mni-heldout", "shepp-logan", "shoulder-knee-layout"}
    for family in families.values():
        results = family["results"]
        assert set(results) == {"zero-filled", "cg-sense", "varnet"}
        assert all(0 < results[m]["ssim"] <= 1 for m in results)
    assert "SIMULATED" in stored["description"]
    assert not list(out.parent.glob("*.tmp"))
    assert "step 2/2" in capsys.readouterr().out


def test_same_seed_same_weights(tmp_path):
    paths = [tmp_path / "a.pt", tmp_path / "b.pt"]
    args = [*TINY, "--heldout-volumes", "0", "--threads", str(torch.get_num_threads())]
    for path in paths:
        train_demo.main(["--out", str(path), "--seed", "7", *args])
    a, b = (torch.load(p, weights_only=True) for p in paths)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ssim_of_identical_images_is_one():
    image = torch.rand(2, 20, 20)
    value = train_demo.ssim_map_mean(image, image, image.amax(dim=(-2, -1)))
    assert abs(float(value) - 1.0) < 1e-6
    other = train_demo.ssim_map_mean(image, torch.rand(2, 20, 20), torch.ones(2))
    assert float(other) < 0.5
