"""Tags (pure): the required set is always there and cannot be overridden by accident."""

from __future__ import annotations

import pytest
from shop_platform.tags import REQUIRED_TAG_KEYS, Tagger, missing_required_tags


def test_tagger_always_sets_every_required_tag() -> None:
    """Cost allocation and incident routing rely on stack/service/owner on every resource."""
    tags = Tagger(stack="dev", owner="platform-team", environment="dev")("orders", Name="x")
    assert not missing_required_tags(tags)
    assert tags["service"] == "orders"
    assert tags.keys() >= REQUIRED_TAG_KEYS


def test_extra_tags_cannot_override_required_ones() -> None:
    """A caller passing service=... by keyword must not silently mislabel a resource."""
    with pytest.raises(ValueError, match="required"):
        Tagger(stack="dev", owner="o", environment="dev")(**{"owner": "someone-else"})


def test_missing_tags_are_reported_for_absent_or_malformed_tag_maps() -> None:
    """The graph invariant relies on this: no tags at all must count as every tag missing."""
    assert missing_required_tags(None) == set(REQUIRED_TAG_KEYS)
    assert missing_required_tags({"stack": "dev"}) == set(REQUIRED_TAG_KEYS) - {"stack"}
