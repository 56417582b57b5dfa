"""Our VarNet and U-Net against fastMRI 0.3.0: same state-dict keys, same outputs."""

from __future__ import annotations

import fastmri.models as ref
import pytest
import torch
from fastmri.data.subsample import EquispacedMaskFractionFunc, RandomMaskFunc

from recon_backend.models import NormUnet, SensitivityModel, Unet, VarNet
from recon_backend.models.varnet import count_parameters


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def key_shapes(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(value.shape)) for key, value in model.state_dict().items()]


def test_official_varnet_has_fastmri_keys_and_29_9m_parameters():
    with torch.device("meta"):
        ours, theirs = VarNet(), ref.VarNet()
    assert key_shapes(ours) == key_shapes(theirs)
    assert count_parameters(ours) == 29_936_966
    assert "cascades.11.model.unet.down_sample_layers.3.layers.4.weight" in ours.state_dict()


def test_official_unet_has_fastmri_keys():
    with torch.device("meta"):
        ours, theirs = Unet(1, 1, 256, 4), ref.Unet(1, 1, 256, 4)
    assert key_shapes(ours) == key_shapes(theirs)
    assert "up_conv.3.1.bias" in ours.state_dict()


def masked_inputs(batch: int, coils: int, h: int, w: int, mask_func, seed: int):
    gen = torch.Generator().manual_seed(seed)
    kspace = torch.randn(batch, coils, h, w, 2, generator=gen)
    mask, num_low = mask_func((1, 1, 1, w, 1), seed=seed)
    return kspace * mask + 0.0, mask.expand(batch, 1, 1, w, 1).bool(), num_low


@pytest.mark.parametrize(
    ("shape", "mask_func", "pass_num_low"),
    [
        ((2, 3, 40, 30), EquispacedMaskFractionFunc([0.08], [4]), True),
        ((1, 4, 33, 47), RandomMaskFunc([0.1], [4]), False),  # odd sizes, centre found from mask
        ((2, 2, 48, 64), EquispacedMaskFractionFunc([0.08], [8]), False),
    ],
)
def test_varnet_matches_fastmri(shape, mask_func, pass_num_low):
    torch.manual_seed(0)
    theirs = ref.VarNet(num_cascades=3, sens_chans=4, sens_pools=2, chans=6, pools=3)
    ours = VarNet(num_cascades=3, sens_chans=4, sens_pools=2, chans=6, pools=3)
    with torch.no_grad():  # random, non-trivial dc weights
        for cascade in theirs.cascades:
            cascade.dc_weight.uniform_(0.2, 2.0)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    kspace, mask, num_low = masked_inputs(*shape, mask_func, seed=3)
    arg = num_low if pass_num_low else None
    with torch.no_grad():
        expected = theirs(kspace, mask, arg)
        got = ours(kspace, mask, arg)
        got_float_mask = ours(kspace, mask.float(), arg)
        got_complex = ours(torch.view_as_complex(kspace), mask[..., 0], arg)
    assert got.shape == expected.shape == shape[:1] + shape[2:]
    assert relative_error(got, expected) < 1e-5
    assert torch.equal(got, got_float_mask)
    assert torch.equal(got, got_complex)


def test_fastmri_loads_our_varnet_weights():
    torch.manual_seed(1)
    ours = VarNet(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)
    theirs = ref.VarNet(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    kspace, mask, num_low = masked_inputs(1, 2, 32, 32, EquispacedMaskFractionFunc([0.08], [4]), 0)
    with torch.no_grad():
        assert relative_error(ours(kspace, mask, num_low), theirs(kspace, mask, num_low)) < 1e-5


def test_varnet_gradients_match_fastmri():
    torch.manual_seed(2)
    theirs = ref.VarNet(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)
    ours = VarNet(num_cascades=2, sens_chans=4, sens_pools=2, chans=4, pools=2)
    ours.load_state_dict(theirs.state_dict())
    kspace, mask, num_low = masked_inputs(1, 2, 32, 32, EquispacedMaskFractionFunc([0.08], [4]), 0)
    theirs(kspace, mask, num_low).sum().backward()
    ours(kspace, mask, num_low).sum().backward()
    for (name, mine), (_, expected) in zip(
        ours.named_parameters(), theirs.named_parameters(), strict=True
    ):
        assert mine.grad is not None and expected.grad is not None, name
        # absolute slack for gradients that are zero in exact arithmetic (first dc_weight)
        scale = expected.grad.abs().max().item()
        torch.testing.assert_close(mine.grad, expected.grad, rtol=1e-4, atol=1e-5 * scale + 1e-9)


@pytest.mark.parametrize(("h", "w", "pools"), [(32, 32, 3), (37, 29, 2), (64, 48, 4)])
def test_unet_matches_fastmri(h, w, pools):
    torch.manual_seed(4)
    theirs = ref.Unet(2, 3, chans=8, num_pool_layers=pools)
    ours = Unet(2, 3, chans=8, num_pool_layers=pools)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    image = torch.randn(2, 2, h, w)
    with torch.no_grad():
        expected, got = theirs(image), ours(image)
    assert got.shape == (2, 3, h, w)
    assert relative_error(got, expected) < 1e-5


def test_norm_unet_and_sensitivity_model_match_fastmri():
    torch.manual_seed(5)
    theirs_norm, ours_norm = ref.NormUnet(4, 2), NormUnet(4, 2)
    ours_norm.load_state_dict(theirs_norm.state_dict(), strict=True)
    image = torch.randn(2, 1, 20, 27, 2)
    with torch.no_grad():
        assert relative_error(ours_norm(image), theirs_norm(image)) < 1e-5

    theirs_sens, ours_sens = ref.SensitivityModel(4, 2), SensitivityModel(4, 2)
    ours_sens.load_state_dict(theirs_sens.state_dict(), strict=True)
    kspace, mask, num_low = masked_inputs(2, 3, 32, 40, EquispacedMaskFractionFunc([0.1], [4]), 7)
    with torch.no_grad():
        expected = theirs_sens(kspace, mask, num_low)
        got = ours_sens(torch.view_as_complex(kspace), mask[..., 0].float(), num_low)
    assert relative_error(torch.view_as_real(got), expected) < 1e-5


def test_norm_unet_rejects_a_bad_real_view():
    with pytest.raises(ValueError, match="last dimension of size 2"):
        NormUnet(4, 2)(torch.randn(1, 1, 16, 16, 3))


def test_varnet_under_autocast_keeps_complex64_and_float32_output():
    torch.manual_seed(6)
    model = VarNet(num_cascades=2, sens_chans=2, sens_pools=2, chans=4, pools=2).eval()
    kspace, mask, num_low = masked_inputs(1, 3, 32, 32, EquispacedMaskFractionFunc([0.1], [4]), 1)
    with torch.inference_mode():
        reference = model(kspace, mask, num_low)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = model(kspace, mask, num_low)
    assert mixed.dtype == torch.float32
    assert relative_error(mixed, reference) < 0.05  # bfloat16 convolutions, float32 FFTs
