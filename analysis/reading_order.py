"""Reading order and fatigue: do grades or correctness drift with position, session or time?

For every read the tidy answers carry the reading session, the position in the session, when it
was first answered and the active reading time (``studies.timing``: focus lost and idle time
over 60 s excluded). :func:`order_effects` models each outcome on one order covariate at a time,
adjusted for arm, reader and finding (or question), with a GEE clustered by case (independence
working correlation, robust sandwich SE; :func:`gee_independence`, checked against statsmodels'
``GEE`` in the tests):

- *correct* (where a reference standard exists): a reading of a finding is correct when the
  dichotomised grade equals the truth; binomial GEE, logit link (coefficient: log odds ratio);
- *grade*: the interchangeability question's grade; Gaussian GEE, identity link;
- *quality*: the image-quality scores (questions pooled, question as a covariate); Gaussian.

Covariates (each in its own model, they are collinear): ``position`` (per 10 positions),
``session`` (per session), ``elapsed`` (hours since the reader's first answer in that session;
only when some session lasted at least ten minutes) and ``active`` (reading time, per doubling:
log2 seconds). The p-values of all models are Holm-adjusted together; an order effect is
*detected* when an adjusted p is below 0.05.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats

from analysis.errors import AnalysisError
from analysis.multiplicity import decide

COVARIATES: dict[str, str] = {
    "position": "position in the session (per 10 cases)",
    "session": "reading session (per session)",
    "elapsed": "time into the session (per hour)",
    "active": "active reading time of the case (per doubling)",
}
ALPHA = 0.05
#: The unit each covariate's coefficient is per.
UNITS: dict[str, str] = {
    "position": "per 10 positions",
    "session": "per session",
    "elapsed": "per hour",
    "active": "per doubling of the reading time",
}


@dataclass(frozen=True)
class OrderEffect:
    """One outcome's association with one order covariate (adjusted for arm and reader)."""

    outcome: str
    covariate: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    p_adjusted: float
    detected: bool
    scale: str
    n_reads: int
    n_cases: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dictionary."""
        return asdict(self)


def read_table(
    answers: pd.DataFrame,
    *,
    questions: list[str],
    truth: pd.DataFrame | None = None,
    threshold: float | None = None,
    interchangeability_question: str | None = None,
) -> pd.DataFrame:
    """One row per answer with the order covariates that the answers allow.

    Columns: ``reader, case, arm, question, finding, value, session, position, elapsed,
    active`` (missing covariates are absent), plus ``correct`` for the interchangeability
    question's answers with a known truth.
    """
    needed = ("reader", "case", "arm", "question", "value")
    missing = [c for c in needed if c not in answers.columns]
    if missing:
        raise AnalysisError(f"answers: missing column(s) {', '.join(missing)}")
    frame = answers[answers["question"].astype(str).isin(questions)].copy()
    frame = frame[frame["arm"].notna()]
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame = frame.dropna(subset=["value"])
    if frame.empty:
        raise AnalysisError("no numeric answers to model the reading order on")
    frame["finding"] = frame["finding"].where(frame["finding"].notna(), frame["question"])
    for column in ("session", "position"):
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    if "first_answered_at" in frame.columns:
        times = pd.to_datetime(frame["first_answered_at"], errors="coerce", utc=True)
        if times.notna().all() and "session" in frame.columns:
            read_time = times.groupby([frame["reader"], frame["session"], frame["case"]]).transform(
                "min"
            )
            start = times.groupby([frame["reader"], frame["session"]]).transform("min")
            elapsed = (read_time - start).dt.total_seconds()
            # sessions of a few minutes (scripted reads): a per-hour slope would be an
            # extrapolation that position already covers, so time is left out
            if elapsed.max() >= MIN_SESSION_SPAN_S:
                frame["elapsed"] = elapsed / 3600.0
    if "active_ms" in frame.columns:
        active = pd.to_numeric(frame["active_ms"], errors="coerce")
        if active.notna().all() and (active > 0).all():
            frame["active"] = np.log2(active / 1000.0)
    if truth is not None and interchangeability_question is not None and threshold is not None:
        known = truth.assign(case=truth["case"].astype(str), finding=truth["finding"].astype(str))
        frame = frame.merge(known[["case", "finding", "truth"]], on=["case", "finding"],
                            how="left")  # fmt: skip
        ic = frame["question"].astype(str) == interchangeability_question
        positive = (frame["value"] >= threshold).astype(float)
        frame["correct"] = np.where(
            ic & frame["truth"].notna(), (positive == frame["truth"]).astype(float), np.nan
        )
    return frame.reset_index(drop=True)


def available_covariates(frame: pd.DataFrame) -> list[str]:
    """The order covariates the read table holds that vary (so that they can be modelled)."""
    return [
        c
        for c in COVARIATES
        if c in frame.columns and frame[c].notna().all() and frame[c].nunique() > 1
    ]


def order_effects(
    frame: pd.DataFrame, outcomes: dict[str, pd.Series], *, covariates: list[str]
) -> list[OrderEffect]:
    """GEE of each outcome on each covariate (see the module docstring); Holm across all.

    Parameters
    ----------
    frame : pandas.DataFrame
        :func:`read_table`'s output.
    outcomes : dict
        Outcome name -> boolean row mask of ``frame`` (``"correct"``: binomial; others
        Gaussian on ``value``).
    covariates : list of str
        Names from :data:`COVARIATES` present in ``frame``.
    """
    fits = []
    for outcome, mask in outcomes.items():
        part = frame[mask.to_numpy()]
        if part.empty:
            continue
        binary = outcome == "correct"
        y = (part["correct"] if binary else part["value"]).to_numpy(dtype=float)
        if binary and np.unique(y).size < 2:
            continue
        base = pd.get_dummies(part[["arm", "reader", "finding"]].astype(str), drop_first=True,
                              dtype=float)  # fmt: skip
        groups = pd.factorize(part["case"])[0]
        for covariate in covariates:
            x = part[covariate].to_numpy(dtype=float) / _SCALES[covariate]
            design = np.column_stack([np.ones(len(part)), base.to_numpy(), x])
            estimate, se = gee_independence(y, design, groups, binary=binary)
            k = design.shape[1] - 1
            p = float(2 * stats.norm.sf(abs(estimate[k] / se[k]))) if se[k] > 0 else 1.0
            fits.append(
                (outcome, covariate, float(estimate[k]), float(se[k]), p,
                 "log odds ratio" if binary else "score", len(part), int(groups.max() + 1))
            )  # fmt: skip
    if not fits:
        return []
    adjusted = decide([f[4] for f in fits], "holm", ALPHA)
    z = float(stats.norm.ppf(0.975))
    return [
        OrderEffect(
            outcome=outcome,
            covariate=covariate,
            estimate=estimate,
            se=se,
            ci_low=estimate - z * se,
            ci_high=estimate + z * se,
            p_value=p,
            p_adjusted=p_adj,
            detected=bool(p_adj < ALPHA),
            scale=scale,
            n_reads=n_reads,
            n_cases=n_cases,
        )
        for (outcome, covariate, estimate, se, p, scale, n_reads, n_cases), p_adj in zip(
            fits, adjusted.adjusted, strict=True
        )
    ]


#: Time into the session is a covariate only when some session spans at least this long.
MIN_SESSION_SPAN_S = 600.0

_SCALES = {"position": 10.0, "session": 1.0, "elapsed": 1.0, "active": 1.0}


def gee_independence(
    y: npt.NDArray[np.float64],
    design: npt.NDArray[np.float64],
    groups: npt.NDArray[np.int64],
    *,
    binary: bool,
    max_iter: int = 50,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """GEE with an independence working correlation: estimates and robust (sandwich) SEs.

    Gaussian with identity link (``binary=False``) or binomial with logit link. The estimating
    equations are those of the GLM; the covariance is the cluster sandwich
    ``B^-1 (sum_g U_g U_g') B^-1`` with ``U_g`` the score of cluster g (statsmodels ``GEE``'s
    robust covariance, computed here without its per-group Python loop; the tests compare).
    Columns that are all zero or collinear get an SE of 0 (their p-value is then 1).
    """
    beta: npt.NDArray[np.float64] = np.zeros(design.shape[1])
    if binary:
        for _ in range(max_iter):
            eta = design @ beta
            mu = special.expit(eta)
            weight = mu * (1 - mu)
            bread = design.T @ (design * weight[:, None])
            step = np.linalg.lstsq(bread, design.T @ (y - mu), rcond=None)[0]
            beta = np.asarray(beta + step, dtype=np.float64)
            if np.max(np.abs(step)) < 1e-10:
                break
        mu = special.expit(design @ beta)
        bread = design.T @ (design * (mu * (1 - mu))[:, None])
        residual = y - mu
    else:
        bread = design.T @ design
        beta = np.asarray(np.linalg.lstsq(bread, design.T @ y, rcond=None)[0], dtype=np.float64)
        residual = y - design @ beta
    order = np.argsort(groups, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0])
    scores = np.add.reduceat((design * residual[:, None])[order], starts, axis=0)
    inverse = np.linalg.pinv(bread)
    cov = inverse @ (scores.T @ scores) @ inverse
    se: npt.NDArray[np.float64] = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return beta, se


def drift_table(frame: pd.DataFrame, value: str, *, bins: int = 8) -> pd.DataFrame:
    """Mean of ``value`` per reader, session and bin of positions (for the drift plot)."""
    part = frame.dropna(subset=[value, "position"])
    if part.empty:
        return pd.DataFrame(columns=["reader", "session", "position_bin", value, "n"])
    rows = []
    for (reader, session), group in part.groupby(["reader", "session"], sort=True):
        positions = group["position"].astype(float)
        edges = np.linspace(positions.min(), positions.max() + 1e-9, bins + 1)
        index = np.clip(np.digitize(positions, edges) - 1, 0, bins - 1)
        for b in range(bins):
            chosen = group[index == b]
            if chosen.empty:
                continue
            rows.append(
                {
                    "reader": reader,
                    "session": session,
                    "position_bin": float((edges[b] + edges[b + 1]) / 2),
                    value: float(chosen[value].mean()),
                    "n": len(chosen),
                }
            )
    return pd.DataFrame(rows)
