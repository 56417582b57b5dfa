"""Planning a reader study: power and cases needed, for interchangeability and for MRMC AUC.

**Interchangeability** (no reader-study tool plans it): power is the share of simulated studies
that the analysis declares interchangeable, with the very decision rule the report uses
(:mod:`analysis.decision`: the random-reader Hillis t bound guarded by the fixed-reader
calibrated bootstrap-t, or the fixed-reader bound alone), at the level the multiplicity family
implies. Studies are simulated from the latent-variable model of :mod:`analysis.simulation`,
set up either from stated assumptions (readers, expected excess disagreement, reference
agreement, reader heterogeneity, prevalence) or from a pilot study, whose prevalence,
reference-reference agreement, spread of the readers' rates of 'present' calls and excess
disagreement the model is calibrated to reproduce.

With several findings the plan is per finding, at a level that is conservative for the family:
Holm rejects a finding at least whenever Bonferroni at ``alpha / K`` does, so power at
``alpha / K`` is a lower bound; under intersection-union each finding is tested at ``alpha``
and the joint power of K independent findings is the product (a lower bound when findings are
positively associated).

**MRMC AUC** (Obuchowski-Rockette, Hillis 2011): from a pilot's OR variance components the
power of the random-reader F test for a difference ``delta`` in reader-averaged AUC with J
readers and N cases, the case-driven error (co)variances scaled by ``N_pilot / N``::

    lambda = J delta^2 / (2 (s2_TR + Var - Cov1 + (J - 1) max(Cov2 - Cov3, 0)))
    ddf    = (s2_TR + Var - Cov1 + (J - 1) (Cov2 - Cov3))^2
             / ((s2_TR + Var - Cov1 - (Cov2 - Cov3))^2 / (J - 1))
    power  = P(F'(1, ddf, lambda) > F_{1 - alpha}(1, ddf))

Hillis SL, Obuchowski NA, Berbaum KS. Power estimation for multireader ROC methods: an updated
and unified approach. Acad Radiol 2011;18:129-142.

Both are checked against brute-force simulation of the full analysis (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from analysis import decision
from analysis.errors import AnalysisError
from analysis.simulation import LatentReadModel

FloatArray = npt.NDArray[np.float64]
ReaderModel = Literal["fixed", "random"]
Family = Literal["holm", "intersection-union"]
ProgressFn = Callable[[int, int, str], None]


def _no_progress(done: int, total: int, message: str) -> None:
    return None


@dataclass(frozen=True)
class PlanSettings:
    """What the planned analysis will be: reader model, margin, threshold, multiplicity."""

    readers: ReaderModel = "random"
    margin: float = 0.05
    n_findings: int = 1
    multiplicity: Family = "holm"
    n_boot: int = decision.N_OUTER
    alpha: float = decision.ALPHA

    def __post_init__(self) -> None:
        if self.readers not in ("fixed", "random"):
            raise AnalysisError(f"--readers-model must be fixed or random, got {self.readers!r}")
        if not 0 < self.margin < 1:
            raise AnalysisError(f"--margin must be between 0 and 1, got {self.margin}")
        if self.n_findings < 1:
            raise AnalysisError(f"--findings must be at least 1, got {self.n_findings}")
        if self.multiplicity not in ("holm", "intersection-union"):
            raise AnalysisError(
                f"--multiplicity must be holm or intersection-union, got {self.multiplicity!r}"
            )

    @property
    def level(self) -> float:
        """The one-sided level each finding is tested at in the plan (see the module)."""
        if self.multiplicity == "holm":
            return self.alpha / self.n_findings
        return self.alpha


@dataclass(frozen=True)
class PowerPoint:
    """Power at one number of cases, with its Monte-Carlo 95% interval."""

    n_cases: int
    n_readers: int
    power: float
    power_low: float
    power_high: float
    n_studies: int
    joint_power: float | None = None

    @property
    def se(self) -> float:
        """Monte-Carlo SE of the power estimate."""
        return math.sqrt(max(self.power * (1 - self.power), 1e-12) / self.n_studies)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return {**asdict(self), "se": self.se}


@dataclass(frozen=True)
class PilotSummary:
    """What the model is calibrated to: the pilot's statistics (pooled over findings)."""

    source: str
    n_cases: int
    n_readers: int
    findings: list[str]
    prevalence: float
    prevalence_from: str
    agreement: float
    reader_rate_sd: float
    gamma: float
    positive_rate: float = math.nan
    per_finding: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return asdict(self)


# ---- the decision on one simulated study ---------------------------------------------------


