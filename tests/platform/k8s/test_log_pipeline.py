"""Every line a service writes reaches Elasticsearch: real records from the kit's logger, replayed through the
Fluent Bit configuration the platform renders (read from the plan's fluent-bit release values, not a copy) and
Logstash's GELF input, land as documents whose every field the index template maps, with one type per field.

The replay implements the semantics of the pinned Fluent Bit (4.0.3, the appVersion of chart 0.50.0) for exactly
the plugins and options the configuration uses, each from its source at that tag; an option it does not know
fails the test rather than being skipped, so the configuration cannot drift past what is checked here:
- CRI parser: src/multiline/flb_ml_parser_cri.c (regex, `time` kept);
- kubernetes filter: plugins/filter_kubernetes/kubernetes.c (Merge_Log: a JSON object in `log` is appended to the
  record, `log` dropped when Keep_Log is off, kept when the line is not JSON) and kube_meta.c (metadata keys);
- nest filter (lift) and modify filter (conditions ANDed, rules in order; Rename/Copy only when the target is
  absent, Add only when the key is absent, Set replaces): plugins/filter_{nest,modify};
- GELF encoder: src/flb_pack_gelf.c (first occurrence of a special key wins, `id` dropped, custom keys get `_`,
  nil skipped, a level that is a digit or syslog keyword becomes a number, no short message: record dropped);
- logstash-input-gelf 3.3 lib/logstash/inputs/gelf.rb (short_message -> message when not empty, `_` stripped,
  `source_host` added, numeric `timestamp` removed on TCP).
"""

from __future__ import annotations

import asyncio
import fnmatch
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from shop_platform.k8s import addons, objects
from shop_platform.k8s import spec as k

from services.kit.app import create_app
from services.kit.logging import RECORD_FIELDS
from services.kit.settings import KitSettings

from .conftest import render_stack

Pairs = list[tuple[str, Any]]  # a msgpack map: ordered, duplicate keys possible (Merge_Log can append one)
SYSLOG_KEYWORDS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
CRI_LINE = re.compile(r"^(?P<time>.+?) (?P<stream>stdout|stderr) (?P<_p>F|P) (?P<log>.*)$")
POD = {
    "pod_name": "orders-7d9c-x2x",
    "namespace_name": k.SERVICES_NS,
    "pod_id": "0b1c",
    "pod_ip": "10.0.1.7",
    "host": "node-a",
    "container_name": "orders",
    "docker_id": "c0ffee",
    "container_hash": "sha256:ab",
    "container_image": "shop/orders:local",
}


# --- the rendered configuration -----------------------------------------------------------------------------


def sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            out.append((line[1:-1].upper(), []))
            continue
        key, _, value = line.partition(" ")
        out[-1][1].append((key.lower(), value.strip()))
    return out


def fluent_bit_config() -> dict[str, list[tuple[str, list[tuple[str, str]]]]]:
    release = next(r for r in render_stack("local").rendered.releases if r["name"] == "fluent-bit")
    return {part: sections(release["values"]["config"][part]) for part in ("inputs", "filters", "outputs")}


def _options(options: list[tuple[str, str]], allowed: set[str]) -> dict[str, str]:
    unknown = {key for key, _ in options} - allowed
    assert not unknown, f"the replay does not implement {unknown}: extend it from the plugin's source first"
    return dict(options)


# --- Fluent Bit 4.0.3 -----------------------------------------------------------------------------------------


def _keys(record: Pairs, key: str) -> list[int]:
    return [i for i, (name, _) in enumerate(record) if name == key]


def kubernetes_filter(record: Pairs, options: list[tuple[str, str]]) -> Pairs:
    opts = _options(options, {"name", "match", "merge_log", "keep_log", "labels", "annotations"})
    assert opts["labels"].lower() == "off"
    assert opts["annotations"].lower() == "off"
    merge, keep = opts.get("merge_log", "off").lower() == "on", opts.get("keep_log", "on").lower() == "on"
    out, merged = list(record), None
    log_at = _keys(record, "log")
    if merge and log_at:
        try:
            parsed = json.loads(record[log_at[0]][1])
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            merged = list(parsed.items())
            if not keep:
                del out[log_at[0]]
    return [*out, *(merged or []), ("kubernetes", dict(POD))]


