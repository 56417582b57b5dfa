"""The study protocol: what is asked, of whom, about which arms (TOML validated by pydantic).

A protocol file is TOML; every table is a pydantic model with unknown keys refused. Rules that
span several fields (exactly one reference arm, unique ids, show-if rules that refer to an
earlier question, ...) are checked by model validators. :func:`load_protocol` turns every problem
into one :class:`~studies.errors.StudyError` that names the file, the line and the key path, e.g.
``knee.toml, line 41, questions[2].points: likert needs points >= 2 (got 1)``.
"""

from __future__ import annotations

import hashlib
import math
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from studies.errors import StudyError

Design = Literal["sequential", "paired"]
Layout = Literal["1x1", "1x2", "2x2", "1x3"]
QuestionType = Literal[
    "likert", "choice", "multi", "boolean", "number", "text", "preference", "roi", "distance"
]
#: Question types answered by drawing on the image (the answer is a geometry and its values).
MEASUREMENT_TYPES = ("roi", "distance")
#: ROI shapes the viewer draws; a ``distance`` question is a ruler (shape ``line``).
RoiShape = Literal["ellipse", "freehand"]
MeasurementKind = Literal["snr", "cnr", "mean", "sd", "area", "distance"]
Scope = Literal["case", "side", "finding"]
#: When a reader may open a finished session again (read-only): ``never``, or once every one
#: of their sessions is finished (while a later session is pending or open, an earlier one would
#: show the other arm's images next to the reader's own grades and undo the washout).
Review = Literal["never", "after_last_session"]

#: The answers a ``preference`` question accepts (stored mapped to the arm on that side).
PREFERENCE_VALUES = ("left", "equal", "right")

#: Ids (arm codes, reader, finding, question ids) end up in file names, CSV column names and
#: SQL rows, so they are kept to a plain alphabet.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_ID_RE = re.compile(ID_PATTERN)

_SHOW_IF_TYPES = ("likert", "choice", "multi", "boolean", "preference")

#: Bounds of the protocol's numbers (every number a protocol gives is bounded).
MAX_SEED = 2**63 - 1  # a signed 64-bit integer: what SQLite and PostgreSQL store
MAX_WASHOUT_DAYS = 365
MAX_POINTS = 100
MAX_TEXT_LENGTH = 100_000
MAX_NUMBER_BOUND = 1e12
#: (rows, columns) of each hanging layout.
LAYOUT_GRID: dict[str, tuple[int, int]] = {
    "1x1": (1, 1),
    "1x2": (1, 2),
    "2x2": (2, 2),
    "1x3": (1, 3),
}

#: At most this many window presets (keys F1..F5; F6 moves between the views).
MAX_WINDOW_PRESETS = 5


