"""JSON logs on stdout, one object per line, plus an optional GELF handler for Logstash.

Fields: ``ts, level, service, event, request_id`` always; ``route, status, duration_ms, user_id,
order_id`` where known. python-json-logger formats; a filter adds the request context and drops any
extra whose name says it is a secret, so a careless ``extra={"password": ...}`` never reaches a log.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from services.kit.context import request_id_var, user_id_var
from services.kit.settings import KitSettings

_SENSITIVE = ("password", "token", "secret", "card", "cvc", "authorization", "cookie")


@functools.lru_cache(maxsize=4096)
def _is_sensitive(key: str) -> bool:
    # Cached: records carry the same few dozen attribute names every time, and this runs for every log
    # line (one per request); scanning each name against every word cost ~10 us per request.
    lowered = key.lower()
    return any(s in lowered for s in _SENSITIVE)


class ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        record.request_id = request_id_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        if not hasattr(record, "event"):
            record.event = record.getMessage()
        for key in [k for k in vars(record) if _is_sensitive(k)]:
            setattr(record, key, "[redacted]")
        return True


class _Formatter(JsonFormatter):
    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_record, record, message_dict)
        log_record["ts"] = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        log_record["level"] = record.levelname.lower()
        if log_record.get("message") == log_record.get("event"):
            log_record.pop("message", None)
        for key in [k for k, v in log_record.items() if v is None]:
            del log_record[key]


def configure_logging(settings: KitSettings) -> None:
    """Route every logger (ours, uvicorn's) to one JSON stream. Idempotent."""


    formatter = _Formatter("%(service)s %(event)s %(request_id)s %(message)s",
                           json_ensure_ascii=False, reserved_attrs=_RESERVED)
    formatter.converter = time.gmtime
    context = ContextFilter(settings.service_name)

    stdout = logging.StreamHandler(sys.stdout)
    stdout.setFormatter(formatter)
    stdout.addFilter(context)
    handlers: list[logging.Handler] = [stdout]

    if settings.gelf_host:
        from pygelf import GelfTcpHandler, GelfUdpHandler

        cls = GelfUdpHandler if settings.gelf_protocol == "udp" else GelfTcpHandler
        gelf = cls(host=settings.gelf_host, port=settings.gelf_port, include_extra_fields=True,
                   _service=settings.service_name)
        gelf.addFilter(context)
        handlers.append(gelf)

    root = logging.getLogger()
    root.handlers = handlers
    root.setLevel(settings.log_level)
    # uvicorn's own access log would duplicate ours (which has the route template and request ID).
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every outbound request at INFO; our own request line already covers it.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True


# LogRecord attributes that are not interesting in the JSON object.
_RESERVED = [
    "args", "asctime", "created", "exc_text", "filename", "funcName", "levelname", "levelno", "lineno",
    "module", "msecs", "msg", "name", "pathname", "process", "processName", "relativeCreated",
    "stack_info", "thread", "threadName", "taskName",
]
