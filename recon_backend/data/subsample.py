"""Cartesian under-sampling masks, identical to fastMRI 0.3.0's for the same arguments and seed.

A mask function keeps whole phase-encoding columns (dimension ``-2`` of a k-space shape in the
real-view layout ``(..., H, W, 2)``): a fully sampled block of ``round(W * center_fraction)``
low-frequency columns plus columns spread over the rest of k-space. fastMRI draws everything from
one ``numpy.random.RandomState``; to reproduce its masks bit for bit, the draws below happen in the
same order with the same calls:

1. the (center fraction, acceleration) pair: ``randint(len(center_fractions))``, or with
   ``allow_any_combination`` one ``choice`` from each list;
2. random masks: one ``uniform(size=W)`` vector; equispaced masks: ``randint(0, round(step))``
   for the offset, only when no offset is given.

A ``seed`` passed to a call reseeds the generator for that call only and then restores its
state, so a per-volume seed (``tuple(map(ord, filename))``) gives every slice and every run the
same mask while unseeded calls keep advancing the generator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

#: A seed as fastMRI accepts it: an integer or a tuple of integers (e.g. a file name's code points).
Seed = int | tuple[int, ...]

#: The mask types this module knows, in the spelling of ``blindreader recon --mask``.
MASK_TYPES = ("random", "equispaced", "equispaced-fraction")


class MaskFunc(ABC):
    """Base class of the column-mask functions.

    Parameters
    ----------
    center_fractions
        Fractions of the columns kept fully sampled at the k-space centre.
    accelerations
        Under-sampling factors; paired element-wise with ``center_fractions`` unless
        ``allow_any_combination`` is set. One pair is drawn per call.
    allow_any_combination
        Draw the centre fraction and the acceleration independently.
    seed
        Seed of the generator that unseeded calls draw from.
    """

    def __init__(
        self,
        center_fractions: Sequence[float],
        accelerations: Sequence[float],
        allow_any_combination: bool = False,
        seed: int | None = None,
    ) -> None:
        if len(center_fractions) != len(accelerations) and not allow_any_combination:
            raise ValueError(
                "center_fractions and accelerations must have the same length "
                "unless allow_any_combination is set"
            )
        self.center_fractions = center_fractions
        self.accelerations = accelerations
        self.allow_any_combination = allow_any_combination
        self.rng = np.random.RandomState(seed)

    def __call__(
        self, shape: Sequence[int], offset: int | None = None, seed: Seed | None = None
    ) -> tuple[torch.Tensor, int]:
        """Draw a mask for k-space of ``shape``.

        Parameters
        ----------
        shape
            k-space shape with at least 3 dimensions; columns are ``shape[-2]``.
        offset
            First sampled column of an equispaced pattern; drawn at random when ``None``.
        seed
            Seed for this call only (the generator's state is restored afterwards).

        Returns
        -------
        mask : torch.Tensor
            float32, 1 for kept columns, shaped ``1`` everywhere except ``shape[-2]``.
        num_low_frequencies : int
            Width of the fully sampled centre block.
        """
        if len(shape) < 3:
            raise ValueError(f"mask shape needs at least 3 dimensions, got {tuple(shape)}")
        if seed is None:
            return self._draw(shape, offset)
        saved = self.rng.get_state()
        self.rng.seed(seed)
        try:
            return self._draw(shape, offset)
        finally:
            self.rng.set_state(saved)

    def _draw(self, shape: Sequence[int], offset: int | None) -> tuple[torch.Tensor, int]:
        num_cols = int(shape[-2])
        center_fraction, acceleration = self._choose_pair()
        num_low = self._num_low_frequencies(num_cols, center_fraction, acceleration)
        columns = self._outer_columns(num_cols, acceleration, offset, num_low)
        center = np.zeros(num_cols, dtype=bool)
        start = (num_cols - num_low + 1) // 2
        center[start : start + num_low] = True
        mask_shape = [1] * len(shape)
        mask_shape[-2] = num_cols
        mask = (center | columns).astype(np.float32).reshape(mask_shape)
        return torch.from_numpy(mask), num_low

    def _choose_pair(self) -> tuple[float, float]:
        if self.allow_any_combination:
            return self.rng.choice(self.center_fractions), self.rng.choice(self.accelerations)
        index = self.rng.randint(len(self.center_fractions))
        return self.center_fractions[index], self.accelerations[index]

    def _num_low_frequencies(
        self, num_cols: int, center_fraction: float, acceleration: float
    ) -> int:
        return round(num_cols * center_fraction)

    @abstractmethod
    def _outer_columns(
        self, num_cols: int, acceleration: float, offset: int | None, num_low: int
    ) -> np.ndarray:
        """Boolean vector of the columns kept outside the centre block."""


class RandomMaskFunc(MaskFunc):
    """Centre block plus columns kept independently with the probability that makes the expected
    number of kept columns ``W / acceleration``."""

    def _outer_columns(
        self, num_cols: int, acceleration: float, offset: int | None, num_low: int
    ) -> np.ndarray:
        prob = (num_cols / acceleration - num_low) / (num_cols - num_low)
        return np.asarray(self.rng.uniform(size=num_cols) < prob)


class EquispacedMaskFunc(MaskFunc):
    """Centre block plus every ``acceleration``-th column from ``offset`` (GRAPPA-style); the true
    acceleration is therefore below the nominal one."""

    def _outer_columns(
        self, num_cols: int, acceleration: float, offset: int | None, num_low: int
    ) -> np.ndarray:
        if offset is None:
            offset = int(self.rng.randint(0, high=round(acceleration)))
        columns = np.zeros(num_cols, dtype=bool)
        columns[offset :: int(acceleration)] = True
        return columns


class EquispacedMaskFractionFunc(MaskFunc):
    """Centre block plus columns at a fractional spacing chosen so that the total number of kept
    columns matches ``W / acceleration`` (the masks of the public fastMRI multi-coil data).

    The spacing is fractional, so the kept columns are rounded positions and not strictly
    equispaced (fastMRI issue 54); kept as is to match the published data.
    """

    def _outer_columns(
        self, num_cols: int, acceleration: float, offset: int | None, num_low: int
    ) -> np.ndarray:
        denominator = num_low * acceleration - num_cols
        if denominator == 0:
            # the centre block alone is the whole budget of W / acceleration columns (fastMRI
            # divides by zero here)
            raise ValueError(
                f"equispaced-fraction: a centre of {num_low} columns is already 1/{acceleration} "
                f"of {num_cols}; no columns are left to spread (choose a smaller centre fraction)"
            )
        step = (acceleration * (num_low - num_cols)) / denominator
        if offset is None:
            offset = int(self.rng.randint(0, high=round(step)))
        positions = np.around(np.arange(offset, num_cols - 1, step)).astype(np.uint)
        columns = np.zeros(num_cols, dtype=bool)
        columns[positions] = True
        return columns


def create_mask_for_mask_type(
    mask_type: str, center_fractions: Sequence[float], accelerations: Sequence[float]
) -> MaskFunc:
    """Make the mask function named ``mask_type``.

    Parameters
    ----------
    mask_type
        ``"random"``, ``"equispaced"`` or ``"equispaced-fraction"`` (fastMRI's spelling
        ``"equispaced_fraction"`` is accepted too).
    center_fractions, accelerations
        As for :class:`MaskFunc`.

    Returns
    -------
    MaskFunc
        A fresh, unseeded mask function.
    """
    kinds: dict[str, type[MaskFunc]] = {
        "random": RandomMaskFunc,
        "equispaced": EquispacedMaskFunc,
        "equispaced-fraction": EquispacedMaskFractionFunc,
    }
    kind = kinds.get(mask_type.replace("_", "-"))
    if kind is None:
        raise ValueError(
            f"unknown mask type {mask_type!r}; expected one of {', '.join(MASK_TYPES)}"
        )
    return kind(center_fractions, accelerations)


def apply_mask(
    data: torch.Tensor,
    mask_func: MaskFunc,
    offset: int | None = None,
    seed: Seed | None = None,
    padding: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Zero the k-space columns that ``mask_func`` drops.

    Parameters
    ----------
    data
        k-space in fastMRI's real view ``(..., H, W, 2)``, or complex ``(..., H, W)``.
    mask_func
        The mask function.
    offset, seed
        Passed to ``mask_func``.
    padding
        ``(left, right)``: columns before ``left`` and from ``right`` on are padding and
        are never sampled.

    Returns
    -------
    masked : torch.Tensor
        ``data * mask + 0.0`` (the ``+ 0.0`` turns negative zeros into zeros, as fastMRI does).
    mask : torch.Tensor
        The mask, broadcastable against ``data``.
    num_low_frequencies : int
        Width of the fully sampled centre block.
    """
    complex_input = data.is_complex()
    spatial = (*data.shape[-2:], 2) if complex_input else tuple(data.shape[-3:])
    lead = data.ndim - (2 if complex_input else 3)
    mask, num_low = mask_func((1,) * lead + spatial, offset, seed)
    if padding is not None:
        mask[..., : padding[0], :] = 0
        mask[..., padding[1] :, :] = 0
    if complex_input:
        mask = mask[..., 0]
    return data * mask + 0.0, mask, num_low
