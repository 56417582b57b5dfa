"""Run the DICOM tools no one here wrote: dicom3tools' ``dciodvfy`` and dcmtk's ``dcm2pnm``.

Both come from Debian packages the Makefile's ``test-tools`` target installs (``dicom3tools``,
``dcmtk``); a test that needs one skips, saying which package, where it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest


def require(tool: str, package: str) -> str:
    """The path of ``tool``, or skip the test naming the Debian package that provides it."""
    found = shutil.which(tool)
    if found is None:
        pytest.skip(f"{tool} not installed (Debian package {package}; make test-tools installs it)")
    return found


def dciodvfy_messages(path: Path) -> list[str]:
    """``dciodvfy``'s error and warning lines for one file."""
    tool = require("dciodvfy", "dicom3tools")
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]


def dciodvfy_errors(path: Path) -> list[str]:
    """Only the ``Error`` lines of :func:`dciodvfy_messages`."""
    return [line for line in dciodvfy_messages(path) if line.startswith("Error")]


def dcm2pnm_grey(path: Path, out: Path, *options: str) -> np.ndarray:
    """Render ``path`` with ``dcm2pnm`` to an 8-bit PGM and return its pixels."""
    tool = require("dcm2pnm", "dcmtk")
    run = subprocess.run(
        [tool, *options, str(path), str(out)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return read_pgm(out)


def read_pgm(path: Path) -> np.ndarray:
    """Pixels of a binary (P5) PGM file."""
    data = path.read_bytes()
    fields: list[bytes] = []
    position = 0
    while len(fields) < 4:
        while data[position : position + 1].isspace():
            position += 1
        if data[position : position + 1] == b"#":
            position = data.index(b"\n", position) + 1
            continue
        end = position
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[position:end])
        position = end
    assert fields[0] == b"P5", fields[0]
    width, height, maxval = (int(f) for f in fields[1:])
    dtype = np.uint8 if maxval < 256 else np.dtype(">u2")
    pixels = np.frombuffer(data[position + 1 :], dtype=dtype, count=width * height)
    return pixels.reshape(height, width)
