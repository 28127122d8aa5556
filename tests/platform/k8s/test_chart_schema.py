"""The services' chart values model (shop_platform.k8s.chartvalues.ServiceValues) accepts exactly what the program
computes, and the schema generated from it is the one Helm enforces (tests/platform/k8s/test_chart.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from shop_platform.k8s.chartvalues import ServiceValues

from tools.render import integral

from .conftest import STACKS, render_stack


@pytest.mark.parametrize("stack", STACKS)
def test_every_computed_values_set_is_a_valid_service_values(stack: str) -> None:
    """The values Pulumi passes to each service's release satisfy the model the chart's schema is generated from."""
    releases = [
        r
        for r in render_stack(stack).recording.of_type("kubernetes:helm.sh/v3:Release")
        if r.inputs["chart"].endswith("charts/service")
    ]
    assert releases
    for r in releases:
        ServiceValues.model_validate(integral(r.inputs["values"]))


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"image": {"repository": "r", "tag": "latest"}}, "image.tag"),
        ({"env": {"ADMIN_PASSWORD": "x"}}, "env"),
        ({"replicas": 3}, "replicas"),
        ({"port": "8004"}, "port"),
    ],
)
def test_the_model_refuses_what_the_schema_refuses(change: dict[str, object], key: str) -> None:
    base = integral(
        next(
            r
            for r in render_stack("dev").recording.of_type("kubernetes:helm.sh/v3:Release")
            if r.inputs["chart"].endswith("charts/service")
        ).inputs["values"]
    )
    with pytest.raises(ValidationError) as err:
        ServiceValues.model_validate({**base, **change})
    assert key in {".".join(str(p) for p in e["loc"][:2]) for e in err.value.errors()} | {
        str(e["loc"][0]) for e in err.value.errors()
    }
