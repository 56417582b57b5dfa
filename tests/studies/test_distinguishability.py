"""The distinguishability report: the classifier, its chance comparison, the image statistics, and
the done-when of issue 11 (equal noise: indistinguishable; RSS vs zero-filled: distinguishable)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from studies.distinguishability import (
    FEATURE_KEYS,
    MIN_CASES,
    Distinguishability,
    SeriesStatistics,
    assess_arms,
    event_payload,
    loco_predictions,
    series_features,
    stored_distinguishability,
)
from studies.store import Store
from tests.studies.conftest import make_series, write_cases_csv
from tests.studies.test_blinding import PROTOCOL
from tests.studies.test_cli import run


def naive_loco(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The classifier written the slow, obvious way: one fold at a time."""
    out = np.zeros(len(y), dtype=int)
    for g in np.unique(groups):
        train, test = groups != g, groups == g
        mean, sd = x[train].mean(0), x[train].std(0)
        sd = np.where(sd > np.maximum(np.abs(mean), 1.0) * 1e-9, sd, 1.0)
        z_train, z_test = (x[train] - mean) / sd, (x[test] - mean) / sd
        c0 = z_train[y[train] == 0].mean(0)
        c1 = z_train[y[train] == 1].mean(0)
        d0 = ((z_test - c0) ** 2).sum(1)
        d1 = ((z_test - c1) ** 2).sum(1)
        out[test] = d1 < d0
    return out


@settings(max_examples=60, deadline=None)
@given(
    n_cases=st.integers(3, 12),
    n_features=st.integers(1, 6),
    per_arm=st.integers(1, 2),
    seed=st.integers(0, 2**20),
)
def test_vectorised_loco_equals_the_obvious_loop(n_cases, n_features, per_arm, seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_cases), 2 * per_arm)
    y = np.tile(np.repeat([0, 1], per_arm), n_cases)
    x = rng.normal(size=(len(y), n_features)) * rng.uniform(0.1, 100, n_features)
    x[:, 0] += y * rng.uniform(0, 2)
    np.testing.assert_array_equal(loco_predictions(x, y, groups), naive_loco(x, y, groups))


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (7, 24), (170, 340), (1, 2)])
def test_the_interval_is_scipy_s_exact_binomial_interval(k: int, n: int):
    from scipy import stats

    from studies.distinguishability import clopper_pearson

    expected = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    assert clopper_pearson(k, n) == pytest.approx((expected.low, expected.high), abs=1e-12)


def statistics(rng: np.random.Generator, n_cases: int, shift: dict[str, float]) -> list:
    """Per-series statistics: a case effect shared by both arms, noise, and ``shift`` (in SD of
    the noise) added to the other arm."""
    out = []
    for case in range(n_cases):
        base = rng.normal(0, 2, len(FEATURE_KEYS))
        for arm in ("ref", "new"):
            values = base + rng.normal(0, 1, len(FEATURE_KEYS))
            if arm == "new":
                values += np.array([shift.get(k, 0.0) for k in FEATURE_KEYS])
            out.append(
                SeriesStatistics(f"c{case:02d}", arm, dict(zip(FEATURE_KEYS, values, strict=True)))
            )
    return out


def test_under_the_null_the_test_rejects_about_5_percent():
    rng = np.random.default_rng(20261101)
    n_studies = 200
    rejected = sum(
        assess_arms(statistics(rng, 12, {}), "ref", "new", rng, n_permutations=99).p_value < 0.05
        for _ in range(n_studies)
    )
    # Binomial(200, 0.05): 99.9% of draws fall in 2..22.
    assert 2 <= rejected <= 22, rejected


def test_a_clear_difference_is_found_and_named():
    rng = np.random.default_rng(3)
    result = assess_arms(statistics(rng, 16, {"gradient": -8.0}), "ref", "new", rng)
    assert result.verdict == "distinguishable"
    assert result.driver == "gradient" and result.accuracy > 0.8
    assert result.ci_low < result.accuracy < result.ci_high
    best = result.driver_result
    assert best is not None and best.effect < -2 and best.family == "sharpness"
    text = result.summary()
    assert "distinguishable" in text and "sharpness (mean gradient)" in text
    assert "lower in new" in text and "permutation p < 0.001" in text


def test_equal_arms_are_indistinguishable_with_their_uncertainty():
    rng = np.random.default_rng(4)
    result = assess_arms(statistics(rng, 30, {}), "ref", "new", rng)
    assert result.verdict == "indistinguishable", result.summary()
    assert result.ci_high < 0.75 and result.p_value >= 0.05
    assert "95% CI" in result.summary()


def test_too_few_cases_are_not_assessed_and_the_result_round_trips():
    rng = np.random.default_rng(5)
    small = assess_arms(statistics(rng, MIN_CASES - 1, {}), "ref", "new", rng)
    assert small.verdict == "not assessed" and math.isnan(small.accuracy)
    assert "at least 4 needed" in small.summary()
    full = assess_arms(statistics(rng, 8, {"entropy": 3.0}), "ref", "new", rng)
    payload = json.loads(json.dumps(event_payload([small, full]), allow_nan=False))
    back = [Distinguishability.from_dict(d) for d in payload["comparisons"]]
    assert math.isnan(back[0].accuracy) and back[0].verdict == "not assessed"
    assert back[1] == full


