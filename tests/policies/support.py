"""Call rules the way the engine does, without a policy pack (PolicyPack() would start a server and block)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy
from retail_policies import by_name

PROJECT = "retail-platform"


def urn(type_: str, name: str, stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::{PROJECT}::{type_}::{name}"


def options() -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )


def check_resource(
    policy_name: str,
    type_: str,
    props: Mapping[str, Any],
    *,
    stack: str = "dev",
    config: Mapping[str, Any] | None = None,
    name: str = "r",
) -> list[str]:
    policy = by_name()[policy_name]
    assert isinstance(policy, ResourceValidationPolicy)
    found: list[str] = []
    args = ResourceValidationArgs(
        type_, unknown_checking_proxy(dict(props)), urn(type_, name, stack), name, options(), None, dict(config or {})
    )

    def report(message: str, at: str | None = None) -> None:
        found.append(message)

    policy.validate(args, report)
    return found


def resource(
    type_: str,
    name: str,
    props: Mapping[str, Any],
    *,
    stack: str = "dev",
    deps: Sequence[PolicyResource] = (),
    property_deps: Mapping[str, Sequence[PolicyResource]] | None = None,
) -> PolicyResource:
    return PolicyResource(
        type_,
        unknown_checking_proxy(dict(props)),
        urn(type_, name, stack),
        name,
        options(),
        None,
        None,
        list(deps),
        {k: list(v) for k, v in (property_deps or {}).items()},
    )


def check_stack(
    policy_name: str, resources: Sequence[PolicyResource], config: Mapping[str, Any] | None = None
) -> list[tuple[str, str | None]]:
    policy = by_name()[policy_name]
    assert isinstance(policy, StackValidationPolicy)
    found: list[tuple[str, str | None]] = []

    def report(message: str, at: str | None = None) -> None:
        found.append((message, at))

    policy.validate(StackValidationArgs(list(resources), dict(config or {})), report)
    return found
