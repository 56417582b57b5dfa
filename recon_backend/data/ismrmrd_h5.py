"""Read (and, for tests and conversions, write) Cartesian 2-D k-space in ISMRMRD HDF5 files.

An ISMRMRD file holds ``/dataset/xml`` (the same XML header fastMRI copies into
``ismrmrd_header``) and ``/dataset/data``, one acquisition (readout line, all coils) per row. Lines
are placed by their encoding counters: ``idx.slice`` and ``idx.kspace_encode_step_1`` (column
``enc_y // 2 - center + step_1``); repeated lines (averages) are averaged; noise, navigator,
phase-correction and calibration-only lines are skipped. The whole volume is assembled in memory.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from recon_backend.data.fastmri_h5 import (
    Geometry,
    build_header,
    check_finite,
    open_h5,
    parse_header,
)
from recon_backend.errors import ReconError

#: Acquisition flags whose lines are not image data (ISMRMRD ``ACQ_IS_*`` bit numbers).
_SKIPPED_FLAGS = (
    "ACQ_IS_NOISE_MEASUREMENT",
    "ACQ_IS_NAVIGATION_DATA",
    "ACQ_IS_PHASECORR_DATA",
    "ACQ_IS_DUMMYSCAN_DATA",
    "ACQ_IS_RTFEEDBACK_DATA",
    "ACQ_IS_HPFEEDBACK_DATA",
    "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA",
    "ACQ_IS_PARALLEL_CALIBRATION",
    "ACQ_IS_PHASE_STABILIZATION_REFERENCE",
    "ACQ_IS_PHASE_STABILIZATION",
)


def is_ismrmrd_h5(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file laid out as an ISMRMRD dataset (``/dataset/data``)."""
    with open_h5(path) as hf:
        group = hf.get("dataset")
        return group is not None and "data" in group and "xml" in group


