"""manifest.json: atomic appends, never corrupted, a corrupt one refused and left untouched."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from recon_backend.errors import ReconError
from recon_backend.manifest import ENTRY_KEYS, append_entry, file_sha256, read_manifest


def _entry(number: int) -> dict[str, object]:
    return {
        "input": f"/data/in{number}.h5",
        "input_sha256": "0" * 64,
        "method": "rss",
        "series_dir": f"in{number}_rss",
        "series_instance_uid": f"1.2.3.{number}",
        "series_number": number,
        "n_slices": 3,
        "acquisition": {"format": "fastmri"},
        "provenance": {"seconds": 1.5},
        "metrics": None,
    }


def test_append_keeps_earlier_entries(tmp_path: Path) -> None:
    path = tmp_path / "out" / "manifest.json"
    assert read_manifest(path) == []
    append_entry(path, _entry(1))
    append_entry(path, _entry(2))
    entries = json.loads(path.read_text())
    assert [e["series_dir"] for e in entries] == ["in1_rss", "in2_rss"]
    assert all(tuple(e) == ENTRY_KEYS for e in entries)
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize("content", ["{not json", '{"a": 1}', "[1, 2]", "\xff\xfe"])
def test_corrupt_manifest_is_refused_and_untouched(tmp_path: Path, content: str) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content.encode("latin-1"))
    before = path.read_bytes()
    with pytest.raises(ReconError, match=r"manifest\.json") as info:
        append_entry(path, _entry(1))
    assert "left unchanged" in str(info.value)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_entry_with_wrong_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    append_entry(path, _entry(1))
    bad = _entry(2)
    bad["extra"] = 1
    with pytest.raises(ReconError, match="keys"):
        append_entry(path, bad)
    assert len(read_manifest(path)) == 1


def test_non_finite_numbers_never_reach_the_file(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    append_entry(path, _entry(1))
    bad = _entry(2)
    bad["metrics"] = {"psnr": float("inf")}
    with pytest.raises(ValueError):
        append_entry(path, bad)
    assert len(read_manifest(path)) == 1


def _append_many(path: str, start: int) -> None:
    for number in range(start, start + 10):
        append_entry(Path(path), _entry(number))


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_many, args=(str(path), s)) for s in (0, 100)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    numbers = sorted(int(e["series_instance_uid"].rsplit(".", 1)[1]) for e in read_manifest(path))
    assert numbers == [*range(10), *range(100, 110)]


def test_file_sha256(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
