"""Read (and, for tests and conversions, write) Cartesian k-space in ISMRMRD HDF5 files.

An ISMRMRD file holds ``/dataset/xml`` (the XML header fastMRI copies into ``ismrmrd_header``)
and ``/dataset/data``, one acquisition (readout line, all channels) per row. What the reader does
with them, each step reported in the volume's ``acquisition`` record (and so in the manifest):

* **series**: acquisitions are split by ``contrast``, ``phase``, ``repetition`` and ``set``; each
  combination becomes its own volume (one output series), never merged. Lines repeated within a
  series (``average`` counter, or the same line acquired again) are averaged: that is what the
  header's averages are for; the record counts them.
* **placement**: a line goes to column ``enc_y // 2 - limits.center + kspace_encode_step_1`` and
  its samples ``[discard_pre, n - discard_post)`` to rows ``enc_x // 2 + (i - center_sample)``
  (``center_sample`` indexes the whole readout); ``ACQ_IS_REVERSE`` lines are flipped first.
* **calibration**: ``ACQ_IS_PARALLEL_CALIBRATION`` and ``..._AND_IMAGING`` lines are used. With
  the header's ``calibrationMode`` ``embedded`` or ``interleaved`` (or none) they are part of the
  image's k-space, so the sampled block at the centre is as wide as the scan made it; with
  ``separate`` (a reference scan of its own) calibration-only lines are refused, since they
  would blend another acquisition into the image.
* **prewhitening**: noise scans (``ACQ_IS_NOISE_MEASUREMENT``) give the channel noise covariance
  (scaled by the ratio of the noise and imaging dwell times); every line is multiplied by the
  inverse of its Cholesky factor, so channels have unit, uncorrelated noise.
* **3-D**: partitions (``kspace_encode_step_2``, encoded ``z`` matrix above 1) are inverse
  Fourier transformed along ``z`` and become slices, ``encoded FOV z / matrix z`` apart along
  ``slice_dir``; only the partitions inside the reconSpace ``z`` field of view are kept.
* **geometry**: orientation from ``read_dir`` / ``phase_dir`` and each slice's centre from
  ``position`` (LPS, mm); when the acquisitions carry no directions the orientation stays
  unknown (no default is invented) and the record says so.

Navigator, phase-correction, dummy-scan and feedback lines are skipped and counted.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from recon_backend.data.fastmri_h5 import (
    _NS,
    Geometry,
    build_header,
    check_finite,
    open_h5,
    parse_header,
)
from recon_backend.errors import ReconError

#: ISMRMRD acquisition flag bit numbers (``ISMRMRD_AcquisitionFlags``, 1-based).
FLAG_NOISE = 19
FLAG_CALIBRATION = 20
FLAG_CALIBRATION_AND_IMAGING = 21
FLAG_REVERSE = 22
#: Lines that are not image data, by flag bit.
SKIPPED_FLAGS = {
    23: "navigation",
    24: "phase correction",
    26: "HP feedback",
    27: "dummy scan",
    28: "RT feedback",
    29: "surface coil correction",
}
#: Encoding counters that tell series apart (one output series per combination).
SERIES_COUNTERS = ("contrast", "phase", "repetition", "set")
#: Orientation vectors shorter than this count as absent.
_MIN_NORM = 1e-3


def _has(flags: np.ndarray, bit: int) -> np.ndarray:
    return (flags & np.uint64(1 << (bit - 1))) != 0


@dataclass
class IsmrmrdSeries:
    """One series of an ISMRMRD file: its k-space, geometry and what the reader did."""

    key: dict[str, int]
    kspace: np.ndarray  # (slices, coils, H, W) complex64
    geometry: Geometry
    sampling_mask: np.ndarray | None
    acquisition: dict[str, Any] = field(default_factory=dict)


def is_ismrmrd_h5(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file laid out as an ISMRMRD dataset (``/dataset/data``)."""
    with open_h5(path) as hf:
        group = hf.get("dataset")
        return group is not None and "data" in group and "xml" in group


