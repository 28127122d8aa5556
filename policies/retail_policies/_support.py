"""Shared plumbing for the rules: how a rule is declared, how a property is read, which stack it runs in.

Rules are plain functions ``check(props, ctx) -> Iterable[str]`` (one message per finding) wrapped into
``pulumi_policy`` policies here, so every rule can be called directly in tests and by the offline runner,
and the CLI sees ordinary ``ResourceValidationPolicy``/``StackValidationPolicy`` objects.

Properties arrive in the engine's camelCase shape, wrapped by pulumi-policy's unknown-checking proxy (a
``Mapping``/``Sequence``, never a ``dict``/``list``): during ``pulumi preview`` reading a value the engine does
not know yet raises ``UnknownValueError``. Resource rules let that propagate (the CLI then reports "can't run
during preview", and ``pulumi up`` evaluates the rule with known values). Stack rules that follow references
between resources use ``links``: property dependencies first, then dependencies, then known values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

MANDATORY: Final = EnforcementLevel.MANDATORY
ADVISORY: Final = EnforcementLevel.ADVISORY

ENVIRONMENTS: Final = ("dev", "prod", "local")
# Every stack-dependent rule accepts the same optional config: the environment, when the stack's name does
# not say it (see policies/README.md, "Which stack a rule thinks it is in").
ENVIRONMENT_SCHEMA: Final[dict[str, Any]] = {"environment": {"type": "string", "enum": list(ENVIRONMENTS)}}

_MISSING: Final = object()


class Unknown:
    """A value the engine does not know yet (preview): neither compliant nor a violation."""

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN: Final = Unknown()


def get(props: Any, *path: str | int, default: Any = None) -> Any:
    """``props[path[0]][path[1]]...`` or ``default`` when a step is missing. Unknown values raise
    ``UnknownValueError`` (resource rules let it propagate, see the module docstring)."""
    cur = props
    for step in path:
        if isinstance(step, int):
            if not isinstance(cur, Sequence) or isinstance(cur, str) or step >= len(cur):
                return default
            cur = cur[step]
        else:
            if not isinstance(cur, Mapping) or step not in cur:
                return default
            cur = cur[step]
        if cur is None:
            return default
    return cur


def known(props: Any, *path: str | int, default: Any = None) -> Any:
    """Like ``get`` but returns ``UNKNOWN`` instead of raising (stack rules, which must not stop at the
    first unknown value)."""
    try:
        return get(props, *path, default=default)
    except UnknownValueError:
        return UNKNOWN


def items(value: Any) -> list[Any]:
    """A recorded list (or proxy) as a plain list; anything else (None, a scalar) as []."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)
    return []


def truthy(value: Any) -> bool:
    """Booleans as the engine sends them (``true``), and as some providers send strings (``"true"``)."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def number(value: Any) -> float | None:
    """Numbers arrive as floats; a string that holds a number counts too. None if not a number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


# --- which stack a rule runs in -----------------------------------------------------------------------------
_URN: Final = re.compile(r"^urn:pulumi:(?P<stack>[^:]+)::(?P<project>[^:]+)::")


def stack_of(urn: str) -> str:
    """The stack name inside a URN (``urn:pulumi:<stack>::<project>::...``); "" if the URN is not one."""
    m = _URN.match(urn)
    return m.group("stack") if m else ""


def environment_of(stack: str) -> str:
    """The environment a stack name implies: ``prod`` and ``prod-*`` are prod, ``local*`` is local, else dev."""
    if stack == "prod" or stack.startswith("prod-"):
        return "prod"
    if stack == "local" or stack.startswith("local-"):
        return "local"
    return "dev"


@dataclass(frozen=True, slots=True)
class Context:
    """What a rule knows about where it runs. ``prod`` is true when any source says prod (policy config
    ``environment``, the stack name, the resource's ``environment`` tag): erring strict costs a failed
    preview; erring lax costs an unprotected production database."""

    stack: str
    environment: str
    prod: bool
    config: Mapping[str, Any]
    resource_type: str = ""

    @staticmethod
    def build(urn: str, config: Mapping[str, Any], tag_environment: Any = None, resource_type: str = "") -> Context:
        stack = stack_of(urn)
        configured = config.get("environment") if isinstance(config, Mapping) else None
        env = configured if isinstance(configured, str) and configured else environment_of(stack)
        prod = env == "prod" or environment_of(stack) == "prod" or tag_environment == "prod"
        return Context(
            stack=stack,
            environment="prod" if prod else env,
            prod=prod,
            config=config or {},
            resource_type=resource_type,
        )


Rule = ResourceValidationPolicy | StackValidationPolicy

