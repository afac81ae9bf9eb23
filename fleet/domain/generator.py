"""A seeded generator of a realistic starting warehouse: SKU catalogue, stocked shelves
on a map's storage cells, an order stream and inbound notes.

What "realistic" means here, and why:
- SKU popularity follows a power law (Zipf): in e-commerce a few fast movers take most
  order lines and a long tail is ordered rarely. This skew is what makes batching and
  shelf choice matter, so tests and benchmarks must see it.
- Unit volumes and densities are log-normal: most items are small, a few are bulky.
- Fast movers hold more stock and are spread over several shelves, so more than one
  shelf can serve them and no single shelf becomes the bottleneck.
- Orders arrive as a Poisson process; most have 1-3 lines and most lines 1 unit.
- Each order has a customer, obviously fake (reserved example.com addresses, 555-01xx
  phone numbers), so a demo console has something to show and to hide by role.

Each part draws from its own child of the seed, so changing, say, the order rate
leaves the catalogue and the stock unchanged, and the customers, drawn last from a
stream of their own, change nothing that a seeded simulation measures. Same map, seed
and config: same output.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from maps.model import Cell, CellKind, StationKind, WarehouseMap

from fleet.domain.inbound import InboundLine, InboundNote
from fleet.domain.inventory import Inventory
from fleet.domain.order import Customer, Order, OrderLine
from fleet.domain.order_shelf import ORDER, OrderShelf
from fleet.domain.shelf import SMALL_PARTS, STANDARD, InventoryShelf, ShelfSpec
from fleet.domain.sku import Catalogue, Sku
from fleet.domain.station import Station, stations_of

_WORDS = ("cable", "charger", "book", "mug", "toy", "shirt", "sock", "lamp", "case", "bottle",
          "tool", "brush", "towel", "pen", "box", "plate", "cap", "bag", "card", "filter")
_FIRST_NAMES = ("Alex", "Sam", "Robin", "Kim", "Jo", "Chris", "Pat", "Charlie", "Taylor", "Morgan", "Jamie", "Riley")
_LAST_NAMES = ("Example", "Sample", "Placeholder", "Testperson", "Fakename", "Demo", "Madeup", "Dummy")
_STREETS = ("Nowhere Lane", "Sample Street", "Test Road", "Example Avenue", "Demo Way", "Fiction Close")
_TOWNS = ("Exampleton", "Sampleville", "Testburg", "Demotown")


@dataclass(frozen=True)
class GeneratorConfig:
    skus: int = 2000
    zipf_exponent: float = 1.0
    #: share of the stocked shelves' volume filled with goods
    fill_ratio: float = 0.6
    #: no bin is filled beyond this share of its volume, so most keep room for stow
    bin_fill_cap: float = 0.9
    #: share of each class's shelves left empty (new SKUs go there, stow step 3)
    empty_shelf_share: float = 0.1
    #: the fastest mover is spread over this many locations, slower ones over fewer
    max_locations_per_sku: int = 6
    max_skus_per_bin: int = 2
    #: share of storage shelves (and of the smallest SKUs) of the small-parts class
    small_parts_share: float = 0.2
    standard_spec: ShelfSpec = STANDARD
    small_parts_spec: ShelfSpec = SMALL_PARTS
    order_shelves_per_pick_station: int = 1
    #: storage cells left without a shelf (the last in row order): room for an operator
    #: to move shelves into
    spare_storage_cells: int = 0
    order_shelf_spec: ShelfSpec = ORDER
    orders_per_hour: float = 600.0
    #: P(an order has exactly one more line) = 1 - line_stop: geometric, mean 1 / line_stop
    line_stop: float = 0.55
    max_lines: int = 10
    #: P(a line is for exactly 1 unit); more units are geometric
    single_unit_share: float = 0.85
    max_quantity: int = 10
    express_share: float = 0.1
    cutoff_share: float = 0.3
    cutoff_after_s: tuple[float, float] = (2 * 3600.0, 8 * 3600.0)
    inbound_notes_per_hour: float = 4.0
    inbound_mean_lines: float = 8.0
    #: litres of one inbound line (a few cases of one SKU)
    inbound_line_litres: tuple[float, float] = (5.0, 40.0)
    duration_s: float = 3600.0

    def __post_init__(self) -> None:
        problems = []
        if self.skus < 1:
            problems.append(f"skus must be >= 1, got {self.skus}")
        if self.zipf_exponent < 0:
            problems.append(f"zipf_exponent must be >= 0, got {self.zipf_exponent}")
        for name in ("fill_ratio", "bin_fill_cap", "line_stop", "single_unit_share"):
            if not 0 < getattr(self, name) <= 1:
                problems.append(f"{name} must be in (0, 1], got {getattr(self, name)}")
        for name in ("empty_shelf_share", "small_parts_share", "express_share", "cutoff_share"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("max_locations_per_sku", "max_skus_per_bin", "max_lines", "max_quantity"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("orders_per_hour", "inbound_notes_per_hour", "duration_s", "inbound_mean_lines"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.fill_ratio > self.bin_fill_cap:
            problems.append(f"fill_ratio {self.fill_ratio} cannot exceed bin_fill_cap {self.bin_fill_cap}")
        if self.order_shelves_per_pick_station < 0:
            problems.append("order_shelves_per_pick_station must be >= 0")
        if self.spare_storage_cells < 0:
            problems.append("spare_storage_cells must be >= 0")
        for name in ("cutoff_after_s", "inbound_line_litres"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                problems.append(f"{name} must be (low, high) with 0 < low <= high, got {(low, high)}")
        if problems:
            raise ValueError("generator config: " + "; ".join(problems))


@dataclass
class Scenario:
    """A generated starting state. `popularity` is each SKU's share of order lines."""

    catalogue: Catalogue
    popularity: dict[str, float]
    inventory: Inventory
    order_shelves: list[OrderShelf]
    stations: list[Station]
    orders: list[Order] = field(default_factory=list)
    inbound: list[InboundNote] = field(default_factory=list)