def _crossed_case_values(
    ref: npt.NDArray[np.int64], new: npt.NDArray[np.int64], threshold: int
) -> tuple[FloatArray, FloatArray]:
    """Per-case d_i and d_i without each reader, for studies (S, N, J) of a crossed design."""
    x = (ref >= threshold).astype(np.float64)
    y = (new >= threshold).astype(np.float64)
    n_readers = x.shape[-1]
    pair = (x[..., :, None] == x[..., None, :]).astype(np.float64) - (
        y[..., :, None] == x[..., None, :]
    ).astype(np.float64)
    eye = np.eye(n_readers, dtype=bool)
    pair[..., eye] = 0.0
    total = pair.sum(axis=(-1, -2))
    d = total / (n_readers * (n_readers - 1))
    row, col = pair.sum(axis=-1), pair.sum(axis=-2)
    if n_readers > 2:
        leave_out = (total[..., None] - row - col) / ((n_readers - 1) * (n_readers - 2))
    else:
        leave_out = np.full(x.shape, np.nan)
    return d, leave_out


def study_decision(
    d: FloatArray,
    leave_out: FloatArray,
    settings: PlanSettings,
    rng: np.random.Generator,
) -> bool:
    """Whether the analysis declares one study's finding interchangeable at the plan's level."""
    if settings.readers == "random":
        t_interval, _ = decision.hillis_t_interval(d, leave_out, settings.margin)
        if t_interval.p_value >= settings.level:  # the guarded p is at least this: not declared
            return False
    fixed = decision.calibrated_bootstrap_t(d, settings.margin, rng=rng, n_boot=settings.n_boot)
    return fixed.p_value < settings.level


def power_at(
    model: LatentReadModel,
    n_cases: int,
    settings: PlanSettings,
    *,
    n_studies: int,
    rng: np.random.Generator,
    batch: int = 50,
) -> PowerPoint:
    """Power of one design by simulation (readers drawn anew for every study)."""
    if n_cases < 3:
        raise AnalysisError(f"cases: a study needs at least 3 cases, got {n_cases}")
    declared = 0
    done = 0
    while done < n_studies:
        size = min(batch, n_studies - done)
        for _ in range(size):
            readers = model.draw_readers(rng)
            ref, new, _ = model.simulate(rng, n_cases, readers)
            d, leave_out = _crossed_case_values(ref, new, model.threshold)
            declared += study_decision(d[0], leave_out[0], settings, rng)
        done += size
    power = declared / n_studies
    low, high = _wilson(declared, n_studies)
    joint = power**settings.n_findings if settings.multiplicity == "intersection-union" else None
    return PowerPoint(n_cases, model.n_readers, power, low, high, n_studies, joint)


def _wilson(successes: int, n: int) -> tuple[float, float]:
    z = float(stats.norm.ppf(0.975))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def power_curve(
    model: LatentReadModel,
    cases: Sequence[int],
    settings: PlanSettings,
    *,
    n_studies: int,
    rng: np.random.Generator,
    progress: ProgressFn = _no_progress,
) -> list[PowerPoint]:
    """:func:`power_at` for each number of cases."""
    points = []
    for i, n in enumerate(cases):
        progress(i, len(cases), f"{n} cases")
        points.append(power_at(model, int(n), settings, n_studies=n_studies, rng=rng))
    progress(len(cases), len(cases), "done")
    return points


