"""One TLS handshake over loopback between two ``ssl`` contexts, for tests of who accepts whom."""

from __future__ import annotations

import socket
import ssl
import threading


class Refused(Exception):
    """The server side refused the handshake; ``server_error`` says why (OpenSSL's reason)."""

    def __init__(self, server_error: Exception) -> None:
        super().__init__(str(server_error))
        self.server_error = server_error


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> tuple[dict[str, object], bytes]:
    """(what the server saw of the client's certificate, the DER certificate the client got). Raises ``Refused``
    when the server refused the client (with TLS 1.3 the client only learns so on its first read)."""
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, object] = {}
    failures: list[Exception] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as s:
                seen.update(s.getpeercert() or {})
                s.sendall(b"k")
        except (ssl.SSLError, OSError) as exc:
            failures.append(exc)
            conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    der: bytes | None = None
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as c,
        ):
            c.recv(1)
            der = c.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError):
        pass  # the server's side says why
    finally:
        thread.join(5)
        listener.close()
    if failures:
        raise Refused(failures[0])
    if der is None:
        raise AssertionError("the client failed the handshake but the server did not refuse it")
    return seen, der
