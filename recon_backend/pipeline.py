"""Reconstruct k-space files into DICOM series and record each in ``manifest.json``.

``run_recon`` is what ``blindreader recon`` and the demo call: for every input it reconstructs
with one method, writes one DICOM series folder, computes metrics against the fully sampled
reference when the input is fully sampled, and appends one manifest entry.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from recon_backend.errors import ReconError
from recon_backend.manifest import MANIFEST_NAME, append_entry, file_sha256, read_manifest
from recon_backend.progress import ProgressCallback, no_progress

#: The demo VarNet shipped with the package (trained on simulated data by the project's script).
DEMO_VARNET = Path(__file__).resolve().parent / "weights" / "demo_varnet.pt"
MASK_TYPES = ("random", "equispaced", "equispaced-fraction")


def code_version() -> str:
    """The installed blindreader version (read from the distribution, not by importing it)."""
    try:
        return version("blindreader")
    except PackageNotFoundError:
        return "unknown"


def default_model_path(method: str) -> Path | None:
    """The bundled model for ``method`` when there is one (the demo VarNet), else ``None``."""
    return DEMO_VARNET if method == "varnet" and DEMO_VARNET.is_file() else None


def _series_label(series: dict[str, int]) -> str:
    """``_rep3`` etc. for the counters of a series that are not zero (empty for fastMRI)."""
    short = {"contrast": "con", "phase": "phs", "repetition": "rep", "set": "set"}
    return "".join(f"_{short.get(k, k)}{v}" for k, v in series.items() if v)


def next_series_number(entries: list[dict[str, Any]], input_sha256: str) -> int:
    """One more than the highest SeriesNumber already in the manifest for this input's study."""
    numbers = [
        int(e.get("series_number") or 0) for e in entries if e.get("input_sha256") == input_sha256
    ]
    return max(numbers, default=0) + 1


def _series_dir(out_dir: Path, stem: str, method: str) -> Path:
    """A new folder name ``<stem>_<method>`` (``_2``, ``_3``, ... when taken)."""
    base = out_dir / f"{stem}_{method}"
    candidate, number = base, 1
    while candidate.exists():
        number += 1
        candidate = base.with_name(f"{base.name}_{number}")
    return candidate


def _check_options(method: str, accel: float, center_fraction: float, mask_type: str) -> None:
    from recon_backend.inference import METHODS

    if method not in METHODS:
        raise ReconError(f"--method: {method!r}, expected one of {', '.join(METHODS)}")
    if mask_type not in MASK_TYPES:
        raise ReconError(f"--mask: {mask_type!r}, expected one of {', '.join(MASK_TYPES)}")
    if not accel >= 1:
        raise ReconError(f"--accel: {accel}, expected an acceleration of at least 1")
    if not 0 < center_fraction < 1:
        raise ReconError(f"--center-fraction: {center_fraction}, expected a fraction in (0, 1)")


def run_recon(
    inputs: Sequence[Path],
    out_dir: Path,
    method: str,
    *,
    model_path: Path | None = None,
    accel: float = 4,
    center_fraction: float = 0.08,
    mask_type: str = "equispaced-fraction",
    device: str = "auto",
    batch_size: int | None = None,
    precision: str = "fp32",
    progress: ProgressCallback = no_progress,
) -> list[dict[str, Any]]:
    """Reconstruct ``inputs`` with ``method`` into ``out_dir`` and append to its manifest.

    Parameters
    ----------
    inputs
        fastMRI or ISMRMRD HDF5 files.
    out_dir
        Output folder: one series folder per input plus ``manifest.json``.
    method
        ``rss``, ``zero-filled``, ``cg-sense``, ``varnet`` or ``unet``.
    model_path
        Weights for ``varnet``/``unet``; ``varnet`` defaults to the bundled demo model.
    accel, center_fraction, mask_type
        Undersampling of fully sampled input (fastMRI masks, seeded by the file name).
    device
        ``auto`` (CUDA, then MPS, then CPU), ``cuda``, ``mps`` or ``cpu``.
    batch_size
        Slices per batch; default measured per device, bounded by the memory budget.
    precision
        ``fp32`` (default), ``tf32`` or ``amp`` for the networks; recorded in the provenance.
    progress
        ``progress(slices done, slices, "<file name>: <method>")`` per batch of each volume.

    Returns
    -------
    list of dict
        The manifest entries added, in input order; an ISMRMRD file with several series
        (contrasts, repetitions, sets, cardiac phases) adds one entry and one DICOM series each.

    Raises
    ------
    ReconError
        Bad options, unreadable inputs or model, a corrupt existing manifest (checked before any
        work; it is left as it is).
    """
    from recon_backend.data import load_volumes
    from recon_backend.device import resolve_device
    from recon_backend.inference import MODEL_METHODS

    _check_options(method, accel, center_fraction, mask_type)
    from recon_backend.device import PRECISION_POLICIES

    if precision not in PRECISION_POLICIES:
        choices = ", ".join(PRECISION_POLICIES)
        raise ReconError(f"--precision: {precision!r}, expected one of {choices}")
    torch_device = resolve_device(device)
    out_dir = Path(out_dir)
    manifest_path = out_dir / MANIFEST_NAME
    read_manifest(manifest_path)  # a corrupt manifest stops the run before any work
    paths = [Path(p) for p in inputs]
    for path in paths:
        if not path.is_file():
            raise ReconError(f"{path}: input file not found")
    model = None
    model_fields: dict[str, Any] = {"model_file": None, "model_sha256": None, "model_hparams": None}
    if method in MODEL_METHODS:
        from recon_backend.models.loading import load_model

        chosen = model_path or default_model_path(method)
        if chosen is None:
            raise ReconError(f"--model: method {method} needs a weights file (--model PATH)")
        model, hparams = load_model(chosen, method, torch_device)  # type: ignore[arg-type]
        model_fields = {
            "model_file": str(Path(chosen).resolve()),
            "model_sha256": file_sha256(Path(chosen)),
            "model_hparams": hparams,
        }
    mask_func = None
    if method != "rss":
        from recon_backend.data.subsample import create_mask_for_mask_type

        mask_func = create_mask_for_mask_type(mask_type, [center_fraction], [accel])
    mask_settings = {"mask_type": mask_type, "accel": accel, "center_fraction": center_fraction}
    entries = []
    for path in paths:
        sha = file_sha256(path)
        for volume in load_volumes(path, lazy=True):
            entry = _reconstruct_series(
                volume,
                sha,
                out_dir,
                method,
                model=model,
                model_fields=model_fields,
                mask_func=mask_func,
                mask_settings=mask_settings,
                device=torch_device,
                batch_size=batch_size,
                precision=precision,
                progress=progress,
            )
            entries.append(entry)
    return entries


