"""What a report section is: a class that computes a :class:`SectionResult`, and the registry.

A section computes; it never writes HTML. It returns a result object: the JSON data for
``results.json``, the tables (written as CSV), the figures (PNG files it wrote through
:meth:`analysis.report.context.ReportContext.figure_path`), the decisions it made, a methods
paragraph, references, notes (warnings) and a list of *blocks* (heading, paragraph, list, table,
figure) that the one template, ``templates/report.html.j2``, renders in order. A section that
needs its own layout names a template of its own (``template``) under ``templates/sections/``.

See :mod:`analysis.report` for how to add a section.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from analysis.report.context import ReportContext

BlockKind = Literal["heading", "paragraph", "list", "table", "figure", "callout"]


@dataclass(frozen=True)
class Figure:
    """A PNG written by a section, with the caption the report shows under it."""

    path: Path
    caption: str


@dataclass(frozen=True)
class TableView:
    """A table as the report shows it: column headings and formatted cells."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass(frozen=True)
class Block:
    """One piece of a section's body, rendered in order by the template.

    ``kind`` is one of heading (``text``), paragraph (``text``), callout (``text``, a framed
    statement such as the primary decision), list (``items``), table (``table``) and figure
    (``figure``).
    """

    kind: BlockKind
    text: str = ""
    items: list[str] = field(default_factory=list)
    table: TableView | None = None
    figure: Figure | None = None


@dataclass(frozen=True)
class Decision:
    """A decision the report states (interchangeability, image quality, accuracy)."""

    section: str
    claim: str
    sentence: str
    passed: bool | None
    family: str


@dataclass
class SectionResult:
    """What one section adds to the report (see the module docstring)."""

    key: str
    title: str
    data: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    methods: str = ""
    references: list[str] = field(default_factory=list)
    template: str = "sections/blocks.html.j2"

    # ---- building the body ----------------------------------------------------------------

    def heading(self, text: str) -> None:
        """Add a sub-heading."""
        self.blocks.append(Block("heading", text=text))

    def paragraph(self, text: str) -> None:
        """Add a paragraph of text."""
        self.blocks.append(Block("paragraph", text=text))

    def callout(self, text: str) -> None:
        """Add a framed statement (a decision, a warning that must be seen)."""
        self.blocks.append(Block("callout", text=text))

    def bullets(self, items: Sequence[str]) -> None:
        """Add a bulleted list."""
        if items:
            self.blocks.append(Block("list", items=list(items)))

    def table(
        self,
        frame: pd.DataFrame,
        columns: Mapping[str, str] | Sequence[str] | None = None,
        *,
        caption: str = "",
        digits: int = 3,
        percent: Sequence[str] = (),
    ) -> None:
        """Add a table; ``columns`` maps frame columns to headings (or lists the columns)."""
        self.blocks.append(
            Block("table", table=table_view(frame, columns, caption, digits, percent))
        )

    def figure(self, figure: Figure) -> None:
        """Add a figure (also listed in ``figures``)."""
        self.figures.append(figure)
        self.blocks.append(Block("figure", figure=figure))


class Section(ABC):
    """A report section: ``applies`` says whether the data allow it, ``compute`` builds it.

    Subclasses set ``key`` (also the key in ``results.json``), ``title`` and ``order`` (the
    position in the report; built-in sections use multiples of 10) and register themselves with
    :func:`register_section`.
    """

    key: ClassVar[str]
    title: ClassVar[str]
    order: ClassVar[int]

    def applies(self, ctx: ReportContext) -> bool:
        """Whether this study has what the section needs (default: always)."""
        return True

    @abstractmethod
    def compute(self, ctx: ReportContext) -> SectionResult:
        """Compute the section (raise AnalysisError to be left out with a note)."""

    def result(self) -> SectionResult:
        """An empty result carrying this section's key and title."""
        return SectionResult(key=self.key, title=self.title)


_REGISTRY: dict[str, type[Section]] = {}


def register_section(cls: type[Section]) -> type[Section]:
    """Class decorator: add a section to the report (its ``key`` must be new)."""
    if cls.key in _REGISTRY and _REGISTRY[cls.key] is not cls:
        raise ValueError(f"a report section with key {cls.key!r} is already registered")
    _REGISTRY[cls.key] = cls
    return cls


def registered_sections() -> list[type[Section]]:
    """Every registered section, in report order."""
    return sorted(_REGISTRY.values(), key=lambda cls: (cls.order, cls.key))


# ---- formatting (shared by every section and the template) ----------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    """A cell as text: numbers rounded, booleans yes/no, missing values a dash."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return "–"
        if math.isinf(number):
            return "∞" if number > 0 else "-∞"
        if number != 0 and abs(number) < 0.5 * 10 ** (-digits):  # would print as 0.000
            return f"{number:.1e}"
        return f"{number:.{digits}f}"
    return str(value)


def pct(value: Any, digits: int = 1) -> str:
    """A proportion as a percentage (``0.0512 -> 5.1%``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    return f"{100 * number:.{digits}f}%" if math.isfinite(number) else "–"


def p_text(value: Any) -> str:
    """A p-value as it is usually printed (``< 0.001`` for small ones)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(number):
        return "–"
    return "< 0.001" if number < 0.001 else f"{number:.3f}"


def p_phrase(value: Any, name: str = "p") -> str:
    """``p = 0.012`` or ``p < 0.001`` (``name`` e.g. "Holm-adjusted p")."""
    text = p_text(value)
    return f"{name} {text}" if text.startswith("<") else f"{name} = {text}"


def table_view(
    frame: pd.DataFrame,
    columns: Mapping[str, str] | Sequence[str] | None = None,
    caption: str = "",
    digits: int = 3,
    percent: Sequence[str] = (),
) -> TableView:
    """Format a frame for the report (p-value columns, i.e. names starting with ``p``, as such)."""
    if columns is None:
        mapping = {str(c): str(c) for c in frame.columns}
    elif isinstance(columns, Mapping):
        mapping = {str(k): str(v) for k, v in columns.items()}
    else:
        mapping = {str(c): str(c) for c in columns}
    keep = [c for c in mapping if c in frame.columns]
    rows: list[list[str]] = []
    for record in frame[keep].to_dict(orient="records"):
        row = []
        for column in keep:
            value = record[column]
            if column in percent:
                row.append(pct(value))
            elif column == "df":
                row.append(fmt(value, 1))
            elif column == "p" or column.startswith(("p_", "p-")):
                row.append(p_text(value))
            else:
                row.append(fmt(value, digits))
        rows.append(row)
    return TableView(columns=[mapping[c] for c in keep], rows=rows, caption=caption)
