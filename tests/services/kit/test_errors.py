"""Named errors: status, kind and title come from the class, and the bodies are byte for byte what clients
have always received (the literals below are those bodies, key order included)."""

from __future__ import annotations

import json

import pytest

from services.kit.errors import Conflict, NamedProblem, NotFound, Problem, ServiceUnavailable, problem_responses

BASE = "https://shop.test/problems/"


def wire(problem: Problem) -> str:
    return json.dumps(problem.body(BASE, "/i"))


@pytest.mark.parametrize(("named", "bare"), [
    (NotFound("No such payment."), Problem(404, "No such payment.")),
    (Conflict("Busy."), Problem(409, "Busy.")),
    (ServiceUnavailable("Down.", order_id="o"), Problem(503, "Down.", order_id="o")),
])
def test_a_bare_problem_takes_kind_and_title_from_its_status_class(named: NamedProblem, bare: Problem) -> None:
    assert wire(named) == wire(bare)


def test_a_status_without_a_class_is_a_generic_error() -> None:
    assert wire(Problem(418, "Teapot.")) == (
        '{"type": "https://shop.test/problems/error", "title": "Error", "status": 418, "detail": "Teapot.", '
        '"instance": "/i", "request_id": "-"}')


def test_a_named_error_documents_its_status_with_the_generic_title() -> None:
    class Busy(Conflict):
        kind = "busy"

    assert problem_responses(Busy, 404) == problem_responses(409, 404)
    assert problem_responses(Busy)[409]["description"] == "Conflict"
