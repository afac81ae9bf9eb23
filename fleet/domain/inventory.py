"""Where the stock is: the bins of every inventory shelf, and the rules for changing them.

All stock changes pass through one primitive that updates a bin's contents, its used
volume and weight, the "where is SKU X" index, the per-SKU totals and the per-shelf
unit counts together. Checks run before that primitive is called, and a batch that
fails half-way is rolled back through the same primitive, so no error leaves a
change half-applied.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple, Sequence

from fleet.domain.errors import (
    BinCapacityExceeded,
    InsufficientStock,
    UnknownBin,
    UnknownShelf,
    check_quantity,
)
from fleet.domain.shelf import Bin, InventoryShelf
from fleet.domain.sku import MG_PER_KG, MM3_PER_LITRE, Catalogue, Sku


class Put(NamedTuple):
    label: str
    sku: str
    quantity: int


class Take(NamedTuple):
    label: str
    sku: str
    quantity: int


class Inventory:
    """The inventory shelves, their bins and the stock in them, indexed by SKU."""

    def __init__(self, catalogue: Catalogue, shelves: Iterable[InventoryShelf] = ()) -> None:
        self.catalogue = catalogue
        self._shelves: dict[str, InventoryShelf] = {}
        self._bins: dict[str, Bin] = {}
        self._where: dict[str, dict[str, int]] = {}
        self._totals: dict[str, int] = {}
        self._units_on_shelf: dict[str, int] = {}
        self._stock_on_shelf: dict[str, dict[str, int]] = {}  # shelf -> SKU -> units (InventoryShelf.stock, kept)
        self._by_class: dict[str, list[InventoryShelf]] = {}
        for shelf in shelves:
            self.add_shelf(shelf)

    def add_shelf(self, shelf: InventoryShelf) -> None:
        """Register an empty shelf; stock arrives through put(), which keeps the index right."""
        if not isinstance(shelf, InventoryShelf):
            raise TypeError(f"the inventory holds inventory shelves, got {type(shelf).__name__} {getattr(shelf, 'id', shelf)!r}")
        if shelf.id in self._shelves:
            raise ValueError(f"shelf {shelf.id} is already in the inventory")
        if not shelf.empty:
            raise ValueError(f"shelf {shelf.id} must be empty when added; put its stock in through the inventory")
        clashes = [b.label for b in shelf.bins if b.label in self._bins]
        if clashes or len({b.label for b in shelf.bins}) != len(shelf.bins):
            raise ValueError(f"shelf {shelf.id}: bin labels not unique in the inventory: {clashes or 'within the shelf'}")
        self._shelves[shelf.id] = shelf
        self._bins.update((b.label, b) for b in shelf.bins)
        self._units_on_shelf[shelf.id] = 0
        self._stock_on_shelf[shelf.id] = {}
        self._by_class.setdefault(shelf.shelf_class, []).append(shelf)

    # --- look-ups ---------------------------------------------------------------------
    def shelf_stock(self, shelf_id: str) -> Mapping[str, int]:
        """Units of each SKU on the shelf, as `InventoryShelf.stock` adds them up from its
        bins, but kept up to date with every change: the scheduler asks it of every shelf
        on its way to a port at every planning cycle. A live read-only view."""
        return MappingProxyType(self._stock_on_shelf[shelf_id])

    def shelf(self, shelf_id: str) -> InventoryShelf:
        try:
            return self._shelves[shelf_id]
        except (KeyError, TypeError):
            raise UnknownShelf(shelf_id) from None

    def bin(self, label: str) -> Bin:
        try:
            return self._bins[label]
        except (KeyError, TypeError):
            raise UnknownBin(label) from None

    def shelves(self) -> list[InventoryShelf]:
        return list(self._shelves.values())

    def bins(self) -> list[Bin]:
        return list(self._bins.values())

    # --- queries ----------------------------------------------------------------------
    def where(self, sku: str) -> dict[str, int]:
        """Bins holding the SKU, label -> quantity (a copy)."""
        return dict(self._where.get(self.catalogue[sku].id, {}))

    def stock(self, sku: str) -> int:
        return self._totals.get(self.catalogue[sku].id, 0)

    def totals(self) -> dict[str, int]:
        """Units in stock per SKU, for every SKU that has any."""
        return dict(self._totals)

    def stock_by_bin(self) -> dict[str, dict[str, int]]:
        """Contents of every non-empty bin: a comparable picture of the whole stock."""
        return {label: dict(b._contents) for label, b in self._bins.items() if b._contents}

    def fits(self, label: str, sku: str) -> int:
        """Units of the SKU that can still go into the bin, by volume and by weight."""
        return self.bin(label).fits(self.catalogue[sku])

    def shelf_fits(self, shelf_id: str, sku: str) -> int:
        """Units of the SKU that can still go onto the shelf, over all its bins."""
        item = self.catalogue[sku]
        return sum(b.fits(item) for b in self.shelf(shelf_id).bins)

    def shelves_holding(self, sku: str, min_free: int = 1) -> list[InventoryShelf]:
        """Shelves that already hold the SKU and have room for at least `min_free` more
        units of it (stow, step 3: the first choice for incoming goods)."""
        min_free = check_quantity(min_free, f"shelves holding {sku} with free capacity")
        item = self.catalogue[sku]
        shelf_ids = dict.fromkeys(self._bins[label].shelf_id for label in self._where.get(sku, {}))
        found = []
        for shelf_id in shelf_ids:
            shelf = self._shelves[shelf_id]
            if sum(b.fits(item) for b in shelf.bins) >= min_free:
                found.append(shelf)
        return found

    def empty_shelves(self, shelf_class: str) -> list[InventoryShelf]:
        return [s for s in self._by_class.get(shelf_class, []) if self._units_on_shelf[s.id] == 0]

    def shelf_classes(self) -> list[str]:
        return list(self._by_class)

    # --- changes ----------------------------------------------------------------------
    def put(self, label: str, sku: str, quantity: int) -> None:
        self.apply([Put(label, sku, quantity)])

    def take(self, label: str, sku: str, quantity: int) -> None:
        self.apply([Take(label, sku, quantity)])

    def move(self, source: str, target: str, sku: str, quantity: int) -> None:
        """Move stock between bins (a re-slot); both halves happen or neither."""
        self.apply([Take(source, sku, quantity), Put(target, sku, quantity)])

    def apply(self, changes: Sequence[Put | Take]) -> None:
        """Apply the changes in order, all or nothing: on the first error every change
        already made is undone and the error is raised."""
        done: list[tuple[Bin, Sku, int]] = []
        try:
            for change in changes:
                bin_, item, delta = self._check(change)
                self._change(bin_, item, delta)
                done.append((bin_, item, delta))
        except BaseException:
            for bin_, item, delta in reversed(done):
                self._change(bin_, item, -delta)
            raise

    def _check(self, change: Put | Take) -> tuple[Bin, Sku, int]:
        if not isinstance(change, (Put, Take)):
            raise TypeError(f"a stock change must be Put or Take, got {change!r}")
        quantity = check_quantity(change.quantity, lambda: (
            f"{'put into' if isinstance(change, Put) else 'take from'} bin {change.label}: {change.sku}"))
        item = self.catalogue[change.sku]
        bin_ = self.bin(change.label)
        if isinstance(change, Take):
            held = bin_._contents.get(item.id, 0)
            if quantity > held:
                raise InsufficientStock(bin_.label, item.id, quantity, held)
            return bin_, item, -quantity
        by_volume = bin_.free_volume_mm3 // item.unit_volume_mm3
        by_weight = bin_.free_weight_mg // item.unit_weight_mg
        if quantity > by_volume:
            raise BinCapacityExceeded(
                bin_.label, item.id, quantity, min(by_volume, by_weight), "volume",
                f"{bin_.free_volume_mm3 / MM3_PER_LITRE:g} L free, "
                f"{quantity} x {item.unit_volume_l:g} L = {quantity * item.unit_volume_mm3 / MM3_PER_LITRE:g} L needed",
            )
        if quantity > by_weight:
            raise BinCapacityExceeded(
                bin_.label, item.id, quantity, min(by_volume, by_weight), "weight",
                f"{bin_.free_weight_mg / MG_PER_KG:g} kg free, "
                f"{quantity} x {item.unit_weight_kg:g} kg = {quantity * item.unit_weight_mg / MG_PER_KG:g} kg needed",
            )
        return bin_, item, quantity

    def _change(self, bin_: Bin, item: Sku, delta: int) -> None:
        """The one primitive that changes stock; callers have checked `delta` is allowed."""
        new = bin_._contents.get(item.id, 0) + delta
        where = self._where.setdefault(item.id, {})
        if new:
            bin_._contents[item.id] = new
            where[bin_.label] = new
        else:
            del bin_._contents[item.id]
            del where[bin_.label]
            if not where:
                del self._where[item.id]
        bin_.used_volume_mm3 += delta * item.unit_volume_mm3
        bin_.used_weight_mg += delta * item.unit_weight_mg
        total = self._totals.get(item.id, 0) + delta
        if total:
            self._totals[item.id] = total
        else:
            del self._totals[item.id]
        self._units_on_shelf[bin_.shelf_id] += delta
        on_shelf = self._stock_on_shelf[bin_.shelf_id]
        if units := on_shelf.get(item.id, 0) + delta:
            on_shelf[item.id] = units
        else:
            del on_shelf[item.id]

