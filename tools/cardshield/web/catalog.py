"""The demo shop's catalog: prices live on the server, the page only sends quantities."""
from __future__ import annotations

from dataclasses import dataclass

SHOP_NAME = "Example Shop"
CURRENCY = "EUR"


@dataclass(frozen=True)
class Item:
    item_id: str
    title: str
    price_minor: int


CATALOG = {item.item_id: item for item in (
    Item("beans", "Coffee beans, 1 kg", 2490),
    Item("grinder", "Hand grinder", 8900),
    Item("filters", "Paper filters, 100", 450),
)}
MAX_QUANTITY = 20


def order_total(quantities: dict[str, int]) -> int:
    """Sum in minor units; raises ValueError naming the bad line."""
    total = 0
    for item_id, quantity in quantities.items():
        if item_id not in CATALOG:
            raise ValueError(f"unknown item {item_id!r}")
        if not isinstance(quantity, int) or not 0 <= quantity <= MAX_QUANTITY:
            raise ValueError(f"quantity of {item_id} must be 0..{MAX_QUANTITY}")
        total += CATALOG[item_id].price_minor * quantity
    if total == 0:
        raise ValueError("the basket is empty")
    return total