def nest_filter(record: Pairs, options: list[tuple[str, str]]) -> Pairs:
    opts = _options(options, {"name", "match", "operation", "nested_under", "add_prefix"})
    assert opts["operation"] == "lift"
    out: Pairs = []
    for key, value in record:
        if key == opts["nested_under"] and isinstance(value, dict):
            out.extend((opts.get("add_prefix", "") + k2, v2) for k2, v2 in value.items())
        else:
            out.append((key, value))
    return out


def modify_filter(record: Pairs, options: list[tuple[str, str]]) -> Pairs:
    conditions = [value.split(None, 2) for key, value in options if key == "condition"]
    for cond in conditions:
        kind, key = cond[0].lower(), cond[1]
        present = [v for name, v in record if name == key]
        if kind == "key_value_equals":
            if not any(isinstance(v, str) and v == cond[2] for v in present[:1]):
                return record
        elif kind == "key_does_not_exist":
            if present:
                return record
        elif kind == "key_exists":
            if not present:
                return record
        else:
            pytest.fail(f"modify condition {kind} is not replayed")
    out = list(record)
    for rule, value in options:
        if rule in ("name", "match", "condition"):
            continue
        args = value.split(None, 1)
        src, dst = args[0], (args[1] if len(args) > 1 else "")
        found, target = _keys(out, src), _keys(out, dst)
        if rule == "rename":
            if found and not target:
                out = [(dst if name == src else name, v) for name, v in out]
        elif rule == "copy":
            if len(found) == 1 and not target:
                out.insert(found[0] + 1, (dst, out[found[0]][1]))
        elif rule == "add":
            if not found:
                out.append((src, dst))
        elif rule == "set":
            out = [(name, v) for name, v in out if name != src] + [(src, dst)]
        elif rule == "remove":
            out = [(name, v) for name, v in out if name != src]
        else:
            pytest.fail(f"modify rule {rule} is not replayed")
    return out


FILTERS = {"kubernetes": kubernetes_filter, "nest": nest_filter, "modify": modify_filter}


def gelf_encode(record: Pairs, options: list[tuple[str, str]]) -> dict[str, Any] | None:
    """flb_msgpack_to_gelf: the JSON object out_gelf sends, or None where it logs "missing short_message key" and
    skips the record."""
    opts = _options(
        options, {"name", "match", "host", "port", "mode", "gelf_short_message_key", "gelf_level_key", "gelf_host_key"}
    )
    special = {
        opts.get("gelf_host_key", "host"): "host",
        opts.get("gelf_level_key", "level"): "level",
        opts.get("gelf_short_message_key", "short_message"): "short_message",
        "timestamp": "timestamp",
        "full_message": "full_message",
    }
    gelf: dict[str, Any] = {"version": "1.1"}
    seen: set[str] = set()
    for key, value in record:
        name = special.get(key)
        if name is not None:
            if name in seen:
                continue
            seen.add(name)
            if name == "level" and isinstance(value, str):
                if len(value) == 1 and "0" <= value <= "7":
                    value = int(value)
                elif value.lower() in SYSLOG_KEYWORDS:
                    value = SYSLOG_KEYWORDS.index(value.lower())
            elif name == "level" and not isinstance(value, int):
                return None  # "level must be a non-negative integer or a string"
        elif key == "id":
            continue
        else:
            name = "_" + key
        assert not isinstance(value, (dict, list)), f"{key}: nested values are flattened, none expected here"
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        gelf[name] = value
    if "short_message" not in seen:
        return None
    gelf.setdefault("timestamp", 1764612000.123)  # from the record's time when no timestamp key
    return gelf


def logstash_gelf_input(gelf: dict[str, Any]) -> dict[str, Any]:
    event = dict(gelf)
    event["source_host"] = "10.0.2.9"
    if isinstance(event.get("timestamp"), (int, float)):
        event.pop("timestamp")
    if event.get("full_message"):
        event["message"] = event.pop("full_message")
    elif event.get("short_message"):
        event["message"] = event.pop("short_message")
    for key in [key for key in event if key.startswith("_")]:
        event[key[1:]] = event.pop(key)
    event["@timestamp"], event["@version"] = "2026-12-01T18:00:00.123Z", "1"
    return event


