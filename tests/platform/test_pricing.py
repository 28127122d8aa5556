"""Cost before `up`: the estimate is derived from the recorded plan, priced from one dated table, and refuses
to guess; the plan lists the account prerequisites the graph implies."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from shop_platform.context import CERTIFICATE_VALIDATION_TIMEOUT

from tools import pricing
from tools.offline import RecordedResource, Recording
from tools.plan import PlanResult, main, prerequisites, render_prerequisites
from tools.pricing import (
    EU_WEST_1,
    FREE_TYPES,
    HOURS_PER_MONTH,
    PRICED,
    USAGE_PRICED,
    PricingError,
    estimate,
)


def res(type_: str, name: str, id_: str | None = None, **inputs: Any) -> RecordedResource:
    return RecordedResource(
        urn=f"urn:pulumi:t::p::{type_}::{name}",
        type=type_,
        name=name,
        parent=None,
        custom=True,
        provider=None,
        deps=(),
        inputs=inputs,
        id=id_,
    )


def small_plan() -> Recording:
    return Recording(
        resources=[
            res("aws:eks/cluster:Cluster", "cluster", version="1.35", upgradePolicy={"supportType": "STANDARD"}),
            res(
                "aws:ec2/launchTemplate:LaunchTemplate",
                "lt",
                id_="lt-1",
                blockDeviceMappings=[{"ebs": {"volumeType": "gp3", "volumeSize": 50.0}}],
            ),
            res(
                "aws:eks/nodeGroup:NodeGroup",
                "general",
                instanceTypes=["m7g.large"],
                scalingConfig={"minSize": 2.0, "maxSize": 4.0, "desiredSize": 2.0},
                launchTemplate={"id": "lt-1"},
            ),
            res("aws:ec2/natGateway:NatGateway", "nat"),
            res("aws:ec2/eip:Eip", "nat-eip"),
            res(
                "aws:rds/instance:Instance",
                "db",
                identifier="dev-orders",
                engine="postgres",
                instanceClass="db.t4g.medium",
                multiAz=True,
                allocatedStorage=20.0,
                storageType="gp3",
                manageMasterUserPassword=True,
            ),
            res("aws:kms/key:Key", "k1"),
            res("aws:kms/key:Key", "k2"),
            res(
                "aws:lb/loadBalancer:LoadBalancer",
                "alb",
                loadBalancerType="application",
                internal=False,
                subnets=["a", "b"],
            ),
            res("aws:iam/role:Role", "role"),  # free
            res("aws:s3/bucket:Bucket", "logs"),  # usage-priced
        ]
    )


def test_the_estimate_of_a_small_plan_is_exactly_its_line_items_at_the_table_prices() -> None:
    """Quantities come from the recorded inputs: 2 desired nodes with 50 GiB each, a Multi-AZ database (two
    instances, two copies of its storage, one managed secret), one NAT + its EIP, two keys, an internet-facing
    ALB with a public IPv4 per subnet. Every figure below is the table's price times that quantity."""
    got = estimate("t", small_plan(), "eu-west-1")
    h = HOURS_PER_MONTH
    expected = {
        "EKS control plane": 0.10 * h,
        "EC2 nodes": 2 * 0.0907 * h,
        "EBS volumes": 2 * 50 * 0.088,
        "NAT gateways": 0.048 * h,
        "Public IPv4": 0.005 * h + 2 * 0.005 * h,
        "RDS instances": 2 * 0.072 * h,
        "RDS storage": 2 * 20 * 0.127,
        "Secrets Manager": 0.40,
        "KMS keys": 2 * 1.0,
        "Load balancer": 0.0252 * h,
    }
    assert dict(got.by_category()) == pytest.approx(expected)
    assert got.total == pytest.approx(sum(expected.values()))
    assert got.total == pytest.approx(391.208)  # 73 + 132.422 + 8.8 + 35.04 + 10.95 + 105.12 + 5.08 + 0.4 + 2 + 18.396
    assert got.top_drivers() == sorted(expected.items(), key=lambda kv: -kv[1])[:5]
    assert got.usage_priced == {"S3 storage and requests": 1}
    assert got.commitments() == []


def test_an_instance_type_without_a_price_is_an_error_not_a_zero() -> None:
    plan = small_plan()
    plan.resources[2] = res(
        "aws:eks/nodeGroup:NodeGroup",
        "general",
        instanceTypes=["m8g.large"],
        scalingConfig={"desiredSize": 2.0},
        launchTemplate={"id": "lt-1"},
    )
    with pytest.raises(PricingError, match=r"ec2:m8g\.large"):
        estimate("t", plan, "eu-west-1")


def test_a_database_class_without_a_price_is_an_error_not_a_zero() -> None:
    plan = small_plan()
    plan.resources[5] = res(
        "aws:rds/instance:Instance",
        "db",
        engine="postgres",
        instanceClass="db.x2g.large",
        allocatedStorage=20.0,
        storageType="gp3",
    )
    with pytest.raises(PricingError, match=r"rds-postgres:db\.x2g\.large"):
        estimate("t", plan, "eu-west-1")


