"""Can a simple classifier tell the arms apart from per-series image statistics?

Blinding hides every label, but an AI reconstruction may still *look* different: less noise,
noise of another texture, another sharpness, another histogram. Readers who notice are no longer
blind. This report tells the coordinator at ``study create``, before the readers do, so the study
can match the noise (as Johnson et al., Radiology 2023, did) or at least report it.

Per blinded series (the pixels as readers get them) :func:`series_features` measures
:data:`FEATURES`: noise level (background and high-pass residual), noise texture (neighbour
correlation of the background and of the residual), sharpness (gradient, high-frequency power)
and the intensity histogram (entropy, skewness, spread, dark fraction). All are ratios, so the
intensity scale does not enter.

:func:`assess_arms` then asks whether a nearest-centroid classifier on the standardised
statistics (standardised with the training folds only) predicts the arm of series it was not
trained on. Cross-validation leaves one case out, so no case is ever in its own training set.
Accuracy comes with an exact (Clopper-Pearson) 95% interval over the series, and a permutation
test that swaps the arm labels within cases (the arms are exchangeable within a case when they
are indistinguishable) gives the chance comparison. The verdict:

* **distinguishable**: permutation p < :data:`ALPHA`;
* **indistinguishable**: otherwise, when the interval also rules out an accuracy of
  :data:`INDISTINGUISHABLE_BELOW` or more (a classifier right three times in four);
* **inconclusive**: otherwise (too few cases to say either).

The statistic that drives it is the one with the best cross-validated accuracy on its own. The
interval treats series as independent; the two arms of a case are not quite, so it is a little
narrow; the permutation test respects the pairing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from studies.protocol import Protocol
    from studies.store import Store

#: Significance level of the permutation test.
ALPHA = 0.05
#: "Indistinguishable" needs the upper 95% bound of the accuracy below this.
INDISTINGUISHABLE_BELOW = 0.75
#: Fewer cases than this are not assessed.
MIN_CASES = 4
#: Permutations of the chance comparison (p resolution 1 / (N + 1)).
N_PERMUTATIONS = 999
#: At most this many slices (evenly spaced) are measured per series ...
MAX_SLICES = 8
#: ... and at most about this many pixels (whole slices: noise and texture need full
#: resolution, so large matrices get fewer slices, never a downsampled image).
MAX_PIXELS = 600_000
#: Event kind under which ``study create`` stores the results.
EVENT_KIND = "distinguishability"


@dataclass(frozen=True)
class Feature:
    """One per-series image statistic: its key, a label for people and its family."""

    key: str
    label: str
    family: str


FEATURES: tuple[Feature, ...] = (
    Feature("background_noise", "background noise level", "noise level"),
    Feature("residual_noise", "noise level in tissue (high-pass residual)", "noise level"),
    Feature(
        "background_texture", "background noise texture (neighbour correlation)", "noise texture"
    ),
    Feature("residual_texture", "noise texture in tissue (residual correlation)", "noise texture"),
    Feature("gradient", "sharpness (mean gradient)", "sharpness"),
    Feature("high_frequency", "sharpness (high-frequency power)", "sharpness"),
    Feature("entropy", "intensity histogram (entropy)", "intensity histogram"),
    Feature("skewness", "intensity histogram (skewness)", "intensity histogram"),
    Feature("spread", "intensity histogram (spread)", "intensity histogram"),
    Feature("dark_fraction", "intensity histogram (dark fraction)", "intensity histogram"),
)
FEATURE_KEYS = tuple(f.key for f in FEATURES)
_LABELS = {f.key: f.label for f in FEATURES}


def noise_residual(x: np.ndarray) -> np.ndarray:
    """Each slice filtered with Immerkaer's noise kernel ``[1,-2,1]`` x ``[1,-2,1]`` (the
    difference of two Laplacians: no response to linear ramps), edges reflected."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    rows = padded[:, :-2, :] - 2 * padded[:, 1:-1, :] + padded[:, 2:, :]
    return rows[:, :, :-2] - 2 * rows[:, :, 1:-1] + rows[:, :, 2:]


