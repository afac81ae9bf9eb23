"""Mobile shelves (pods): what every shelf shares, and the inventory shelf with its bins.

A shelf's stock is changed only through `fleet.domain.inventory.Inventory`, which keeps
the "where is SKU X" index and the capacity rules; a bin therefore exposes its contents
read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from maps.model import Cell

from fleet.domain.errors import ShelfHandlingError
from fleet.domain.sku import MG_PER_KG, MM3_PER_LITRE, Sku, to_mg


@dataclass(frozen=True, slots=True)
class ShelfSpec:
    """One shelf model: outer size, levels, compartments per level and load limits.

    The compartments of a level share its height and width equally; the bottom
    `clearance_mm` is the open space the robot drives into, so it holds no goods.
    `bins_per_level` is either one count for every level or one count per level,
    bottom first (small-parts shelves often have finer compartments up top).
    """

    shelf_class: str = "standard"
    levels: int = 4
    bins_per_level: int | tuple[int, ...] = 3
    width_mm: int = 960
    depth_mm: int = 960
    height_mm: int = 1600
    clearance_mm: int = 400
    # 4 levels x 135 kg + the 45 kg frame = 585 kg: a full shelf stays within the
    # 600 kg payload of the robots that carry it.
    level_load_kg: float = 135.0
    own_weight_kg: float = 45.0

    def __post_init__(self) -> None:
        if not self.shelf_class:
            raise ValueError("shelf spec needs a non-empty shelf class")
        if not isinstance(self.levels, int) or self.levels < 1:
            raise ValueError(f"shelf spec {self.shelf_class!r}: levels must be an integer >= 1, got {self.levels!r}")
        counts = self.counts()
        if len(counts) != self.levels:
            raise ValueError(
                f"shelf spec {self.shelf_class!r}: {len(counts)} bin counts given for {self.levels} levels"
            )
        if any(not isinstance(c, int) or c < 1 for c in counts):
            raise ValueError(f"shelf spec {self.shelf_class!r}: every level needs >= 1 bin, got {counts}")
        for name in ("width_mm", "depth_mm", "height_mm", "level_load_kg"):
            if getattr(self, name) <= 0:
                raise ValueError(f"shelf spec {self.shelf_class!r}: {name} must be positive")
        if self.own_weight_kg < 0:
            raise ValueError(f"shelf spec {self.shelf_class!r}: own_weight_kg must not be negative")
        if not 0 <= self.clearance_mm < self.height_mm:
            raise ValueError(f"shelf spec {self.shelf_class!r}: clearance_mm must be in [0, height_mm)")

    def counts(self) -> tuple[int, ...]:
        """Compartments on each level, bottom (level 1) first."""
        if isinstance(self.bins_per_level, int):
            return (self.bins_per_level,) * self.levels
        return tuple(self.bins_per_level)

    def compartment(self, level: int) -> tuple[int, int]:
        """(volume in mm3, weight limit in mg) of one compartment on `level` (1-based)."""
        count = self.counts()[level - 1]
        level_height = (self.height_mm - self.clearance_mm) / self.levels
        volume = round(self.width_mm / count * self.depth_mm * level_height)
        return volume, to_mg(self.level_load_kg) // count


STANDARD = ShelfSpec()
SMALL_PARTS = ShelfSpec(shelf_class="small-parts", levels=5, bins_per_level=6, level_load_kg=100.0)


def slot_label(shelf_id: str, level: int, index: int, letter: str) -> str:
    """'SH0012-L2-B3': shelf, level (1 = bottom), compartment from the left, 1-based."""
    return f"{shelf_id}-L{level}-{letter}{index}"


def check_shelf_id(shelf_id: object) -> str:
    if not isinstance(shelf_id, str) or not shelf_id or any(ch.isspace() for ch in shelf_id):
        raise ValueError(f"shelf id must be a non-empty string without spaces, got {shelf_id!r}")
    return shelf_id


@dataclass(eq=False, kw_only=True)
class Shelf:
    """What every mobile shelf has: identity, class, where it lives, where it is, who carries it."""

    id: str
    home: Cell
    shelf_class: str
    own_weight_kg: float
    cell: Cell | None = None
    robot: str | None = None

    def __post_init__(self) -> None:
        check_shelf_id(self.id)
        if self.cell is None:
            self.cell = self.home

    @property
    def carried(self) -> bool:
        return self.robot is not None

    def lift(self, robot: str) -> None:
        if self.robot is not None:
            raise ShelfHandlingError(f"shelf {self.id} is already carried by robot {self.robot}; {robot} cannot lift it")
        self.robot = robot

    def lower(self, cell: Cell) -> None:
        """Set the shelf down where its robot stands."""
        if self.robot is None:
            raise ShelfHandlingError(f"shelf {self.id} is not carried, so it cannot be lowered at {cell}")
        self.robot = None
        self.cell = cell

    @property
    def at_home(self) -> bool:
        return self.robot is None and self.cell == self.home


@dataclass(eq=False, slots=True)
class Bin:
    """A labelled compartment of an inventory shelf with its capacity and stock.

    `used_volume_mm3` and `used_weight_mg` are kept by the inventory together with the
    contents, so a capacity check never has to walk the catalogue.
    """

    label: str
    shelf_id: str
    level: int
    index: int
    volume_mm3: int
    weight_mg: int
    used_volume_mm3: int = 0
    used_weight_mg: int = 0
    _contents: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def contents(self) -> Mapping[str, int]:
        return MappingProxyType(self._contents)

    @property
    def capacity_volume_l(self) -> float:
        return self.volume_mm3 / MM3_PER_LITRE

    @property
    def capacity_weight_kg(self) -> float:
        return self.weight_mg / MG_PER_KG

    @property
    def free_volume_mm3(self) -> int:
        return self.volume_mm3 - self.used_volume_mm3

    @property
    def free_weight_mg(self) -> int:
        return self.weight_mg - self.used_weight_mg

    @property
    def empty(self) -> bool:
        return not self._contents

    def quantity(self, sku: str) -> int:
        return self._contents.get(sku, 0)

    def fits(self, item: Sku) -> int:
        """Units of `item` that still fit, by volume and by weight."""
        return min(self.free_volume_mm3 // item.unit_volume_mm3, self.free_weight_mg // item.unit_weight_mg)


@dataclass(eq=False, kw_only=True)
class InventoryShelf(Shelf):
    bins: tuple[Bin, ...] = ()

    @classmethod
    def build(cls, shelf_id: str, home: Cell, spec: ShelfSpec = STANDARD) -> "InventoryShelf":
        check_shelf_id(shelf_id)
        bins = []
        for level, count in enumerate(spec.counts(), start=1):
            volume, weight = spec.compartment(level)
            for index in range(1, count + 1):
                bins.append(Bin(slot_label(shelf_id, level, index, "B"), shelf_id, level, index, volume, weight))
        return cls(id=shelf_id, home=home, shelf_class=spec.shelf_class, own_weight_kg=spec.own_weight_kg,
                   bins=tuple(bins))

    @property
    def contents_weight_kg(self) -> float:
        return sum(b.used_weight_mg for b in self.bins) / MG_PER_KG

    @property
    def total_weight_kg(self) -> float:
        """What the robot lifts: the shelf itself plus its goods."""
        return self.own_weight_kg + self.contents_weight_kg

    @property
    def empty(self) -> bool:
        return all(b.empty for b in self.bins)

    def stock(self) -> dict[str, int]:
        """Units of each SKU on this shelf, over all its bins."""
        total: dict[str, int] = {}
        for b in self.bins:
            for sku, qty in b._contents.items():
                total[sku] = total.get(sku, 0) + qty
        return total