def generate(warehouse_map: WarehouseMap, seed: int, config: GeneratorConfig = GeneratorConfig()) -> Scenario:
    # children are numbered: a fifth one leaves the first four, and what they draw, as they were
    catalogue_rng, stock_rng, order_rng, inbound_rng, customer_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    catalogue, popularity = generate_catalogue(catalogue_rng, config)
    inventory, order_shelves = stock_shelves(warehouse_map, catalogue, popularity, stock_rng, config)
    orders = list(_until(order_stream(catalogue, popularity, order_rng, config), config.duration_s))
    for order, customer in zip(orders, customer_stream(customer_rng)):
        order.customer = customer
    out_of_stock = {sku for sku in catalogue.ids() if inventory.stock(sku) == 0}
    notes = list(_until(inbound_stream(catalogue, popularity, inbound_rng, config, out_of_stock), config.duration_s))
    return Scenario(catalogue, dict(zip(catalogue.ids(), popularity.tolist())), inventory, order_shelves,
                    stations_of(warehouse_map), orders, notes)


def generate_catalogue(rng: np.random.Generator, config: GeneratorConfig) -> tuple[Catalogue, np.ndarray]:
    """SKUs 'SKU000001'... and their popularity (share of order lines, summing to 1).

    Popularity rank is a random permutation of the ids, so an id says nothing about
    how fast the SKU moves.
    """
    n = config.skus
    ranks = rng.permutation(n) + 1
    weights = ranks.astype(float) ** -config.zipf_exponent
    popularity = weights / weights.sum()
    volumes = np.clip(rng.lognormal(math.log(0.6), 1.1, n), 0.005, 30.0).round(3)
    density = np.clip(rng.lognormal(math.log(0.35), 0.6, n), 0.05, 3.0)
    weights_kg = np.clip(volumes * density, 0.002, 25.0).round(3)
    words = rng.integers(0, len(_WORDS), n)
    small_below = np.quantile(volumes, config.small_parts_share) if config.small_parts_share > 0 else -1.0
    digits = max(6, len(str(n)))
    skus = [
        Sku(
            id=f"SKU{i + 1:0{digits}d}",
            name=f"{_WORDS[words[i]]} {i + 1}",
            unit_volume_l=float(volumes[i]),
            unit_weight_kg=float(weights_kg[i]),
            shelf_class=config.small_parts_spec.shelf_class if volumes[i] < small_below else config.standard_spec.shelf_class,
        )
        for i in range(n)
    ]
    return Catalogue(skus), popularity


