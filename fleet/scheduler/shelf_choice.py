"""Which shelves to bring: for incoming goods (stow) and for a port's open lines (pick).

Both rules come from the customer's operating model (DESIGN.md, "The workflows"):
stow prefers a shelf that already holds the SKU and has room for all of it, otherwise
the nearest empty shelf of the same class; pick covers the lines with as few
presentations as possible, preferring shelves that are coming to the port anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable, Mapping, Sequence

from fleet.domain.inventory import Inventory
from fleet.domain.shelf import InventoryShelf
from maps.model import Cell

Distance = Callable[[Cell, Cell], float]


@dataclass(frozen=True)
class StowPart:
    shelf_id: str
    quantity: int


@dataclass
class StowPlan:
    """Where incoming goods go. More than one part means the quantity was split;
    `unplaced` > 0 means no shelf has room for that many, and `reason` says why."""

    sku: str
    quantity: int
    parts: list[StowPart] = field(default_factory=list)
    unplaced: int = 0
    reason: str = ""

    @property
    def split(self) -> bool:
        return len(self.parts) > 1


def plan_stow(inventory: Inventory, sku: str, quantity: int, port: Cell, distance: Distance,
              busy: Collection[str] = ()) -> StowPlan:
    """Choose shelves for `quantity` units of `sku` arriving at the stow port at `port`.

    Shelves in `busy` (already working elsewhere) are passed over. Distances are from the
    shelf's current cell to the port, so a shelf nearby is called before a far one.
    """
    item = inventory.catalogue[sku]
    plan = StowPlan(sku, quantity)

    def near(shelves: Iterable[InventoryShelf]) -> list[InventoryShelf]:
        return sorted((s for s in shelves if s.id not in busy), key=lambda s: (distance(s.cell, port), s.id))

    holding = near(inventory.shelves_holding(sku))
    for shelf in holding:
        if inventory.shelf_fits(shelf.id, sku) >= quantity:
            plan.parts.append(StowPart(shelf.id, quantity))
            return plan
    empty = near(inventory.empty_shelves(item.shelf_class))
    for shelf in empty:
        if inventory.shelf_fits(shelf.id, sku) >= quantity:
            plan.parts.append(StowPart(shelf.id, quantity))
            return plan
    # No single shelf takes it all: split, filling shelves that hold the SKU first.
    left = quantity
    for shelf in holding + empty:
        room = inventory.shelf_fits(shelf.id, sku)
        if room > 0 and left > 0:
            take = min(room, left)
            plan.parts.append(StowPart(shelf.id, take))
            left -= take
    if left:
        plan.unplaced = left
        plan.reason = (
            f"no shelf: {left} of {quantity} units of {sku} fit no free shelf of class "
            f"{item.shelf_class!r} (holding it: {len(holding)}, empty: {len(empty)})"
        )
    return plan


def cover_lines(skus: Iterable[str], sku_shelves: Mapping[str, Sequence[str]], preferred: Sequence[str] = (),
                booked: Mapping[str, int] | None = None, distance: Mapping[str, float] | None = None) -> list[str]:
    """Few shelves that together hold every SKU: greedy set cover (within ln n of the
    optimum), taking first the `preferred` shelves that help (they are already on their
    way to, or queued at, the port). Between shelves serving as many lines, the one with
    fewer ports `booked` before this one wins: a port waiting for a shelf that first
    tours three other ports starves while an idle copy of the SKU stands in storage.
    Then the shelf at the shorter `distance` from the port wins: the trip there and back
    is the robot time a presentation costs. A shelf `distance` leaves out counts as
    nearest: it is on a robot already."""
    booked = booked or {}
    distance = distance or {}
    needed = set(skus)
    missing = sorted(s for s in needed if not sku_shelves.get(s))
    if missing:
        raise ValueError(f"no shelf holds SKU(s) {', '.join(missing)}")
    chosen: list[str] = []
    for shelf in preferred:
        hits = {sku for sku in needed if shelf in sku_shelves[sku]}
        if hits:
            chosen.append(shelf)
            needed -= hits
    while needed:
        gain: dict[str, int] = {}
        for sku in needed:
            for shelf in sku_shelves[sku]:
                gain[shelf] = gain.get(shelf, 0) + 1
        best = max(gain, key=lambda s: (gain[s], -booked.get(s, 0), -distance.get(s, 0.0), s))
        chosen.append(best)
        needed = {sku for sku in needed if best not in sku_shelves[sku]}
    return chosen


def sku_shelves(inventory: Inventory, skus: Iterable[str]) -> dict[str, list[str]]:
    """Per SKU, the shelves holding it, most units first."""
    out: dict[str, list[str]] = {}
    for sku in skus:
        per_shelf: dict[str, int] = {}
        for label, qty in inventory.where(sku).items():
            shelf = inventory.bin(label).shelf_id
            per_shelf[shelf] = per_shelf.get(shelf, 0) + qty
        out[sku] = sorted(per_shelf, key=lambda s: (-per_shelf[s], s))
    return out
