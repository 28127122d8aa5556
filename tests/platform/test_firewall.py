"""Security-group flows (pure): the platform's network policy at the AWS layer, read without Pulumi."""

from __future__ import annotations

import pytest
from shop_platform import firewall

ALL = firewall.edge_flows(80) + firewall.database_flows()


def test_only_the_alb_is_reachable_from_the_internet_and_only_on_80_and_443() -> None:
    """Everything else sits behind the ALB, where WAF, the TLS policy and access logs apply."""
    public = [f for f in ALL if f.source == "internet"]
    assert {(f.target, f.port) for f in public} == {("alb", 80), ("alb", 443)}


def test_databases_are_reached_only_from_the_cluster_on_postgres() -> None:
    """Neither the ALB nor the internet may open a connection to a database."""
    into_db = [f for f in ALL if f.target == "database"]
    assert [(f.source, f.port) for f in into_db] == [("cluster", 5432)]


def test_the_alb_only_talks_to_the_gateway_port() -> None:
    """The ALB's group has no default egress: one rule to the gateway port, nothing else."""
    out_of_alb = [f for f in ALL if f.source == "alb"]
    assert [(f.target, f.port) for f in out_of_alb] == [("cluster", 80)]
    assert "alb" in firewall.RESTRICTED_EGRESS


def test_rule_names_are_unique() -> None:
    """Two flows with one resource name would make Pulumi refuse the program (duplicate URN)."""
    suffixes = [f.suffix for f in ALL]
    assert len(set(suffixes)) == len(suffixes)


def test_nonsense_flows_are_refused() -> None:
    """A port outside TCP's range or a self-rule is a mistake, not a policy."""
    with pytest.raises(ValueError, match="TCP port"):
        firewall.Flow("alb", "cluster", 0, "x")
    with pytest.raises(ValueError, match="itself"):
        firewall.Flow("cluster", "cluster", 443, "x")