def stock_shelves(warehouse_map: WarehouseMap, catalogue: Catalogue, popularity: np.ndarray,
                  rng: np.random.Generator, config: GeneratorConfig) -> tuple[Inventory, list[OrderShelf]]:
    """Put a shelf on every storage cell (but the spare ones) and fill the inventory shelves.

    Order shelves take the storage cells nearest each pick station. The stock volume is
    `fill_ratio` of the stocked shelves' volume; it goes into the bins in random order,
    each bin up to `bin_fill_cap` of its volume and `max_skus_per_bin` SKUs, so the
    goods are spread over many shelves and some bins stay empty for incoming stock.
    """
    homes = warehouse_map.cells_of(CellKind.STORAGE)
    order_homes = _order_shelf_homes(warehouse_map, homes, config.order_shelves_per_pick_station)
    order_shelves = [OrderShelf.build(f"OS{i + 1:02d}", cell, config.order_shelf_spec) for i, cell in enumerate(order_homes)]
    taken = set(order_homes)
    shelf_homes = [c for c in homes if c not in taken]
    if config.spare_storage_cells >= len(shelf_homes):
        raise ValueError(f"{len(homes)} storage cells: {len(order_homes)} order shelves "
                         f"({config.order_shelves_per_pick_station} per pick station) and {config.spare_storage_cells} "
                         "spare cells leave none for an inventory shelf; use fewer order shelves per station")
    shelf_homes = shelf_homes[:len(shelf_homes) - config.spare_storage_cells]
    small_count = round(config.small_parts_share * len(shelf_homes))
    if config.small_parts_share > 0 and len(shelf_homes) >= 2:
        small_count = max(small_count, 1)  # small-parts SKUs need at least one shelf of their class
    small = set(rng.permutation(len(shelf_homes))[:small_count].tolist())
    digits = max(4, len(str(len(shelf_homes))))
    shelves = [
        InventoryShelf.build(f"SH{i + 1:0{digits}d}", cell,
                             config.small_parts_spec if i in small else config.standard_spec)
        for i, cell in enumerate(shelf_homes)
    ]
    inventory = Inventory(catalogue, shelves)
    ids = catalogue.ids()
    for shelf_class in inventory.shelf_classes():
        members = [i for i, sku in enumerate(ids) if catalogue[sku].shelf_class == shelf_class]
        class_shelves = [s for s in shelves if s.shelf_class == shelf_class]
        _fill_class(inventory, class_shelves, [ids[i] for i in members], popularity[members], rng, config)
    return inventory, order_shelves


def _order_shelf_homes(warehouse_map: WarehouseMap, homes: list[Cell], per_station: int) -> list[Cell]:
    chosen: list[Cell] = []
    for station in warehouse_map.stations_of(StationKind.PICK):
        w = station.working[0]
        free = sorted((c for c in homes if c not in chosen), key=lambda c: (abs(c.x - w.x) + abs(c.y - w.y), c.y, c.x))
        chosen.extend(free[:per_station])
    return chosen


