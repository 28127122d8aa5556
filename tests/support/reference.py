"""What every edge must show of the API reference page: ``/api/v1/docs`` renders from this origin alone."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import httpx

from services.gateway.openapi import DOCS, PUBLIC_DOCUMENT

# An absolute URL (https://…), a network-path reference ("//host/…"), or an inline data:/javascript: URL.
_ANY_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://|[\"'(=]\s*//|\b(?:data|javascript):")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("src", "href") and value is not None]


def assert_reference_served_locally(client: httpx.Client) -> None:
    """The page, and everything it loads, comes from ``client``'s origin, under a policy that lets the
    browser load nothing from anywhere else."""
    page = client.get(DOCS)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    directives = dict(d.strip().partition(" ")[::2] for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'", policy
    assert not [d for d in directives.values() if re.search(r"\*|https?:|unsafe-", d)], policy
    assert not _ANY_URL.search(page.text), "the page names a URL outside this origin"
    parser = _Links()
    parser.feed(page.text)
    scripts = [link for link in parser.links if link.endswith(".js")]
    assert len(scripts) >= 2, parser.links
    assert any(link.endswith(".css") for link in parser.links), parser.links
    for link in parser.links:
        assert link.startswith("/"), link
        assert not link.startswith("//"), link
        asset = client.get(link)
        assert asset.status_code == 200, (link, asset.status_code)
        assert asset.content, link
        expected = {"js": "text/javascript", "css": "text/css", "png": "image/png"}[link.rsplit(".", 1)[1]]
        assert asset.headers["content-type"].startswith(expected), (link, asset.headers["content-type"])
    start = client.get(scripts[-1]).text
    assert f'"{PUBLIC_DOCUMENT}"' in start, start
    assert not _ANY_URL.search(start), start
