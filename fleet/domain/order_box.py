"""Order boxes: the box an order is picked into, and how its size is chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

from fleet.domain.errors import NoBoxFits, OrderBoxError, check_quantity
from fleet.domain.order import Order
from fleet.domain.sku import MG_PER_KG, Sku

#: Items never fill a box completely; this share of the inner volume is usable.
PACKING_EFFICIENCY = 0.8


@dataclass(frozen=True, slots=True)
class BoxType:
    name: str
    inner_volume_l: float
    tare_weight_kg: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a box type needs a name")
        if self.inner_volume_l <= 0:
            raise ValueError(f"box type {self.name!r}: inner volume must be positive, got {self.inner_volume_l}")
        if self.tare_weight_kg < 0:
            raise ValueError(f"box type {self.name!r}: tare weight must not be negative")


#: Typical e-commerce shipping cartons, smallest first.
BOX_TYPES: tuple[BoxType, ...] = (
    BoxType("S", 4.0, 0.15),
    BoxType("M", 12.0, 0.3),
    BoxType("L", 27.0, 0.5),
    BoxType("XL", 48.0, 0.8),
)


def choose_box_type(volume_l: float, box_types: Sequence[BoxType] = BOX_TYPES,
                    efficiency: float = PACKING_EFFICIENCY) -> BoxType:
    """The smallest box whose usable volume holds `volume_l` litres of items."""
    if not box_types:
        raise ValueError("no box types to choose from")
    if not volume_l > 0:
        raise ValueError(f"an order box is chosen for a positive item volume, got {volume_l!r}")
    if not 0 < efficiency <= 1:
        raise ValueError(f"packing efficiency must be in (0, 1], got {efficiency}")
    by_size = sorted(box_types, key=lambda b: b.inner_volume_l)
    for box_type in by_size:
        if volume_l <= box_type.inner_volume_l * efficiency:
            return box_type
    largest = by_size[-1]
    raise NoBoxFits(volume_l, largest.name, largest.inner_volume_l * efficiency)


@dataclass(eq=False)
class OrderBox:
    """A labelled box holding one order's items as they are picked."""

    label: str
    box_type: BoxType
    order_id: str
    required: Mapping[str, int]
    _picked: dict[str, int] = field(default_factory=dict, repr=False)
    _items_weight_mg: int = field(default=0, repr=False)

    @classmethod
    def for_order(cls, order: Order, box_type: BoxType, label: str) -> "OrderBox":
        return cls(label, box_type, order.id, MappingProxyType({l.sku: l.quantity for l in order.lines}))

    @property
    def picked(self) -> Mapping[str, int]:
        return MappingProxyType(self._picked)

    def missing(self, sku: str) -> int:
        return self.required.get(sku, 0) - self._picked.get(sku, 0)

    @property
    def complete(self) -> bool:
        return all(self._picked.get(sku, 0) == qty for sku, qty in self.required.items())

    @property
    def weight_kg(self) -> float:
        return self.box_type.tare_weight_kg + self._items_weight_mg / MG_PER_KG

    def put(self, sku: Sku, quantity: int) -> None:
        """Record goods placed in the box (pick-to-light confirm)."""
        quantity = check_quantity(quantity, f"put {sku.id} into order box {self.label}")
        if sku.id not in self.required:
            raise OrderBoxError(f"order box {self.label} (order {self.order_id}) does not ask for {sku.id}")
        if quantity > self.missing(sku.id):
            raise OrderBoxError(
                f"order box {self.label} (order {self.order_id}): cannot put {quantity} x {sku.id}, "
                f"only {self.missing(sku.id)} still missing of {self.required[sku.id]}"
            )
        self._picked[sku.id] = self._picked.get(sku.id, 0) + quantity
        self._items_weight_mg += quantity * sku.unit_weight_mg
