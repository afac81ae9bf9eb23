"""Customer orders: what to pick, how urgent, and where each order stands."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

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


class CustomerField(NamedTuple):
    """How long a customer field may be, the pattern its text must match (and how to say
    it to the sender), and whether an order's customer must have it."""

    limit: int
    pattern: re.Pattern | None = None
    hint: str = ""
    required: bool = False


#: Name and address are what the packing label needs; reference, phone and email are optional.
CUSTOMER_FIELDS: dict[str, CustomerField] = {
    "name": CustomerField(100, required=True),
    "address": CustomerField(300, required=True),
    "reference": CustomerField(64),
    "phone": CustomerField(32, re.compile(r"\+?[0-9][0-9 ()./-]*"), "digits, spaces and + ( ) - . /"),
    "email": CustomerField(254, re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+"), "name@domain.tld"),
}
#: Shown to someone who packs and labels; the other fields are the customer's contact data.
LABEL_FIELDS = ("name", "address", "reference")
#: Bidirectional embeddings, overrides and isolates: they make a label read differently
#: from what is stored.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_customer_field(field: str, value: object) -> str | None:
    """A customer field's text with outer spaces stripped (None when absent or blank and
    optional). Raises ValueError naming the field and the fault, never echoing the value:
    it is personal data and error messages end up in logs."""
    limit, pattern, hint, required = CUSTOMER_FIELDS[field]
    if value is None:
        if required:
            raise ValueError(f"customer {field} is required")
        return None
    if not isinstance(value, str):
        raise ValueError(f"customer {field} must be text, got {type(value).__name__}")
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS:
            raise ValueError(f"customer {field} contains a control character (U+{ord(ch):04X}) at position {i + 1}; "
                             "send plain text on one line")
    text = value.strip()
    if not text:
        if required:
            raise ValueError(f"customer {field} must not be blank")
        return None
    if len(text) > limit:
        raise ValueError(f"customer {field} has {len(text)} characters; at most {limit}")
    if pattern is not None and not pattern.fullmatch(text):
        raise ValueError(f"customer {field} is not a valid {field} ({hint})")
    return text


@dataclass(frozen=True, slots=True)
class Customer:
    """Who an order goes to: what the packing label needs, and how to reach them.
    Personal data: its repr hides it (an order in a log line must not carry it), and the
    service shows each role only the fields it needs (docs/service.md, roles)."""

    name: str
    address: str
    reference: str | None = None
    phone: str | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        for field in CUSTOMER_FIELDS:
            object.__setattr__(self, field, check_customer_field(field, getattr(self, field)))

    def __repr__(self) -> str:
        return "Customer(<personal data>)"

    def as_dict(self) -> dict[str, str | None]:
        return {field: getattr(self, field) for field in CUSTOMER_FIELDS}


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
    customer: Customer | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"order id must be a non-empty string, got {self.id!r}")
        if self.customer is not None and not isinstance(self.customer, Customer):
            raise ValueError(f"order {self.id}: customer must be a Customer, got {type(self.customer).__name__}")
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
