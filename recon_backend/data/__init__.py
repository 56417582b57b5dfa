"""Reading k-space files: one :class:`KspaceVolume` whatever the format (fastMRI or ISMRMRD)."""

from __future__ import annotations

from dataclasses import dataclass, field
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
from recon_backend.errors import ReconError

__all__ = [
    "Geometry",
    "H5Kspace",
    "KspaceVolume",
    "load_kspace",
    "load_volumes",
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
    series
        The encoding counters that make this volume one series of its file (ISMRMRD:
        ``contrast``, ``phase``, ``repetition``, ``set``); empty for fastMRI files.
    acquisition
        What the reader did (format, calibration lines, prewhitening, averages, orientation,
        ...): goes into the manifest as it is.
    """

    path: Path
    kspace: np.ndarray | H5Kspace
    geometry: Geometry
    attrs: dict[str, Any]
    reference: np.ndarray | None
    sampling_mask: np.ndarray | None
    multicoil: bool
    series: dict[str, int] = field(default_factory=dict)
    acquisition: dict[str, Any] = field(default_factory=dict)

    @property
    def num_slices(self) -> int:
        """Number of slices."""
        return int(self.kspace.shape[0])

    @property
    def fully_sampled(self) -> bool:
        """Whether every acquired column is present (no stored sampling mask)."""
        return self.sampling_mask is None


def load_volumes(path: Path | str, *, lazy: bool = False) -> list[KspaceVolume]:
    """Read a fastMRI or ISMRMRD HDF5 file: one volume per series it holds.

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
    list of KspaceVolume
        fastMRI: exactly one. ISMRMRD: one per combination of contrast, phase, repetition and
        set (see :mod:`recon_backend.data.ismrmrd_h5`), never merged.

    Raises
    ------
    ReconError
        Missing file, not HDF5, no ``kspace``, wrong rank, non-finite values, bad header.
    """
    from recon_backend.data.ismrmrd_h5 import is_ismrmrd_h5, read_ismrmrd_series

    path = Path(path)
    if is_ismrmrd_h5(path):
        return [
            KspaceVolume(
                path=path,
                kspace=series.kspace,
                geometry=series.geometry,
                attrs={},
                reference=None,
                sampling_mask=series.sampling_mask,
                multicoil=True,
                series=series.key,
                acquisition=series.acquisition,
            )
            for series in read_ismrmrd_series(path)
        ]
    contents = read_fastmri_h5(path, lazy=lazy)
    acquisition: dict[str, Any] = {
        "format": "fastmri",
        "series": {},
        "prewhitened": False,
        "orientation": "unknown: fastMRI files carry no orientation or slice positions; "
        "no orientation written",
    }
    if contents.sampling_mask is not None:
        acquisition["sampled_columns_in_file"] = int(contents.sampling_mask.sum())
    return [
        KspaceVolume(
            path=path,
            kspace=contents.kspace,
            geometry=contents.geometry,
            attrs=contents.attrs,
            reference=contents.reference,
            sampling_mask=contents.sampling_mask,
            multicoil=contents.multicoil,
            acquisition=acquisition,
        )
    ]


def load_kspace(path: Path | str, *, lazy: bool = False) -> KspaceVolume:
    """Read a fastMRI or ISMRMRD HDF5 file that holds a single series.

    Parameters and errors as :func:`load_volumes`; a file with several series (e.g. ISMRMRD
    repetitions) is a ReconError that says how many.
    """
    volumes = load_volumes(path, lazy=lazy)
    if len(volumes) != 1:
        keys = ", ".join(str(v.series) for v in volumes[:4])
        raise ReconError(
            f"{path}: holds {len(volumes)} series ({keys}{', ...' if len(volumes) > 4 else ''}); "
            "read them with load_volumes"
        )
    return volumes[0]
