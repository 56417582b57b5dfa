"""Read and write fastMRI HDF5 files (single- and multi-coil k-space with an ISMRMRD XML header).

Layout (fastMRI 0.3.0 data sets): ``kspace`` complex64 ``(slices, coils, H, W)`` multi-coil or
``(slices, H, W)`` single-coil, with ``H`` the (usually 2x oversampled) readout and ``W`` the phase
encodes; optional ``reconstruction_rss``/``reconstruction_esc`` ``(slices, rx, ry)``; optional
``mask`` ``(W,)`` for undersampled (test) files; ``ismrmrd_header`` XML; attrs ``acquisition``,
``max``, ``norm``, ``patient_id``. Columns outside ``[enc_y // 2 - center, that + maximum + 1)``
of ``kspace_encoding_step_1`` are padding (fastMRI's ``SliceDataset._retrieve_metadata``).
"""

from __future__ import annotations

import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from recon_backend.errors import ReconError

ISMRMRD_NAMESPACE = "http://www.ismrm.org/ISMRMRD"
_NS = {"i": ISMRMRD_NAMESPACE}
#: Reference-image datasets a fastMRI file may hold, in order of preference.
REFERENCE_DATASETS = ("reconstruction_rss", "reconstruction_esc")


@dataclass(frozen=True)
class Geometry:
    """What the header says about matrix, field of view, padding and slice placement.

    Image rows run along the readout (``x``, k-space ``H``), image columns along the phase
    encodes (``y``, k-space ``W``), as in fastMRI's crops. Orientation and slice positions are
    known only when the file gives them (ISMRMRD acquisitions' ``read_dir``, ``phase_dir`` and
    ``position``); fastMRI files do not, and then ``read_dir`` and ``phase_dir`` are ``None``.
    """

    encoded_matrix: tuple[int, int, int]
    recon_matrix: tuple[int, int, int]
    encoded_fov_mm: tuple[float, float, float]
    recon_fov_mm: tuple[float, float, float]
    #: First and one-past-last acquired phase-encode column; outside is zero padding.
    padding_left: int
    padding_right: int
    #: Direction cosines (LPS) of the readout (down the image rows) and the phase encodes
    #: (across); ``None`` when the file does not say.
    read_dir: tuple[float, float, float] | None = None
    phase_dir: tuple[float, float, float] | None = None
    #: Centre of each slice in patient coordinates (LPS, mm); ``None`` when unknown.
    slice_centres_mm: tuple[tuple[float, float, float], ...] | None = None
    slice_spacing_mm: float | None = None
    field_strength_t: float | None = None
    sequence: Mapping[str, float] = field(default_factory=dict)
    #: ``sequenceParameters.sequence_type`` of the header (e.g. ``TurboSpinEcho``), if any.
    sequence_type: str | None = None
    #: 3-D acquisitions (partitions along ``kspace_encode_step_2``) become slices.
    three_d: bool = False

    @property
    def orientation_known(self) -> bool:
        """Whether the file gave the image orientation and a position for every slice."""
        return (
            self.read_dir is not None
            and self.phase_dir is not None
            and self.slice_centres_mm is not None
        )

    @property
    def recon_size(self) -> tuple[int, int]:
        """Rows and columns of the reconstructed image (fastMRI's ``crop_size``)."""
        return (self.recon_matrix[0], self.recon_matrix[1])

    def image_crop(self, image_shape: tuple[int, ...]) -> tuple[int, int]:
        """Encoded-grid pixels that cover the reconSpace field of view, per image axis.

        The image on the encoded grid has pixels of ``encoded FOV / encoded matrix``; the
        reconSpace field of view spans ``round(recon FOV / that)`` of them (the read-out
        oversampling is cropped away this way). When that equals the reconSpace matrix this is
        fastMRI's centre crop; otherwise the crop is resampled to the reconSpace matrix
        (:meth:`needs_resampling`). A crop larger than the image is clipped to it, as fastMRI
        clips its crop.
        """
        rows = min(self._uncut_crop(0), int(image_shape[-2]))
        cols = min(self._uncut_crop(1), int(image_shape[-1]))
        return (rows, cols)

    def output_size(self, image_shape: tuple[int, ...]) -> tuple[int, int]:
        """Rows and columns written out: the reconSpace matrix, unless the crop was clipped."""
        crop = self.image_crop(image_shape)
        size = []
        for axis in (0, 1):
            full = self._uncut_crop(axis)
            size.append(self.recon_matrix[axis] if crop[axis] == full else crop[axis])
        return (size[0], size[1])

    def _uncut_crop(self, axis: int) -> int:
        if self.encoded_fov_mm[axis] > 0 and self.encoded_matrix[axis] > 0:
            encoded_pixel = self.encoded_fov_mm[axis] / self.encoded_matrix[axis]
            return max(1, round(self.recon_fov_mm[axis] / encoded_pixel))
        return self.recon_matrix[axis]

    def output_pixel_spacing_mm(self, image_shape: tuple[int, ...]) -> tuple[float, float]:
        """Row and column spacing of the written image.

        reconSpace field of view over matrix where the reconSpace is honoured; on an axis
        where the image is narrower than the reconSpace field of view (the crop was clipped),
        the encoded pixel size.
        """
        crop = self.image_crop(image_shape)
        spacing = []
        for axis in (0, 1):
            if crop[axis] == self._uncut_crop(axis):
                spacing.append(self.recon_fov_mm[axis] / self.recon_matrix[axis])
            else:
                spacing.append(self.encoded_fov_mm[axis] / self.encoded_matrix[axis])
        return (spacing[0], spacing[1])

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """Row spacing and column spacing: reconSpace field of view over matrix."""
        return (
            self.recon_fov_mm[0] / self.recon_matrix[0],
            self.recon_fov_mm[1] / self.recon_matrix[1],
        )

    @property
    def slice_thickness_mm(self) -> float:
        """Slice thickness: the reconSpace field of view along ``z`` (over its matrix in 3-D)."""
        if self.three_d:
            return self.recon_fov_mm[2] / max(self.recon_matrix[2], 1)
        return self.recon_fov_mm[2]