def phantom(rng: np.random.Generator, noise: float, size: int = 48, n: int = 4) -> np.ndarray:
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    body = ((x / 0.7) ** 2 + (y / 0.8) ** 2 < 1) * 1.0 + ((x / 0.3) ** 2 + (y / 0.3) ** 2 < 1)
    volume = np.stack([body * (1 + 0.1 * k) for k in range(n)])
    return np.abs(
        volume + rng.normal(0, noise, volume.shape) + 1j * rng.normal(0, noise, volume.shape)
    )


def test_the_statistics_measure_what_they_say():
    rng = np.random.default_rng(6)
    quiet, loud = series_features(phantom(rng, 0.02)), series_features(phantom(rng, 0.08))
    assert set(quiet) == set(FEATURE_KEYS) and all(math.isfinite(v) for v in quiet.values())
    assert loud["background_noise"] > 2 * quiet["background_noise"]
    assert loud["residual_noise"] > 2 * quiet["residual_noise"]
    volume = phantom(rng, 0.05)
    smooth = np.stack([ndimage.gaussian_filter(s, 1.0) for s in volume])
    plain, smoothed = series_features(volume), series_features(smooth)
    assert smoothed["background_texture"] > plain["background_texture"] + 0.3  # blotchy noise
    assert smoothed["high_frequency"] < plain["high_frequency"] / 2
    # Ratios only: the intensity scale does not enter.
    scaled = series_features(volume * 37.0)
    for key in FEATURE_KEYS:
        assert scaled[key] == pytest.approx(plain[key], rel=1e-6, abs=1e-9), key


# -- the done-when: simulated k-space, reconstructed by recon_backend, through study create ---


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    """Per case: RSS of fully sampled k-space, zero-filled 4x, and RSS of the same images with
    independent noise of the same level (recon_backend's simulate module, 12 small cases)."""
    import torch

    from recon_backend import simulate
    from recon_backend.data.subsample import apply_mask, create_mask_for_mask_type
    from recon_backend.fftc import ifft2c

    size, n_slices = 48, 4
    mask = create_mask_for_mask_type("equispaced", [0.08], [4])

    def rss(kspace: np.ndarray) -> np.ndarray:
        image = ifft2c(torch.from_numpy(kspace))
        return torch.sqrt((image.abs() ** 2).sum(1)).numpy()[:, size // 2 : size // 2 + size]

    rng = np.random.default_rng(11)
    cases = {}
    for case in range(12):
        images = simulate.demo_volume(case, rng, n_slices=n_slices, size=size)
        kspace = simulate.simulate_kspace(images, 4, rng)
        masked, _, _ = apply_mask(torch.from_numpy(kspace), mask, seed=case)
        again = simulate.simulate_kspace(images, 4, np.random.default_rng([11, case]))
        cases[f"case{case:02d}"] = {
            "rss": rss(kspace),
            "zero-filled": rss(masked.numpy()),
            "rss, other noise": rss(again),
        }
    return cases


def write_study_inputs(folder: Path, volumes: dict[str, dict[str, np.ndarray]], dl: str):
    """Protocol and CASES.csv with conv = RSS and dl = ``dl``, as real 12-bit DICOM series."""
    protocol = folder / "protocol.toml"
    protocol.write_text(PROTOCOL, encoding="utf-8")
    rows = []
    for case, recons in volumes.items():
        for arm, method in (("conv", "rss"), ("dl", dl)):
            volume = recons[method]
            stored = np.rint(volume / volume.max() * 4095).astype(np.uint16)
            target = folder / "src" / case / arm
            files = make_series(
                target, len(stored), *stored.shape[1:], identifying=False, private=False
            )
            for path, pixels in zip(files, stored, strict=True):
                ds = pydicom.dcmread(path)
                ds.PixelData = pixels.tobytes()
                ds.save_as(path, enforce_file_format=True)
            rows.append(
                {"case_id": case, "subject_id": case, "arm": arm, "series_dir": f"src/{case}/{arm}"}
            )
    return protocol, write_cases_csv(folder / "CASES.csv", rows)


def test_create_says_indistinguishable_for_equal_noise_and_names_the_statistic_for_zero_filled(
    simulated, tmp_path: Path, monkeypatch, capsys, clock, artifacts_dir
):
    for name, dl in (("equal", "rss, other noise"), ("zf", "zero-filled")):
        folder = tmp_path / name
        folder.mkdir()
        protocol, cases = write_study_inputs(folder, simulated, dl)
        db = folder / "study.sqlite"
        code, out, err = run(
            ["study", "create", str(protocol), "--cases", str(cases), "--db", str(db)],
            monkeypatch, capsys, clock,
        )  # fmt: skip
        assert code == 0, err
        (artifacts_dir / f"study-create-{name}.txt").write_text(out, encoding="utf-8")
        with Store.open(db, clock=clock) as store:
            (stored,) = stored_distinguishability(store)
            assert store.verify_events() == []  # the report sits in the hash chain
        code, status, _ = run(["study", "status", "--db", str(db)], monkeypatch, capsys, clock)
        assert code == 0 and stored.summary() in status and stored.summary() in out
        if name == "equal":
            assert stored.verdict == "indistinguishable", stored.summary()
            assert "conv vs dl: indistinguishable" in out and "95% CI" in out
        else:
            assert stored.verdict == "distinguishable", stored.summary()
            assert stored.accuracy >= 0.9 and stored.driver is not None
            label = stored.driver_result.label if stored.driver_result else ""
            assert "conv vs dl: distinguishable" in out and f"driven by {label}" in " ".join(
                out.split()
            )
            assert "consider matching noise" in out
            assert stored.driver_result is not None and stored.driver_result.accuracy >= 0.9
