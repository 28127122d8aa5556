"""The committed OpenAPI documents match the code (without starting anything: the served documents are
compared with the same files in tests/services/gateway/test_real_services.py)."""

from __future__ import annotations

import subprocess
import sys

from services import openapi
from tests.support.procs import ROOT


def test_committed_openapi_documents_are_what_the_code_produces() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.openapi", "check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_canonical_form_is_sorted_indented_utf8_with_a_final_newline() -> None:
    assert openapi.canonical({"b": "é", "a": [2, 1]}) == '{\n  "a": [\n    2,\n    1\n  ],\n  "b": "é"\n}\n'