def _box3(x: np.ndarray) -> np.ndarray:
    """Each slice's 3x3 mean (edges reflected)."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")
    rows = padded[:, :-2, :] + padded[:, 1:-1, :] + padded[:, 2:, :]
    return (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) / 9


def _skewness(values: np.ndarray) -> float:
    centred = values - values.mean()
    sd = float(np.sqrt(np.mean(centred**2)))
    return float(np.mean(centred**3) / sd**3) if sd > 0 else 0.0


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (between-class variance maximised over a histogram)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = hist.astype(np.float64)
    w0 = np.cumsum(weight)
    w1 = w0[-1] - w0
    m0 = np.cumsum(weight * centres)
    mean0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mean1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return float(centres[int(np.argmax(between))])


def _neighbour_correlation(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean correlation of horizontally and vertically adjacent pixels that are both in mask."""
    found = []
    for axis in (1, 2):
        n = image.shape[axis]
        a = np.take(image, range(n - 1), axis=axis)
        b = np.take(image, range(1, n), axis=axis)
        both = np.take(mask, range(n - 1), axis=axis) & np.take(mask, range(1, n), axis=axis)
        if both.sum() < 20:
            continue
        x, y = a[both], b[both]
        sx, sy = x.std(), y.std()
        if sx > 0 and sy > 0:
            found.append(float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy)))
    return float(np.mean(found)) if found else 0.0


def _high_frequency_power(image: np.ndarray) -> float:
    """Fraction of each slice's spectral power above half the Nyquist frequency (mean)."""
    rows, cols = image.shape[1:]
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.fftfreq(cols)[None, :]
    outer = np.hypot(fy, fx) > 0.25
    fractions = []
    for plane in image:
        power = np.abs(np.fft.fft2(plane - plane.mean())) ** 2
        total = power.sum()
        if total > 0:
            fractions.append(float(power[outer].sum() / total))
    return float(np.mean(fractions)) if fractions else 0.0