def ship(lines: list[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each container log line through the CRI parser, the filters and the GELF output, in the rendered order."""
    config = fluent_bit_config()
    ((_, output),) = config["outputs"]
    for line in lines:
        match = CRI_LINE.match(f"2026-12-01T18:00:00.123456789Z stdout F {line}")
        assert match is not None
        record: Pairs = list(match.groupdict().items())
        for _, options in config["filters"]:
            record = FILTERS[dict(options)["name"]](record, options)
        yield line, gelf_encode(record, output)


# --- real records from the kit's logger --------------------------------------------------------------------------

router = APIRouter()


@router.get("/api/v1/things/{thing_id}")
async def get_thing(thing_id: int) -> dict[str, int]:
    if thing_id == 0:
        raise RuntimeError("boom")
    return {"id": thing_id}


def kit_lines() -> list[str]:
    """What a service prints: request lines (200, 404, 422, 500 with its traceback), uvicorn's own lines, and the
    services' call shapes at every level, with extras given as other types than the record's (as call sites do)."""
    settings = KitSettings(service_name="orders", log_level="DEBUG")
    app = create_app(settings, title="t", description="d", routers=[router])
    out = io.StringIO()
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(out)

    async def requests() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            for path in ("/api/v1/things/1", "/api/v1/things/0", "/api/v1/things/x", "/nowhere"):
                await client.get(path, headers={"X-Request-ID": "req-1"})

    loop = asyncio.new_event_loop()  # not asyncio.run: it would unset the loop the Pulumi plan run relies on
    try:
        loop.run_until_complete(requests())
    finally:
        loop.close()
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.info("Started server process [%d]", 7)
    uvicorn.info("Application startup complete.")
    uvicorn.warning("Invalid HTTP request received.")
    try:
        raise ConnectionResetError("peer gone")
    except ConnectionResetError:
        uvicorn.exception("Exception in ASGI application\n")
    log = logging.getLogger("orders")
    log.info("service started", extra={"event": "started"})
    log.debug("cache warm", extra={"event": "cache_warm"})
    log.info("stock reserved", extra={"event": "order_reserved", "order_id": "o-1", "total_cents": 1999})
    log.info("idempotency keys pruned", extra={"event": "idempotency_pruned", "count": "3"})
    log.info("change batch applied", extra={"event": "indexer_batch_applied", "lag_ms": 12, "changes": 2.0})
    log.info("change batch applied", extra={"event": "indexer_batch_applied", "lag_ms": None, "changes": 0})
    log.warning("upstream error", extra={"event": "upstream_error", "upstream": "users", "attempt": 2})
    log.warning(
        "database has migrations this build does not know",
        extra={"event": "migration_ahead", "versions": ["0007", "0008"]},
    )
    log.error("order failed", extra={"event": "order_failed", "order_id": 42, "why": ValueError("declined")})
    log.error("unexpected answer", extra={"event": "saga_unexpected", "status": "502", "retry": True})
    log.critical("giving up", extra={"event": "saga_unavailable", "count": "many"})
    log.info("", extra={"event": "empty_text"})
    return [line for line in out.getvalue().splitlines() if line]


@pytest.fixture(scope="module")
def delivered() -> list[tuple[str, dict[str, Any] | None]]:
    plain = ["2026-12-01 18:00:00.123 UTC [1] LOG:  database system is ready to accept connections"]
    return list(ship([*kit_lines(), *plain]))


def test_every_line_becomes_a_gelf_record_with_a_short_message_and_a_numeric_level(
    delivered: list[tuple[str, dict[str, Any] | None]],
) -> None:
    assert len(delivered) >= 20
    for line, gelf in delivered:
        assert gelf is not None, f"dropped by the GELF encoder: {line}"
        assert isinstance(gelf["short_message"], str), line
        assert gelf["short_message"].strip(), line  # an empty one is not remapped to `message` by Logstash
        assert isinstance(gelf["level"], int), line
        assert 0 <= gelf["level"] <= 7, line


def test_python_levels_map_to_their_syslog_severity(delivered: list[tuple[str, dict[str, Any] | None]]) -> None:
    by_level = {
        (json.loads(line).get("level") if line.startswith("{") else None): gelf["level"]
        for line, gelf in delivered
        if gelf is not None
    }
    assert by_level == {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2, None: 6}


def test_no_field_changes_type_between_records(delivered: list[tuple[str, dict[str, Any] | None]]) -> None:
    seen: dict[str, set[str]] = {}
    for _, gelf in delivered:
        assert gelf is not None
        for key, value in gelf.items():
            seen.setdefault(key, set()).add(type(value).__name__)
    assert {key: types for key, types in seen.items() if len(types) > 1} == {}
    assert seen["_status"] == {"int"}
    assert seen["_duration_ms"] == {"float"}


def _mapping_accepts(es_type: str, value: Any) -> bool:
    if es_type in ("keyword", "text"):
        return isinstance(value, str)
    if es_type in ("long", "byte"):
        return isinstance(value, int) and not isinstance(value, bool)
    if es_type == "double":
        return isinstance(value, float)
    return es_type == "date" and isinstance(value, str)


def test_the_index_template_maps_every_field_logstash_indexes(
    delivered: list[tuple[str, dict[str, Any] | None]],
) -> None:
    """Explicit mapping of every field the services' records and the collectors produce, with a type that takes
    the value as sent; anything else (an extra the kit does not declare) stays unindexed (`dynamic: false`)."""
    template = json.loads(
        next(o for o in render_stack("prod").rendered.objects if o["metadata"]["name"] == "shop-logs-ilm")["data"][
            "template.json"
        ]
    )
    mapping = template["template"]["mappings"]
    assert mapping["dynamic"] is False
    properties = mapping["properties"]
    declared = {
        *RECORD_FIELDS,
        "@timestamp",
        "@version",
        "version",
        "host",
        "source_host",
        "level",
        "stream",
        "time",
        *(f"kubernetes_{f}" for f in addons.KUBERNETES_FIELDS),
    }
    assert declared <= set(properties)
    for line, gelf in delivered:
        assert gelf is not None
        event = logstash_gelf_input(gelf)
        assert event["message"], line
        for key, value in event.items():
            if key in RECORD_FIELDS or key not in {f"{d}_text" for d in RECORD_FIELDS} | {"retry"}:
                assert key in properties, f"{key} (from {line}) is not mapped"
                assert _mapping_accepts(properties[key]["type"], value), (key, value)


def test_the_kit_types_extras_and_never_leaves_a_record_without_message() -> None:
    """A numeric field given as text becomes a number, one that is not a number is kept as <field>_text (never
    as a second type of the field), an undeclared extra becomes a string."""
    records = [json.loads(line) for line in kit_lines()]
    assert all(r["message"] for r in records)
    pruned = next(r for r in records if r["event"] == "idempotency_pruned")
    assert pruned["count"] == 3
    given_up = next(r for r in records if r["event"] == "saga_unavailable")
    assert "count" not in given_up
    assert given_up["count_text"] == "many"
    unexpected = next(r for r in records if r["event"] == "saga_unexpected")
    assert unexpected["status"] == 502
    assert unexpected["retry"] == "true"
    failed = next(r for r in records if r["event"] == "order_failed")
    assert (failed["order_id"], failed["why"]) == ("42", "declined")


def test_only_the_services_namespaces_are_shipped_never_the_logging_pipeline_itself() -> None:
    """Logstash's and Elasticsearch's own lines (namespace logging) and Fluent Bit's (logging-agent) would come
    back through the pipeline they report on; add-ons' JSON has shapes the template does not map."""
    ((_, tail),) = fluent_bit_config()["inputs"]
    opts = _options(
        tail, {"name", "path", "exclude_path", "multiline.parser", "tag", "mem_buf_limit", "skip_long_lines", "db"}
    )
    patterns = [p.strip() for p in opts["path"].split(",")]
    excluded = [p.strip() for p in opts.get("exclude_path", "").split(",") if p.strip()]

    def shipped(namespace: str) -> bool:
        path = f"/var/log/containers/some-pod-0_{namespace}_main-0123abcd.log"
        return any(fnmatch.fnmatchcase(path, p) for p in patterns) and not any(
            fnmatch.fnmatchcase(path, p) for p in excluded
        )

    created = set(objects.POD_SECURITY) | {"kube-system"}
    assert {ns for ns in created if shipped(ns)} == {k.SERVICES_NS, k.DATA_NS}