def _fill_class(inventory: Inventory, shelves: list[InventoryShelf], skus: list[str], popularity: np.ndarray,
                rng: np.random.Generator, config: GeneratorConfig) -> None:
    if not shelves or not skus:
        return
    order = rng.permutation(len(shelves))
    keep_empty = round(config.empty_shelf_share * len(shelves))
    stocked = [shelves[i] for i in order[keep_empty:]]
    if not stocked:
        return
    target_mm3 = config.fill_ratio * sum(b.volume_mm3 for s in stocked for b in s.bins)
    share = np.sqrt(popularity) / np.sqrt(popularity).sum()
    relative = np.sqrt(popularity / popularity.max())
    first: list[tuple[str, int]] = []
    more: list[tuple[str, int]] = []
    for sku, stock_share, rel in zip(skus, share, relative):
        item = inventory.catalogue[sku]
        units = max(1, int(target_mm3 * stock_share // item.unit_volume_mm3))
        locations = int(min(config.max_locations_per_sku, max(1, math.ceil(config.max_locations_per_sku * rel)), units))
        base, extra = divmod(units, locations)
        first.append((sku, base + (1 if extra else 0)))
        more.extend((sku, base + (1 if k < extra else 0)) for k in range(1, locations))
    # every SKU's first location is placed before any second one: if room runs short, a
    # fast mover loses a spare location rather than a slow mover its only one
    chunks = [first[i] for i in rng.permutation(len(first))] + [more[i] for i in rng.permutation(len(more))]
    # chunks go to the shelves in turn, so each shelf ends near the fill ratio and the
    # locations of one SKU land on different shelves
    rotation = deque(_ShelfFill(s, config) for s in stocked)
    for sku, units in chunks:
        item = inventory.catalogue[sku]
        idle = 0
        while units and rotation and idle < len(rotation):
            fill = rotation[0]
            placed = fill.place(inventory, item, units)
            units -= placed
            idle = 0 if placed else idle + 1
            if fill.done:
                rotation.popleft()
            else:
                rotation.rotate(-1)


class _ShelfFill:
    """One shelf being stocked, up to `fill_ratio` of its volume, no bin beyond
    `bin_fill_cap` of its own volume or `max_skus_per_bin` SKUs. A chunk goes first to
    a bin that already holds its SKU, then to a part-filled bin, then to an empty one:
    opening a fresh bin for every small chunk would use up the bins' SKU places while
    their volume stays empty."""

    def __init__(self, shelf: InventoryShelf, config: GeneratorConfig) -> None:
        #: bins still below their cap, with the cap
        self.open = [(b, round(config.bin_fill_cap * b.volume_mm3)) for b in shelf.bins]
        self.left_mm3 = round(config.fill_ratio * sum(b.volume_mm3 for b in shelf.bins))
        self.max_skus = config.max_skus_per_bin
        self.done = False

    def place(self, inventory: Inventory, item: Sku, units: int) -> int:
        size = item.unit_volume_mm3
        if self.left_mm3 < size:
            return 0
        candidates = []
        for b, cap in self.open:
            held = b.quantity(item.id)
            if not held and len(b.contents) >= self.max_skus:
                continue
            fits = b.fits(item)
            room = min((cap - b.used_volume_mm3) // size, fits)
            if b.empty:
                room = max(room, min(1, fits))  # a bulky unit may exceed the cap
            if room > 0:
                candidates.append(((held > 0, not b.empty, room), b, room))
        candidates.sort(key=lambda c: c[0], reverse=True)
        placed = 0
        for _, b, room in candidates:
            if placed == units or self.left_mm3 < size:
                break
            quantity = min(units - placed, room, max(1, self.left_mm3 // size))
            inventory.put(b.label, item.id, quantity)
            placed += quantity
            self.left_mm3 -= quantity * size
        self.open = [(b, cap) for b, cap in self.open if b.used_volume_mm3 < cap]
        self.done = self.left_mm3 <= 0 or all(len(b.contents) >= self.max_skus for b, _ in self.open)
        return placed


def _until(stream: Iterator[Order] | Iterator[InboundNote], end: float) -> Iterator:
    for item in stream:
        if item.created > end:
            return
        yield item


def _draw_distinct(rng: np.random.Generator, cdf: np.ndarray, k: int) -> list[int]:
    """k distinct indices drawn by popularity (re-drawing repeats), in draw order."""
    chosen: dict[int, None] = {}
    while len(chosen) < k:
        for i in np.searchsorted(cdf, rng.random(k - len(chosen)), side="right").tolist():
            chosen.setdefault(min(i, len(cdf) - 1))
    return list(chosen)[:k]


def _cdf(popularity: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(popularity)
    cdf[-1] = 1.0
    return cdf


def order_stream(catalogue: Catalogue, popularity: np.ndarray, rng: np.random.Generator,
                 config: GeneratorConfig, start: float = 0.0) -> Iterator[Order]:
    """An endless stream of orders, ids 'O0000001'..., in order of creation time."""
    if config.orders_per_hour <= 0:
        return
    ids, cdf = catalogue.ids(), _cdf(popularity)
    mean_gap = 3600.0 / config.orders_per_hour
    now, n = start, 0
    while True:
        now += rng.exponential(mean_gap)
        n += 1
        k = min(int(rng.geometric(config.line_stop)), config.max_lines, len(ids))
        picks = _draw_distinct(rng, cdf, k)
        quantities = np.minimum(rng.geometric(config.single_unit_share, k), config.max_quantity).tolist()
        priority = 1 if rng.random() < config.express_share else 0
        cutoff = now + rng.uniform(*config.cutoff_after_s) if rng.random() < config.cutoff_share else None
        yield Order(id=f"O{n:07d}", lines=tuple(OrderLine(ids[i], q) for i, q in zip(picks, quantities)),
                    created=now, priority=priority, cutoff=cutoff)


def customer_stream(rng: np.random.Generator) -> Iterator[Customer]:
    """Endless synthetic customers: a name and an address always, a reference, phone and
    email mostly; plainly fictitious so nobody mistakes demo data for a person's."""
    n = 0
    while True:
        n += 1
        first, last = _FIRST_NAMES[rng.integers(len(_FIRST_NAMES))], _LAST_NAMES[rng.integers(len(_LAST_NAMES))]
        address = (f"{rng.integers(1, 200)} {_STREETS[rng.integers(len(_STREETS))]}, "
                   f"{rng.integers(10000, 100000)} {_TOWNS[rng.integers(len(_TOWNS))]}")
        has_reference, has_phone, has_email = (rng.random(3) < (0.5, 0.7, 0.8)).tolist()
        yield Customer(name=f"{first} {last}", address=address,
                       reference=f"C-{n:06d}" if has_reference else None,
                       phone=f"+1 555 01{rng.integers(0, 100):02d}" if has_phone else None,
                       email=f"{first.lower()}.{last.lower()}{n}@example.com" if has_email else None)


def inbound_stream(catalogue: Catalogue, popularity: np.ndarray, rng: np.random.Generator,
                   config: GeneratorConfig, out_of_stock: set[str] = frozenset(),
                   start: float = 0.0) -> Iterator[InboundNote]:
    """An endless stream of inbound notes, ids 'IN000001'...; replenishment follows
    popularity, and lines for SKUs out of stock get priority 1."""
    if config.inbound_notes_per_hour <= 0:
        return
    ids, cdf = catalogue.ids(), _cdf(popularity)
    mean_gap = 3600.0 / config.inbound_notes_per_hour
    now, n = start, 0
    while True:
        now += rng.exponential(mean_gap)
        n += 1
        k = min(int(rng.geometric(1.0 / max(config.inbound_mean_lines, 1.0))), len(ids))
        lines = []
        for i in _draw_distinct(rng, cdf, k):
            item = catalogue[ids[i]]
            litres = rng.uniform(*config.inbound_line_litres)
            quantity = max(1, int(litres // item.unit_volume_l))
            lines.append(InboundLine(item.id, quantity, 1 if item.id in out_of_stock else None))
        yield InboundNote(id=f"IN{n:06d}", lines=tuple(lines), created=now)
