"""The study: design, readers and cases, the flow of cases (STARD) and the missing data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from analysis import figures
from analysis.report.base import Figure, Section, SectionResult, register_section
from analysis.report.context import ReportContext

STARD_REFERENCE = (
    "Bossuyt PM, Reitsma JB, Bruns DE, et al. STARD 2015: an updated list of essential items for "
    "reporting diagnostic accuracy studies. BMJ 2015;351:h5527."
)


@register_section
class StudySection(Section):
    """Design, flow diagram, exclusions and missing data per reader and case."""

    key = "study"
    title = "Study"
    order = 10

    def compute(self, ctx: ReportContext) -> SectionResult:
        result = self.result()
        protocol = ctx.protocol
        analysed = ctx.analysed
        table = ctx.reads_table
        exclusions = [e.to_dict() for e in table.exclusions] if table is not None else []
        readers = sorted(analysed["reader"].dropna().astype(str).unique())
        result.data = {
            "title": protocol.title,
            "design": protocol.design,
            "reference_arm": protocol.reference_arm.code,
            "new_arms": [arm.code for arm in protocol.other_arms],
            "arms": {arm.code: arm.description for arm in protocol.arms},
            "readers": readers,
            "n_readers": int(analysed["reader"].nunique()),
            "n_cases": int(analysed["case"].nunique()),
            "training_cases_excluded": list(protocol.training_cases),
            "findings": [f.id for f in protocol.findings],
            "exclusions": exclusions,
        }
        new_arms = ", ".join(ctx.arm_label(a.code) for a in protocol.other_arms)
        result.bullets(
            [
                f"Design: {protocol.design}"
                + (f", washout {protocol.washout_days} days" if protocol.design == "sequential"
                   else ""),
                f"Reference arm: {ctx.arm_label(protocol.reference_arm.code)}",
                f"New arm(s): {new_arms}",
                f"Readers: {len(readers)} ({', '.join(readers)})",
                f"Cases: {result.data['n_cases']}"
                + (f" (training cases excluded: {', '.join(protocol.training_cases)})"
                   if protocol.training_cases else ""),
                f"Exclusions: {len(exclusions)} case-finding combination(s)",
            ]
        )  # fmt: skip
        if ctx.study_record is not None:
            result.data["record"] = {k: v for k, v in ctx.study_record.items() if k != "anchor"}
            _record_block(result, ctx.study_record)
        flow = _flow(ctx, exclusions)
        result.data["flow"] = flow
        steps = [(step["label"], step["count"]) for step in flow["steps"]]
        side = [(item["after"], item["label"], item["count"]) for item in flow["excluded"]]
        path = figures.flow_diagram(
            steps, side, ctx.figure_path("flow_diagram"), title="Flow of cases (STARD)"
        )
        result.figure(
            Figure(path, "Flow of cases: in the study, read, excluded and analysed (STARD 2015).")
        )
        missing = _missing_by_reader(ctx)
        result.data["missing_by_reader"] = missing
        result.tables["missing_by_reader"] = missing
        result.heading("Missing data")
        result.table(
            missing,
            {
                "reader": "reader",
                "expected": "answers expected",
                "answered": "answered",
                "missing": "missing",
                "missing_share": "missing",
                "cases_incomplete": "cases with a missing answer",
            },
            percent=["missing_share"],
            caption="Per reader: answers to the analysed questions expected, given and missing",
        )
        by_case = _missing_by_case(ctx)
        result.data["missing_by_case"] = by_case
        result.tables["missing_by_case"] = by_case
        if not by_case.empty:
            result.table(
                by_case.head(20),
                {"case": "case", "missing": "missing answers", "readers": "readers missing"},
                caption=(
                    f"Cases with a missing answer ({len(by_case)}"
                    + (", the first 20 shown; all in missing_by_case.csv" if len(by_case) > 20
                       else "") + ")"
                ),
            )  # fmt: skip
        result.paragraph(_complete_case_statement(ctx, exclusions, missing))
        if exclusions:
            frame = pd.DataFrame(exclusions)
            result.tables["exclusions"] = frame
            result.table(frame.head(30), caption="Case-finding combinations excluded (first 30)")
        result.references = [STARD_REFERENCE]
        return result


def _record_block(result: SectionResult, record: dict[str, Any]) -> None:
    """The study record, the sign-in policy and the distinguishability of the arms."""
    result.heading("Blinding and the study record")
    if record["verified"]:
        how = (
            "with the study key" if record["keyed"] else "without the study key (consistency only)"
        )
        verified = f"The study record verified {how}: no answer, event or image file was changed."
    else:
        verified = (
            f"THE STUDY RECORD DOES NOT VERIFY: {record['problems']} problem(s); first: "
            f"{record['first_problem']}. The results below describe the database as it is now."
        )
    anchor = record["anchor"]
    lines = [
        verified,
        f"This report is anchored in the record (entry {anchor['seq']}, {anchor['hash'][:16]}...); "
        "`blindreader study verify --anchor results.json` checks it later.",
        f"Sign-in: {record['sign_in']}.",
    ]
    measured = record["distinguishability"]
    if not measured:
        lines.append("Distinguishability of the arms: not measured at create.")
    for item in measured:
        lines.append(f"Distinguishability: {item['summary']}")
    result.bullets(lines)
    if any(item["verdict"] == "distinguishable" for item in measured):
        result.paragraph(
            "Image statistics tell an arm from the reference: readers may have recognised the "
            "arm by its look, so blinding was partial; the comparisons below should be read "
            "with that in mind."
        )


def _flow(ctx: ReportContext, exclusions: list[dict[str, str]]) -> dict[str, Any]:
    protocol = ctx.protocol
    training = set(protocol.training_cases)
    answered_cases = set(ctx.answers["case"].dropna().astype(str))
    if ctx.assignments is not None and not ctx.assignments.empty:
        all_cases = set(ctx.assignments["case_id"].dropna().astype(str))
        source = "assigned in the study database"
    else:
        all_cases = answered_cases
        source = "present in the answers (no study database: unread cases cannot be counted)"
    study_cases = all_cases - training
    read = (answered_cases & study_cases) if study_cases else set()
    never_read = study_cases - answered_cases
    excluded_cases = {e["case"] for e in exclusions}
    findings = protocol.findings
    n_findings = max(len(findings), 1)
    analysed_any = read - (excluded_cases if len(findings) <= 1 else set())
    per_finding: dict[str, int] = {}
    if ctx.reads_table is not None:
        counts = ctx.reads.groupby("finding")["case"].nunique()
        per_finding = {str(k): int(v) for k, v in counts.items()}
    fully = len(read - excluded_cases)
    steps: list[dict[str, object]] = [
        {"label": f"Cases in the study ({source.split(' (')[0]})", "count": len(all_cases)},
        {"label": "Cases for analysis (training cases removed)", "count": len(study_cases)},
        {"label": "Cases read (at least one answer)", "count": len(read)},
        {
            "label": "Cases analysed for every finding (complete reads)"
            if ctx.reads_table is not None
            else "Cases analysed",
            "count": fully if ctx.reads_table is not None else len(analysed_any),
        },
    ]
    excluded: list[dict[str, object]] = []
    if training & all_cases:
        excluded.append(
            {
                "after": 0,
                "label": "Training cases (not analysed)",
                "count": len(training & all_cases),
            }
        )
    if never_read:
        excluded.append({"after": 1, "label": "Assigned, never read", "count": len(never_read)})
    if excluded_cases:
        excluded.append(
            {
                "after": 2,
                "label": f"Incomplete reads for >= 1 of {n_findings} findings "
                f"({len(exclusions)} case-finding pairs)",
                "count": len(excluded_cases),
            }
        )
    return {
        "source": source,
        "steps": steps,
        "excluded": excluded,
        "cases_per_finding": per_finding,
    }


def _analysed_questions(ctx: ReportContext) -> list[str]:
    ic = ctx.protocol.interchangeability
    names = [ic.question] if ic is not None else []
    names += [
        q.id
        for q in ctx.protocol.questions
        if q.type in ("likert", "preference") and q.scope != "finding" and q.id not in names
    ]
    return names


def _expected_answers(ctx: ReportContext) -> pd.DataFrame:
    """One row per (reader, case, arm, question, finding) answer the design expects."""
    protocol = ctx.protocol
    training = set(protocol.training_cases)
    if ctx.assignments is not None and not ctx.assignments.empty:
        reads = ctx.assignments[~ctx.assignments["is_training"].astype(bool)]
        reads = reads.rename(columns={"case_id": "case"})[["reader", "case", "arm"]]
        if protocol.design == "paired":  # one paired read per case, both arms on it
            reads = reads.drop_duplicates(["reader", "case"]).assign(arm=None)
    else:
        cases = sorted(set(ctx.answers["case"].dropna().astype(str)) - training)
        arms = protocol.arm_codes if protocol.design == "sequential" else [None]
        reads = pd.DataFrame(
            [(r.id, c, a) for r in protocol.readers for c in cases for a in arms],
            columns=["reader", "case", "arm"],
        )
    rows = []
    for question in _analysed_questions(ctx):
        q = protocol.question(question)
        keys: list[tuple[str | None, str | None]]
        if q.scope == "finding":
            keys = [(f, None) for f in protocol.question_findings(q)]
        elif q.scope == "side":
            keys = [(None, "left"), (None, "right")]
        else:
            keys = [(None, None)]
        for finding, side in keys:
            rows.append(reads.assign(question=question, finding=finding, side=side))
    if not rows:
        return pd.DataFrame(columns=["reader", "case", "arm", "question", "finding", "side"])
    return pd.concat(rows, ignore_index=True)


def _present(ctx: ReportContext) -> pd.DataFrame:
    answers = ctx.analysed
    answers = answers[answers["question"].astype(str).isin(_analysed_questions(ctx))]
    return answers.assign(
        finding=answers["finding"].where(answers["finding"].notna(), None),
        case=answers["case"].astype(str),
        reader=answers["reader"].astype(str),
    )


def _missing_rows(ctx: ReportContext) -> pd.DataFrame:
    """The expected answers that are not in the answers (by reader, case, question, finding)."""
    expected = _expected_answers(ctx)
    if expected.empty:
        return expected
    present = _present(ctx)
    keys = ["reader", "case", "question", "finding"]
    if ctx.protocol.design == "sequential":
        keys.insert(2, "arm")
    expected_keys = expected[keys].astype(str).drop_duplicates()
    present_keys = present[keys].astype(str).drop_duplicates()
    merged = expected_keys.merge(present_keys, on=keys, how="left", indicator=True)
    return merged[merged["_merge"] == "left_only"].drop(columns="_merge")


def _missing_by_reader(ctx: ReportContext) -> pd.DataFrame:
    expected = _expected_answers(ctx)
    missing = _missing_rows(ctx)
    rows = []
    for reader in sorted(set(expected["reader"].astype(str))):
        n_expected = int((expected["reader"].astype(str) == reader).sum())
        mine = missing[missing["reader"] == reader] if not missing.empty else missing
        n_missing = len(mine)
        rows.append(
            {
                "reader": reader,
                "expected": n_expected,
                "answered": n_expected - n_missing,
                "missing": n_missing,
                "missing_share": n_missing / n_expected if n_expected else 0.0,
                "cases_incomplete": int(mine["case"].nunique()) if n_missing else 0,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["reader", "expected", "answered", "missing", "missing_share", "cases_incomplete"],
    )


def _missing_by_case(ctx: ReportContext) -> pd.DataFrame:
    missing = _missing_rows(ctx)
    if missing.empty:
        return pd.DataFrame(columns=["case", "missing", "readers"])
    grouped = missing.groupby("case", sort=True)
    frame = pd.DataFrame(
        {
            "missing": grouped.size(),
            "readers": grouped["reader"].agg(lambda r: ", ".join(sorted(set(r)))),
        }
    ).reset_index()
    return frame.sort_values(["missing", "case"], ascending=[False, True]).reset_index(drop=True)


def _complete_case_statement(
    ctx: ReportContext, exclusions: list[dict[str, str]], missing: pd.DataFrame
) -> str:
    total_missing = int(missing["missing"].sum()) if not missing.empty else 0
    parts = [
        f"{total_missing} expected answer(s) are missing"
        + (" (none)." if total_missing == 0 else "."),
        "Every analysis is complete-case; nothing is imputed.",
    ]
    if ctx.protocol.interchangeability is not None:
        parts.append(
            "A case enters a finding's interchangeability, agreement and accuracy analyses only "
            "when every reader read it on every arm"
            + (
                f"; {len(exclusions)} case-finding combination(s) were left out for that reason "
                "(listed in exclusions.csv)."
                if exclusions
                else "; no case had to be left out."
            )
        )
    parts.append(
        "Image-quality comparisons pair each reader's scores of a case on the two arms and use "
        "the cases that reader scored on both."
    )
    return " ".join(parts)
