"""Render the report: one Jinja2 template (``templates/report.html.j2``) for every section."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analysis.report.base import fmt, p_text, pct

if TYPE_CHECKING:
    from jinja2 import Environment

    from analysis.report.base import SectionResult

TEMPLATES = Path(__file__).resolve().parent / "templates"


def environment() -> Environment:
    """The Jinja2 environment of the report (autoescaping on, the formatting filters)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    env.filters["p"] = p_text
    env.filters["data_uri"] = _data_uri
    return env


def _data_uri(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{data}"


def render_report(
    *,
    title: str,
    simulated_note: str | None,
    summary: dict[str, Any],
    sections: Sequence[SectionResult],
    methods: Sequence[tuple[str, str]],
    references: Sequence[str],
) -> str:
    """The self-contained ``report.html`` (figures embedded as data URIs)."""
    template = environment().get_template("report.html.j2")
    return template.render(
        title=title,
        simulated_note=simulated_note,
        summary=summary,
        sections=sections,
        methods=methods,
        references=references,
    )
