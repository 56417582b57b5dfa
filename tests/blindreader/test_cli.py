"""The top-level command line: fast help, info, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

BLINDREADER = [sys.executable, "-m", "blindreader"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BLINDREADER, *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_help_imports_no_heavy_packages_and_is_quick() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); from blindreader.cli import app; "
        "import typer.main; cmd = typer.main.get_command(app); "
        "heavy = [m for m in ('torch', 'PySide6', 'statsmodels', 'matplotlib', 'sqlalchemy', "
        "'pandas') if m in sys.modules]; print(heavy); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, seconds = out.stdout.strip().splitlines()
    assert heavy == "[]"
    assert float(seconds) < 1.0
    start = time.perf_counter()
    result = run("--help")
    assert result.returncode == 0
    assert time.perf_counter() - start < 5.0  # includes the interpreter start on a busy machine
    for command in ("info", "demo", "recon", "study", "read", "analyze"):
        assert command in result.stdout


def test_info_lists_versions_and_device() -> None:
    result = run("info")
    assert result.returncode == 0, result.stderr
    for key in (
        "python",
        "blindreader",
        "torch",
        "compute device",
        "PySide6 / Qt",
        "pydicom",
        "SQLAlchemy",
        "SQLite",
        "statsmodels",
    ):
        assert key in result.stdout
    assert "cpu" in result.stdout or "cuda" in result.stdout or "mps" in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("recon", "missing.h5", "--out", "out", "--method", "rss"), "missing.h5"),
        (("study", "validate", "missing.toml"), "missing.toml"),
        (("study", "status", "--db", "missing.sqlite"), "missing.sqlite"),
        (("analyze", "mrmc", "missing.csv"), "missing.csv"),
        (("read", "--db", "missing.sqlite"), "missing.sqlite"),
    ],
)
def test_missing_files_give_one_line_errors(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 12  # one error, maybe inside a usage box


def test_unreadable_file_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.h5"
    bad.write_text("not HDF5")
    result = run("recon", str(bad), "--out", str(tmp_path / "out"), "--method", "rss")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "notes.h5" in result.stderr


def test_unknown_option_is_refused() -> None:
    result = run("demo", "--no-such-option")
    assert result.returncode == 2
    assert "No such option" in result.stderr or "no such option" in result.stderr.lower()


def test_no_option_or_variable_moves_the_products_clock() -> None:
    """The washout rests on the clock: no command may take a time, and no setting may shift it."""
    import typer.main

    from blindreader.cli import app

    def walk(command: Any, path: str) -> list[tuple[str, str]]:
        found = [(path, opt) for p in command.params for opt in (*p.opts, *p.secondary_opts)]
        found += [(path, str(p.envvar)) for p in command.params if p.envvar]
        if hasattr(command, "commands"):  # a group (typer has its own click classes)
            for name, sub in command.commands.items():
                found += walk(sub, f"{path} {name}")
        return found

    options = walk(typer.main.get_command(app), "blindreader")
    assert len(options) > 30  # the walk reached the sub-commands
    words = ("clock", "now", "today", "date", "time", "faketime", "epoch")
    assert [(p, o) for p, o in options if any(w in o.lower() for w in words)] == []
    source = "\n".join(
        p.read_text()
        for pkg in ("studies", "reader_app", "blindreader")
        for p in (Path(__file__).resolve().parents[2] / pkg).rglob("*.py")
    )
    for reads_the_time in ("date.today(", "datetime.now(", "datetime.utcnow(", "time.time("):
        hits = source.count(reads_the_time)
        assert hits == (1 if reads_the_time == "datetime.now(" else 0), reads_the_time