def _header_text(group: h5py.Group, path: Path) -> str:
    raw = group["xml"][()]
    if isinstance(raw, np.ndarray):
        raw = raw.reshape(-1)[0] if raw.size else b""
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        raise ReconError(f"{path}: dataset/xml: expected the XML header text")
    return raw


def _header_details(xml: str, path: Path) -> dict[str, Any]:
    """Header elements beyond :func:`parse_header`: calibration mode, z limits, encodings."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    encodings = root.findall(".//i:encoding", _NS)
    trajectory = root.find(".//i:encoding/i:trajectory", _NS)
    kind = (trajectory.text or "").strip() if trajectory is not None else ""
    if kind not in ("", "cartesian"):
        raise ReconError(
            f"{path}: ismrmrd_header: encoding.trajectory is {kind!r}; "
            "only cartesian data can be reconstructed"
        )
    mode = root.find(".//i:encoding/i:parallelImaging/i:calibrationMode", _NS)
    z_center = root.find(".//i:encoding/i:encodingLimits/i:kspace_encoding_step_2/i:center", _NS)
    return {
        "n_encodings": len(encodings),
        "calibration_mode": (mode.text or "").strip() if mode is not None else None,
        "z_center": int(float(z_center.text)) if z_center is not None and z_center.text else None,
    }


def _unit_or_none(vectors: np.ndarray, what: str, path: Path) -> tuple[float, float, float] | None:
    """The common direction of ``(n, 3)`` vectors, ``None`` when they are all zero."""
    norms = np.linalg.norm(vectors, axis=1)
    if (norms < _MIN_NORM).all():
        return None
    if (norms < _MIN_NORM).any() or np.abs(norms - 1).max() > 1e-2:
        raise ReconError(
            f"{path}: acquisitions: {what} is not a unit vector in every line (norms "
            f"{norms.min():.3g} to {norms.max():.3g})"
        )
    first = vectors[0]
    if np.abs(vectors - first).max() > 1e-3:
        raise ReconError(
            f"{path}: acquisitions: {what} changes between lines of one series; slices of "
            "different orientation cannot form one series"
        )
    unit = first / np.linalg.norm(first)
    return (float(unit[0]), float(unit[1]), float(unit[2]))


def noise_whitener(
    noise: list[np.ndarray], noise_dwell_us: float, dwell_us: float, path: Path
) -> tuple[np.ndarray, int]:
    """Whitening matrix ``W = L^{-1}`` with ``L L^H`` the channel noise covariance.

    Parameters
    ----------
    noise
        Noise readouts, each ``(channels, samples)`` complex.
    noise_dwell_us, dwell_us
        Sample times of the noise scan and of the image lines; noise power grows with the
        receiver bandwidth, so the covariance is scaled by ``noise_dwell / dwell``.
    path
        For error messages.

    Returns
    -------
    whitener : numpy.ndarray
        complex64 ``(channels, channels)``.
    samples : int
        Noise samples per channel used.
    """
    data = np.concatenate(noise, axis=1).astype(np.complex128)
    channels, samples = data.shape
    if samples < 2 * channels:
        raise ReconError(
            f"{path}: noise scans: {samples} samples for {channels} channels; at least "
            f"{2 * channels} are needed for a noise covariance"
        )
    covariance = data @ data.conj().T / (samples - 1)
    if noise_dwell_us > 0 and dwell_us > 0:
        covariance *= noise_dwell_us / dwell_us
    try:
        lower = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        raise ReconError(
            f"{path}: noise scans: the channel noise covariance is singular (a channel "
            "without noise?); cannot prewhiten"
        ) from None
    return np.linalg.inv(lower).astype(np.complex64), samples


def _read_lines(path: Path) -> tuple[np.ndarray, list[np.ndarray], str]:
    """All acquisition headers (a structured array) and data ``(channels, samples)``."""
    with open_h5(path) as hf:
        group = hf.get("dataset")
        if group is None or "data" not in group or "xml" not in group:
            raise ReconError(f"{path}: not an ISMRMRD file (no /dataset/data and /dataset/xml)")
        xml = _header_text(group, path)
        table = group["data"]
        names = table.dtype.names or ()
        if "head" not in names or "data" not in names:
            raise ReconError(f"{path}: dataset/data: expected ISMRMRD acquisitions (head, data)")
        heads = np.asarray(table["head"])
        raw = table["data"]
        data = []
        for number, (head, values) in enumerate(zip(heads, raw, strict=True)):
            channels, samples = int(head["active_channels"]), int(head["number_of_samples"])
            values = np.asarray(values, dtype=np.float32)
            if values.size != 2 * channels * samples:
                raise ReconError(
                    f"{path}: acquisition {number}: {values.size} values, expected "
                    f"2 x {channels} channels x {samples} samples"
                )
            data.append(values.view(np.complex64).reshape(channels, samples))
    return heads, data, xml


def read_ismrmrd_series(path: Path) -> list[IsmrmrdSeries]:
    """Read an ISMRMRD HDF5 file into one fastMRI-layout volume per series.

    Parameters
    ----------
    path
        The ISMRMRD ``.h5`` file (group ``dataset``).

    Returns
    -------
    list of IsmrmrdSeries
        In the order of their counters (contrast, phase, repetition, set). Each has complex64
        k-space ``(slices, coils, H, W)`` (readout down, phase encodes across), the geometry
        (orientation only when the file gives it), the sampling mask when lines inside the
        acquired range are missing, and the ``acquisition`` record.

    Raises
    ------
    ReconError
        Not ISMRMRD, malformed header, non-Cartesian trajectory, several encoding spaces in
        use, no image acquisitions, inconsistent channel counts, counters or samples outside
        the header's matrix, non-unit or changing directions, undersampled partitions,
        separate calibration scans, a singular noise covariance, non-finite data.
    """
    path = Path(path)
    heads, data, xml = _read_lines(path)
    geometry = parse_header(xml, str(path))
    details = _header_details(xml, path)
    flags = heads["flags"].astype(np.uint64)
    noise = _has(flags, FLAG_NOISE)
    skipped = np.zeros(len(heads), dtype=bool)
    skipped_counts: dict[str, int] = {}
    for bit, name in SKIPPED_FLAGS.items():
        hit = _has(flags, bit) & ~noise
        if hit.any():
            skipped_counts[name] = int(hit.sum())
        skipped |= hit
    calibration_only = _has(flags, FLAG_CALIBRATION) & ~noise & ~skipped
    calibration_both = _has(flags, FLAG_CALIBRATION_AND_IMAGING) & ~noise & ~skipped
    image = ~noise & ~skipped
    if not image.any():
        raise ReconError(f"{path}: dataset/data: no image acquisitions")
    if details["calibration_mode"] == "separate" and calibration_only.any():
        raise ReconError(
            f"{path}: ismrmrd_header: calibrationMode 'separate': {int(calibration_only.sum())} "
            "calibration lines belong to a separate reference scan; such files are not supported"
        )
    if (heads["encoding_space_ref"][image] != 0).any():
        raise ReconError(
            f"{path}: acquisitions use encoding spaces other than the first "
            f"({details['n_encodings']} in the header); only one encoding space is supported"
        )
    channels = {int(heads["active_channels"][i]) for i in np.flatnonzero(image)}
    if len(channels) != 1:
        raise ReconError(
            f"{path}: acquisitions have {sorted(channels)} channels; every image line must have "
            "the same channels"
        )
    n_coils = channels.pop()
    whitener = None
    noise_record: dict[str, Any] = {"prewhitened": False, "noise_scans": int(noise.sum())}
    if noise.any():
        noise_lines = [data[i] for i in np.flatnonzero(noise)]
        if {line.shape[0] for line in noise_lines} != {n_coils}:
            raise ReconError(
                f"{path}: noise scans have {sorted({ln.shape[0] for ln in noise_lines})} "
                f"channels, the image lines {n_coils}"
            )
        noise_dwell = float(heads["sample_time_us"][np.flatnonzero(noise)[0]])
        dwell = float(heads["sample_time_us"][np.flatnonzero(image)[0]])
        whitener, samples = noise_whitener(noise_lines, noise_dwell, dwell, path)
        noise_record = {
            "prewhitened": True,
            "noise_scans": int(noise.sum()),
            "noise_samples": samples,
            "noise_dwell_us": noise_dwell,
            "image_dwell_us": dwell,
        }
    idx = heads["idx"]
    keys = sorted({tuple(int(idx[c][i]) for c in SERIES_COUNTERS) for i in np.flatnonzero(image)})
    series = []
    for key in keys:
        chosen = image.copy()
        for counter, value in zip(SERIES_COUNTERS, key, strict=True):
            chosen &= idx[counter] == value
        volume = _assemble(path, heads, data, np.flatnonzero(chosen), geometry, details, whitener)
        volume.key = dict(zip(SERIES_COUNTERS, key, strict=True))
        volume.acquisition.update(
            {
                "format": "ismrmrd",
                "series": dict(volume.key),
                "series_in_file": len(keys),
                "calibration_mode": details["calibration_mode"],
                "calibration_lines": int((calibration_only & chosen).sum()),
                "calibration_and_imaging_lines": int((calibration_both & chosen).sum()),
                "skipped_lines": skipped_counts,
                **noise_record,
            }
        )
        series.append(volume)
    return series


def _assemble(
    path: Path,
    heads: np.ndarray,
    data: list[np.ndarray],
    rows: np.ndarray,
    geometry: Geometry,
    details: dict[str, Any],
    whitener: np.ndarray | None,
) -> IsmrmrdSeries:
    """K-space ``(slices, coils, H, W)`` of the acquisitions ``rows`` (one series)."""
    idx = heads["idx"]
    enc_x, enc_y, enc_z = geometry.encoded_matrix
    partitions = enc_z if enc_z > 1 else 1
    z_centre = details["z_center"] if details["z_center"] is not None else partitions // 2
    z_offset = partitions // 2 - z_centre
    slice_numbers = sorted({int(idx["slice"][i]) for i in rows})
    slice_row = {number: row for row, number in enumerate(slice_numbers)}
    n_coils = int(heads["active_channels"][rows[0]])
    kspace = np.zeros((len(slice_numbers), partitions, n_coils, enc_x, enc_y), dtype=np.complex64)
    counts = np.zeros((len(slice_numbers), partitions, enc_y), dtype=np.int32)
    flags = heads["flags"].astype(np.uint64)
    reverse = _has(flags, FLAG_REVERSE)
    discards: Counter[tuple[int, int]] = Counter()
    unset_centre = 0
    for i in rows:
        head = heads[i]
        step1 = int(idx["kspace_encode_step_1"][i])
        step2 = int(idx["kspace_encode_step_2"][i])
        where = (
            f"acquisition {i} (slice {int(idx['slice'][i])}, kspace_encode_step_1 {step1}"
            + (f", kspace_encode_step_2 {step2}" if partitions > 1 else "")
            + ")"
        )
        column = geometry.padding_left + step1
        if not 0 <= column < enc_y:
            raise ReconError(
                f"{path}: {where}: outside the encoded matrix y = {enc_y} of the header"
            )
        partition = z_offset + step2 if partitions > 1 else 0
        if not 0 <= partition < partitions:
            raise ReconError(
                f"{path}: {where}: outside the encoded matrix z = {enc_z} of the header"
            )
        line = data[i]
        if reverse[i]:
            line = line[:, ::-1]
        samples = line.shape[1]
        pre, post = int(head["discard_pre"]), int(head["discard_post"])
        if pre + post >= samples:
            raise ReconError(
                f"{path}: {where}: discard_pre {pre} + discard_post {post} leave no samples of "
                f"{samples}"
            )
        centre = int(head["center_sample"])
        if centre == 0 and samples - pre - post == enc_x:
            # an unset centre on a full readout: the readout's middle is the k-space centre
            centre = pre + enc_x // 2
            unset_centre += 1
        elif reverse[i]:
            centre = samples - 1 - centre
        start = enc_x // 2 - centre + pre
        kept = line[:, pre : samples - post]
        if start < 0 or start + kept.shape[1] > enc_x:
            raise ReconError(
                f"{path}: {where}: {kept.shape[1]} samples kept (discard_pre {pre}, "
                f"discard_post {post}, centre {centre}) do not fit the encoded matrix x = {enc_x}"
            )
        discards[(pre, post)] += 1
        if whitener is not None:
            kept = whitener @ kept
        row = slice_row[int(idx["slice"][i])]
        kspace[row, partition, :, start : start + kept.shape[1], column] += kept
        counts[row, partition, column] += 1
    repeated = int(np.maximum(counts - 1, 0).sum())
    kspace /= np.maximum(counts, 1)[:, :, None, None, :]
    averages = sorted({int(idx["average"][i]) for i in rows})
    acquired = counts.max(axis=(0, 1)) > 0
    if partitions > 1:
        kspace, geometry_z = _partitions_to_slices(path, kspace, counts, acquired, geometry)
    else:
        kspace = kspace[:, 0]
        geometry_z = geometry
    check_finite(kspace, path)
    geometry_out, orientation = _orientation(path, heads, rows, slice_row, geometry_z, partitions)
    inside = acquired[geometry.padding_left : geometry.padding_right]
    sampling_mask = None if inside.all() else acquired
    record: dict[str, Any] = {
        "slices": int(kspace.shape[0]),
        "partitions": partitions,
        "averages": len(averages),
        "repeated_lines_averaged": repeated,
        "discard_pre_post": [[a, b, n] for (a, b), n in sorted(discards.items())],
        "lines_without_center_sample": unset_centre,
        "orientation": orientation,
    }
    return IsmrmrdSeries({}, kspace, geometry_out, sampling_mask, record)


def _partitions_to_slices(
    path: Path, kspace: np.ndarray, counts: np.ndarray, acquired: np.ndarray, geometry: Geometry
) -> tuple[np.ndarray, Geometry]:
    """Inverse FFT along the partitions; keep those inside the reconSpace z field of view."""
    n_slabs, partitions = kspace.shape[:2]
    sampled = counts[:, :, acquired] > 0  # (slabs, partitions, sampled columns)
    if not sampled.all():
        raise ReconError(
            f"{path}: kspace_encode_step_2: some partitions are missing for sampled lines; "
            "undersampling along the partition direction is not supported"
        )
    shifted = np.fft.ifftshift(kspace, axes=1)
    hybrid = np.fft.fftshift(np.fft.ifft(shifted, axis=1, norm="ortho"), axes=1)
    pixel_z = geometry.encoded_fov_mm[2] / partitions
    keep = max(1, min(partitions, round(geometry.recon_fov_mm[2] / pixel_z)))
    first = (partitions - keep) // 2
    hybrid = hybrid[:, first : first + keep]
    # partitions back to k-space rows: ifft along z mixes only z, k-space x/y stay k-space
    stacked = hybrid.reshape(n_slabs * keep, *hybrid.shape[2:]).astype(np.complex64)
    geometry = replace(
        geometry,
        three_d=True,
        recon_matrix=(geometry.recon_matrix[0], geometry.recon_matrix[1], keep),
        recon_fov_mm=(geometry.recon_fov_mm[0], geometry.recon_fov_mm[1], keep * pixel_z),
        slice_spacing_mm=pixel_z,
    )
    return stacked, geometry


def _orientation(
    path: Path,
    heads: np.ndarray,
    rows: np.ndarray,
    slice_row: dict[int, int],
    geometry: Geometry,
    partitions: int,
) -> tuple[Geometry, str]:
    """Geometry with the acquisitions' directions and slice centres, and how they were found."""
    read_dir = _unit_or_none(heads["read_dir"][rows].astype(np.float64), "read_dir", path)
    phase_dir = _unit_or_none(heads["phase_dir"][rows].astype(np.float64), "phase_dir", path)
    if read_dir is None or phase_dir is None:
        return (
            replace(geometry, read_dir=None, phase_dir=None, slice_centres_mm=None),
            "unknown: the acquisitions carry no read_dir/phase_dir; no orientation written",
        )
    if abs(float(np.dot(read_dir, phase_dir))) > 1e-3:
        raise ReconError(f"{path}: acquisitions: read_dir and phase_dir are not orthogonal")
    slice_dir = np.cross(read_dir, phase_dir)
    given = heads["slice_dir"][rows].astype(np.float64)
    if (np.linalg.norm(given, axis=1) > _MIN_NORM).all():
        stated = _unit_or_none(given, "slice_dir", path)
        if stated is not None and abs(float(np.dot(stated, slice_dir))) > 1e-3:
            slice_dir = np.asarray(stated)
    idx = heads["idx"]
    centres: list[tuple[float, float, float]] = []
    pixel_z = geometry.slice_spacing_mm or 0.0
    keep = geometry.recon_matrix[2] if partitions > 1 else 1
    # the slab's position is partition partitions // 2 of the transform, kept at this index
    middle = partitions // 2 - (partitions - keep) // 2 if partitions > 1 else 0
    for number in sorted(slice_row):
        in_slice = rows[idx["slice"][rows] == number]
        positions = heads["position"][in_slice].astype(np.float64)
        if np.abs(positions - positions[0]).max() > 1e-2:
            raise ReconError(
                f"{path}: acquisitions: position changes within slice {number}; cannot place it"
            )
        centre = positions[0]
        for p in range(keep):
            offset = (p - middle) * pixel_z
            c = centre + offset * slice_dir
            centres.append((float(c[0]), float(c[1]), float(c[2])))
    if len(centres) > 1 and len({tuple(round(v, 3) for v in c) for c in centres}) < len(centres):
        return (
            replace(geometry, read_dir=None, phase_dir=None, slice_centres_mm=None),
            "unknown: several slices share one position; no orientation written",
        )
    return (
        replace(geometry, read_dir=read_dir, phase_dir=phase_dir, slice_centres_mm=tuple(centres)),
        "from the acquisitions' read_dir, phase_dir and position",
    )


