"""Choosing the compute device and measuring peak memory (CUDA allocator or process RSS)."""

from __future__ import annotations

import contextlib
import functools
import platform
import sys
import threading
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import torch

from recon_backend.errors import ReconError

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``: ``auto`` picks CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    ReconError
        If ``name`` is unknown or names a device this machine does not have.
    """
    if name not in DEVICE_CHOICES:
        raise ReconError(f"--device: {name!r}, expected one of {', '.join(DEVICE_CHOICES)}")
    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ReconError("--device: cuda requested but torch sees no CUDA GPU")
    if name == "mps" and not has_mps:
        raise ReconError("--device: mps requested but Apple MPS is not available")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """A readable name, e.g. ``cuda (NVIDIA H100 80GB HBM3)`` or ``cpu (x86_64, 2 threads)``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


#: torch's out-of-memory exception (``torch.OutOfMemoryError`` from 2.5 on; the CUDA one
#: before), raised by the CUDA and the CPU allocators alike.
TORCH_OUT_OF_MEMORY: type[BaseException] = getattr(
    torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError
)


def is_out_of_memory(exc: BaseException, device: torch.device | None = None) -> bool:
    """Whether ``exc`` is an out-of-memory failure: torch's own exception type or Python's
    ``MemoryError``; on Apple MPS, whose allocator raises a plain RuntimeError, its message."""
    if isinstance(exc, MemoryError | TORCH_OUT_OF_MEMORY | torch.cuda.OutOfMemoryError):
        return True
    return (
        device is not None
        and device.type == "mps"
        and isinstance(exc, RuntimeError)
        and "MPS backend out of memory" in str(exc)
    )


def free_cached_memory(device: torch.device) -> None:
    """Give cached allocator blocks back after an out-of-memory failure.

    Call it only after the failed batch's tensors are gone (outside the ``except`` block, whose
    traceback keeps the failed frames and their tensors alive).
    """
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


#: Numerical precision policies for the networks (``--precision``). FFTs and data consistency
#: stay complex64 in every policy.
PRECISION_POLICIES = ("fp32", "tf32", "amp")


@contextlib.contextmanager
def precision_policy(device: torch.device, policy: str = "fp32") -> Iterator[dict[str, Any]]:
    """Apply a precision policy while reconstructing and describe it for the provenance.

    ``fp32`` (default): TF32 off for matrix products and cuDNN convolutions, no autocast, so a
    GPU matches the CPU to float32 rounding. ``tf32``: TF32 allowed (NVIDIA Ampere and later;
    faster convolutions, about 1e-3 relative error). ``amp``: autocast of the U-Nets to float16
    on CUDA (bfloat16 on the CPU); the models cast back to float32 before every FFT. The
    global flags are restored afterwards.

    Yields
    ------
    dict
        ``policy``, ``tf32_matmul``, ``tf32_cudnn``, ``autocast_dtype`` (``None`` or a dtype
        name): what was in force.
    """
    if policy not in PRECISION_POLICIES:
        raise ReconError(
            f"--precision: {policy!r}, expected one of {', '.join(PRECISION_POLICIES)}"
        )
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = policy == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    autocast_dtype: torch.dtype | None = None
    if policy == "amp":
        autocast_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    record = {
        "policy": policy,
        "tf32_matmul": tf32 and device.type == "cuda",
        "tf32_cudnn": tf32 and device.type == "cuda",
        "autocast_dtype": str(autocast_dtype).replace("torch.", "") if autocast_dtype else None,
        "fft_dtype": "complex64",
    }
    try:
        if autocast_dtype is not None:
            with torch.autocast(device_type=device.type, dtype=autocast_dtype):
                yield record
        else:
            yield record
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


#: glibc ``mallopt`` parameter number of ``M_MMAP_THRESHOLD``.
_M_MMAP_THRESHOLD = -3
#: glibc's own ceiling for its dynamic mmap threshold on 64-bit systems (32 MiB).
GLIBC_MAX_MMAP_THRESHOLD = 32 << 20


@contextlib.contextmanager
def cpu_heap_policy(device: torch.device, mmap_threshold: int) -> Iterator[None]:
    """Fix glibc's mmap threshold while reconstructing on the CPU, so the peak does not creep.

    glibc raises its mmap threshold (up to 32 MiB) whenever a large mapped buffer is freed, so
    after the first batches large buffers are carved out of the heap and the peak resident
    memory grows with the number of batches through fragmentation, although live memory does
    not (measured on 15-coil 320x184 slices, batch 4: CG-SENSE +20 to +45 % for 40 slices
    against 10, VarNet +13 %). A fixed threshold makes every batch allocate alike: 4 MiB for the
    classical methods (their few coil-sized buffers are then mapped and unmapped, which costs
    little), 64 MiB for the networks (mapping each activation would slow VarNet about 4x).
    Afterwards the threshold stays at glibc's own ceiling, the state the dynamic rule
    reaches anyway. No effect off Linux/glibc or on GPUs.
    """
    libc = _libc() if device.type == "cpu" and sys.platform.startswith("linux") else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        yield
        return
    mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
    try:
        yield
    finally:
        mallopt(_M_MMAP_THRESHOLD, GLIBC_MAX_MMAP_THRESHOLD)


def release_freed_memory(device: torch.device) -> None:
    """Return freed heap memory to the operating system after a batch (CPU, glibc only)."""
    if device.type != "cpu" or not sys.platform.startswith("linux"):
        return
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@functools.cache
def _libc() -> Any:
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def process_rss_bytes() -> int:
    """Current resident set size of this process."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``clear_refs``); False if not."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int | None:
    """The kernel's peak RSS of this process since start or the last reset (Linux ``VmHWM``).

    Unlike ``getrusage``'s ``ru_maxrss`` it is not inherited from a parent across ``exec``.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """Context manager measuring peak memory while it is active.

    On CUDA the allocator's peak (``torch.cuda.max_memory_allocated``) after a reset. Elsewhere
    the process's peak resident set size: exactly from the kernel where Linux lets the mark be
    reset, else sampled every ``interval`` seconds by a background thread. ``peak_bytes`` holds
    the result after the block.
    """

    def __init__(self, device: torch.device, interval: float = 0.005) -> None:
        self.device = device
        self.interval = interval
        self.peak_bytes = 0
        self._kernel_mark = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, process_rss_bytes())

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self.peak_bytes = process_rss_bytes()
        self._kernel_mark = _reset_peak_rss() and peak_rss_bytes() is not None
        if not self._kernel_mark:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        kernel_peak = peak_rss_bytes() if self._kernel_mark else None
        self.peak_bytes = max(self.peak_bytes, kernel_peak or 0, process_rss_bytes())


def memory_budget_bytes(device: torch.device) -> int:
    """Memory a reconstruction may use for its slice batches on ``device``.

    Half of the free GPU memory on CUDA; on the CPU (and MPS, which shares it) a quarter of the
    available RAM, at most 4 GiB, since larger CPU batches do not run faster.
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 2)
    import psutil

    return int(min(psutil.virtual_memory().available // 4, 4 << 30))
