"""A burst of buyers arriving at once: N new TLS connections to the edge, each from its own client address,
each sending one request, all released together.

Each connection binds its own loopback source address (127.0.0.2, 127.0.0.3, ...: Linux routes all of
127.0.0.0/8 to the loopback interface), so the edge and the gateway see N distinct clients, as they would in a
launch or a sale, and per-client rate limits do not turn the burst into 429s. Requests are written by hand on
the raw TLS stream (HTTP/1.1, ``Connection: close``) so that every request really opens its own connection
and handshake, with no client-side pooling.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int  # 0: no HTTP answer at all (connection refused, reset or timed out)
    seconds: float
    error: str = ""  # why there was no answer, or the body of an answer >= 500 (its start)


@dataclass(frozen=True, slots=True)
class BurstResult:
    outcomes: list[Outcome]

    @property
    def statuses(self) -> Counter[int]:
        return Counter(o.status for o in self.outcomes)

    @property
    def server_errors(self) -> int:
        """Answers that are 5xx, plus connections that got no answer at all."""
        return sum(1 for o in self.outcomes if o.status >= 500 or o.status == 0)

    def percentile_ms(self, q: float) -> float:
        times = sorted(o.seconds for o in self.outcomes)
        return 1000 * times[min(len(times) - 1, int(q * len(times)))]


def client_address(i: int) -> str:
    """The i-th buyer's own loopback address (0-based; 127.0.0.1 is left to everything else)."""
    n = i + 2
    if n >= 256 * 256 * 255:
        raise ValueError("too many clients for 127.0.0.0/8")
    return f"127.{n // 65536}.{(n // 256) % 256}.{n % 256}"


def _raw(request: Request, host: str) -> bytes:
    headers = {"Host": host, "Connection": "close", "Accept": "application/json", **request.headers}
    if request.body or request.method in ("POST", "PUT", "PATCH"):
        headers.setdefault("Content-Type", "application/json")
        headers["Content-Length"] = str(len(request.body))
    head = f"{request.method} {request.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + request.body


async def _one(
    port: int, ctx: ssl.SSLContext, source: str, request: Request, start: asyncio.Event, limit_s: float
) -> Outcome:
    await start.wait()
    began = time.perf_counter()
    try:
        async with asyncio.timeout(limit_s):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost", local_addr=(source, 0)
            )
            try:
                writer.write(_raw(request, f"localhost:{port}"))
                await writer.drain()
                status_line = await reader.readline()
                rest = await reader.read()  # headers and body, until the server closes
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        return Outcome(0, time.perf_counter() - began, type(exc).__name__)
    parts = status_line.split()
    status = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    if not status:
        return Outcome(0, time.perf_counter() - began, f"bad status line {status_line[:60]!r}")
    body = rest.partition(b"\r\n\r\n")[2]
    return Outcome(status, time.perf_counter() - began, body[:300].decode(errors="replace") if status >= 500 else "")


async def burst(port: int, cafile: str, requests: list[Request], *, limit_s: float = 60.0) -> BurstResult:
    """Send every request on its own new TLS connection from its own client address, all at once; a request
    without a complete answer within ``limit_s`` counts as no answer."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["http/1.1"])
    start = asyncio.Event()
    tasks = [asyncio.create_task(_one(port, ctx, client_address(i), r, start, limit_s)) for i, r in enumerate(requests)]
    await asyncio.sleep(0)  # every task is waiting on the event: release them together
    start.set()
    return BurstResult(list(await asyncio.gather(*tasks)))
