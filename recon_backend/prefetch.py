"""Read-ahead of k-space batches on a background thread, into reused (pinned) host buffers.

While the device reconstructs batch ``n``, the thread reads batch ``n + 1`` from the HDF5 file
(``read_direct`` straight into a preallocated buffer, no temporary array) and checks it for
non-finite values, so file I/O overlaps compute. Buffers go round a small ring and are reused, so
memory stays flat however many slices a volume has. For CUDA the buffers are page-locked
(pinned), which lets the host-to-device copy run asynchronously (``non_blocking=True``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import h5py
import numpy as np
import torch

from recon_backend.data import H5Kspace, KspaceVolume
from recon_backend.data.fastmri_h5 import check_finite
from recon_backend.errors import ReconError

#: Buffers in the ring: one being filled while one is on the device.
RING_SIZE = 2


@dataclass
class HostBatch:
    """Slices ``[start, stop)`` in ``buffer[: stop - start]`` (complex64 ``(n, C, H, W)``)."""

    start: int
    stop: int
    buffer: torch.Tensor
    slot: int

    @property
    def data(self) -> torch.Tensor:
        """The filled part of the buffer."""
        return self.buffer[: self.stop - self.start]


def host_buffer(shape: tuple[int, ...], pinned: bool) -> torch.Tensor:
    """An uninitialised complex64 host tensor; page-locked when ``pinned`` (CUDA only)."""
    return torch.empty(shape, dtype=torch.complex64, pin_memory=pinned)


class BatchPrefetcher:
    """Iterate over a volume's slices in batches read ahead by a background thread.

    Parameters
    ----------
    volume
        The k-space: an :class:`H5Kspace` (read with ``read_direct``) or an array (copied).
    batch
        Slices per read.
    pinned
        Allocate page-locked buffers (for asynchronous copies to a CUDA device).
    ring_size
        Number of buffers; the thread stays at most ``ring_size - 1`` batches ahead.
    background
        Read on the background thread (the default). ``False`` reads each batch when it is
        asked for, on the caller's thread, into the same buffers: on a CPU device the compute
        already uses every core, so a second reading thread only competes with it (measured:
        benchmarks/RESULTS.md); a GPU leaves the CPU free, so there the thread overlaps.
    check
        Check every batch for non-finite values as it is read (the thread is otherwise idle
        while a GPU computes). The caller checks its outputs instead when this is off.

    Use as a context manager; iterate to get :class:`HostBatch` objects and call
    :meth:`release` with each one once its data have been consumed (copied to the device or,
    on the CPU, used). Errors on the thread (unreadable file, non-finite values) are raised in
    the consumer at the batch where they happened.
    """

    def __init__(
        self,
        volume: KspaceVolume,
        batch: int,
        *,
        pinned: bool = False,
        ring_size: int = RING_SIZE,
        background: bool = True,
        check: bool = True,
    ) -> None:
        self.volume = volume
        self.background = background
        self.check = check
        if not background:
            ring_size = 1  # read when asked: one buffer is enough
        self.batch = max(1, int(batch))
        shape = tuple(int(n) for n in volume.kspace.shape)
        self.n_slices = shape[0]
        self.buffers = [
            host_buffer((min(self.batch, self.n_slices), *shape[1:]), pinned)
            for _ in range(ring_size)
        ]
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(ring_size):
            self._free.put(slot)
        self._filled: queue.Queue[HostBatch | BaseException | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kspace-read-ahead", daemon=True)
        #: Names of the threads that read each batch (tests check it is not the caller's).
        self.reader_threads: set[str] = set()

    def __enter__(self) -> BatchPrefetcher:
        if self.background:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if not self.background:
            return
        for slot in range(len(self.buffers)):  # unblock a thread waiting for a free buffer
            self._free.put(slot)
        self._thread.join()

    def __iter__(self) -> Iterator[HostBatch]:
        if not self.background:
            with _Source(self.volume) as source:
                for start in range(0, self.n_slices, self.batch):
                    yield self._read(source, self._free.get(), start)
            return
        while True:
            item = self._filled.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def release(self, batch: HostBatch) -> None:
        """Give ``batch``'s buffer back for the next read."""
        self._free.put(batch.slot)

    def _read(self, source: _Source, slot: int, start: int) -> HostBatch:
        stop = min(start + self.batch, self.n_slices)
        buffer = self.buffers[slot]
        target = buffer[: stop - start].numpy()
        source.read(start, stop, target)
        if self.check:
            check_finite(target, self.volume.path, start)
        self.reader_threads.add(threading.current_thread().name)
        return HostBatch(start, stop, buffer, slot)

    def _run(self) -> None:
        try:
            with _Source(self.volume) as source:
                for start in range(0, self.n_slices, self.batch):
                    slot = self._free.get()
                    if self._stop.is_set():
                        return
                    self._filled.put(self._read(source, slot, start))
        except BaseException as exc:  # handed to the consumer, raised there
            self._filled.put(exc)
            return
        self._filled.put(None)


class _Source:
    """Reads slices of a volume into a given array: ``read_direct`` for files, a copy else."""

    def __init__(self, volume: KspaceVolume) -> None:
        self.volume = volume
        self.file: h5py.File | None = None
        self.dataset: h5py.Dataset | None = None

    def __enter__(self) -> _Source:
        kspace = self.volume.kspace
        if isinstance(kspace, H5Kspace):
            self.file = h5py.File(kspace.path, "r")
            self.dataset = self.file["kspace"]
            if self.dataset.dtype.kind != "c":
                raise ReconError(
                    f"{kspace.path}: kspace: dtype {self.dataset.dtype}, expected complex64"
                )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()

    def read(self, start: int, stop: int, out: np.ndarray) -> None:
        kspace = self.volume.kspace
        if self.dataset is not None:
            assert isinstance(kspace, H5Kspace)
            target = out[:, 0] if kspace.single_coil else out
            if self.dataset.dtype == np.complex64:
                self.dataset.read_direct(target, np.s_[start:stop])
            else:  # e.g. complex128 files: read, then narrow
                np.copyto(target, self.dataset[start:stop], casting="same_kind")
        else:
            np.copyto(out, np.asarray(kspace[start:stop]), casting="same_kind")
