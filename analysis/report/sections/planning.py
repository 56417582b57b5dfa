"""The sample-size planning as the protocol records it (STARD 2015 item 18)."""

from __future__ import annotations

from analysis.report.base import Section, SectionResult, fmt, register_section
from analysis.report.context import ReportContext


@register_section
class PlanningSection(Section):
    """Quotes ``[analysis.planning]``: the intended sample size and how it was determined."""

    key = "planning"
    title = "Intended sample size (planning)"
    order = 15

    def applies(self, ctx: ReportContext) -> bool:
        return ctx.settings.planning is not None

    def compute(self, ctx: ReportContext) -> SectionResult:
        result = self.result()
        planning = ctx.settings.planning
        assert planning is not None
        result.data = planning.model_dump(mode="json")
        result.callout(planning.text)
        facts = []
        if planning.n_cases is not None:
            n_read = int(ctx.analysed["case"].nunique())
            facts.append(f"Planned cases: {planning.n_cases} (analysed here: {n_read})")
        if planning.n_readers is not None:
            facts.append(
                f"Planned readers: {planning.n_readers} "
                f"(here: {int(ctx.analysed['reader'].nunique())})"
            )
        if planning.power is not None:
            facts.append(f"Planned power: {fmt(planning.power, 2)}")
        if planning.expected_gamma is not None:
            facts.append(f"Assumed excess disagreement: {fmt(planning.expected_gamma)}")
        if planning.method:
            facts.append(f"Method: {planning.method}")
        result.bullets(facts)
        result.paragraph(
            "Quoted from the protocol's [analysis.planning] record, written before the study "
            "(STARD 2015 item 18: intended sample size and how it was determined)."
        )
        return result
