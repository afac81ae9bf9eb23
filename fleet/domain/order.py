"""Customer orders: what to pick, how urgent, and where each order stands."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from fleet.domain.errors import check_quantity
from fleet.domain.lifecycle import advance
from fleet.domain.sku import MG_PER_KG, MM3_PER_LITRE, Catalogue


class OrderStatus(str, Enum):
    PENDING = "pending"  # received, waiting for its batch
    RELEASED = "released"  # in a batch, given to a pick port
    PICKING = "picking"  # its order box is on an order shelf at the port
    PICKED = "picked"  # every line is in the box
    PACKED = "packed"  # the box has reached the packing area
    CANCELLED = "cancelled"


_ORDER_MOVES = {
    OrderStatus.PENDING: frozenset({OrderStatus.RELEASED, OrderStatus.CANCELLED}),
    # a released order can fall back to pending when its port closes before picking starts
    OrderStatus.RELEASED: frozenset({OrderStatus.PICKING, OrderStatus.PENDING, OrderStatus.CANCELLED}),
    OrderStatus.PICKING: frozenset({OrderStatus.PICKED, OrderStatus.CANCELLED}),
    OrderStatus.PICKED: frozenset({OrderStatus.PACKED}),
}


@dataclass(frozen=True, slots=True)
class OrderLine:
    sku: str
    quantity: int

    def __post_init__(self) -> None:
        if not isinstance(self.sku, str) or not self.sku:
            raise ValueError(f"order line needs a SKU id, got {self.sku!r}")
        object.__setattr__(self, "quantity", check_quantity(self.quantity, f"order line for {self.sku}"))


@dataclass(eq=True, kw_only=True)
class Order:
    """An order. Higher `priority` is more urgent; times are clock seconds; `cutoff`, if
    set, is when the order must be picked to make its carrier."""

    id: str
    lines: tuple[OrderLine, ...]
    created: float
    priority: int = 0
    cutoff: float | None = None
    status: OrderStatus = OrderStatus.PENDING
    updated: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"order id must be a non-empty string, got {self.id!r}")
        self.lines = tuple(self.lines)
        if not self.lines:
            raise ValueError(f"order {self.id} has no lines")
        skus = [line.sku for line in self.lines]
        if len(set(skus)) != len(skus):
            twice = sorted({s for s in skus if skus.count(s) > 1})
            raise ValueError(f"order {self.id}: SKU(s) {', '.join(twice)} on more than one line; merge the lines")
        if self.cutoff is not None and self.cutoff < self.created:
            raise ValueError(f"order {self.id}: cut-off {self.cutoff} is before its creation {self.created}")
        if self.updated is None:
            self.updated = self.created

    @property
    def units(self) -> int:
        return sum(line.quantity for line in self.lines)

    def volume_l(self, catalogue: Catalogue) -> float:
        """Volume of all its items (what the order box must hold)."""
        return sum(line.quantity * catalogue[line.sku].unit_volume_mm3 for line in self.lines) / MM3_PER_LITRE

    def weight_kg(self, catalogue: Catalogue) -> float:
        return sum(line.quantity * catalogue[line.sku].unit_weight_mg for line in self.lines) / MG_PER_KG

    def set_status(self, status: OrderStatus, at: float) -> None:
        self.status = advance(f"order {self.id}", self.status, status, _ORDER_MOVES)
        self.updated = at