def test_a_resource_type_nobody_classified_is_an_error() -> None:
    plan = small_plan()
    plan.resources.append(res("aws:opensearch/domain:Domain", "search"))
    with pytest.raises(PricingError, match="no pricing rule for aws:opensearch/domain:Domain"):
        estimate("t", plan, "eu-west-1")


def test_a_region_without_a_table_is_an_error() -> None:
    with pytest.raises(PricingError, match="no price table for region us-east-1"):
        estimate("t", small_plan(), "us-east-1")


def test_a_cluster_without_an_explicit_standard_policy_is_priced_at_extended_support() -> None:
    """EKS's API default support type is EXTENDED (6x the control-plane price)."""
    plan = Recording(resources=[res("aws:eks/cluster:Cluster", "c", version="1.33")])
    assert estimate("t", plan, "eu-west-1").total == pytest.approx(0.60 * HOURS_PER_MONTH)


def test_every_price_key_a_rule_can_ask_for_is_in_the_table() -> None:
    """The classification lists are disjoint and the table has no negative or zero price."""
    assert not set(PRICED) & set(USAGE_PRICED)
    assert not set(PRICED) & FREE_TYPES
    assert all(v > 0 for v in (*EU_WEST_1.hourly.values(), *EU_WEST_1.monthly.values()))
    assert EU_WEST_1.as_of
    assert EU_WEST_1.source


def test_prod_warns_about_the_shield_advanced_one_year_commitment(prod_plan: PlanResult) -> None:
    cost = prod_plan.cost()
    assert cost is not None
    [(commitment, monthly)] = cost.commitments()
    assert commitment.months == 12
    assert monthly == pytest.approx(3000.0)
    text = cost.render()
    assert "WARNING commitment" in text
    assert "12-month term" in text
    assert "USD 36,000" in text
    assert next(c for c, _ in cost.top_drivers()) == "Shield Advanced"
    assert len(cost.top_drivers()) == 5


def test_dev_has_no_commitment_and_every_resource_of_both_stacks_is_priced(
    dev_plan: PlanResult, prod_plan: PlanResult
) -> None:
    dev, prod = dev_plan.cost(), prod_plan.cost()
    assert dev is not None
    assert prod is not None
    assert dev.commitments() == []
    assert 0 < dev.total < prod.total


def test_persistent_volume_claims_are_priced_from_the_kubernetes_inputs(prod_plan: PlanResult) -> None:
    """prod: 3 Elasticsearch nodes x 100 GiB and one Prometheus x 100 GiB, as gp3."""
    cost = prod_plan.cost()
    assert cost is not None
    pvc = [i for i in cost.items if "persistent volumes" in i.what]
    assert sorted(i.what.split(" GiB")[0] for i in pvc) == ["1 x 100", "3 x 100"]


def test_the_plan_names_shield_and_zone_delegation_as_prerequisites(
    prod_plan: PlanResult, dev_plan: PlanResult
) -> None:
    prod = prerequisites(prod_plan.recording)
    assert any("Shield Advanced subscription" in p for p in prod)
    assert any("NS delegation of the new zone shop.example.com" in p and "--target" in p for p in prod)
    dev = render_prerequisites(dev_plan.recording)
    assert "Shield" not in dev
    assert "dev.shop.example.com" in dev


def test_certificate_validation_fails_fast_instead_of_waiting_75_minutes(plan: PlanResult) -> None:
    """A zone that is not delegated would otherwise hold `pulumi up` for the provider's 75-minute default."""
    validations = plan.recording.of_type("aws:acm/certificateValidation:CertificateValidation")
    assert validations
    for v in validations:
        assert v.custom_timeouts == {"create": CERTIFICATE_VALIDATION_TIMEOUT}, v.name
    assert CERTIFICATE_VALIDATION_TIMEOUT == "30m"


def test_make_plan_prints_prerequisites_and_cost_and_writes_cost_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stack", "prod", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.index("account prerequisites") < out.index("monthly cost estimate, stack prod: USD 5,")
    assert "WARNING commitment: AWS Shield Advanced subscription is a 12-month term" in out
    saved = json.loads((tmp_path / "cost.json").read_text())
    assert saved["prices_as_of"] == EU_WEST_1.as_of
    assert saved["total_usd_per_month"] == pytest.approx(sum(i["usd_per_month"] for i in saved["items"]), abs=0.05)


def test_make_plan_exits_4_naming_what_it_cannot_price(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        pricing,
        "EU_WEST_1",
        replace(EU_WEST_1, hourly={k: v for k, v in EU_WEST_1.hourly.items() if k != "vpc:nat-gateway"}),
    )
    monkeypatch.setitem(pricing.PRICE_TABLES, "eu-west-1", pricing.EU_WEST_1)
    assert main(["--stack", "dev", "--quiet", "--out", str(tmp_path)]) == 4
    assert "no hourly price for vpc:nat-gateway" in capsys.readouterr().err
