"""Test-wide settings: Qt runs offscreen, artefacts (screenshots) go to test-artifacts/, and
no test reads the product's system clock unless it says so (``@pytest.mark.system_clock``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# CI runs the property tests with a fixed derivation of examples so that a submission's result
# does not depend on the luck of the draw; locally they explore new examples on every run.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for files the tests save for people to look at (screenshots, reports)."""
    path = REPO_ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


class _SystemClockInTest(datetime):
    """``studies.clock``'s datetime during a test: reading the system time is an error."""

    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
        raise AssertionError(
            "a test read the product's system clock: inject a clock (tests.studies.study_factory"
            ".FakeClock), or mark the test @pytest.mark.system_clock if it means to"
        )


@pytest.fixture(scope="session", autouse=True)
def _no_system_clock() -> Iterator[None]:
    """Keep every date in the suite on an injected clock, so the suite passes on any day.

    A test that mixes a fake date with the real clock passes until the real date moves past the
    fake one; forbidding the real clock in-process (fixtures of every scope included) finds such
    a test on its first run.
    """
    import studies.clock

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(studies.clock, "datetime", _SystemClockInTest)
        yield


@pytest.fixture(autouse=True)
def _system_clock_when_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """``@pytest.mark.system_clock``: this test runs the product on the real clock."""
    if request.node.get_closest_marker("system_clock") is None:
        yield
        return
    import studies.clock

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(studies.clock, "datetime", datetime)
        yield


@pytest.fixture(scope="session", autouse=True)
def _study_key_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Study keys made by the suite go to a folder of its own, never the user's key folder.

    Set in the environment, so products run in a subprocess (``system_clock`` tests) find
    the same keys.
    """
    from studies.study_key import KEY_DIR_VARIABLE

    folder = tmp_path_factory.mktemp("study-keys")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_DIR_VARIABLE, str(folder))
        yield folder


@pytest.fixture
def clock():  # type: ignore[no-untyped-def]
    """The test's one clock (a ``FakeClock`` the test moves by hand); pass it to everything."""
    from tests.studies.study_factory import FakeClock

    return FakeClock()