def cases_needed(
    model: LatentReadModel,
    target: float,
    settings: PlanSettings,
    *,
    n_studies: int,
    rng: np.random.Generator,
    start: int = 40,
    maximum: int = 2000,
    progress: ProgressFn = _no_progress,
) -> tuple[int | None, list[PowerPoint]]:
    """Smallest number of cases whose simulated power reaches ``target``.

    Doubles the cases from ``start`` until the power reaches the target (or ``maximum``), then
    bisects between the last two designs to about 5% of the cases. Returns the number (None
    when even ``maximum`` falls short) and every design evaluated (for the power curve).
    """
    if not 0 < target < 1:
        raise AnalysisError(f"--power must be between 0 and 1, got {target}")
    points: list[PowerPoint] = []

    def evaluate(n: int) -> PowerPoint:
        progress(len(points), len(points) + 1, f"{n} cases")
        point = power_at(model, n, settings, n_studies=n_studies, rng=rng)
        points.append(point)
        return point

    low, high = None, start
    while evaluate(high).power < target:
        low = high
        if high >= maximum:
            return None, sorted(points, key=lambda p: p.n_cases)
        high = min(2 * high, maximum)
    low = low if low is not None else max(3, high // 2)
    while high - low > max(2, int(0.05 * high)):
        middle = (low + high) // 2
        if evaluate(middle).power >= target:
            high = middle
        else:
            low = middle
    progress(len(points), len(points), "done")
    return high, sorted(points, key=lambda p: p.n_cases)


# ---- the model: from assumptions or from a pilot --------------------------------------------


def model_from_assumptions(
    *,
    n_readers: int,
    gamma: float,
    agreement: float = 0.85,
    reader_rate_sd: float = 0.05,
    prevalence: float = 0.3,
    reader_arm_sd: float = 0.0,
) -> LatentReadModel:
    """A latent-variable model reproducing the stated assumptions (random-reader values).

    Parameters
    ----------
    n_readers : int
        Readers of the planned study.
    gamma : float
        Expected excess disagreement (the true value, dichotomised grades).
    agreement : float
        Reference-reference agreement of two readers (share of cases they agree on).
    reader_rate_sd : float
        How much the readers' rates of 'present' calls differ (SD, e.g. 0.05 = 5 points).
    prevalence : float
        Share of cases with the finding present.
    reader_arm_sd : float
        Reader-by-arm heterogeneity on the latent scale (0: every reader affected alike).
    """
    try:
        base = LatentReadModel(
            n_readers=n_readers, prevalence=prevalence, reader_arm_sd=reader_arm_sd
        )
        return base.calibrated(gamma=gamma, agreement=agreement, reader_rate_sd=reader_rate_sd)
    except ValueError as exc:
        raise AnalysisError(f"the stated assumptions cannot be met by the model: {exc}") from exc


def pilot_summary(
    reads: pd.DataFrame,
    reference: str,
    new: str,
    *,
    threshold: float,
    truth: pd.DataFrame | None = None,
    source: str = "pilot",
) -> PilotSummary:
    """The pilot's statistics that the model is calibrated to (mean over findings)."""
    from analysis.interchangeability import pair_scores

    rows = []
    for finding, part in reads.groupby(reads["finding"].astype(str), sort=False):
        scores = pair_scores(part, reference, new, threshold=threshold)
        a_cc, a_dc, _ = scores.per_case()
        ref_reads = part[part["arm"] == reference]
        positive = (ref_reads["value"] >= threshold).astype(float)
        rates = positive.groupby(ref_reads["reader"]).mean()
        n_cases = len(scores.cases)
        sampling = float(np.mean(rates * (1 - rates)) / max(n_cases, 1))
        rate_sd = math.sqrt(max(float(np.var(rates, ddof=1)) - sampling, 0.0))
        if truth is not None and not truth.empty:
            known = truth[truth["finding"].astype(str) == finding]
            prevalence = float(known["truth"].mean()) if not known.empty else math.nan
            prevalence_from = "reference standard"
        else:  # refined by model_from_pilot to reproduce the rate of 'present' calls
            majority = positive.groupby(ref_reads["case"]).mean() >= 0.5
            prevalence = float(majority.mean())
            prevalence_from = "rate of 'present' calls on the reference arm"
        rows.append(
            {
                "finding": finding,
                "n_cases": n_cases,
                "n_readers": len(scores.readers),
                "prevalence": prevalence,
                "agreement": float(a_cc.mean()),
                "reader_rate_sd": rate_sd,
                "gamma": float((a_cc - a_dc).mean()),
                "positive_rate": float(positive.mean()),
                "prevalence_from": prevalence_from,
            }
        )
    if not rows:
        raise AnalysisError(f"{source}: no finding to plan from")
    frame = pd.DataFrame(rows)
    return PilotSummary(
        source=source,
        n_cases=int(frame["n_cases"].max()),
        n_readers=int(frame["n_readers"].max()),
        findings=list(frame["finding"]),
        prevalence=float(np.clip(frame["prevalence"].mean(), 0.01, 0.99)),
        prevalence_from=str(frame["prevalence_from"].iloc[0]),
        agreement=float(frame["agreement"].mean()),
        reader_rate_sd=float(frame["reader_rate_sd"].mean()),
        gamma=float(frame["gamma"].mean()),
        positive_rate=float(frame["positive_rate"].mean()),
        per_finding=[{str(k): v for k, v in r.items()} for r in frame.to_dict(orient="records")],
    )


def model_from_pilot(
    pilot: PilotSummary, *, n_readers: int, gamma: float | None = None
) -> LatentReadModel:
    """The model calibrated to a pilot (its gamma unless ``gamma`` overrides it).

    Without a reference standard the prevalence is set so that the model reproduces the
    pilot's rate of 'present' calls on the reference arm (readers call borderline cases
    present, so the share of cases most readers call present overstates it).
    """
    target_gamma = pilot.gamma if gamma is None else gamma
    model = model_from_assumptions(
        n_readers=n_readers,
        gamma=target_gamma,
        agreement=pilot.agreement,
        reader_rate_sd=pilot.reader_rate_sd,
        prevalence=pilot.prevalence,
    )
    if pilot.prevalence_from == "reference standard" or not math.isfinite(pilot.positive_rate):
        return model
    for _ in range(3):  # prevalence and noise interact: alternate a few times
        try:
            model = model.with_positive_rate(pilot.positive_rate)
            model = model.calibrated(
                gamma=target_gamma,
                agreement=pilot.agreement,
                reader_rate_sd=pilot.reader_rate_sd,
            )
        except ValueError as exc:
            raise AnalysisError(
                f"{pilot.source}: the model cannot reproduce the pilot: {exc}"
            ) from exc
    return model


def model_check(model: LatentReadModel) -> dict[str, float]:
    """What the model implies (random readers): agreement, gamma, reader rate SD, prevalence."""
    a_cc, a_dc, _ = model.agreement()
    return {
        "agreement": a_cc,
        "gamma": a_cc - a_dc,
        "reader_rate_sd": model.reader_rate_sd(),
        "prevalence": model.prevalence,
        "sd_ref": model.sd_ref,
        "sd_new": model.sd_new,
        "reader_sd": model.reader_sd,
    }


# ---- MRMC AUC (Obuchowski-Rockette / Hillis 2011) -------------------------------------------


@dataclass(frozen=True)
class MrmcComponents:
    """A pilot's OR components for a difference of two treatments (error terms at N_pilot)."""

    var: float
    cov1: float
    cov2: float
    cov3: float
    var_tr: float
    n_cases: int
    delta: float | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return asdict(self)


def mrmc_power(
    components: MrmcComponents,
    *,
    delta: float,
    n_readers: int,
    n_cases: int,
    alpha: float = 0.05,
) -> float:
    """Power of the OR random-reader F test for an AUC difference ``delta`` (module formula)."""
    if n_readers < 2 or n_cases < 2:
        raise AnalysisError("MRMC power needs at least 2 readers and 2 cases")
    scale = components.n_cases / n_cases
    var, cov1 = components.var * scale, components.cov1 * scale
    cov23 = (components.cov2 - components.cov3) * scale
    s2_tr = max(components.var_tr, 0.0)
    j = n_readers
    denominator = s2_tr + var - cov1 + (j - 1) * max(cov23, 0.0)
    if denominator <= 0:
        return 1.0 if delta != 0 else alpha
    noncentrality = j * delta**2 / (2.0 * denominator)
    tr_part = s2_tr + var - cov1 - cov23
    ddf = (
        (s2_tr + var - cov1 + (j - 1) * cov23) ** 2 / (tr_part**2 / (j - 1))
        if tr_part > 0
        else math.inf
    )
    ddf = max(float(ddf), 1.0)
    critical = float(stats.f.ppf(1 - alpha, 1, ddf))
    if noncentrality <= 0:  # scipy's noncentral F misbehaves at exactly 0
        return float(stats.f.sf(critical, 1, ddf))
    return float(stats.ncf.sf(critical, 1, ddf, noncentrality))


def mrmc_components_from_result(result: object) -> MrmcComponents:
    """The components of an :class:`analysis.mrmc.MRMCResult` of two treatments."""
    from analysis.mrmc import MRMCResult

    if not isinstance(result, MRMCResult) or len(result.treatments) != 2:
        raise AnalysisError("MRMC planning needs a pilot with exactly two treatments")
    c = result.components
    delta = float(result.foms[0].mean() - result.foms[1].mean())
    return MrmcComponents(
        var=c.var, cov1=c.cov1, cov2=c.cov2, cov3=c.cov3, var_tr=c.var_tr,
        n_cases=result.n_cases, delta=delta,
    )  # fmt: skip


def mrmc_cases_needed(
    components: MrmcComponents,
    *,
    delta: float,
    n_readers: int,
    target: float,
    alpha: float = 0.05,
    maximum: int = 100_000,
) -> int | None:
    """Smallest number of cases with :func:`mrmc_power` at least ``target`` (None if never)."""

    def power(n: int) -> float:
        return mrmc_power(components, delta=delta, n_readers=n_readers, n_cases=n, alpha=alpha)

    if power(maximum) < target:
        return None
    low, high = 2, maximum
    while high - low > 1:
        middle = (low + high) // 2
        if power(middle) >= target:
            high = middle
        else:
            low = middle
    return high


def with_readers(model: LatentReadModel, n_readers: int) -> LatentReadModel:
    """The same model with another number of readers."""
    return replace(model, n_readers=n_readers)
