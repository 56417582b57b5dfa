"""Masks: identical to fastMRI 0.3.0's for the same arguments and seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri.data import subsample as ref
from fastmri.data import transforms as ref_transforms
from hypothesis import given, settings
from hypothesis import strategies as st

from recon_backend.data import subsample

OURS = {
    "random": subsample.RandomMaskFunc,
    "equispaced": subsample.EquispacedMaskFunc,
    "equispaced-fraction": subsample.EquispacedMaskFractionFunc,
}
THEIRS = {
    "random": ref.RandomMaskFunc,
    "equispaced": ref.EquiSpacedMaskFunc,
    "equispaced-fraction": ref.EquispacedMaskFractionFunc,
}

pairs = st.lists(
    st.tuples(st.sampled_from([0.04, 0.08, 0.1, 0.16]), st.sampled_from([2, 3, 4, 6, 8])),
    min_size=1,
    max_size=3,
)
seeds = st.one_of(
    st.none(),
    st.integers(0, 2**32 - 1),
    st.text(alphabet="abcxyz_0123.h5", min_size=1, max_size=20).map(lambda s: tuple(map(ord, s))),
)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(sorted(OURS)),
    pairs=pairs,
    num_cols=st.integers(32, 400),
    lead=st.integers(1, 3),
    seed=seeds,
    offset=st.one_of(st.none(), st.integers(0, 1)),
    init_seed=st.one_of(st.none(), st.integers(0, 1000)),
    calls=st.integers(1, 3),
)
def test_masks_match_fastmri(kind, pairs, num_cols, lead, seed, offset, init_seed, calls):
    cfs, accs = [p[0] for p in pairs], [p[1] for p in pairs]
    ours = OURS[kind](cfs, accs, seed=init_seed)
    theirs = THEIRS[kind](cfs, accs, seed=init_seed)
    if init_seed is None:  # make the unseeded generators start from the same state
        theirs.rng.set_state(ours.rng.get_state())
    shape = (1,) * lead + (640, num_cols, 2)
    for _ in range(calls):  # repeated calls: the generator state must advance identically
        try:
            expected, expected_low = theirs(shape, offset, seed)
        except (ValueError, ZeroDivisionError):
            # fastMRI cannot draw this combination (e.g. an equispaced step below 0.5 column, or
            # a centre that is already W / acceleration): ours must refuse it too, clearly.
            with pytest.raises(ValueError):
                ours(shape, offset, seed)
            return
        mine, mine_low = ours(shape, offset, seed)
        assert mine.dtype == expected.dtype == torch.float32
        assert mine.shape == expected.shape
        assert torch.equal(mine, expected)
        assert mine_low == expected_low


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(sorted(OURS)),
    num_cols=st.integers(40, 200),
    seed=st.integers(0, 10_000),
)
def test_any_combination_matches_fastmri(kind, num_cols, seed):
    ours = OURS[kind]([0.08, 0.04], [4, 8, 6], allow_any_combination=True, seed=seed)
    theirs = THEIRS[kind]([0.08, 0.04], [4, 8, 6], allow_any_combination=True, seed=seed)
    for _ in range(3):
        mine, mine_low = ours((1, 64, num_cols, 2))
        expected, expected_low = theirs((1, 64, num_cols, 2))
        assert torch.equal(mine, expected) and mine_low == expected_low


@pytest.mark.parametrize(
    "spelling", ["random", "equispaced", "equispaced-fraction", "equispaced_fraction"]
)
def test_create_mask_for_mask_type_matches_fastmri(spelling):
    ours = subsample.create_mask_for_mask_type(spelling, [0.08], [4])
    theirs = ref.create_mask_for_mask_type(spelling.replace("-", "_"), [0.08], [4])
    seed = tuple(map(ord, "file_brain_AXT2_200_2000019.h5"))
    assert torch.equal(ours((1, 640, 368, 2), seed=seed)[0], theirs((1, 640, 368, 2), seed=seed)[0])


def test_unknown_mask_type_is_refused():
    with pytest.raises(ValueError, match="unknown mask type 'poisson'"):
        subsample.create_mask_for_mask_type("poisson", [0.08], [4])


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="same length"):
        subsample.RandomMaskFunc([0.08, 0.04], [4])


def test_shape_needs_three_dimensions():
    with pytest.raises(ValueError, match="at least 3"):
        subsample.RandomMaskFunc([0.08], [4])((368, 2))


def test_seeded_call_does_not_disturb_the_generator():
    func = subsample.RandomMaskFunc([0.08], [4], seed=3)
    twin = subsample.RandomMaskFunc([0.08], [4], seed=3)
    func((1, 64, 100, 2), seed=(1, 2, 3))
    assert torch.equal(func((1, 64, 100, 2))[0], twin((1, 64, 100, 2))[0])


def test_fraction_mask_hits_the_acceleration():
    mask, num_low = subsample.EquispacedMaskFractionFunc([0.08], [4])((1, 640, 368, 2), seed=0)
    assert num_low == round(368 * 0.08)
    assert abs(368 / mask.sum().item() - 4) < 0.1


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(sorted(OURS)),
    seed=st.integers(0, 2**31),
    padding=st.one_of(st.none(), st.tuples(st.integers(0, 10), st.integers(50, 64))),
)
def test_apply_mask_matches_fastmri(kind, seed, padding):
    gen = torch.Generator().manual_seed(seed)
    data = torch.randn(2, 8, 64, 2, generator=gen)
    data[0, 0, :, 0] = -0.0  # negative zeros must come out as zeros
    func = OURS[kind]([0.08], [4])
    masked, mask, num_low = subsample.apply_mask(data, func, seed=seed, padding=padding)
    expected, expected_mask, expected_low = ref_transforms.apply_mask(
        data, THEIRS[kind]([0.08], [4]), seed=seed, padding=padding
    )
    assert torch.equal(masked, expected) and torch.equal(mask, expected_mask)
    assert num_low == expected_low
    assert not torch.signbit(masked[mask.expand_as(masked) == 0]).any()


def test_apply_mask_accepts_complex_kspace():
    data = torch.randn(2, 8, 64, 2)
    func = subsample.EquispacedMaskFractionFunc([0.08], [4])
    real_view, mask, num_low = subsample.apply_mask(data, func, seed=5)
    complex_out, complex_mask, complex_low = subsample.apply_mask(
        torch.view_as_complex(data), func, seed=5
    )
    assert complex_mask.shape == (1, 1, 64)
    assert torch.equal(torch.view_as_real(complex_out), real_view)
    assert complex_low == num_low
    np.testing.assert_array_equal(complex_mask.numpy(), mask[..., 0].numpy())


def test_a_centre_that_is_the_whole_budget_is_a_clear_error(tmp_path) -> None:
    from recon_backend.data import load_kspace, write_fastmri_h5
    from recon_backend.errors import ReconError
    from recon_backend.inference import reconstruct
    from tests.recon_backend.conftest import simulate_kspace

    path = write_fastmri_h5(tmp_path / "w100.h5", simulate_kspace(1, 2, 32, 100))
    mask = subsample.create_mask_for_mask_type("equispaced-fraction", [0.25], [4])
    with pytest.raises(ReconError, match="no columns are left") as info:
        reconstruct(load_kspace(path), "zero-filled", mask_func=mask, device="cpu")
    assert str(path) in str(info.value)
