"""The domain's exceptions.

Each one carries the facts an operator or a caller needs (which bin, which SKU, how
many were asked for and how many there are) both as attributes, so code can react,
and in the message, so a log line alone explains what went wrong.
"""

from __future__ import annotations

from numbers import Integral
from typing import Callable


class DomainError(Exception):
    """Base of every error raised by fleet.domain."""


class InvalidQuantity(DomainError, ValueError):
    def __init__(self, quantity: object, what: str) -> None:
        self.quantity = quantity
        super().__init__(f"{what}: quantity must be a positive whole number, got {quantity!r}")


class UnknownSku(DomainError, LookupError):
    def __init__(self, sku: str) -> None:
        self.sku = sku
        super().__init__(f"unknown SKU {sku!r}: it is not in the catalogue")


class UnknownBin(DomainError, LookupError):
    def __init__(self, label: str) -> None:
        self.label = label
        super().__init__(f"unknown bin {label!r}: no shelf in the inventory has a bin with this label")


class UnknownShelf(DomainError, LookupError):
    def __init__(self, shelf: str) -> None:
        self.shelf = shelf
        super().__init__(f"unknown shelf {shelf!r}")


class InsufficientStock(DomainError):
    def __init__(self, label: str, sku: str, requested: int, available: int) -> None:
        self.label, self.sku, self.requested, self.available = label, sku, requested, available
        super().__init__(
            f"bin {label}: cannot take {requested} x {sku}, it holds only {available}"
        )


class BinCapacityExceeded(DomainError):
    """`limit` says which capacity ran out ("volume" or "weight"); `fits` how many would fit."""

    def __init__(self, label: str, sku: str, requested: int, fits: int, limit: str, detail: str) -> None:
        self.label, self.sku, self.requested, self.fits, self.limit = label, sku, requested, fits, limit
        super().__init__(
            f"bin {label}: cannot put {requested} x {sku}, {limit} capacity exceeded ({detail}); {fits} would fit"
        )


class NoBoxFits(DomainError):
    def __init__(self, volume_l: float, largest: str, largest_usable_l: float) -> None:
        self.volume_l = volume_l
        super().__init__(
            f"no order box fits {volume_l:.2f} L of items: the largest, {largest!r}, "
            f"takes {largest_usable_l:.2f} L; split the order"
        )


class OrderShelfError(DomainError):
    """Misuse of an order shelf's slots (occupied slot, unknown slot, box too large)."""


class OrderBoxError(DomainError):
    """Putting into an order box goods its order does not ask for, or more than asked."""


class InvalidTransition(DomainError):
    """A status change that the life cycle of an order, note or task does not allow."""

    def __init__(self, what: str, current: object, new: object, allowed: object) -> None:
        self.current, self.new = current, new
        super().__init__(f"{what}: cannot go from {current} to {new}; allowed from {current}: {allowed}")


class ShelfHandlingError(DomainError):
    """Lifting a shelf that is already carried, or lowering one that is not."""


def check_quantity(quantity: object, what: str | Callable[[], str]) -> int:
    """Accept a positive whole number (Python or numpy int, never bool or float).

    Floats are refused even when whole: stock counts units, and a 2.0 arriving from
    a scanner or a JSON body is a sign of a unit mix-up worth surfacing. `what` may be
    a function, so hot paths build the message only when there is an error.
    """
    if type(quantity) is int and quantity > 0:  # the common case, without the ABC check
        return quantity
    if isinstance(quantity, bool) or not isinstance(quantity, Integral) or quantity <= 0:
        raise InvalidQuantity(quantity, what if isinstance(what, str) else what())
    return int(quantity)