def make_geometry(
    kspace_shape: tuple[int, ...],
    recon_matrix: tuple[int, int] | None = None,
    *,
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0),
    slice_thickness_mm: float = 3.0,
    padding: tuple[int, int] | None = None,
    field_strength_t: float | None = 3.0,
    sequence: Mapping[str, float] | None = None,
) -> Geometry:
    """Geometry for k-space of shape ``(..., H, W)`` reconstructed to ``recon_matrix``.

    Parameters
    ----------
    kspace_shape
        Shape of the k-space; the last two entries are readout ``H`` and phase encodes ``W``.
    recon_matrix
        Rows and columns of the image; default ``(H // 2, W)`` (2x readout oversampling, as in
        fastMRI).
    pixel_spacing_mm
        Row and column spacing of the reconstructed image.
    slice_thickness_mm
        Slice thickness (also the slice spacing).
    padding
        Acquired phase-encode columns ``[left, right)``; default all of them.
    field_strength_t, sequence
        Field strength and sequence parameters (``TR``, ``TE``, ``TI``, ``flipAngle_deg``).

    Returns
    -------
    Geometry
        The geometry ``write_fastmri_h5`` turns into the ISMRMRD header.
    """
    height, width = int(kspace_shape[-2]), int(kspace_shape[-1])
    rx, ry = recon_matrix if recon_matrix is not None else (height // 2, width)
    dx, dy = pixel_spacing_mm
    left, right = padding if padding is not None else (0, width)
    return Geometry(
        encoded_matrix=(height, width, 1),
        recon_matrix=(int(rx), int(ry), 1),
        encoded_fov_mm=(height * dx, width * dy, slice_thickness_mm),
        recon_fov_mm=(rx * dx, ry * dy, slice_thickness_mm),
        padding_left=left,
        padding_right=right,
        slice_spacing_mm=slice_thickness_mm,
        field_strength_t=field_strength_t,
        sequence=dict(sequence or {}),
    )


def _text(root: ET.Element, path: str, source: str) -> str:
    node = root.find(path, _NS)
    if node is None or node.text is None or not node.text.strip():
        tag = path.replace("i:", "").replace(".//", "").replace("/", ".")
        raise ReconError(f"{source}: ismrmrd_header: missing element {tag}")
    return node.text.strip()


def _number(root: ET.Element, path: str, source: str, kind: type = float) -> Any:
    text = _text(root, path, source)
    try:
        return kind(float(text)) if kind is int else float(text)
    except ValueError:
        tag = path.replace("i:", "").replace(".//", "").replace("/", ".")
        raise ReconError(
            f"{source}: ismrmrd_header: {tag} is {text!r}, expected a number"
        ) from None


def _triple(root: ET.Element, path: str, source: str, kind: type) -> tuple[Any, Any, Any]:
    x, y, z = (_number(root, f"{path}/i:{axis}", source, kind) for axis in "xyz")
    return (x, y, z)


def _optional(root: ET.Element, path: str) -> float | None:
    node = root.find(path, _NS)
    if node is None or node.text is None:
        return None
    try:
        return float(node.text)
    except ValueError:
        return None


def parse_header(xml: str | bytes, source: str) -> Geometry:
    """Parse an ISMRMRD XML header into a :class:`Geometry`.

    Parameters
    ----------
    xml
        The header text (``ismrmrd_header`` of a fastMRI file, ``/dataset/xml`` of ISMRMRD).
    source
        The file name used in error messages.

    Returns
    -------
    Geometry
        Matrix sizes, fields of view and padding columns of the first encoding.

    Raises
    ------
    ReconError
        If the XML does not parse or an element fastMRI needs is missing or not a number.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ReconError(f"{source}: ismrmrd_header: not valid XML ({exc})") from None
    enc = ".//i:encoding"
    encoded = _triple(root, f"{enc}/i:encodedSpace/i:matrixSize", source, int)
    recon = _triple(root, f"{enc}/i:reconSpace/i:matrixSize", source, int)
    encoded_fov = _triple(root, f"{enc}/i:encodedSpace/i:fieldOfView_mm", source, float)
    recon_fov = _triple(root, f"{enc}/i:reconSpace/i:fieldOfView_mm", source, float)
    limits = f"{enc}/i:encodingLimits/i:kspace_encoding_step_1"
    center = _number(root, f"{limits}/i:center", source, int)
    maximum = _number(root, f"{limits}/i:maximum", source, int)
    padding_left = encoded[1] // 2 - center
    padding_right = padding_left + maximum + 1
    if min(*encoded, *recon) <= 0 or min(*recon_fov) <= 0:
        raise ReconError(
            f"{source}: ismrmrd_header: matrix sizes and reconSpace fieldOfView_mm must be positive"
        )
    sequence = {
        name: value
        for name in ("TR", "TE", "TI", "flipAngle_deg", "echo_spacing")
        if (value := _optional(root, f".//i:sequenceParameters/i:{name}")) is not None
    }
    sequence_type = root.find(".//i:sequenceParameters/i:sequence_type", _NS)
    return Geometry(
        encoded_matrix=encoded,
        recon_matrix=recon,
        encoded_fov_mm=encoded_fov,
        recon_fov_mm=recon_fov,
        padding_left=padding_left,
        padding_right=padding_right,
        field_strength_t=_optional(
            root, ".//i:acquisitionSystemInformation/i:systemFieldStrength_T"
        ),
        sequence=sequence,
        sequence_type=(sequence_type.text or "").strip() or None
        if sequence_type is not None
        else None,
    )


def build_header(geometry: Geometry, num_coils: int, num_slices: int) -> str:
    """The ISMRMRD XML header (fastMRI's ``ismrmrd_header``) describing ``geometry``.

    Elements are written in the order of the ISMRMRD schema, so ``ismrmrd.xsd`` accepts it.
    """
    ET.register_namespace("", ISMRMRD_NAMESPACE)

    def sub(parent: ET.Element, tag: str, text: object | None = None) -> ET.Element:
        node = ET.SubElement(parent, f"{{{ISMRMRD_NAMESPACE}}}{tag}")
        if text is not None:
            node.text = str(text)
        return node

    def triple(parent: ET.Element, tag: str, values: tuple[Any, Any, Any]) -> None:
        node = sub(parent, tag)
        for axis, value in zip("xyz", values, strict=True):
            sub(node, axis, value)

    root = ET.Element(f"{{{ISMRMRD_NAMESPACE}}}ismrmrdHeader")
    system = sub(root, "acquisitionSystemInformation")
    if geometry.field_strength_t is not None:
        sub(system, "systemFieldStrength_T", geometry.field_strength_t)
    sub(system, "receiverChannels", num_coils)
    conditions = sub(root, "experimentalConditions")
    sub(conditions, "H1resonanceFrequency_Hz", int(42.577478e6 * (geometry.field_strength_t or 3)))
    encoding = sub(root, "encoding")
    for space, matrix, fov in (
        ("encodedSpace", geometry.encoded_matrix, geometry.encoded_fov_mm),
        ("reconSpace", geometry.recon_matrix, geometry.recon_fov_mm),
    ):
        node = sub(encoding, space)
        triple(node, "matrixSize", matrix)
        triple(node, "fieldOfView_mm", fov)
    limits = sub(encoding, "encodingLimits")
    center = geometry.encoded_matrix[1] // 2 - geometry.padding_left
    maximum = geometry.padding_right - geometry.padding_left - 1
    for tag, (lo, hi, mid) in (
        ("kspace_encoding_step_1", (0, maximum, center)),
        ("kspace_encoding_step_2", (0, 0, 0)),
        ("slice", (0, num_slices - 1, 0)),
    ):
        node = sub(limits, tag)
        sub(node, "minimum", lo)
        sub(node, "maximum", hi)
        sub(node, "center", mid)
    sub(encoding, "trajectory", "cartesian")
    if geometry.sequence or geometry.sequence_type:
        params = sub(root, "sequenceParameters")
        for name in ("TR", "TE", "TI", "flipAngle_deg"):
            if name in geometry.sequence:
                sub(params, name, geometry.sequence[name])
        if geometry.sequence_type:
            sub(params, "sequence_type", geometry.sequence_type)
        if "echo_spacing" in geometry.sequence:
            sub(params, "echo_spacing", geometry.sequence["echo_spacing"])
    return ET.tostring(root, encoding="unicode")


class H5Kspace:
    """K-space of a fastMRI file read slice by slice on demand, as ``(slices, coils, H, W)``.

    Indexing with an integer or a slice on the first axis reads only those slices (checked for
    non-finite values), so a reconstruction never holds the whole volume in memory.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], single_coil: bool) -> None:
        self.path = path
        self.single_coil = single_coil
        self.shape: tuple[int, int, int, int] = (
            (shape[0], 1, shape[1], shape[2]) if single_coil else (shape[0], *shape[1:4])  # type: ignore[assignment]
        )
        self.dtype = np.dtype(np.complex64)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, int):
            return self[index : index + 1 if index != -1 else None][0]
        start = range(self.shape[0])[index].start
        with h5py.File(self.path, "r") as hf:
            data = np.asarray(hf["kspace"][index])
        if not np.iscomplexobj(data):
            raise ReconError(f"{self.path}: kspace: dtype {data.dtype}, expected complex64")
        data = data.astype(np.complex64, copy=False)
        if self.single_coil:
            data = data[:, None]
        check_finite(data, self.path, start)
        return data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self[:]
        return data if dtype is None else data.astype(dtype)


