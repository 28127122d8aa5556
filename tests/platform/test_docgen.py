"""Generated documents: the README's config tables and the chart's values schema are the models' own rendering,
so a rule or default changed in a model cannot leave a stale copy behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from shop_platform import config

from tools import docgen


@pytest.mark.parametrize("path", [docgen.README, docgen.VALUES_SCHEMA], ids=lambda p: p.name)
def test_committed_generated_documents_match_the_models(path: Path) -> None:
    """Fails when a model changed without `python -m tools.docgen write` (or the copy was hand-edited)."""
    assert path.read_text() == docgen.generated()[path], (
        f"{path.relative_to(docgen.REPO_ROOT)} is stale: run `.venv/bin/python -m tools.docgen write`"
    )


def test_the_check_command_notices_a_stale_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drift check is not vacuous: a README whose table lost a row is reported and rewritten."""
    readme = tmp_path / "README.md"
    readme.write_text(docgen.README.read_text().replace("| `network.azCount` |", "| `network.azCounts` |"))
    monkeypatch.setattr(docgen, "README", readme)
    monkeypatch.setattr(docgen, "VALUES_SCHEMA", tmp_path / "values.schema.json")
    (tmp_path / "values.schema.json").write_text(docgen.schema_text())
    assert docgen.main(["check"]) == 1
    assert docgen.main(["write"]) == 0
    assert docgen.main(["check"]) == 0
    assert "| `network.azCount` |" in readme.read_text()


def test_every_key_of_every_stack_model_has_a_row() -> None:
    """The tables list every key a stack file may hold (the models forbid any other)."""
    text = docgen.README.read_text()
    for model in (
        config.NetworkConfig,
        config.ClusterConfig,
        config.DatabasesConfig,
        config.EdgeConfig,
        config.KubernetesConfig,
        config.KindConfig,
        config.RegistryConfig,
    ):
        section = {
            config.NetworkConfig: "network",
            config.ClusterConfig: "cluster",
            config.DatabasesConfig: "databases",
            config.EdgeConfig: "edge",
            config.KubernetesConfig: "kubernetes",
            config.KindConfig: "kind",
            config.RegistryConfig: "registry",
        }[model]
        for name, info in model.model_fields.items():
            assert f"| `{section}.{info.alias or name}` |" in text, f"{section}.{info.alias or name}"


def test_the_allowed_column_is_what_a_config_error_prints() -> None:
    """One text per key: the README's "allowed" and the error's "allowed:" come from the same schema node."""
    with pytest.raises(config.ConfigError) as err:
        config.validate(config.NetworkConfig, {"azCount": 7})
    row = next(line for line in docgen.README.read_text().splitlines() if line.startswith("| `network.azCount` |"))
    assert str(err.value).split("allowed: ", 1)[1] == row.split(" | ")[1]
