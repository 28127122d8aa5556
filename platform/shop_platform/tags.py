"""Required tags, applied explicitly to every taggable resource.

Explicit, not through a stack transform or the provider's ``default_tags``: the offline plan (Pulumi mocks)
runs neither, so tags set that way would be invisible to the tests that prove every resource is tagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Tags every taggable resource carries (cost allocation, ownership, incident routing).
REQUIRED_TAG_KEYS: Final[frozenset[str]] = frozenset({"stack", "service", "owner", "environment", "managed-by"})
# The ``service`` tag value for shared infrastructure that no single catalog service owns.
PLATFORM_SERVICE: Final = "platform"


@dataclass(frozen=True, slots=True)
class Tagger:
    """Builds tag maps for one stack. ``for_service`` narrows the ``service`` tag to a catalog service."""

    stack: str
    owner: str
    environment: str
    project: str = "retail-platform"

    def __call__(self, service: str = PLATFORM_SERVICE, **extra: str) -> dict[str, str]:
        tags = {
            "stack": self.stack,
            "service": service,
            "owner": self.owner,
            "environment": self.environment,
            "project": self.project,
            "managed-by": "pulumi",
        }
        clash = REQUIRED_TAG_KEYS & extra.keys()
        if clash:
            raise ValueError(f"extra tags may not override required tags {sorted(clash)}")
        tags.update(extra)
        return tags


def missing_required_tags(tags: object) -> set[str]:
    """Which required tags a recorded ``tags`` input lacks (all of them if it is not a mapping)."""
    if not isinstance(tags, dict):
        return set(REQUIRED_TAG_KEYS)
    return {key for key in REQUIRED_TAG_KEYS if not tags.get(key)}
