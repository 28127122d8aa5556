"""Demo data for the one-machine stack: a few customers and a catalogue of a few hundred products.

Loaded through the services' public APIs (as an admin), so it exercises the real validation and the
change feed that search follows. Deterministic (a seeded RNG) and idempotent: a non-empty catalogue is
left alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
from typing import Any

import httpx

from services.kit.tls import Identity
from services.runner.layout import Layout
from services.runner.stack import Admin, runner_tls

CATEGORIES: dict[str, list[str]] = {
    "laptops": ["Laptop", "Ultrabook", "Notebook", "Workstation"],
    "phones": ["Smartphone", "Phone", "Handset"],
    "audio": ["Headphones", "Earbuds", "Speaker", "Soundbar"],
    "peripherals": ["Keyboard", "Mouse", "Webcam", "Microphone"],
    "displays": ["Monitor", "Display", "Projector"],
    "kitchen": ["Kettle", "Toaster", "Blender", "Coffee Grinder", "Espresso Machine"],
    "outdoor": ["Tent", "Backpack", "Sleeping Bag", "Headlamp"],
    "books": ["Cookbook", "Novel", "Field Guide", "Atlas"],
}
ADJECTIVES = [
    "Compact",
    "Pro",
    "Wireless",
    "Quiet",
    "Rugged",
    "Classic",
    "Smart",
    "Ultra",
    "Mini",
    "Studio",
    "Travel",
    "Ergonomic",
]
BRANDS = ["Nordlicht", "Kestrel", "Orbit", "Juniper", "Vanta", "Halcyon", "Brightwater", "Tamarack"]
CUSTOMERS = [
    ("alice@shop.local", "Alice Example"),
    ("bob@shop.local", "Bob Example"),
    ("carol@shop.local", "Carol Example"),
]


def products(count: int = 300, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    items = []
    for i in range(count):
        category = rng.choice(sorted(CATEGORIES))
        noun = rng.choice(CATEGORIES[category])
        brand, adjective = rng.choice(BRANDS), rng.choice(ADJECTIVES)
        name = f"{brand} {adjective} {noun} {rng.randint(2, 9)}{rng.choice('0ZXS')}"
        items.append(
            {
                "sku": f"SEED-{i:05d}",
                "name": name,
                "description": f"The {adjective.lower()} {noun.lower()} from {brand}, for everyday use.",
                "category": category,
                "price_cents": rng.randint(5, 2500) * 100 - 1,
                "currency": "EUR",
                "stock": rng.randint(20, 200),
            }
        )
    return items


async def _seed(layout: Layout, admin: Admin) -> str:
    users, catalogue = layout.url("users"), layout.url("products")
    # The services require a client certificate from the stack's CA: the seed presents the runner's.
    verify = Identity(*runner_tls(layout)).client_context()
    async with httpx.AsyncClient(timeout=10.0, verify=verify) as client:
        login = await client.post(f"{users}/api/v1/sessions", json={"email": admin.email, "password": admin.password})
        login.raise_for_status()
        auth = {"authorization": f"Bearer {login.json()['access_token']}"}
        existing = await client.get(f"{catalogue}/api/v1/products", params={"limit": 1})
        existing.raise_for_status()
        if existing.json()["items"]:
            return "catalogue already has products; left as it is"

        customers = _customer_credentials(layout)
        for email, password, name in customers:
            r = await client.post(f"{users}/api/v1/users", json={"email": email, "password": password, "name": name})
            if r.status_code not in (201, 409):
                r.raise_for_status()

        semaphore = asyncio.Semaphore(16)

        async def create(item: dict[str, Any]) -> None:
            body = {k: v for k, v in item.items() if k != "stock"}
            async with semaphore:
                r = await client.post(f"{catalogue}/api/v1/products", json=body, headers=auth)
                r.raise_for_status()
                product_id = r.json()["id"]
                s = await client.put(
                    f"{catalogue}/api/v1/products/{product_id}/stock", json={"quantity": item["stock"]}, headers=auth
                )
                s.raise_for_status()

        catalogue_items = products()
        await asyncio.gather(*(create(item) for item in catalogue_items))
    return (
        f"{len(catalogue_items)} products in {len(CATEGORIES)} categories, {len(customers)} customers "
        f"(credentials in {layout.secrets / 'customers.json'})"
    )


def _customer_credentials(layout: Layout) -> list[tuple[str, str, str]]:
    path = layout.secrets / "customers.json"
    if path.exists():
        return [(c[0], c[1], c[2]) for c in json.loads(path.read_text())]
    creds = [(email, secrets.token_urlsafe(12), name) for email, name in CUSTOMERS]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(creds, f)
    return creds


def run(layout: Layout, admin: Admin) -> str:
    return asyncio.run(_seed(layout, admin))