def _reconstruct_series(
    volume: Any,
    sha: str,
    out_dir: Path,
    method: str,
    *,
    model: Any,
    model_fields: dict[str, Any],
    mask_func: Any,
    mask_settings: dict[str, Any],
    device: Any,
    batch_size: int | None,
    precision: str,
    progress: ProgressCallback,
) -> dict[str, Any]:
    """Reconstruct one series, write its DICOM folder and append its manifest entry."""
    import torch

    from recon_backend.evaluate import volume_metrics
    from recon_backend.export import write_series
    from recon_backend.inference import describe_mask, reconstruct

    path = volume.path
    manifest_path = out_dir / MANIFEST_NAME
    result = reconstruct(
        volume,
        method,
        model=model,
        mask_func=mask_func,
        device=device,
        batch_size=batch_size,
        precision=precision,
        progress=progress,
    )
    metrics = None
    if result.reference is not None:
        metrics = volume_metrics(result.reference, result.images)
    patient_id = str(volume.attrs.get("patient_id") or f"anon-{sha[:12]}")
    series_number = next_series_number(read_manifest(manifest_path), sha)
    label = _series_label(volume.series)
    series = write_series(
        result.images,
        volume.geometry,
        _series_dir(out_dir, f"{path.stem}{label}", method),
        study_seed=sha,
        patient_id=patient_id,
        series_number=series_number,
        pixel_spacing_mm=result.pixel_spacing_mm,
    )
    out_size = result.images.shape[1:]
    acquisition = {
        **volume.acquisition,
        "encoded_matrix": list(volume.geometry.encoded_matrix),
        "recon_matrix": list(volume.geometry.recon_matrix),
        "image_crop": list(result.crop),
        "resampled_to": list(out_size) if tuple(out_size) != tuple(result.crop) else None,
        "pixel_spacing_mm": [round(v, 6) for v in result.pixel_spacing_mm],
        "spacing_between_slices_mm": series.spacing_between_slices_mm,
        "sop_class_uid": series.sop_class_uid,
        "stored_value_per_intensity": series.intensity_scale,
    }
    provenance: dict[str, Any] = {
        **describe_mask(result.mask, mask_settings),
        **model_fields,
        "code_version": code_version(),
        "device": result.device,
        "torch_version": torch.__version__,
        "precision": result.precision,
        "batch_size": result.batch_size,
        "batch_halvings": result.halvings,
        "estimated_bytes_per_slice": result.estimated_slice_bytes,
        "seconds": round(result.seconds, 4),
        "peak_memory_bytes": int(result.peak_memory_bytes),
    }
    entry = {
        "input": str(path.resolve()),
        "input_sha256": sha,
        "method": method,
        "series_dir": series.series_dir.relative_to(out_dir).as_posix(),
        "series_instance_uid": series.series_instance_uid,
        "series_number": series.series_number,
        "n_slices": int(result.images.shape[0]),
        "acquisition": acquisition,
        "provenance": provenance,
        "metrics": metrics,
    }
    try:
        append_entry(manifest_path, entry)
    except BaseException:
        shutil.rmtree(series.series_dir, ignore_errors=True)
        raise
    return entry