class ProtocolRuleError(ValueError):
    """A broken cross-field rule; ``path`` is the key path below the model that raised it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_id(value: str, path: str) -> None:
    if not _ID_RE.match(value):
        raise ProtocolRuleError(
            path,
            f"{value!r} is not a valid id: use letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)",
        )


def _check_unique(values: Iterable[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ProtocolRuleError(path.format(i=i), f"duplicate {what} {value!r}")
        seen.add(value)


class Arm(_Model):
    """One arm (reconstruction) of the study, e.g. conventional or deep-learning."""

    code: str
    description: str
    reference: bool = False

    @model_validator(mode="after")
    def _valid(self) -> Arm:
        _check_id(self.code, "code")
        return self


class Reader(_Model):
    """A reader (radiologist) of the study."""

    id: str
    name: str

    @model_validator(mode="after")
    def _valid(self) -> Reader:
        _check_id(self.id, "id")
        return self


class Finding(_Model):
    """A finding that per-finding questions ask about (and CASES.csv may hold truth for)."""

    id: str
    label: str

    @model_validator(mode="after")
    def _valid(self) -> Finding:
        _check_id(self.id, "id")
        return self


class Option(_Model):
    """One option of a ``choice`` or ``multi`` question."""

    value: str
    label: str


class ShowIf(_Model):
    """Show (and require) a question only when an earlier question's answer matches.

    Exactly one of ``equals`` and ``in`` is given. For a per-finding (per-side) question the rule
    reads the referenced question's answer for the same finding (side).
    """

    question: str
    equals: str | int | bool | None = None
    in_: list[str | int] | None = Field(default=None, alias="in")

    @model_validator(mode="after")
    def _one_rule(self) -> ShowIf:
        if (self.equals is None) == (self.in_ is None):
            raise ProtocolRuleError("", "give exactly one of 'equals' and 'in'")
        if self.in_ is not None and not self.in_:
            raise ProtocolRuleError("in", "needs at least one value")
        return self

    def expected_values(self) -> list[str | int | bool]:
        """The answer values that make the rule hold."""
        if self.in_ is not None:
            return list(self.in_)
        assert self.equals is not None
        return [self.equals]

    def holds(self, answer: object) -> bool:
        """Whether the rule holds for the referenced question's ``answer``.

        A missing answer (None) never satisfies the rule. For a ``multi`` answer (a list) the rule
        holds when any selected option is one of the expected values.
        """
        if answer is None:
            return False
        expected = self.expected_values()
        if isinstance(answer, list):
            return any(_same_value(a, e) for a in answer for e in expected)
        return any(_same_value(answer, e) for e in expected)


def _same_value(a: object, b: object) -> bool:
    # bool is an int in Python: True must not match a likert 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def names_arm(text: str, arms: Sequence[Arm]) -> str | None:
    """The first arm code or description that ``text`` contains as a whole word (ignoring
    case; ``_`` and ``-`` separate words), or None."""
    for arm in arms:
        for term in (arm.code, arm.description):
            term = term.strip()
            if term and re.search(
                r"(?<![A-Za-z0-9])" + re.escape(term) + r"(?![A-Za-z0-9])", text, re.IGNORECASE
            ):
                return term
    return None


def _check_reference_value(question: Question, value: object, path: str) -> None:
    """A reference answer must be an answer the question accepts."""
    allowed = question.allowed_values()
    if question.type == "multi":
        if not isinstance(value, list) or not all(
            any(_same_value(v, a) for a in allowed or []) for v in value
        ):
            raise ProtocolRuleError(
                path, f"expected a list of options from {allowed!r} (got {value!r})"
            )
        return
    if allowed is not None:
        if not any(_same_value(value, a) for a in allowed):
            raise ProtocolRuleError(path, f"expected one of {allowed!r} (got {value!r})")
        return
    if question.type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolRuleError(path, f"expected a number (got {value!r})")
        lo, hi = question.minimum, question.maximum
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ProtocolRuleError(path, f"expected a number in {lo}..{hi} (got {value!r})")
        return
    if not isinstance(value, str):
        raise ProtocolRuleError(path, f"expected text (got {value!r})")


class Question(_Model):
    """One question the reader answers, per case, per side (paired) or per finding."""

    id: str
    text: str
    type: QuestionType
    scope: Scope = "case"
    required: bool = True
    points: int | None = None
    labels: list[str] = []
    options: list[Option] = []
    minimum: float | None = None
    maximum: float | None = None
    unit: str = ""
    max_length: int | None = None
    findings: list[str] | None = None
    show_if: ShowIf | None = None
    group: str = ""
    roi: str | None = None
    shapes: list[RoiShape] | None = None
    per: Literal["case", "series"] = "case"
    mirror: bool = False

    @model_validator(mode="after")
    def _valid(self) -> Question:
        _check_id(self.id, "id")
        t = self.type
        self._check_measurement()
        if t == "likert":
            if self.points is None:
                raise ProtocolRuleError("points", "likert needs 'points' (the number of points)")
            if self.points < 2:
                raise ProtocolRuleError("points", f"likert needs points >= 2 (got {self.points})")
            if self.points > MAX_POINTS:
                raise ProtocolRuleError(
                    "points", f"likert needs points <= {MAX_POINTS} (got {self.points})"
                )
            if len(self.labels) != self.points:
                raise ProtocolRuleError(
                    "labels",
                    f"likert needs one label per point: {self.points} labels expected, "
                    f"got {len(self.labels)}",
                )
        else:
            if self.points is not None:
                raise ProtocolRuleError("points", f"'points' applies only to likert, not {t}")
            if self.labels:
                raise ProtocolRuleError("labels", f"'labels' applies only to likert, not {t}")
        if t in ("choice", "multi"):
            if len(self.options) < 2:
                raise ProtocolRuleError(
                    "options", f"{t} needs at least 2 options (got {len(self.options)})"
                )
            _check_unique((o.value for o in self.options), "options[{i}].value", "option value")
        elif self.options:
            raise ProtocolRuleError("options", f"'options' applies only to choice/multi, not {t}")
        if t == "number":
            for key in ("minimum", "maximum"):
                bound = getattr(self, key)
                if bound is not None and not (
                    math.isfinite(bound) and abs(bound) <= MAX_NUMBER_BOUND
                ):
                    raise ProtocolRuleError(
                        key,
                        f"{key} must be a finite number within +-{MAX_NUMBER_BOUND:g} "
                        f"(got {bound})",
                    )
            if (
                self.minimum is not None
                and self.maximum is not None
                and self.minimum > self.maximum
            ):
                raise ProtocolRuleError(
                    "maximum", f"maximum ({self.maximum}) is below minimum ({self.minimum})"
                )
        else:
            for key in ("minimum", "maximum"):
                if getattr(self, key) is not None:
                    raise ProtocolRuleError(key, f"'{key}' applies only to number, not {t}")
            if self.unit:
                raise ProtocolRuleError("unit", f"'unit' applies only to number, not {t}")
        if t == "text":
            if self.max_length is not None and not 1 <= self.max_length <= MAX_TEXT_LENGTH:
                raise ProtocolRuleError(
                    "max_length",
                    f"max_length must be within 1..{MAX_TEXT_LENGTH} (got {self.max_length})",
                )
        elif self.max_length is not None:
            raise ProtocolRuleError("max_length", f"'max_length' applies only to text, not {t}")
        if t == "preference" and self.scope == "side":
            raise ProtocolRuleError(
                "scope", "a preference compares the sides: scope 'side' is wrong"
            )
        if self.findings is not None:
            if self.scope != "finding":
                raise ProtocolRuleError("findings", "'findings' needs scope = \"finding\"")
            if not self.findings:
                raise ProtocolRuleError("findings", "needs at least one finding id")
            _check_unique(self.findings, "findings[{i}]", "finding")
        return self

    def _check_measurement(self) -> None:
        t = self.type
        if t not in MEASUREMENT_TYPES:
            for key, given in (
                ("roi", self.roi is not None),
                ("shapes", self.shapes is not None),
                ("per", self.per != "case"),
                ("mirror", self.mirror),
            ):
                if given:
                    raise ProtocolRuleError(key, f"'{key}' applies only to roi/distance, not {t}")
            return
        if self.scope == "finding":
            raise ProtocolRuleError("scope", f"a {t} question is asked per case (or per side)")
        if self.show_if is not None:
            raise ProtocolRuleError("show_if", f"a {t} question cannot depend on another answer")
        if t == "roi":
            if self.roi is None:
                raise ProtocolRuleError("roi", "an roi question needs 'roi' (the ROI's name)")
            _check_id(self.roi, "roi")
            if self.shapes is not None:
                if not self.shapes:
                    raise ProtocolRuleError("shapes", "needs at least one of 'ellipse', 'freehand'")
                _check_unique(self.shapes, "shapes[{i}]", "shape")
        else:
            if self.roi is not None:
                raise ProtocolRuleError(
                    "roi", "'roi' applies to roi questions (a distance is a ruler)"
                )
            if self.shapes is not None:
                raise ProtocolRuleError("shapes", "a distance question is a ruler: no 'shapes'")

    @property
    def roi_shapes(self) -> list[str]:
        """The shapes a measurement question is drawn with (``line`` for a distance)."""
        if self.type == "distance":
            return ["line"]
        if self.type == "roi":
            return list(self.shapes) if self.shapes else ["ellipse", "freehand"]
        return []

    def allowed_values(self) -> list[str | int | bool] | None:
        """The finite set of answer values (likert, choice, multi, boolean, preference) or None."""
        if self.type == "likert":
            assert self.points is not None
            return list(range(1, self.points + 1))
        if self.type in ("choice", "multi"):
            return [o.value for o in self.options]
        if self.type == "boolean":
            return [False, True]
        if self.type == "preference":
            return list(PREFERENCE_VALUES)
        return None

    def label_for(self, value: object) -> str:
        """The human label of an answer value (likert anchor, option label), else ``str(value)``."""
        if (
            self.type == "likert"
            and isinstance(value, int)
            and not isinstance(value, bool)
            and 1 <= value <= len(self.labels)
        ):
            return self.labels[value - 1]
        if self.type in MEASUREMENT_TYPES and isinstance(value, dict):
            return measurement_summary(value)
        if self.type in ("choice", "multi"):
            labels = {o.value: o.label for o in self.options}
            if isinstance(value, list):
                return "; ".join(labels.get(str(v), str(v)) for v in value)
            return labels.get(str(value), str(value))
        return "" if value is None else str(value)


def measurement_summary(value: dict[str, Any]) -> str:
    """One line for a stored roi / distance answer, e.g. ``mean 412.3, SD 20.1, 85.2 mm2``."""
    parts: list[str] = []
    if value.get("length_mm") is not None:
        parts.append(f"{float(value['length_mm']):.1f} mm")
    else:
        for key, name in (("mean", "mean"), ("sd", "SD")):
            if value.get(key) is not None:
                number = float(value[key])
                parts.append(
                    f"{name} {number:.0f}" if abs(number) >= 1000 else f"{name} {number:.4g}"
                )
        if value.get("area_mm2") is not None:
            parts.append(f"{float(value['area_mm2']):.1f} mm\u00b2")
    if value.get("slice") is not None:
        parts.append(f"slice {int(value['slice']) + 1}")
    return ", ".join(parts)


class Interchangeability(_Model):
    """Settings of the interchangeability analysis (Johnson 2023 / Recht 2020)."""

    question: str
    margin: float = 0.05
    threshold: int = 3

    @model_validator(mode="after")
    def _valid(self) -> Interchangeability:
        if not (math.isfinite(self.margin) and 0 < self.margin < 1):
            raise ProtocolRuleError("margin", f"margin must be between 0 and 1 (got {self.margin})")
        return self


# ---- [analysis]: how the study is analysed (pre-specified; issue 13) -------------------------

ReaderModelName = Literal["random-readers", "fixed-readers"]
MultiplicityName = Literal["holm", "intersection-union"]
MeasureName = Literal["binary", "exact", "squared"]


class SensitivityAnalysis(_Model):
    """One pre-specified sensitivity analysis of the interchangeability test.

    Each field left out takes the primary analysis's value: ``measure`` (binary, i.e. grades
    dichotomised at the threshold), ``threshold``, ``readers`` and ``margin`` (for the squared
    measure: ``[analysis] squared_margin``).
    """

    label: str = ""
    measure: MeasureName = "binary"
    threshold: int | None = None
    readers: ReaderModelName | None = None
    margin: float | None = None

    @model_validator(mode="after")
    def _valid(self) -> SensitivityAnalysis:
        if self.threshold is not None and self.measure != "binary":
            raise ProtocolRuleError(
                "threshold", f"a threshold applies to the binary measure only, not {self.measure}"
            )
        if self.margin is not None and not self.margin > 0:
            raise ProtocolRuleError("margin", f"margin must be positive (got {self.margin})")
        return self


class Planning(_Model):
    """The sample-size planning done before the study (STARD item 18), quoted by the report.

    ``text`` is the statement as it should appear, e.g. the output of ``blindreader plan``;
    the numbers are optional and shown with it.
    """

    text: str
    n_cases: int | None = None
    n_readers: int | None = None
    power: float | None = None
    expected_gamma: float | None = None
    method: str = ""

    @model_validator(mode="after")
    def _valid(self) -> Planning:
        if not self.text.strip():
            raise ProtocolRuleError("text", "the planning statement is empty")
        if self.power is not None and not 0 < self.power < 1:
            raise ProtocolRuleError("power", f"power must be between 0 and 1 (got {self.power})")
        for key in ("n_cases", "n_readers"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ProtocolRuleError(key, f"{key} must be >= 1 (got {value})")
        return self


def _default_sensitivity() -> list[SensitivityAnalysis]:
    return [SensitivityAnalysis(measure="exact", label="exact-category agreement")]


class AnalysisSettings(_Model):
    """The pre-specified analysis: which interval decides, the multiplicity family, the margin
    of the squared-difference measure, sensitivity analyses and the planning record.

    - ``primary``: ``random-readers`` (default: the claim about radiologists in general) or
      ``fixed-readers`` (a claim about the study's readers); the report states it first and
      gives the other one as secondary.
    - ``multiplicity``: ``holm`` (each finding on its own, Holm-adjusted across findings) or
      ``intersection-union`` (all findings jointly: every finding must pass, no adjustment);
      applied to every decision the report makes (interchangeability, image quality, accuracy).
    - ``squared_margin``: the margin of the squared-difference index, in squared score units.
    - ``sensitivity``: the pre-specified sensitivity analyses (default: exact-category agreement).
    """

    primary: ReaderModelName = "random-readers"
    multiplicity: MultiplicityName = "holm"
    squared_margin: float | None = None
    sensitivity: list[SensitivityAnalysis] = Field(default_factory=_default_sensitivity)
    planning: Planning | None = None

    @model_validator(mode="after")
    def _valid(self) -> AnalysisSettings:
        if self.squared_margin is not None and not self.squared_margin > 0:
            raise ProtocolRuleError(
                "squared_margin", f"squared_margin must be positive (got {self.squared_margin})"
            )
        for i, item in enumerate(self.sensitivity):
            if item.measure == "squared" and item.margin is None and self.squared_margin is None:
                raise ProtocolRuleError(
                    f"sensitivity[{i}].margin",
                    "the squared-difference measure needs its own margin in squared score "
                    "units: set margin here or [analysis] squared_margin",
                )
        return self

    @property
    def primary_readers(self) -> Literal["fixed", "random"]:
        """The primary reader model as the analysis names it (``fixed`` or ``random``)."""
        return "random" if self.primary == "random-readers" else "fixed"


class Hanging(_Model):
    """How a case's series are hung: the layout and which series hangs where first.

    ``series`` lists CASES.csv's series labels in hanging order: the first ones fill the layout's
    cells (left to right, then top to bottom), the rest wait in the thumbnail strip in this order.
    Empty: alphabetical order. In the paired design each cell shows the same series of both arms
    side by side.
    """

    layout: Layout = "1x1"
    series: list[str] = []

    @model_validator(mode="after")
    def _valid(self) -> Hanging:
        for i, label in enumerate(self.series):
            _check_id(label, f"series[{i}]")
        _check_unique(self.series, "series[{i}]", "series")
        return self

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the layout."""
        return LAYOUT_GRID[self.layout]

    @property
    def n_cells(self) -> int:
        """How many series are hung at once."""
        rows, columns = self.grid
        return rows * columns

    def order(self, labels: Iterable[str]) -> list[str]:
        """``labels`` in hanging order: those the protocol lists in its order, then the others
        alphabetically."""
        rank = {label: i for i, label in enumerate(self.series)}
        return sorted(set(labels), key=lambda label: (rank.get(label, len(rank)), label))


class WindowPreset(_Model):
    """A named display window: the ``low``..``high`` percentiles of the series' pixel values
    (of both arms together in the paired design). Keys F1, F2, ... in protocol order."""

    name: str
    low: float
    high: float

    @model_validator(mode="after")
    def _valid(self) -> WindowPreset:
        if not self.name.strip() or len(self.name) > 24:
            raise ProtocolRuleError("name", "needs a name of 1 to 24 characters")
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ProtocolRuleError("low", "percentiles must be finite numbers")
        if not 0 <= self.low < self.high <= 100:
            raise ProtocolRuleError(
                "high", f"needs 0 <= low < high <= 100 (got low {self.low}, high {self.high})"
            )
        return self


#: The presets of a protocol that names none.
DEFAULT_WINDOW_PRESETS = (
    WindowPreset(name="Auto", low=1.0, high=99.0),
    WindowPreset(name="Contrast", low=5.0, high=95.0),
    WindowPreset(name="Wide", low=0.1, high=99.9),
)

ReferenceValue = bool | int | float | str | list[str]


class TrainingReference(_Model):
    """The reference answers of one training case, shown to the reader after answering it.

    ``answers`` maps a question id to its value (per-case questions) or to a table of values by
    finding id (per-finding questions). Per-side and preference questions have no reference
    answer: the sides are randomised per reader. ``explanation`` (markdown) is shown with them.
    """

    case: str
    answers: dict[str, ReferenceValue | dict[str, ReferenceValue]] = {}
    explanation: str = ""


class Measurement(_Model):
    """A quantity the analysis compares between arms, defined from roi / distance questions.

    ``kind``: ``mean``, ``sd``, ``area`` (mm2) of the ROI ``roi``; ``distance`` (mm) of the
    distance question ``roi``; ``snr`` = mean(roi) / sd(background); ``cnr`` =
    |mean(roi) - mean(roi_b)| / sd(background). ``margin`` is the equivalence margin (TOST) in
    the measurement's units, or a fraction of the reference arm's mean when ``relative``.
    """

    id: str
    label: str = ""  # shown in the report's tables (the id when empty)
    kind: MeasurementKind
    roi: str
    roi_b: str | None = None
    background: str | None = None
    margin: float | None = None
    relative: bool = False
    unit: str = ""  # default by kind: mm2 (area), mm (distance), a.u. (mean, SD), "" (SNR, CNR)

    @model_validator(mode="before")
    @classmethod
    def _default_unit(cls, data: Any) -> Any:
        if isinstance(data, dict) and "unit" not in data:
            # mean / SD are in the blinded image's stored units (each series rescaled by one rule)
            units = {"area": "mm2", "distance": "mm", "mean": "a.u.", "sd": "a.u."}
            return {**data, "unit": units.get(str(data.get("kind")), "")}
        return data

    @model_validator(mode="after")
    def _valid(self) -> Measurement:
        _check_id(self.id, "id")
        k = self.kind
        if k == "cnr" and self.roi_b is None:
            raise ProtocolRuleError("roi_b", "cnr needs 'roi_b' (the second tissue's ROI question)")
        if k != "cnr" and self.roi_b is not None:
            raise ProtocolRuleError("roi_b", f"'roi_b' applies only to cnr, not {k}")
        if k in ("snr", "cnr") and self.background is None:
            raise ProtocolRuleError(
                "background", f"{k} needs 'background' (the ROI question of the noise region)"
            )
        if k not in ("snr", "cnr") and self.background is not None:
            raise ProtocolRuleError("background", f"'background' applies only to snr/cnr, not {k}")
        if self.margin is not None and not (math.isfinite(self.margin) and self.margin > 0):
            raise ProtocolRuleError(
                "margin", f"margin must be a positive number (got {self.margin})"
            )
        if self.relative and self.margin is None:
            raise ProtocolRuleError("relative", "relative = true needs a margin (a fraction)")
        if self.relative and self.margin is not None and not self.margin < 1:
            raise ProtocolRuleError(
                "margin",
                "a relative margin is a fraction of the reference mean: below 1 "
                f"(got {self.margin})",
            )
        return self

    @property
    def questions(self) -> list[str]:
        """The roi / distance questions this measurement reads."""
        return [q for q in (self.roi, self.roi_b, self.background) if q is not None]


class Protocol(_Model):
    """A validated study protocol (see ``studies/protocols/*.toml`` for examples)."""

    title: str
    design: Design
    seed: int
    washout_days: int = 28
    review: Review = "after_last_session"
    arms: list[Arm]
    readers: list[Reader]
    findings: list[Finding] = []
    questions: list[Question]
    training_cases: list[str] = []
    interchangeability: Interchangeability | None = None
    analysis: AnalysisSettings = Field(default_factory=AnalysisSettings)
    instructions: str = ""  # markdown, shown on the reader's start screen
    hanging: Hanging = Hanging()
    window_presets: list[WindowPreset] = list(DEFAULT_WINDOW_PRESETS)
    training_reference: list[TrainingReference] = []
    measurements: list[Measurement] = []

    @model_validator(mode="after")
    def _valid(self) -> Protocol:
        if not 0 <= self.seed <= MAX_SEED:
            raise ProtocolRuleError(
                "seed", f"seed must be within 0..2**63-1 (a 64-bit integer; got {self.seed})"
            )
        if not 0 <= self.washout_days <= MAX_WASHOUT_DAYS:
            raise ProtocolRuleError(
                "washout_days",
                f"washout_days must be within 0..{MAX_WASHOUT_DAYS} (got {self.washout_days})",
            )
        self._check_arms()
        if not self.readers:
            raise ProtocolRuleError("readers", "needs at least one reader")
        _check_unique((r.id for r in self.readers), "readers[{i}].id", "reader id")
        _check_unique((f.id for f in self.findings), "findings[{i}].id", "finding id")
        if not self.questions:
            raise ProtocolRuleError("questions", "needs at least one question")
        _check_unique((q.id for q in self.questions), "questions[{i}].id", "question id")
        for i, question in enumerate(self.questions):
            self._check_question(i, question)
        _check_unique(self.training_cases, "training_cases[{i}]", "training case")
        for i, case_id in enumerate(self.training_cases):
            if not case_id.strip():
                raise ProtocolRuleError(f"training_cases[{i}]", "empty case id")
        if self.interchangeability is not None:
            self._check_interchangeability(self.interchangeability)
            self._check_sensitivity_thresholds(self.interchangeability)
        self._check_reader_texts()
        self._check_training_reference()
        self._check_measurements()
        return self

    def _check_measurements(self) -> None:
        _check_unique((m.id for m in self.measurements), "measurements[{i}].id", "measurement id")
        by_id = {q.id: q for q in self.questions}
        for i, m in enumerate(self.measurements):
            path = f"measurements[{i}]"
            wanted = "distance" if m.kind == "distance" else "roi"
            for key in ("roi", "roi_b", "background"):
                ref = getattr(m, key)
                if ref is None:
                    continue
                need = wanted if key == "roi" else "roi"
                q = by_id.get(ref)
                known = ", ".join(q.id for q in self.questions if q.type == need) or "none"
                if q is None:
                    raise ProtocolRuleError(
                        f"{path}.{key}", f"unknown question {ref!r} ({need} questions: {known})"
                    )
                if q.type != need:
                    raise ProtocolRuleError(
                        f"{path}.{key}",
                        f"question {ref!r} is of type {q.type}; {m.kind} needs a {need} question "
                        f"({need} questions: {known})",
                    )
            if len(set(m.questions)) != len(m.questions):
                raise ProtocolRuleError(path, f"{m.kind} reads the same ROI twice: {m.questions}")

    def _check_sensitivity_thresholds(self, ic: Interchangeability) -> None:
        points = self.question(ic.question).points or 2
        for i, item in enumerate(self.analysis.sensitivity):
            if item.threshold is not None and not 2 <= item.threshold <= points:
                raise ProtocolRuleError(
                    f"analysis.sensitivity[{i}].threshold",
                    f"threshold must be within 2..{points} (the points of {ic.question!r}); "
                    f"got {item.threshold}",
                )

    def _check_reader_texts(self) -> None:
        """Texts the viewer shows the reader must not name an arm."""
        if not 1 <= len(self.window_presets) <= MAX_WINDOW_PRESETS:
            raise ProtocolRuleError(
                "window_presets",
                f"needs 1 to {MAX_WINDOW_PRESETS} presets (keys F1..F{MAX_WINDOW_PRESETS}); "
                f"got {len(self.window_presets)}",
            )
        _check_unique((p.name for p in self.window_presets), "window_presets[{i}].name", "name")
        texts = [("instructions", self.instructions)]
        texts += [(f"hanging.series[{i}]", label) for i, label in enumerate(self.hanging.series)]
        texts += [(f"window_presets[{i}].name", p.name) for i, p in enumerate(self.window_presets)]
        texts += [  # drawn beside the ROI on the image
            (f"questions[{i}].roi", q.roi) for i, q in enumerate(self.questions) if q.roi
        ]
        texts += [
            (f"training_reference[{i}].explanation", r.explanation)
            for i, r in enumerate(self.training_reference)
        ]
        for path, text in texts:
            arm = names_arm(text, self.arms)
            if arm is not None:
                raise ProtocolRuleError(
                    path, f"names the arm {arm!r}: readers see this text, it must not name an arm"
                )

    def _check_training_reference(self) -> None:
        _check_unique((r.case for r in self.training_reference), "training_reference[{i}].case",
                      "training case")  # fmt: skip
        for i, reference in enumerate(self.training_reference):
            path = f"training_reference[{i}]"
            if reference.case not in self.training_cases:
                raise ProtocolRuleError(
                    f"{path}.case",
                    f"{reference.case!r} is not one of training_cases "
                    f"({', '.join(self.training_cases) or 'none'})",
                )
            for question_id, given in reference.answers.items():
                where = f"{path}.answers.{question_id}"
                q = next((q for q in self.questions if q.id == question_id), None)
                if q is None:
                    raise ProtocolRuleError(where, f"unknown question {question_id!r}")
                if q.type in MEASUREMENT_TYPES:
                    raise ProtocolRuleError(
                        where, f"a {q.type} question has no reference answer (it is drawn)"
                    )
                if q.scope == "side" or q.type == "preference":
                    raise ProtocolRuleError(
                        where,
                        "per-side and preference questions have no reference answer "
                        "(the sides are randomised per reader)",
                    )
                if q.scope == "finding":
                    if not isinstance(given, dict):
                        raise ProtocolRuleError(
                            where, "a per-finding question needs a table of values by finding id"
                        )
                    findings = self.question_findings(q)
                    for finding_id, value in given.items():
                        if finding_id not in findings:
                            raise ProtocolRuleError(
                                f"{where}.{finding_id}",
                                f"question {q.id!r} is not asked for finding {finding_id!r} "
                                f"(it is asked for {', '.join(findings)})",
                            )
                        _check_reference_value(q, value, f"{where}.{finding_id}")
                else:
                    if isinstance(given, dict):
                        raise ProtocolRuleError(where, "a per-case question needs one value")
                    _check_reference_value(q, given, where)

    def _check_arms(self) -> None:
        if len(self.arms) < 2:
            raise ProtocolRuleError("arms", f"needs at least two arms (got {len(self.arms)})")
        if self.design == "paired" and len(self.arms) != 2:
            raise ProtocolRuleError(
                "arms", f"the paired design needs exactly two arms (got {len(self.arms)})"
            )
        _check_unique((a.code for a in self.arms), "arms[{i}].code", "arm code")
        references = [a.code for a in self.arms if a.reference]
        if len(references) != 1:
            raise ProtocolRuleError(
                "arms",
                "exactly one arm must have reference = true "
                f"(got {len(references)}: {', '.join(references) or 'none'})",
            )

    def _check_question(self, i: int, q: Question) -> None:
        path = f"questions[{i}]"
        if self.design != "paired":
            if q.scope == "side":
                raise ProtocolRuleError(f"{path}.scope", "scope 'side' needs design = \"paired\"")
            if q.type == "preference":
                raise ProtocolRuleError(
                    f"{path}.type", "type 'preference' needs design = \"paired\""
                )
        if q.scope == "finding":
            if not self.findings:
                raise ProtocolRuleError(
                    f"{path}.scope", "scope 'finding' needs [[findings]] in the protocol"
                )
            known = {f.id for f in self.findings}
            for j, fid in enumerate(q.findings or []):
                if fid not in known:
                    raise ProtocolRuleError(
                        f"{path}.findings[{j}]",
                        f"unknown finding {fid!r} (protocol findings: {', '.join(sorted(known))})",
                    )
        if q.show_if is not None:
            self._check_show_if(i, q, q.show_if)
        if q.type in MEASUREMENT_TYPES:
            if self.design == "sequential" and q.mirror:
                raise ProtocolRuleError(
                    f"{path}.mirror",
                    "mirror applies to the paired design (two panes); a sequential design shows "
                    "one arm at a time",
                )
            if self.design == "paired" and q.scope != "side":
                raise ProtocolRuleError(
                    f"{path}.scope",
                    f"in the paired design a {q.type} question is measured on each image: "
                    'scope = "side"',
                )

    def _check_show_if(self, i: int, q: Question, rule: ShowIf) -> None:
        path = f"questions[{i}].show_if"
        earlier = {p.id: p for p in self.questions[:i]}
        ref = earlier.get(rule.question)
        if ref is None:
            where = "a later question" if rule.question in {p.id for p in self.questions} else ""
            raise ProtocolRuleError(
                f"{path}.question",
                f"must name an earlier question (got {rule.question!r}"
                + (f", {where})" if where else ", which does not exist)"),
            )
        if ref.type not in _SHOW_IF_TYPES:
            raise ProtocolRuleError(
                f"{path}.question",
                f"question {ref.id!r} is of type {ref.type}; show_if needs one of "
                + ", ".join(_SHOW_IF_TYPES),
            )
        if ref.scope != "case" and ref.scope != q.scope:
            raise ProtocolRuleError(
                f"{path}.question",
                f"question {ref.id!r} has scope {ref.scope!r}; a {q.scope!r} question may "
                "depend only on 'case'"
                + (f" or {q.scope!r}" if q.scope != "case" else "")
                + " questions",
            )
        if ref.scope == "finding":
            missing = set(self.question_findings(q)) - set(self.question_findings(ref))
            if missing:
                raise ProtocolRuleError(
                    f"{path}.question",
                    f"question {ref.id!r} is not asked for finding(s) {', '.join(sorted(missing))}",
                )
        allowed = ref.allowed_values()
        assert allowed is not None
        key = "in" if rule.in_ is not None else "equals"
        for value in rule.expected_values():
            if not any(_same_value(value, a) for a in allowed):
                raise ProtocolRuleError(
                    f"{path}.{key}",
                    f"{value!r} is not an answer of question {ref.id!r} "
                    f"({ref.type}: {', '.join(repr(a) for a in allowed)})",
                )

    def _check_interchangeability(self, ic: Interchangeability) -> None:
        path = "interchangeability"
        if self.design != "sequential":
            raise ProtocolRuleError(path, 'interchangeability needs design = "sequential"')
        q = next((q for q in self.questions if q.id == ic.question), None)
        if q is None:
            raise ProtocolRuleError(f"{path}.question", f"unknown question {ic.question!r}")
        if q.type != "likert" or q.scope != "finding":
            raise ProtocolRuleError(
                f"{path}.question",
                f"question {q.id!r} must be a per-finding likert question "
                f"(it is {q.type}, scope {q.scope!r})",
            )
        assert q.points is not None
        if not 2 <= ic.threshold <= q.points:
            raise ProtocolRuleError(
                f"{path}.threshold",
                f"threshold must be within 2..{q.points} (the points of {q.id!r}); "
                f"got {ic.threshold}",
            )

    # ---- derived helpers -------------------------------------------------------------------

    @property
    def reference_arm(self) -> Arm:
        """The reference arm (e.g. the conventional reconstruction)."""
        return next(a for a in self.arms if a.reference)

    @property
    def other_arms(self) -> list[Arm]:
        """The non-reference arms, in protocol order."""
        return [a for a in self.arms if not a.reference]

    @property
    def arm_codes(self) -> list[str]:
        """The arm codes, in protocol order."""
        return [a.code for a in self.arms]

    @property
    def n_sessions(self) -> int:
        """Sessions per reader: one per arm (sequential) or one (paired)."""
        return len(self.arms) if self.design == "sequential" else 1

    def arm(self, code: str) -> Arm:
        """The arm with this code (StudyError if there is none)."""
        for arm in self.arms:
            if arm.code == code:
                return arm
        raise StudyError(f"unknown arm {code!r} (protocol arms: {', '.join(self.arm_codes)})")

    def reader(self, reader_id: str) -> Reader:
        """The reader with this id (StudyError if there is none)."""
        for reader in self.readers:
            if reader.id == reader_id:
                return reader
        known = ", ".join(r.id for r in self.readers)
        raise StudyError(f"unknown reader {reader_id!r} (protocol readers: {known})")

    def question(self, question_id: str) -> Question:
        """The question with this id (StudyError if there is none)."""
        for question in self.questions:
            if question.id == question_id:
                return question
        known = ", ".join(q.id for q in self.questions)
        raise StudyError(f"unknown question {question_id!r} (protocol questions: {known})")

    def finding(self, finding_id: str) -> Finding:
        """The finding with this id (StudyError if there is none)."""
        for finding in self.findings:
            if finding.id == finding_id:
                return finding
        known = ", ".join(f.id for f in self.findings) or "none"
        raise StudyError(f"unknown finding {finding_id!r} (protocol findings: {known})")

    def questions_for(self, scope: Scope) -> list[Question]:
        """The questions of one scope, in protocol order."""
        return [q for q in self.questions if q.scope == scope]

    def training_answers(self, case_id: str) -> TrainingReference | None:
        """The reference answers of a training case (None when the protocol gives none)."""
        return next((r for r in self.training_reference if r.case == case_id), None)

    def question_findings(self, question: Question) -> list[str]:
        """The finding ids a per-finding question is asked for ([] for other scopes)."""
        if question.scope != "finding":
            return []
        if question.findings is not None:
            return list(question.findings)
        return [f.id for f in self.findings]


# ---- loading -------------------------------------------------------------------------------


def protocol_sha256(text: str | bytes) -> str:
    """The sha256 (hex) of a protocol's text, stored with the study to pin what was asked."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def load_protocol(path: Path | str) -> Protocol:
    """Read and validate a protocol TOML file.

    Parameters
    ----------
    path
        The protocol file.

    Returns
    -------
    Protocol
        The validated protocol.

    Raises
    ------
    StudyError
        The file is missing, unreadable, not TOML, or breaks a rule; the message names the file,
        the line (where it can be found) and the key path, e.g. ``questions[2].points``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{path}: protocol file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path}: cannot read protocol file ({exc})") from None
    return parse_protocol(text, str(path))


