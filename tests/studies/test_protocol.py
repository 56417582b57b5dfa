"""The protocol format: the shipped protocols load, every rule refuses what it should."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from studies.errors import StudyError
from studies.protocol import (
    Protocol,
    Question,
    ShowIf,
    load_protocol,
    parse_protocol,
    protocol_sha256,
)
from tests.studies.conftest import KNEE_PROTOCOL, PAIRED_PROTOCOL

# A small valid sequential protocol; tests break one thing at a time.
BASE = textwrap.dedent(
    """\
    title = "Test study"
    design = "sequential"
    seed = 7

    [[arms]]
    code = "conv"
    description = "Conventional"
    reference = true

    [[arms]]
    code = "ai"
    description = "Learned reconstruction"

    [[readers]]
    id = "R1"
    name = "Reader one"

    [[findings]]
    id = "acl"
    label = "ACL tear"

    [[findings]]
    id = "mcl"
    label = "MCL tear"

    [[questions]]
    id = "grade"
    text = "Likelihood"
    type = "likert"
    scope = "finding"
    points = 4
    labels = ["a", "b", "c", "d"]

    [[questions]]
    id = "quality"
    text = "Quality"
    type = "likert"
    points = 3
    labels = ["poor", "fair", "good"]

    [[questions]]
    id = "note"
    text = "Note"
    type = "text"
    required = false
    """
)

PAIRED_ARMS = BASE.replace('design = "sequential"', 'design = "paired"')


def error_of(text: str, source: str = "study.toml") -> str:
    with pytest.raises(StudyError) as info:
        parse_protocol(text, source)
    return str(info.value)


def load_error(path: Path) -> str:
    with pytest.raises(StudyError) as info:
        load_protocol(path)
    return str(info.value)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """1-based line number of the n-th line containing ``needle``."""
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[occurrence - 1]


def add_question(text: str, body: str) -> str:
    return text + "\n[[questions]]\n" + textwrap.dedent(body)


# ---- shipped protocols ---------------------------------------------------------------------


def test_knee_protocol_loads_as_designed():
    protocol = load_protocol(KNEE_PROTOCOL)
    assert protocol.design == "sequential"
    assert protocol.n_sessions == 2
    assert protocol.washout_days == 28
    assert protocol.reference_arm.code == "conventional"
    assert [a.code for a in protocol.other_arms] == ["dl"]
    assert [r.id for r in protocol.readers] == ["R1", "R2", "R3", "R4", "R5", "R6"]
    assert len(protocol.findings) == 10
    likelihood = protocol.question("likelihood")
    assert likelihood.scope == "finding" and likelihood.points == 4
    assert likelihood.labels[0] == "Definitely absent"
    assert likelihood.labels[3] == "Definitely present"
    assert protocol.question_findings(likelihood) == [f.id for f in protocol.findings]
    for qid in ("quality_overall", "artifacts", "sharpness", "snr"):
        assert protocol.question(qid).points == 4
    assert protocol.question("comment").required is False
    assert protocol.interchangeability is not None
    assert protocol.interchangeability.margin == 0.05
    assert protocol.interchangeability.threshold == 3


def test_paired_protocol_loads_as_designed():
    protocol = load_protocol(PAIRED_PROTOCOL)
    assert protocol.design == "paired"
    assert protocol.n_sessions == 1
    assert len(protocol.arms) == 2
    assert 2 <= len(protocol.readers) <= 3
    assert {q.id for q in protocol.questions_for("side")} >= {"quality_overall", "snr"}
    assert protocol.question("preference").type == "preference"
    assert protocol.question("confidence").scope == "case"
    rule = protocol.question("preference_reason").show_if
    assert rule is not None and rule.holds("left") and not rule.holds("equal")


def test_sha256_is_of_the_text():
    text = KNEE_PROTOCOL.read_text(encoding="utf-8")
    digest = protocol_sha256(text)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == protocol_sha256(text.encode("utf-8"))
    assert digest != protocol_sha256(text + " ")


def test_base_protocol_is_valid():
    protocol = parse_protocol(BASE, "study.toml")
    assert protocol.arm("ai").description == "Learned reconstruction"
    assert protocol.finding("mcl").label == "MCL tear"
    assert [q.id for q in protocol.questions_for("case")] == ["quality", "note"]
    assert protocol.question("quality").label_for(3) == "good"


def test_unknown_ids_in_helpers_are_study_errors():
    protocol = parse_protocol(BASE)
    for call in (
        lambda: protocol.arm("x"),
        lambda: protocol.question("x"),
        lambda: protocol.finding("x"),
        lambda: protocol.reader("x"),
    ):
        with pytest.raises(StudyError, match="unknown"):
            call()


# ---- file, line and key path in errors -----------------------------------------------------


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(StudyError, match=re.escape(str(tmp_path / "nope.toml"))):
        load_protocol(tmp_path / "nope.toml")


def test_toml_syntax_error_names_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.toml"
    path.write_text(BASE.replace("seed = 7", "seed = = 7"), encoding="utf-8")
    message = load_error(path)
    assert str(path) in message
    assert f"line {line_of(BASE, 'seed = 7')}" in message
    assert "not valid TOML" in message


def test_validation_error_names_file_line_and_key_path(tmp_path: Path):
    text = BASE.replace("points = 3", "points = 1").replace(
        'labels = ["poor", "fair", "good"]', 'labels = ["poor"]'
    )
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    message = load_error(path)
    assert message.startswith(f"{path}, line {line_of(text, 'points = 1')}, questions[1].points:")
    assert "points >= 2" in message


def test_unknown_key_is_refused_with_its_line():
    text = BASE.replace('name = "Reader one"', 'name = "Reader one"\ncolour = "blue"')
    message = error_of(text)
    assert f"line {line_of(text, 'colour')}, readers[0].colour: unknown key" in message


def test_unknown_top_level_key_is_refused():
    message = error_of('subtitle = "x"\n' + BASE)
    assert "line 1, subtitle: unknown key" in message


def test_missing_key_names_the_table():
    text = BASE.replace('text = "Quality"\n', "")
    message = error_of(text)
    assert "questions[1].text: required key is missing" in message
    assert f"line {line_of(text, '[[questions]]', 2)}" in message


def test_wrong_type_names_what_was_expected():
    message = error_of(BASE.replace("seed = 7", 'seed = "seven"'))
    assert "seed:" in message and "integer" in message and "'seven'" in message


def test_several_problems_are_all_reported():
    text = BASE.replace("seed = 7", 'seed = "x"').replace('name = "Reader one"', "nickname = 1")
    message = error_of(text)
    assert message.startswith("3 problems:")
    assert "readers[0].name" in message and "readers[0].nickname" in message and "seed" in message


# ---- rules -----------------------------------------------------------------------------------


def test_exactly_one_reference_arm():
    none = BASE.replace("reference = true\n", "")
    assert "arms: exactly one arm must have reference = true (got 0" in error_of(none)
    two = BASE.replace(
        'description = "Learned reconstruction"',
        'description = "Learned reconstruction"\nreference = true',
    )
    assert "(got 2: conv, ai)" in error_of(two)


def test_at_least_two_arms():
    text = BASE.replace('[[arms]]\ncode = "ai"\ndescription = "Learned reconstruction"\n', "")
    assert "arms: needs at least two arms (got 1)" in error_of(text)


def test_paired_needs_exactly_two_arms():
    text = PAIRED_ARMS.replace(
        "[[readers]]", '[[arms]]\ncode = "x"\ndescription = "Third"\n\n[[readers]]', 1
    )
    assert "the paired design needs exactly two arms (got 3)" in error_of(text)


@pytest.mark.parametrize(
    ("old", "new", "path", "what"),
    [
        ('code = "ai"', 'code = "conv"', "arms[1].code", "duplicate arm code 'conv'"),
        ('id = "mcl"', 'id = "acl"', "findings[1].id", "duplicate finding id 'acl'"),
        ('id = "quality"', 'id = "grade"', "questions[1].id", "duplicate question id 'grade'"),
    ],
)
def test_ids_are_unique(old: str, new: str, path: str, what: str):
    text = BASE.replace(old, new)
    message = error_of(text)
    assert f"{path}: {what}" in message
    assert f"line {line_of(text, new, 2)}" in message


def test_reader_ids_are_unique():
    text = BASE.replace("[[findings]]", '[[readers]]\nid = "R1"\nname = "Again"\n\n[[findings]]', 1)
    assert "readers[1].id: duplicate reader id 'R1'" in error_of(text)


def test_ids_use_a_plain_alphabet():
    assert "readers[0].id: 'R 1' is not a valid id" in error_of(BASE.replace('"R1"', '"R 1"'))


def test_option_values_are_unique():
    text = add_question(
        BASE,
        """\
        id = "side"
        text = "Side"
        type = "choice"
        options = [{ value = "l", label = "Left" }, { value = "l", label = "Again" }]
        """,
    )
    assert "questions[3].options[1].value: duplicate option value 'l'" in error_of(text)


def test_likert_needs_points_and_matching_labels():
    no_points = BASE.replace("points = 3\n", "")
    assert "questions[1].points: likert needs 'points'" in error_of(no_points)
    short = BASE.replace('["poor", "fair", "good"]', '["poor", "fair"]')
    message = error_of(short)
    assert "questions[1].labels: likert needs one label per point: 3 labels expected, got 2" in (
        message
    )
    labels_line = line_of(short, '["poor", "fair"]')
    assert f"line {labels_line}" in message


@pytest.mark.parametrize("kind", ["choice", "multi"])
def test_choice_and_multi_need_options(kind: str):
    text = add_question(BASE, f'id = "x"\ntext = "X"\ntype = "{kind}"\n')
    assert f"questions[3].options: {kind} needs at least 2 options (got 0)" in error_of(text)


def test_options_only_for_choice_and_multi():
    text = BASE.replace('type = "text"', 'type = "text"\noptions = [{ value = "a", label = "A" }]')
    assert "questions[2].options: 'options' applies only to choice/multi" in error_of(text)


def test_number_bounds_are_ordered():
    text = add_question(
        BASE, 'id = "size"\ntext = "Size"\ntype = "number"\nminimum = 5.0\nmaximum = 1.0\n'
    )
    assert "questions[3].maximum: maximum (1.0) is below minimum (5.0)" in error_of(text)


def test_unit_only_for_number():
    text = BASE.replace('type = "text"', 'type = "text"\nunit = "mm"')
    assert "questions[2].unit: 'unit' applies only to number" in error_of(text)


@pytest.mark.parametrize(
    ("body", "path", "what"),
    [
        ('type = "preference"', "questions[3].type", "type 'preference' needs design"),
        ('type = "boolean"\nscope = "side"', "questions[3].scope", "scope 'side' needs design"),
    ],
)
def test_preference_and_side_only_in_paired(body: str, path: str, what: str):
    text = add_question(BASE, f'id = "p"\ntext = "P"\n{body}\n')
    assert f"{path}: {what}" in error_of(text)
    parse_protocol(add_question(PAIRED_ARMS, f'id = "p"\ntext = "P"\n{body}\n'))


def test_finding_scope_needs_known_findings():
    text = BASE.replace('scope = "finding"', 'scope = "finding"\nfindings = ["acl", "pcl"]')
    assert "questions[0].findings[1]: unknown finding 'pcl'" in error_of(text)
    plain = BASE.replace('type = "text"', 'type = "text"\nfindings = ["acl"]')
    assert "questions[2].findings: 'findings' needs scope" in error_of(plain)


def test_show_if_refers_to_an_earlier_question():
    later = BASE.replace(
        'id = "quality"', 'id = "quality"\nshow_if = { question = "note", equals = "x" }'
    )
    assert (
        "questions[1].show_if.question: must name an earlier question "
        "(got 'note', a later question)" in error_of(later)
    )
    unknown = BASE.replace(
        'id = "quality"', 'id = "quality"\nshow_if = { question = "nope", equals = 1 }'
    )
    assert "which does not exist" in error_of(unknown)


def test_show_if_value_must_be_an_answer_of_that_question():
    bad = BASE.replace("required = false", 'show_if = { question = "quality", equals = 4 }')
    message = error_of(bad)
    assert "questions[2].show_if.equals: 4 is not an answer of question 'quality'" in message
    good = BASE.replace("required = false", 'show_if = { question = "quality", in = [1, 2] }')
    rule = parse_protocol(good).question("note").show_if
    assert rule is not None and rule.holds(2) and not rule.holds(3) and not rule.holds(None)


def test_show_if_bool_is_not_a_likert_value():
    bad = BASE.replace("required = false", 'show_if = { question = "quality", equals = true }')
    assert "True is not an answer" in error_of(bad)


def test_show_if_needs_exactly_one_rule():
    both = BASE.replace(
        "required = false", 'show_if = { question = "quality", equals = 1, in = [2] }'
    )
    assert "questions[2].show_if: give exactly one of 'equals' and 'in'" in error_of(both)


def test_show_if_cannot_depend_on_a_free_text_question():
    text = add_question(
        BASE,
        'id = "x"\ntext = "X"\ntype = "boolean"\nshow_if = { question = "note", equals = "a" }\n',
    )
    assert "question 'note' is of type text" in error_of(text)


def test_show_if_across_scopes():
    # A per-case question may not depend on a per-finding answer.
    text = add_question(
        BASE,
        'id = "x"\ntext = "X"\ntype = "boolean"\nshow_if = { question = "grade", equals = 4 }\n',
    )
    assert "a 'case' question may depend only on 'case' questions" in error_of(text)
    # A per-finding question may depend on the same finding's grade.
    ok = add_question(
        BASE,
        'id = "x"\ntext = "X"\ntype = "boolean"\nscope = "finding"\n'
        'show_if = { question = "grade", in = [3, 4] }\n',
    )
    parse_protocol(ok)


def test_multi_answer_show_if_holds_on_any_selected():
    rule = ShowIf.model_validate({"question": "q", "in": ["a", "b"]})
    assert rule.holds(["c", "b"]) and not rule.holds(["c"])


INTERCHANGEABILITY = '\n[interchangeability]\nquestion = "grade"\nmargin = 0.05\nthreshold = 3\n'


def test_interchangeability_rules():
    protocol = parse_protocol(BASE + INTERCHANGEABILITY)
    assert protocol.interchangeability is not None
    not_finding = BASE + INTERCHANGEABILITY.replace('"grade"', '"quality"')
    assert "interchangeability.question: question 'quality' must be a per-finding likert" in (
        error_of(not_finding)
    )
    high = BASE + INTERCHANGEABILITY.replace("threshold = 3", "threshold = 5")
    message = error_of(high)
    assert "interchangeability.threshold: threshold must be within 2..4" in message
    assert f"line {line_of(high, 'threshold = 5')}" in message
    low = BASE + INTERCHANGEABILITY.replace("threshold = 3", "threshold = 1")
    assert "within 2..4" in error_of(low)
    unknown = BASE + INTERCHANGEABILITY.replace('"grade"', '"nope"')
    assert "unknown question 'nope'" in error_of(unknown)
    margin = BASE + INTERCHANGEABILITY.replace("0.05", "1.5")
    assert "interchangeability.margin: margin must be between 0 and 1" in error_of(margin)


def test_training_cases_are_unique():
    text = BASE.replace("seed = 7", 'seed = 7\ntraining_cases = ["c1", "c2", "c1"]')
    message = error_of(text)
    assert "training_cases[2]: duplicate training case 'c1'" in message
    assert f"line {line_of(text, 'training_cases')}" in message


def test_negative_seed_and_washout_are_refused():
    assert "seed: seed must be within 0..2**63-1" in error_of(BASE.replace("seed = 7", "seed = -1"))
    text = BASE.replace("seed = 7", "seed = 7\nwashout_days = -3")
    assert "washout_days: washout_days must be within 0..365 (got -3)" in error_of(text)


def test_design_must_be_known():
    message = error_of(BASE.replace('"sequential"', '"crossover"'))
    assert "design:" in message and "'sequential' or 'paired'" in message


def test_models_refuse_unknown_fields_in_python_too():
    with pytest.raises(ValidationError):
        Question.model_validate({"id": "q", "text": "Q", "type": "boolean", "colour": 1})
    with pytest.raises(ValidationError):
        Protocol.model_validate({"title": "x"})


NESTED = """
[[questions]]
id = "side"
text = "Side"
type = "choice"

[[questions.options]]
value = "l"
label = "Left"

[[questions.options]]
value = "r"
label = "Right"

[[questions]]
id = "x"
text = "X"
type = "boolean"
show_if.question = "side"
show_if.equals = "r"
"""


def test_lines_inside_nested_tables_and_dotted_keys():
    parse_protocol(BASE + NESTED)
    duplicate = BASE + NESTED.replace('value = "r"', 'value = "l"')
    message = error_of(duplicate)
    assert "questions[3].options[1].value: duplicate option value 'l'" in message
    assert f"line {line_of(duplicate, 'value = ', 2)}," in message
    wrong = BASE + NESTED.replace('equals = "r"', 'equals = "z"')
    message = error_of(wrong)
    assert f"line {line_of(wrong, 'show_if.equals')}, questions[4].show_if.equals:" in message