def read_ismrmrd_h5(path: Path) -> tuple[np.ndarray, Geometry, np.ndarray | None]:
    """The single series of an ISMRMRD file as ``(kspace, geometry, sampling_mask)``.

    Raises
    ------
    ReconError
        As :func:`read_ismrmrd_series`, and when the file holds more than one series.
    """
    series = read_ismrmrd_series(path)
    if len(series) != 1:
        keys = ", ".join(str(s.key) for s in series[:4])
        raise ReconError(
            f"{path}: holds {len(series)} series ({keys}{', ...' if len(series) > 4 else ''}); "
            "read them with read_ismrmrd_series / load_volumes"
        )
    only = series[0]
    return only.kspace, only.geometry, only.sampling_mask


def write_ismrmrd_h5(
    path: Path,
    kspace: np.ndarray,
    geometry: Geometry,
    *,
    sampling_mask: np.ndarray | None = None,
) -> Path:
    """Write k-space ``(slices, coils, H, W)`` as an ISMRMRD file, one acquisition per line.

    Acquisitions are written interleaved (slice inner, line outer) so readers must sort by the
    encoding counters. Directions go into every acquisition when ``geometry`` has them, slice
    centres into each acquisition's ``position``.
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
                if geometry.read_dir is not None and geometry.phase_dir is not None:
                    acq.read_dir[:] = geometry.read_dir
                    acq.phase_dir[:] = geometry.phase_dir
                    acq.slice_dir[:] = np.cross(geometry.read_dir, geometry.phase_dir)
                if centres is not None:
                    acq.position[:] = centres[number]
                dataset.append_acquisition(acq)
    return path
