"""Schemathesis over the search service's own OpenAPI: every check, positive and negative data."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.services.search.conftest import Catalogue, search_ids, unique_word, wait_for
from tests.support.procs import ServiceProcess


def test_search_openapi_holds_under_generated_requests(
    search: ServiceProcess, catalogue: Catalogue, tmp_path: Path
) -> None:
    """Zero 5xx and zero schema violations: generated queries (Unicode, control characters, boundary
    lengths, invalid limits and categories) must get either a 200 matching the response schema or a
    documented 4xx problem. Products are indexed first so 200s carry real hits, not only empty lists."""
    word = unique_word()
    catalogue.create(f"Laptop {word}", description="A laptop for the fuzzer", category="fuzz")
    catalogue.create("Keyboard for fuzzing", category="fuzz")
    wait_for(lambda: len(search_ids(search.url, word)) == 1, within=3)
    assert search_ids(search.url, "laptop")  # the schema's example query has hits

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{search.url}/openapi.json",
            "--checks",
            "all",
            "--mode",
            "all",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "150",
            "--workers",
            "1",
            "--request-timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,  # schemathesis keeps a cache in ./.schemathesis: not in the repository
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-8000:]
    assert "No issues found" in output, output[-8000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None, output[-2000:]
    assert int(generated.group(1)) >= 100, output[-2000:]  # not a vacuous run
