"""load_model: hyper-parameters from the weights, strict loading, clear errors for bad files."""

from __future__ import annotations

import fastmri.models as ref
import pytest
import torch

from recon_backend.errors import ReconError
from recon_backend.models import Unet, VarNet
from recon_backend.models.loading import load_model

SMALL_VARNET = {"num_cascades": 3, "sens_chans": 4, "sens_pools": 2, "chans": 6, "pools": 3}


def test_varnet_state_dict_round_trip(tmp_path):
    torch.manual_seed(0)
    theirs = ref.VarNet(**SMALL_VARNET)
    path = tmp_path / "varnet.pt"
    torch.save(theirs.state_dict(), path)
    model, hparams = load_model(path, "varnet", "cpu")
    assert isinstance(model, VarNet) and not model.training
    assert hparams == SMALL_VARNET
    for key, value in theirs.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


def test_lightning_checkpoint_with_prefix(tmp_path):
    torch.manual_seed(1)
    unet = ref.Unet(1, 1, chans=8, num_pool_layers=3)
    checkpoint = {
        "epoch": 3,
        "state_dict": {f"unet.{key}": value for key, value in unet.state_dict().items()},
        "hyper_parameters": {"lr": 0.001},
    }
    path = tmp_path / "unet.ckpt"
    torch.save(checkpoint, path)
    model, hparams = load_model(path, "unet")
    assert isinstance(model, Unet)
    assert hparams == {"in_chans": 1, "out_chans": 1, "chans": 8, "num_pool_layers": 3}
    image = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(image), unet.eval()(image), rtol=1e-5, atol=1e-6)


def test_unet_file_given_as_varnet_names_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "unet_weights.pt"
    torch.save(Unet(1, 1, chans=4, num_pool_layers=2).state_dict(), path)
    with pytest.raises(ReconError) as err:
        load_model(path, "varnet")
    message = str(err.value)
    assert str(path) in message
    assert "missing keys: sens_net.norm_unet.unet.down_sample_layers.0.layers.0.weight" in message
    assert "unexpected keys: down_sample_layers.0.layers.0.weight" in message
    assert "more)" in message  # long lists are cut, with the count


def test_missing_cascade_key_and_wrong_shape_are_named(tmp_path):
    state = VarNet(**SMALL_VARNET).state_dict()
    del state["cascades.1.dc_weight"]
    state["cascades.0.dc_weight"] = torch.ones(3)
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(ReconError, match=r"1 missing keys: cascades\.1\.dc_weight") as err:
        load_model(path, "varnet")
    assert "cascades.0.dc_weight (3,) != (1,)" in str(err.value)


@pytest.mark.parametrize(
    "content", [b"", b"this is not a torch file", b"PK\x03\x04 truncated zip"], ids=str
)
def test_not_a_torch_file(tmp_path, content):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    with pytest.raises(ReconError, match="not a torch weights file"):
        load_model(path, "varnet")


def test_pickled_object_is_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)  # a module, not a state dict
    with pytest.raises(ReconError, match=r"read safely \(weights_only\)"):
        load_model(path, "unet")


def test_non_state_dict_content(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(ReconError, match="expected a state dict"):
        load_model(path, "unet")


def test_missing_file_and_unknown_kind(tmp_path):
    with pytest.raises(ReconError, match="not found"):
        load_model(tmp_path / "nope.pt", "varnet")
    path = tmp_path / "w.pt"
    torch.save(VarNet(**SMALL_VARNET).state_dict(), path)
    with pytest.raises(ReconError, match="unknown model kind 'gan'"):
        load_model(path, "gan")  # type: ignore[arg-type]


def test_committed_demo_weights_load_with_their_recorded_hparams():
    import json
    from pathlib import Path

    import recon_backend

    weights = Path(recon_backend.__file__).parent / "weights" / "demo_varnet.pt"
    record = json.loads(weights.with_suffix(".json").read_text())
    model, hparams = load_model(weights, "varnet")
    assert hparams == record["hparams"]
    assert sum(p.numel() for p in model.parameters()) == record["n_parameters"]
    # the goal of the demo model: above zero filling and CG-SENSE on every held-out family
    families = record["heldout"]["families"]
    assert set(families) == {"mni-heldout", "shepp-logan", "shoulder-knee-layout"}
    for name, family in families.items():
        results = family["results"]
        assert results["varnet"]["ssim"] > results["cg-sense"]["ssim"], name
        assert results["varnet"]["ssim"] > results["zero-filled"]["ssim"], name