# --- declaring rules ----------------------------------------------------------------------------------------
ResourceCheck = Callable[[Any, Context], Iterable[str]]
StackCheck = Callable[[list[PolicyResource], Context], Iterable[tuple[str, str | None]]]


def short_type(type_: str) -> str:
    """``aws:rds/instance:Instance`` -> ``rds Instance``: what a person scanning a report needs."""
    try:
        pkg_mod, cls = type_.rsplit(":", 1)
        module = pkg_mod.split(":", 1)[1].split("/")[0]
        return f"{module} {cls}"
    except (IndexError, ValueError):
        return type_


def _tag_env(props: Any) -> Any:
    env = known(props, "tags", "environment")
    return env if isinstance(env, str) else None


def resource_policy(
    name: str,
    description: str,
    types: Iterable[str],
    check: ResourceCheck,
    *,
    remediation: str,
    enforcement: EnforcementLevel = MANDATORY,
    config_schema: Mapping[str, Any] | None = None,
    url: str | None = None,
    tags: Sequence[str] = (),
) -> ResourceValidationPolicy:
    """A resource rule: ``check(props, ctx)`` yields one message per finding for a resource of ``types``
    (every resource when ``types`` is empty: the check filters on ``ctx.resource_type`` itself)."""
    wanted = frozenset(types)

    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if wanted and args.resource_type not in wanted:
            return
        ctx = Context.build(args.urn, args.get_config(), _tag_env(args.props), args.resource_type)
        for message in check(args.props, ctx):
            report(f"{short_type(args.resource_type)} '{args.name}': {message}", None)

    schema = PolicyConfigSchema(properties={**ENVIRONMENT_SCHEMA, **(config_schema or {})})
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=enforcement,
        config_schema=schema,
        remediation_steps=remediation,
        url=url,
        tags=list(tags) or None,
    )


def stack_policy(
    name: str,
    description: str,
    check: StackCheck,
    *,
    remediation: str,
    enforcement: EnforcementLevel = MANDATORY,
    config_schema: Mapping[str, Any] | None = None,
    url: str | None = None,
    tags: Sequence[str] = (),
) -> StackValidationPolicy:
    """A stack rule: ``check(resources, ctx)`` yields ``(message, urn or None)`` per finding."""

    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = list(args.resources)
        urn = next((r.urn for r in resources), "")
        envs = {_tag_env(r.props) for r in resources}
        ctx = Context.build(urn, args.get_config(), "prod" if "prod" in envs else None)
        for message, at in check(resources, ctx):
            report(message, at)

    schema = PolicyConfigSchema(properties={**ENVIRONMENT_SCHEMA, **(config_schema or {})})
    return StackValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=enforcement,
        config_schema=schema,
        remediation_steps=remediation,
        url=url,
        tags=list(tags) or None,
    )


# --- following references between resources (stack rules) ---------------------------------------------------
IDENTITY_KEYS: Final = ("arn", "id", "name", "bucket", "zoneId", "keyId")


def of_type(resources: Iterable[PolicyResource], *types: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type in types]


def label(r: PolicyResource) -> str:
    return f"{short_type(r.resource_type)} '{r.name}'"


def _identities(r: PolicyResource) -> set[str]:
    ids: set[str] = set()
    for key in IDENTITY_KEYS:
        v = known(r.props, key)
        if isinstance(v, str) and v:
            ids.add(v)
    extra = getattr(r, "identities", None)  # the offline runner attaches the mocks' id/arn/name here
    if isinstance(extra, set | frozenset):
        ids |= {str(x) for x in extra}
    return ids


def links(source: PolicyResource, prop: str, candidates: Iterable[PolicyResource]) -> list[PolicyResource]:
    """The resources among ``candidates`` that ``source.props[prop]`` refers to.

    In order: the engine's property dependencies (exact: the CLI sends them); the value, if known, matched
    against each candidate's id/ARN/name; the resource's dependencies among the candidates (the offline
    recording keeps dependencies but not per property, so callers pass candidates of one type only).
    """
    pool = list(candidates)
    deps = source.property_dependencies.get(prop) if source.property_dependencies else None
    if deps:
        urns = {d.urn for d in deps}
        return [c for c in pool if c.urn in urns]
    value = known(source.props, prop)
    if items(value):
        values = {str(v) for v in items(value)}
    else:
        values = {str(value)} if value is not None and not isinstance(value, Unknown) else set()
    if values:
        matched = [c for c in pool if _identities(c) & values]
        if matched:
            return matched
    dep_urns = {d.urn for d in source.dependencies}
    return [c for c in pool if c.urn in dep_urns]
