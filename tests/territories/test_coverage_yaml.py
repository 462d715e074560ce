"""Reading and writing coverage YAML; no database needed."""

import pytest

from leadrouter.coverage import CoverageError, dump_yaml, load_yaml


def test_yaml_syntax_error_reports_the_line_number():
    with pytest.raises(CoverageError) as caught:
        load_yaml("version: 1\nskills:\n  - {code: german, name: German\n")

    [(path, message)] = caught.value.errors
    assert path == "line 4"
    assert message.startswith("not valid YAML")


def test_a_key_repeated_in_one_mapping_is_an_error():
    with pytest.raises(CoverageError) as caught:
        load_yaml("version: 1\nreps:\n  - username: anna\n    team: DACH\n    team: UK\n")

    assert caught.value.errors == [("line 5", "not valid YAML: the key 'team' appears twice (column 5)")]


def test_country_codes_that_yaml_1_1_reads_as_booleans_stay_strings():
    document = load_yaml("version: 1\nflags: [NO, no, On, yes, true, false]\n")

    assert document["flags"] == ["NO", "no", "On", "yes", True, False]


def test_unquoted_timestamps_stay_strings():
    document = load_yaml("starts_at: 2026-12-23T00:00:00+00:00\nday: 2026-12-23\n")

    assert document == {"starts_at": "2026-12-23T00:00:00+00:00", "day": "2026-12-23"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the document is empty; it needs at least version: 1"),
        ("- a\n- b\n", "the document must be a mapping that starts with version: 1"),
    ],
)
def test_a_document_must_be_a_mapping(text: str, message: str):
    with pytest.raises(CoverageError) as caught:
        load_yaml(text)

    assert caught.value.errors == [("document", message)]


def test_dump_writes_sections_in_format_order_with_short_lists_inline():
    document = {
        "accounts": [{"name": "Acme", "domains": ["acme.com"]}],
        "version": 1,
        "skills": [{"code": "german", "name": "German", "kind": "language"}],
        "queues": [{"name": "Catch-all", "catch_all": True, "members": [{"rep": "anna", "weight": 2}]}],
        "teams": [{"name": "DACH", "description": "German-speaking\nmarkets"}],
    }

    text = dump_yaml(document)

    assert text == (
        "version: 1\n"
        "\n"
        "skills:\n"
        "  - {code: german, name: German, kind: language}\n"
        "\n"
        "teams:\n"
        "  - name: DACH\n"
        "    description: |-\n"
        "      German-speaking\n"
        "      markets\n"
        "\n"
        "queues:\n"
        "  - name: Catch-all\n"
        "    catch_all: true\n"
        "    members:\n"
        "      - {rep: anna, weight: 2}\n"
        "\n"
        "accounts:\n"
        "  - name: Acme\n"
        "    domains: [acme.com]\n"
    )
    assert load_yaml(text) == {key: document[key] for key in ("version", "skills", "teams", "queues", "accounts")}


def test_strings_that_look_like_other_types_are_quoted_on_dump():
    document = {
        "version": 1,
        "territories": [{"name": "Norway", "criteria": {"countries": ["NO"], "postal_prefixes": ["0150"]}}],
    }

    assert load_yaml(dump_yaml(document)) == document


def test_coverage_error_lists_one_problem_per_line():
    error = CoverageError([("reps[3].time_zone", "is wrong"), ("queues", "needs a catch-all")])

    assert str(error) == "reps[3].time_zone: is wrong\nqueues: needs a catch-all"
