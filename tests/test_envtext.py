"""Environment text: what ``format_env_text`` writes, ``parse_env_text`` reads back exactly.

A property test over any valid names and any string values, and the injection the issue found.
"""

import pytest

hypothesis = pytest.importorskip("hypothesis")

from django.core.exceptions import ValidationError  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as strategies  # noqa: E402

from container_manager.rules.envtext import format_env_text, is_valid_name, parse_env_text  # noqa: E402

NAMES = strategies.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True)
LINE_BOUNDARIES = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


@given(strategies.dictionaries(NAMES, strategies.text()))
def test_parsing_what_was_written_gives_the_same_dict(variables):
    assert parse_env_text(format_env_text(variables)) == variables


@given(strategies.dictionaries(NAMES, strategies.text(alphabet=LINE_BOUNDARIES + "\\\"' =#xA")))
def test_line_boundaries_quotes_and_escapes_round_trip(variables):
    assert parse_env_text(format_env_text(variables)) == variables


@pytest.mark.parametrize("boundary", list(LINE_BOUNDARIES) + ["\r\n"])
def test_no_line_boundary_smuggles_a_variable(boundary):
    text = format_env_text({"A": f"x{boundary}INJECTED=1"})
    assert len(text.splitlines()) == 1
    assert parse_env_text(text) == {"A": f"x{boundary}INJECTED=1"}


def test_names_are_checked_with_a_full_match():
    assert not is_valid_name("A\n") and not is_valid_name("") and not is_valid_name("A-B")
    with pytest.raises(ValidationError, match="not a valid variable name"):
        format_env_text({"A\n": "1"})


@pytest.mark.django_db
def test_create_job_stores_exactly_the_variables_given(mock_host):
    from container_manager.models import ContainerJob

    job = ContainerJob.objects.create_job(image="x", environment_vars={"A": "x\rINJECTED=1"})
    job.refresh_from_db()
    assert job.get_all_environment_variables() == {"A": "x\rINJECTED=1"}
    with pytest.raises(ValidationError) as excinfo:
        ContainerJob.objects.create_job(image="x", environment_vars={"A\n": "1"})
    assert list(excinfo.value.message_dict) == ["environment_vars"]
    assert ContainerJob.objects.count() == 1