def series_features(volume: np.ndarray, max_slices: int = MAX_SLICES) -> dict[str, float]:
    """The :data:`FEATURES` of one series ``(slices, rows, columns)`` (see the module doc).

    Returns
    -------
    dict
        ``{feature key: value}``, every value finite.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3 or volume.size == 0:
        raise ValueError(f"expected a (slices, rows, columns) volume, got shape {volume.shape}")
    n = volume.shape[0]
    k = max(1, min(n, max_slices, MAX_PIXELS // max(volume.shape[1] * volume.shape[2], 1)))
    picked = np.unique(np.linspace(0, n - 1, k).round().astype(int))
    x = volume[picked].astype(np.float64)
    top = float(np.percentile(x, 99.5))
    if top <= 0 or volume.shape[1] < 4 or volume.shape[2] < 4:
        return dict.fromkeys(FEATURE_KEYS, 0.0)
    x /= top
    threshold = _otsu(np.clip(x, 0, 1.5))
    foreground = x >= threshold
    if not foreground.any():
        foreground = np.ones_like(x, dtype=bool)
    background = x < threshold / 2
    fg = x[foreground]
    fg_mean = max(float(fg.mean()), 1e-12)

    gy, gx = np.gradient(x, axis=(1, 2))
    gradient = float(np.hypot(gy, gx)[foreground].mean())
    # The residual measures noise where the tissue is flat: edges (found on a 3x3 mean, so noise
    # does not pick them) would otherwise dominate it.
    sy, sx = np.gradient(_box3(x), axis=(1, 2))
    edges = np.hypot(sy, sx)
    flat = foreground & (edges <= np.percentile(edges[foreground], 60))
    if flat.sum() < 20:
        flat = foreground
    residual = noise_residual(x)
    residual_noise = math.sqrt(math.pi / 2) * float(np.abs(residual[flat]).mean()) / 6
    # Without background (the anatomy fills the field of view) the residual stands in for it.
    enough = background.sum() >= 50
    background_noise = float(x[background].std()) if enough else residual_noise
    hist, _ = np.histogram(np.clip(fg, 0, 1.5), bins=64, range=(0, 1.5))
    p = hist[hist > 0] / hist.sum()
    p10, p50, p90 = np.percentile(fg, [10, 50, 90])
    skewness = _skewness(fg) if fg.size > 2 else 0.0
    values = {
        "background_noise": background_noise / fg_mean,
        "residual_noise": residual_noise / fg_mean,
        "background_texture": _neighbour_correlation(x, background),
        "residual_texture": _neighbour_correlation(residual, flat),
        "gradient": gradient / fg_mean,
        "high_frequency": _high_frequency_power(x),
        "entropy": float(-(p * np.log2(p)).sum()),
        "skewness": skewness,
        "spread": float((p90 - p10) / p50) if p50 > 0 else 0.0,
        "dark_fraction": float(background.mean()),
    }
    return {k: (v if math.isfinite(v) else 0.0) for k, v in values.items()}


@dataclass(frozen=True)
class SeriesStatistics:
    """The statistics of one blinded series, with its case and arm."""

    case_id: str
    arm: str
    values: Mapping[str, float]


@dataclass(frozen=True)
class FeatureResult:
    """One statistic's part in a comparison.

    ``accuracy`` is its own leave-one-case-out accuracy; ``effect`` the standardised mean of the
    within-case differences (other minus reference; positive: higher in the other arm).
    """

    key: str
    label: str
    family: str
    accuracy: float
    effect: float
    mean_reference: float
    mean_other: float


@dataclass(frozen=True)
class Distinguishability:
    """Whether image statistics tell one arm from the reference (see the module docstring)."""

    reference_arm: str
    other_arm: str
    n_cases: int
    n_series: int
    n_correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    chance: float
    p_value: float
    n_permutations: int
    verdict: str  # "distinguishable" | "indistinguishable" | "inconclusive" | "not assessed"
    driver: str | None  # key of the statistic with the best accuracy alone
    features: tuple[FeatureResult, ...] = field(default=())
    classifier: str = "nearest centroid on standardised statistics, leave one case out"

    @property
    def driver_result(self) -> FeatureResult | None:
        """The :class:`FeatureResult` of :attr:`driver`."""
        return next((f for f in self.features if f.key == self.driver), None)

    def summary(self) -> str:
        """One paragraph for people: the verdict with its numbers and the driving statistic."""
        head = f"{self.reference_arm} vs {self.other_arm}: {self.verdict}"
        if self.verdict == "not assessed":
            return f"{head} ({self.n_cases} cases; at least {MIN_CASES} needed)"
        text = (
            f"{head}: a classifier on {len(self.features)} image statistics names the arm of "
            f"{self.n_correct} of {self.n_series} series it was not trained on (accuracy "
            f"{self.accuracy:.2f}, 95% CI {self.ci_low:.2f}-{self.ci_high:.2f}; chance "
            f"{self.chance:.2f}, permutation p {_p(self.p_value, self.n_permutations)})"
        )
        best = self.driver_result
        if best is not None:
            if best.effect == 0:
                direction = "the same in both arms"
            else:
                higher = "higher" if best.effect > 0 else "lower"
                direction = f"{higher} in {self.other_arm}, effect {best.effect:+.2f} SD"
            role = "driven by" if self.verdict == "distinguishable" else "strongest statistic:"
            text += f"; {role} {best.label} (accuracy {best.accuracy:.2f} alone, {direction})"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (what the study stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distinguishability:
        """The inverse of :meth:`to_dict`."""
        values = dict(data)
        for key in ("accuracy", "ci_low", "ci_high", "p_value"):
            if values.get(key) is None:  # stored as null (NaN: not assessed)
                values[key] = math.nan
        values["features"] = tuple(FeatureResult(**f) for f in values.get("features", ()))
        return cls(**values)


def _p(p: float, n: int) -> str:
    floor = 1 / (n + 1)
    return f"< {floor:.3f}" if p <= floor + 1e-12 else f"= {p:.3f}"


def loco_predictions(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Leave-one-group-out predictions of a nearest-centroid classifier (labels 0 / 1).

    For each group, features are standardised with the mean and standard deviation of the
    other groups' rows, the two class centroids are those rows' class means, and each of the
    group's rows gets the class of the nearer centroid (ties: class 0).

    Parameters
    ----------
    x
        ``(n, p)`` features.
    y
        ``(n,)`` labels 0 / 1.
    groups
        ``(n,)`` group index ``0 .. G-1`` of each row (the case).

    Returns
    -------
    numpy.ndarray
        ``(n,)`` predicted labels.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1
    n = x.shape[0]

    members = np.zeros((n_groups, n))
    members[groups, np.arange(n)] = 1.0

    def by_group(values: np.ndarray) -> np.ndarray:
        return members @ values  # per-group sums

    ones = np.ones(n)
    count = n - by_group(ones)[groups]  # training rows of each row's fold
    mean = (x.sum(0) - by_group(x)[groups]) / count[:, None]
    square = ((x**2).sum(0) - by_group(x**2)[groups]) / count[:, None]
    sd = np.sqrt(np.maximum(square - mean**2, 0.0))
    scale = np.maximum(np.abs(mean), 1.0) * 1e-9
    sd = np.where(sd > scale, sd, 1.0)
    distance = []
    for label in (0, 1):
        member = (y == label).astype(np.float64)
        n_class = member.sum() - by_group(member)[groups]
        total = (x * member[:, None]).sum(0) - by_group(x * member[:, None])[groups]
        centroid = total / np.maximum(n_class, 1)[:, None]
        distance.append((((x - centroid) / sd) ** 2).sum(1))
    return (distance[1] < distance[0]).astype(np.int64)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) binomial interval of ``k`` successes in ``n`` trials."""
    from scipy.special import betaincinv  # scipy.special: light, unlike scipy.stats

    alpha = 1 - level
    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha / 2))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha / 2))
    return low, high


