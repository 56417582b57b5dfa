"""Reading k-space files: one :class:`KspaceVolume` whatever the format (fastMRI or ISMRMRD)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon_backend.data.fastmri_h5 import (
    Geometry,
    H5Kspace,
    make_geometry,
    read_fastmri_h5,
    write_fastmri_h5,
)

__all__ = [
    "Geometry",
    "H5Kspace",
    "KspaceVolume",
    "load_kspace",
    "make_geometry",
    "write_fastmri_h5",
]


@dataclass(frozen=True)
class KspaceVolume:
    """One k-space volume, format-independent.

    Attributes
    ----------
    path
        The file it came from.
    kspace
        Complex64 ``(slices, coils, H, W)`` (``coils == 1`` for single-coil): an array, or an
        :class:`H5Kspace` that reads slices on demand (``load_kspace(..., lazy=True)``).
    geometry
        Matrix sizes, fields of view, padding columns and slice placement.
    attrs
        File attributes (fastMRI: ``acquisition``, ``max``, ``norm``, ``patient_id``).
    reference
        Reference images ``(slices, rows, columns)`` stored in the file, or ``None``.
    sampling_mask
        ``(W,)`` acquired columns when the file holds undersampled k-space, else ``None``.
    multicoil
        Whether the file stores coils (fastMRI multi-coil layout).
    """

    path: Path
    kspace: np.ndarray | H5Kspace
    geometry: Geometry
    attrs: dict[str, Any]
    reference: np.ndarray | None
    sampling_mask: np.ndarray | None
    multicoil: bool

    @property
    def num_slices(self) -> int:
        """Number of slices."""
        return int(self.kspace.shape[0])

    @property
    def fully_sampled(self) -> bool:
        """Whether every acquired column is present (no stored sampling mask)."""
        return self.sampling_mask is None


def load_kspace(path: Path | str, *, lazy: bool = False) -> KspaceVolume:
    """Read a fastMRI or ISMRMRD HDF5 file.

    Parameters
    ----------
    path
        The ``.h5`` file; the format is recognised from its contents (``kspace`` dataset:
        fastMRI; ``/dataset/data``: ISMRMRD).
    lazy
        For fastMRI files, read k-space slices only when indexed (constant memory); ISMRMRD files
        are always assembled in memory.

    Returns
    -------
    KspaceVolume
        K-space ``(slices, coils, H, W)`` complex64 with geometry, attrs and references.

    Raises
    ------
    ReconError
        Missing file, not HDF5, no ``kspace``, wrong rank, non-finite values, bad header.
    """
    from recon_backend.data.ismrmrd_h5 import is_ismrmrd_h5, read_ismrmrd_h5

    path = Path(path)
    if is_ismrmrd_h5(path):
        kspace, geometry, mask = read_ismrmrd_h5(path)
        return KspaceVolume(
            path=path,
            kspace=kspace,
            geometry=geometry,
            attrs={},
            reference=None,
            sampling_mask=mask,
            multicoil=True,
        )
    contents = read_fastmri_h5(path, lazy=lazy)
    return KspaceVolume(
        path=path,
        kspace=contents.kspace,
        geometry=contents.geometry,
        attrs=contents.attrs,
        reference=contents.reference,
        sampling_mask=contents.sampling_mask,
        multicoil=contents.multicoil,
    )