def parse_protocol(text: str, source: str = "<protocol>") -> Protocol:
    """Validate a protocol given as TOML text; ``source`` names it in error messages.

    Raises
    ------
    StudyError
        See :func:`load_protocol`.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if match:
            raise StudyError(f"{source}, line {match.group(1)}: not valid TOML: {reason}") from None
        raise StudyError(f"{source}: not valid TOML: {reason}") from None
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        raise StudyError(_format_errors(exc, text, source)) from None


def _format_errors(exc: ValidationError, text: str, source: str) -> str:
    lines = _key_lines(text)
    problems: list[str] = []
    for err in exc.errors():
        loc: list[str | int] = [p for p in err["loc"] if isinstance(p, str | int)]
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, ProtocolRuleError):
            message = error.message
            loc = loc + _split_path(error.path)
        else:
            message = _pydantic_message(err)
        # Union members show up in the loc ("str", "int", ...): keep only real keys.
        loc = [p for p in loc if not (isinstance(p, str) and p in _UNION_TAGS)]
        path = _join_path(loc)
        line = _find_line(lines, loc)
        where = f"{source}, line {line}" if line is not None else source
        problems.append(f"{where}, {path or '(top level)'}: {message}")
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems: " + "; ".join(problems)


_UNION_TAGS = {"str", "int", "bool", "float", "list[union[str,int]]", "none"}


def _pydantic_message(err: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key (not allowed here)"
    message = str(err["msg"])
    if "input" in err and kind not in ("model_type", "dict_type", "list_type"):
        return f"{message} (got {err['input']!r})"
    return message


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def _join_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


_HEADER_RE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY_RE = re.compile(
    r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)\s*="
)


def _key_parts(key: str) -> list[str]:
    return [p.strip().strip("\"'") for p in re.findall(r"\"[^\"]*\"|'[^']*'|[^.]+", key)]


def _key_lines(text: str) -> dict[str, int]:
    """Map key paths (``questions[2].points``) to the 1-based line that sets them.

    A light scan of the TOML text (tables, arrays of tables, ``key =`` lines); good enough to
    point at the line of a problem, not a TOML parser.
    """
    found: dict[str, int] = {}
    counters: dict[str, int] = {}
    table: list[str | int] = []
    in_multiline_string = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.count('"""') % 2 == 1 or raw.count("'''") % 2 == 1:
            in_multiline_string = not in_multiline_string
            if not in_multiline_string:
                continue
        elif in_multiline_string:
            continue
        header = _HEADER_RE.match(raw)
        if header and not _KEY_RE.match(raw):
            names = _key_parts(header.group(2))
            parent: list[str | int] = []
            # Resolve each name against the arrays of tables seen so far.
            for name in names[:-1]:
                parent.append(name)
                array_key = _join_path(parent)
                if array_key in counters:
                    parent.append(counters[array_key])
            parent.append(names[-1])
            if header.group(1) == "[[":
                array_key = _join_path(parent)
                found.setdefault(array_key, number)
                counters[array_key] = counters.get(array_key, -1) + 1
                parent.append(counters[array_key])
            table = parent
            found.setdefault(_join_path(table), number)
            continue
        key = _KEY_RE.match(raw)
        if key:
            loc = table + list(_key_parts(key.group(1)))
            for end in range(len(table) + 1, len(loc) + 1):
                found.setdefault(_join_path(loc[:end]), number)
    return found


def _find_line(lines: dict[str, int], loc: Sequence[str | int]) -> int | None:
    for end in range(len(loc), 0, -1):
        line = lines.get(_join_path(loc[:end]))
        if line is not None:
            return line
    return None


__all__ = [
    "DEFAULT_WINDOW_PRESETS",
    "ID_PATTERN",
    "LAYOUT_GRID",
    "MEASUREMENT_TYPES",
    "PREFERENCE_VALUES",
    "AnalysisSettings",
    "Arm",
    "Design",
    "Finding",
    "Hanging",
    "Interchangeability",
    "Layout",
    "Measurement",
    "MeasurementKind",
    "Option",
    "Planning",
    "Protocol",
    "ProtocolRuleError",
    "Question",
    "QuestionType",
    "Reader",
    "RoiShape",
    "Scope",
    "SensitivityAnalysis",
    "ShowIf",
    "TrainingReference",
    "WindowPreset",
    "load_protocol",
    "names_arm",
    "parse_protocol",
    "protocol_sha256",
]