def read_ismrmrd_h5(path: Path) -> tuple[np.ndarray, Geometry, np.ndarray | None]:
    """Read an ISMRMRD HDF5 file into fastMRI-layout k-space.

    Parameters
    ----------
    path
        The ISMRMRD ``.h5`` file (group ``dataset``).

    Returns
    -------
    kspace : numpy.ndarray
        Complex64 ``(slices, coils, H, W)``: readout samples down, phase encodes across.
    geometry : Geometry
        From the XML header, with slice centres and directions from the acquisitions.
    sampling_mask : numpy.ndarray or None
        ``(W,)`` acquired columns when some columns inside the acquired range are missing
        (an undersampled acquisition), else ``None``.

    Raises
    ------
    ReconError
        Missing or malformed header, no image acquisitions, inconsistent coil or sample counts,
        counters outside the header's matrix, non-finite data.
    """
    import ismrmrd

    path = Path(path)
    open_h5(path).close()
    if not is_ismrmrd_h5(path):
        raise ReconError(f"{path}: not an ISMRMRD file (no /dataset/data and /dataset/xml)")
    skip = [getattr(ismrmrd, flag) for flag in _SKIPPED_FLAGS]
    with ismrmrd.Dataset(str(path), "dataset", mode="r") as dataset:
        geometry = parse_header(dataset.read_xml_header(), str(path))
        n_acq = dataset.number_of_acquisitions()
        acquisitions = []
        for number in range(n_acq):
            acq = dataset.read_acquisition(number)
            if any(acq.is_flag_set(flag) for flag in skip):
                continue
            acquisitions.append(acq)
    if not acquisitions:
        raise ReconError(f"{path}: dataset/data: no image acquisitions")
    enc_x, enc_y = geometry.encoded_matrix[0], geometry.encoded_matrix[1]
    acquisitions.sort(key=lambda a: (a.idx.slice, a.idx.kspace_encode_step_1, a.idx.average))
    slices = sorted({a.idx.slice for a in acquisitions})
    slice_row = {number: row for row, number in enumerate(slices)}
    coils = acquisitions[0].active_channels
    kspace = np.zeros((len(slices), coils, enc_x, enc_y), dtype=np.complex64)
    counts = np.zeros((len(slices), enc_y), dtype=np.int32)
    centres: dict[int, tuple[float, float, float]] = {}
    for acq in acquisitions:
        step = acq.idx.kspace_encode_step_1
        where = f"acquisition (slice {acq.idx.slice}, kspace_encode_step_1 {step})"
        column = geometry.padding_left + step
        if acq.active_channels != coils:
            raise ReconError(
                f"{path}: {where}: {acq.active_channels} channels, expected {coils} like the first"
            )
        if not 0 <= column < enc_y:
            raise ReconError(
                f"{path}: {where}: outside the encoded matrix y = {enc_y} of the header"
            )
        samples = acq.number_of_samples
        start = enc_x // 2 - acq.center_sample if samples != enc_x else 0
        if start < 0 or start + samples > enc_x:
            raise ReconError(
                f"{path}: {where}: {samples} samples (centre {acq.center_sample}) do not fit "
                f"the encoded matrix x = {enc_x}"
            )
        row = slice_row[acq.idx.slice]
        kspace[row, :, start : start + samples, column] += acq.data
        counts[row, column] += 1
        centres.setdefault(row, tuple(float(v) for v in acq.position))  # type: ignore[arg-type]
    kspace /= np.maximum(counts, 1)[:, None, None, :]
    check_finite(kspace, path)
    first = acquisitions[0]
    read_dir = tuple(float(v) for v in first.read_dir)
    phase_dir = tuple(float(v) for v in first.phase_dir)
    has_directions = any(read_dir) and any(phase_dir)
    geometry = replace(
        geometry,
        slice_centres_mm=tuple(centres[row] for row in range(len(slices))),
        read_dir=read_dir if has_directions else geometry.read_dir,  # type: ignore[arg-type]
        phase_dir=phase_dir if has_directions else geometry.phase_dir,  # type: ignore[arg-type]
    )
    acquired = counts.max(axis=0) > 0
    inside = acquired[geometry.padding_left : geometry.padding_right]
    sampling_mask = None if inside.all() else acquired
    return kspace, geometry, sampling_mask


def write_ismrmrd_h5(
    path: Path,
    kspace: np.ndarray,
    geometry: Geometry,
    *,
    sampling_mask: np.ndarray | None = None,
) -> Path:
    """Write k-space ``(slices, coils, H, W)`` as an ISMRMRD file, one acquisition per line.

    Acquisitions are written in a shuffled-free but interleaved order (slice inner, line outer)
    so readers must sort by the encoding counters. Slice centres, when ``geometry`` has them,
    go into each acquisition's ``position``.
    """
    import ismrmrd

    path = Path(path)
    n_slices, n_coils, height, width = kspace.shape
    header = build_header(geometry, num_coils=n_coils, num_slices=n_slices)
    mask = np.ones(width, bool) if sampling_mask is None else np.asarray(sampling_mask, bool)
    centres = geometry.slice_centres_mm
    if path.exists():
        path.unlink()
    with ismrmrd.Dataset(str(path), "dataset", create_if_needed=True) as dataset:
        dataset.write_xml_header(header)
        for column in range(geometry.padding_left, geometry.padding_right):
            if not mask[column]:
                continue
            for number in range(n_slices):
                acq = ismrmrd.Acquisition.from_array(
                    np.ascontiguousarray(kspace[number, :, :, column], dtype=np.complex64)
                )
                acq.idx.slice = number
                acq.idx.kspace_encode_step_1 = column - geometry.padding_left
                acq.center_sample = height // 2
                acq.read_dir[:] = geometry.read_dir
                acq.phase_dir[:] = geometry.phase_dir
                if centres is not None:
                    acq.position[:] = centres[number]
                dataset.append_acquisition(acq)
    return path
