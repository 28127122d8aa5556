"""The pack as the Pulumi CLI runs it: ``policies/__main__.py`` started as a process serves the analyzer
gRPC protocol; the test speaks that protocol the way the engine does (GetAnalyzerInfo, Analyze per
resource, AnalyzeStack over the graph). This is the path ``pulumi preview --policy-pack policies`` takes,
minus the CLI binary."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]  # no types-grpcio in the venv
import pytest
from google.protobuf import empty_pb2, struct_pb2  # type: ignore[import-untyped]  # no types-protobuf
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE
from retail_policies import POLICIES

PACK = Path(__file__).resolve().parents[2] / "policies"
MANDATORY = analyzer_pb2.EnforcementLevel.Value("MANDATORY")
ADVISORY = analyzer_pb2.EnforcementLevel.Value("ADVISORY")


@pytest.fixture(scope="module")
def analyzer() -> Iterator[Any]:
    # The CLI's policy host runs the pack directory with Python and reads the port from its first line.
    proc = subprocess.Popen(
        [sys.executable, "-u", str(PACK)], cwd=PACK, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=20)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _struct(props: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


def _urn(type_: str, name: str, stack: str) -> str:
    return f"urn:pulumi:{stack}::retail-platform::{type_}::{name}"


def test_the_engine_sees_every_rule_as_mandatory_with_its_config_schema(analyzer: Any) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "retail-platform-policies"
    assert [p.name for p in info.policies] == [p.name for p in POLICIES]
    assert {p.enforcementLevel for p in info.policies} == {MANDATORY}
    assert all(p.remediation_steps for p in info.policies)
    allow = next(p for p in info.policies if p.name == "instance-type-allowlist")
    assert set(allow.configSchema.properties) == {"environment", "allowedInstanceTypes"}


def test_analyze_reports_a_prod_database_without_multi_az(analyzer: Any) -> None:
    rds = "aws:rds/instance:Instance"
    tags = {"stack": "prod", "service": "orders", "owner": "x", "environment": "prod", "managed-by": "pulumi"}
    props: dict[str, Any] = {
        "engine": "postgres",
        "storageEncrypted": True,
        "multiAz": False,
        "deletionProtection": True,
        "backupRetentionPeriod": 14,
        "manageMasterUserPassword": True,
        "instanceClass": "db.m7g.large",
        "tags": tags,
    }
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=rds, properties=_struct(props), name="orders-db", urn=_urn(rds, "orders-db", "prod")
        )
    )
    found = {(d.policyName, d.enforcementLevel) for d in response.diagnostics}
    assert found == {("rds-prod-multi-az", MANDATORY)}
    assert "databases.multiAz: true" in response.diagnostics[0].message
    dev = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=rds,
            properties=_struct({**props, "tags": {**tags, "environment": "dev", "stack": "dev"}}),
            name="orders-db",
            urn=_urn(rds, "orders-db", "dev"),
        )
    )
    assert list(dev.diagnostics) == []


def test_an_unknown_value_during_preview_is_advisory_not_a_pass(analyzer: Any) -> None:
    key = "aws:kms/key:Key"
    response = analyzer.Analyze(
        analyzer_pb2.AnalyzeRequest(
            type=key,
            properties=_struct(
                {
                    "enableKeyRotation": UNKNOWN_STRING_VALUE,
                    "tags": {
                        "stack": "dev",
                        "service": "x",
                        "owner": "x",
                        "environment": "dev",
                        "managed-by": "pulumi",
                    },
                }
            ),
            name="k",
            urn=_urn(key, "k", "dev"),
        )
    )
    assert [(d.policyName, d.enforcementLevel) for d in response.diagnostics] == [("kms-key-rotation", ADVISORY)]
    assert "during preview" in response.diagnostics[0].message


def test_analyze_stack_follows_property_dependencies(analyzer: Any) -> None:
    lb_type, assoc_type = "aws:lb/loadBalancer:LoadBalancer", "aws:wafv2/webAclAssociation:WebAclAssociation"
    lb_urn = _urn(lb_type, "alb", "dev")
    lb = analyzer_pb2.AnalyzerResource(
        type=lb_type, urn=lb_urn, name="alb", properties=_struct({"loadBalancerType": "application", "internal": False})
    )
    assoc = analyzer_pb2.AnalyzerResource(
        type=assoc_type,
        urn=_urn(assoc_type, "assoc", "dev"),
        name="assoc",
        properties=_struct({"resourceArn": UNKNOWN_STRING_VALUE, "webAclArn": "arn:aws:wafv2:acl"}),
        propertyDependencies={"resourceArn": analyzer_pb2.AnalyzerPropertyDependencies(urns=[lb_urn])},
    )
    covered = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[lb, assoc]))
    assert [d.policyName for d in covered.diagnostics if d.policyName == "alb-waf-association"] == []
    bare = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[lb]))
    waf = [d for d in bare.diagnostics if d.policyName == "alb-waf-association"]
    assert len(waf) == 1
    assert waf[0].urn == lb_urn
    assert waf[0].enforcementLevel == MANDATORY