def _accuracy(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> int:
    return int((loco_predictions(x, y, groups) == y).sum())


def assess_arms(
    statistics: Iterable[SeriesStatistics],
    reference: str,
    other: str,
    rng: np.random.Generator,
    *,
    n_permutations: int = N_PERMUTATIONS,
) -> Distinguishability:
    """Can the statistics tell arm ``other`` from arm ``reference``? (See the module docstring.)

    Parameters
    ----------
    statistics
        Per-series statistics; series of other arms are ignored, and so are cases that lack
        one of the two arms.
    reference, other
        The arms compared.
    rng
        Draws the permutations.
    n_permutations
        Permutations of the chance comparison.

    Returns
    -------
    Distinguishability
    """
    rows = [s for s in statistics if s.arm in (reference, other)]
    arms_of: dict[str, set[str]] = {}
    for s in rows:
        arms_of.setdefault(s.case_id, set()).add(s.arm)
    # Sorted: the result must not depend on the order the series were blinded in.
    cases = sorted(c for c, arms in arms_of.items() if arms == {reference, other})
    index = {c: i for i, c in enumerate(cases)}
    rows = sorted((s for s in rows if s.case_id in index), key=lambda s: (index[s.case_id], s.arm))
    n_cases, n_series = len(cases), len(rows)
    if n_cases < MIN_CASES:
        nan = math.nan
        return Distinguishability(
            reference, other, n_cases, n_series, 0, nan, nan, nan, 0.5, nan, 0, "not assessed", None
        )
    x = np.array([[float(s.values.get(k, 0.0)) for k in FEATURE_KEYS] for s in rows])
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    y = np.array([1 if s.arm == other else 0 for s in rows])
    groups = np.array([index[s.case_id] for s in rows])

    n_correct = _accuracy(x, y, groups)
    flips = rng.integers(0, 2, size=(n_permutations, n_cases))
    null = np.array([_accuracy(x, y ^ flip[groups], groups) for flip in flips])
    p_value = float((1 + np.count_nonzero(null >= n_correct)) / (n_permutations + 1))
    ci_low, ci_high = clopper_pearson(n_correct, n_series)
    accuracy = n_correct / n_series

    features = []
    for j, feature in enumerate(FEATURES):
        alone = _accuracy(x[:, [j]], y, groups) / n_series
        ref_mean = np.zeros(n_cases)
        oth_mean = np.zeros(n_cases)
        for arm_value, target in ((0, ref_mean), (1, oth_mean)):
            sums = np.bincount(groups[y == arm_value], x[y == arm_value, j], n_cases)
            counts = np.bincount(groups[y == arm_value], minlength=n_cases)
            target[:] = sums / counts
        diff = oth_mean - ref_mean
        sd = float(diff.std(ddof=1)) if n_cases > 1 else 0.0
        mean_diff = float(diff.mean())
        if sd > 0:
            effect = mean_diff / sd
        else:
            effect = 0.0 if mean_diff == 0 else math.copysign(math.inf, mean_diff)
        features.append(
            FeatureResult(
                feature.key,
                feature.label,
                feature.family,
                alone,
                _finite(effect),
                float(ref_mean.mean()),
                float(oth_mean.mean()),
            )
        )
    best = max(features, key=lambda f: (f.accuracy, abs(f.effect)))
    if p_value < ALPHA:
        verdict = "distinguishable"
    elif ci_high < INDISTINGUISHABLE_BELOW:
        verdict = "indistinguishable"
    else:
        verdict = "inconclusive"
    return Distinguishability(
        reference_arm=reference,
        other_arm=other,
        n_cases=n_cases,
        n_series=n_series,
        n_correct=n_correct,
        accuracy=accuracy,
        ci_low=ci_low,
        ci_high=ci_high,
        chance=0.5,
        p_value=p_value,
        n_permutations=n_permutations,
        verdict=verdict,
        driver=best.key,
        features=tuple(features),
    )


def _finite(value: float, bound: float = 1e6) -> float:
    """JSON has no infinity: a perfectly consistent difference is stored as +-``bound``."""
    return max(-bound, min(bound, value))


def assess_study(
    statistics: Sequence[SeriesStatistics], protocol: Protocol
) -> list[Distinguishability]:
    """Every non-reference arm against the reference arm (permutations seeded from the
    protocol's seed, so the same study gives the same report)."""
    reference = protocol.reference_arm.code
    rng = np.random.default_rng([protocol.seed, 7050])
    return [assess_arms(statistics, reference, arm.code, rng) for arm in protocol.other_arms]


def stored_distinguishability(store: Store) -> list[Distinguishability]:
    """The report ``study create`` stored with the study ([] for studies made before it)."""
    from sqlalchemy import select

    from studies.db.models import Event

    with store.reading() as s:
        payload = (
            s.execute(
                select(Event.payload_json).where(Event.kind == EVENT_KIND).order_by(Event.seq)
            )
            .scalars()
            .first()
        )
    if payload is None:
        return []
    data = json.loads(payload)
    return [Distinguishability.from_dict(d) for d in data.get("comparisons", [])]


def _nan(value: object) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def event_payload(results: Sequence[Distinguishability]) -> dict[str, Any]:
    """The event payload that stores ``results`` (JSON: NaN becomes null)."""
    comparisons = []
    for result in results:
        data = result.to_dict()
        comparisons.append(
            {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in data.items()
            }
        )
    return {"version": 1, "comparisons": comparisons}


__all__ = [
    "ALPHA",
    "EVENT_KIND",
    "FEATURES",
    "FEATURE_KEYS",
    "INDISTINGUISHABLE_BELOW",
    "MIN_CASES",
    "Distinguishability",
    "Feature",
    "FeatureResult",
    "SeriesStatistics",
    "assess_arms",
    "assess_study",
    "clopper_pearson",
    "event_payload",
    "loco_predictions",
    "noise_residual",
    "series_features",
    "stored_distinguishability",
]
