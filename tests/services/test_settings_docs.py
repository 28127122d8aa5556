"""Settings are explained once, in the models: every README settings table is what the models produce, every
setting has a description, and a secret's default never reaches a README."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from services import settings_docs
from services.kit.settings import KitSettings
from services.orders.settings import Settings as OrdersSettings


def _orders_copy(tmp_path: Path) -> settings_docs.Table:
    real = next(t for t in settings_docs.tables() if t.model is OrdersSettings)
    readme = tmp_path / "README.md"
    shutil.copyfile(real.readme, readme)
    return settings_docs.Table(readme, real.model, real.source, real.base)


def test_committed_settings_tables_are_what_the_models_produce() -> None:
    drifted = settings_docs.stale(settings_docs.tables())
    assert drifted == [], f"run `{settings_docs.REGENERATE}` and review the diff: {drifted}"
    assert settings_docs.main(["check"]) == 0


def test_every_settings_module_has_a_table() -> None:
    modules = {
        path.relative_to(settings_docs.ROOT).as_posix()
        for path in (settings_docs.ROOT / "services").glob("*/settings.py")
    }
    assert modules == {t.source for t in settings_docs.tables()}


def test_every_setting_is_described_in_the_model_that_declares_it() -> None:
    undescribed = [
        f"{t.source}: {name}"
        for t in settings_docs.tables()
        for name, field in t.model.model_fields.items()
        if not (t.base and name in t.base.model_fields) and len((field.description or "").strip()) < 10
    ]
    assert undescribed == []


def test_a_hand_edited_table_is_reported_then_rewritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = _orders_copy(tmp_path)
    text = table.readme.read_text(encoding="utf-8")
    table.readme.write_text(
        text.replace(
            "| `RECOVERY_BATCH` | integer, ≥ 1, ≤ 1000 | `100` |", "| `RECOVERY_BATCH` | integer, ≥ 1, ≤ 1000 | `50` |"
        ),
        encoding="utf-8",
    )
    assert settings_docs.stale([table]) == [table.readme]
    assert settings_docs.write([table]) == [table.readme]
    assert table.readme.read_text(encoding="utf-8") == text
    assert settings_docs.stale([table]) == []


def test_text_around_the_table_is_left_alone(tmp_path: Path) -> None:
    table = _orders_copy(tmp_path)
    text = table.readme.read_text(encoding="utf-8")
    table.readme.write_text(text + "\nA note of the README's own.\n", encoding="utf-8")
    assert settings_docs.stale([table]) == []


def test_a_readme_without_the_markers_is_an_error_naming_it(tmp_path: Path) -> None:
    table = _orders_copy(tmp_path)
    table.readme.write_text("# orders\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"README\.md: needs exactly one settings table"):
        settings_docs.stale([table])


def test_a_secret_default_is_never_printed(tmp_path: Path) -> None:
    class WithSecret(KitSettings):
        service_name: str = Field(default="toy", description="The toy service's name.")
        api_token: SecretStr = Field(
            default=SecretStr("hunter2-do-not-print"), description="A token with a default value."
        )

    rendered = settings_docs.render(settings_docs.Table(tmp_path / "README.md", WithSecret, "toy.py", KitSettings))
    assert "hunter2" not in rendered
    assert "| `API_TOKEN` | secret string | set (not shown) |" in rendered


def test_a_default_made_by_an_undocumented_function_is_refused(tmp_path: Path) -> None:
    class WithFactory(KitSettings):
        names: list[str] = Field(default_factory=lambda: ["a"], description="Names made by a function.")

    with pytest.raises(ValueError, match="needs a docstring"):
        settings_docs.render(settings_docs.Table(tmp_path / "README.md", WithFactory, "toy.py", KitSettings))


def test_the_table_names_the_variable_the_model_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings_docs.env_name(OrdersSettings, "recovery_batch"), "7")
    assert OrdersSettings().recovery_batch == 7
    assert settings_docs.bounds(OrdersSettings.model_fields["recovery_batch"]) == "≥ 1, ≤ 1000"