def check_finite(data: np.ndarray, path: Path, first_slice: int = 0) -> None:
    """Raise a ReconError naming the first slice of ``data`` (slices first) that is not finite."""
    flat = data.reshape(data.shape[0], -1)
    # a NaN or infinity makes its slice's sum non-finite: one cheap pass, no boolean copy
    if np.isfinite(flat.sum(axis=1)).all():
        return
    finite = np.isfinite(flat).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ReconError(
            f"{path}: kspace: non-finite values (NaN or Inf) in slice {first_slice + bad}"
        )


def open_h5(path: Path) -> h5py.File:
    """Open an HDF5 file for reading; a missing file or one that is not HDF5 is a ReconError."""
    if not path.exists():
        raise ReconError(f"{path}: file not found")
    if path.is_dir():
        raise ReconError(f"{path}: is a folder, expected an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ReconError(f"{path}: not a readable HDF5 file ({exc})") from None


def _attr_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


@dataclass(frozen=True)
class FastmriContents:
    """What :func:`read_fastmri_h5` found (``kspace`` is an :class:`H5Kspace` or an array)."""

    kspace: H5Kspace | np.ndarray
    geometry: Geometry
    attrs: dict[str, Any]
    reference: np.ndarray | None
    sampling_mask: np.ndarray | None
    multicoil: bool


def read_fastmri_h5(path: Path, *, lazy: bool = False) -> FastmriContents:
    """Read a fastMRI HDF5 file.

    Parameters
    ----------
    path
        The ``.h5`` file.
    lazy
        Keep k-space on disk and read slices on demand (an :class:`H5Kspace`); otherwise read it
        all now as a complex64 array ``(slices, coils, H, W)``.

    Returns
    -------
    FastmriContents
        K-space, geometry from ``ismrmrd_header``, attrs, the reference images
        (``reconstruction_rss`` or ``reconstruction_esc``) or ``None``, and the sampling mask of
        an undersampled file or ``None``.

    Raises
    ------
    ReconError
        Missing file, not HDF5, no ``kspace``, wrong rank or dtype, non-finite values, missing or
        unparsable ``ismrmrd_header``, ``mask`` of the wrong length.
    """
    path = Path(path)
    with open_h5(path) as hf:
        if "kspace" not in hf or not isinstance(hf["kspace"], h5py.Dataset):
            raise ReconError(
                f"{path}: no 'kspace' dataset (found: {', '.join(hf.keys()) or 'none'})"
            )
        dset = hf["kspace"]
        if dset.ndim not in (3, 4):
            raise ReconError(
                f"{path}: kspace: rank {dset.ndim} (shape {dset.shape}), expected "
                "(slices, coils, H, W) multi-coil or (slices, H, W) single-coil"
            )
        if dset.dtype.kind != "c":
            raise ReconError(f"{path}: kspace: dtype {dset.dtype}, expected complex (complex64)")
        if min(dset.shape) == 0:
            raise ReconError(f"{path}: kspace: empty shape {dset.shape}")
        shape = tuple(int(n) for n in dset.shape)
        single = dset.ndim == 3
        if "ismrmrd_header" not in hf:
            raise ReconError(f"{path}: no 'ismrmrd_header' dataset")
        raw = hf["ismrmrd_header"][()]
        if isinstance(raw, np.ndarray):
            raw = raw.tobytes() if raw.dtype.kind in "SUV" else raw.item()
        geometry = parse_header(raw, str(path))
        attrs = {key: _attr_value(value) for key, value in hf.attrs.items()}
        reference = None
        for name in REFERENCE_DATASETS:
            if name in hf:
                ref = np.asarray(hf[name], dtype=np.float32)
                if ref.ndim != 3 or ref.shape[0] != shape[0]:
                    raise ReconError(
                        f"{path}: {name}: shape {ref.shape}, expected ({shape[0]}, rows, columns)"
                    )
                if not np.isfinite(ref).all():
                    raise ReconError(f"{path}: {name}: non-finite values")
                reference = ref
                break
        sampling_mask = None
        if "mask" in hf:
            sampling_mask = np.asarray(hf["mask"]).reshape(-1).astype(bool)
            if sampling_mask.shape[0] != shape[-1]:
                raise ReconError(
                    f"{path}: mask: length {sampling_mask.shape[0]}, expected {shape[-1]} "
                    "(the k-space width)"
                )
    if not 0 <= geometry.padding_left < geometry.padding_right <= shape[-1]:
        geometry = replace(geometry, padding_left=0, padding_right=shape[-1])
    lazy_kspace = H5Kspace(path, shape, single)
    kspace: H5Kspace | np.ndarray = lazy_kspace if lazy else lazy_kspace[:]
    return FastmriContents(
        kspace=kspace,
        geometry=geometry,
        attrs=attrs,
        reference=reference,
        sampling_mask=sampling_mask,
        multicoil=not single,
    )


def write_fastmri_h5(
    path: Path,
    kspace: np.ndarray,
    geometry: Geometry | None = None,
    *,
    recon_matrix: tuple[int, int] | None = None,
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0),
    slice_thickness_mm: float = 3.0,
    attrs: Mapping[str, Any] | None = None,
    reconstruction_rss: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    single_coil: bool = False,
) -> Path:
    """Write k-space as a fastMRI-layout HDF5 file (temporary file, then rename).

    Parameters
    ----------
    path
        Where to write the ``.h5`` file.
    kspace
        Complex k-space ``(slices, coils, H, W)`` (stored as complex64).
    geometry
        Header geometry; default :func:`make_geometry` from ``recon_matrix`` (default
        ``(H // 2, W)``), ``pixel_spacing_mm`` and ``slice_thickness_mm``.
    attrs
        File attributes (e.g. ``acquisition``, ``patient_id``); ``max`` and ``norm`` of
        ``reconstruction_rss`` are added when it is given and they are not.
    reconstruction_rss
        Optional reference images ``(slices, rows, columns)``.
    mask
        Optional sampling mask ``(W,)`` (marks the file as undersampled, as fastMRI test files).
    single_coil
        Store ``(slices, H, W)`` single-coil k-space (``kspace`` must have one coil).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    data = np.asarray(kspace)
    if data.ndim != 4:
        raise ReconError(f"{path}: kspace: rank {data.ndim}, expected (slices, coils, H, W)")
    if single_coil:
        if data.shape[1] != 1:
            raise ReconError(f"{path}: kspace: {data.shape[1]} coils, single-coil needs 1")
        data = data[:, 0]
    if geometry is None:
        geometry = make_geometry(
            data.shape,
            recon_matrix,
            pixel_spacing_mm=pixel_spacing_mm,
            slice_thickness_mm=slice_thickness_mm,
        )
    header = build_header(geometry, num_coils=int(kspace.shape[1]), num_slices=int(kspace.shape[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with h5py.File(tmp_name, "w") as hf:
            hf.create_dataset("kspace", data=data.astype(np.complex64, copy=False))
            hf.create_dataset("ismrmrd_header", data=np.bytes_(header.encode("utf-8")))
            if reconstruction_rss is not None:
                rss = np.asarray(reconstruction_rss, dtype=np.float32)
                hf.create_dataset("reconstruction_rss", data=rss)
                hf.attrs["max"] = float(rss.max())
                hf.attrs["norm"] = float(np.linalg.norm(rss))
            if mask is not None:
                hf.create_dataset("mask", data=np.asarray(mask).reshape(-1).astype(bool))
            for key, value in (attrs or {}).items():
                hf.attrs[key] = value
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path
