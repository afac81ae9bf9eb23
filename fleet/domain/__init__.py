"""The warehouse's domain model: SKUs, shelves and bins, stock, stations, orders,
inbound notes, order boxes and tasks, plus a seeded generator of starting states.

It holds state and enforces the rules on it (capacity, no negative stock, status life
cycles); it decides nothing about robots or routes. Times are clock seconds handed in
by the caller.
"""

from fleet.domain.errors import (
    BinCapacityExceeded,
    DomainError,
    InsufficientStock,
    InvalidQuantity,
    InvalidTransition,
    NoBoxFits,
    OrderBoxError,
    OrderShelfError,
    ShelfHandlingError,
    UnknownBin,
    UnknownShelf,
    UnknownSku,
)
from fleet.domain.generator import GeneratorConfig, Scenario, generate
from fleet.domain.inbound import InboundLine, InboundNote, InboundStatus
from fleet.domain.inventory import Inventory, Put, Take
from fleet.domain.order import Order, OrderLine, OrderStatus
from fleet.domain.order_box import BOX_TYPES, BoxType, OrderBox, choose_box_type
from fleet.domain.order_shelf import ORDER, OrderShelf
from fleet.domain.shelf import SMALL_PARTS, STANDARD, Bin, InventoryShelf, Shelf, ShelfSpec
from fleet.domain.sku import Catalogue, Sku
from fleet.domain.station import Station, stations_of
from fleet.domain.task import Task, TaskKind, TaskStatus

__all__ = [
    "BOX_TYPES", "Bin", "BinCapacityExceeded", "BoxType", "Catalogue", "DomainError", "GeneratorConfig",
    "InboundLine", "InboundNote", "InboundStatus", "InsufficientStock", "InvalidQuantity", "InvalidTransition",
    "Inventory", "InventoryShelf", "NoBoxFits", "ORDER", "Order", "OrderBox", "OrderBoxError", "OrderLine",
    "OrderShelf", "OrderShelfError", "OrderStatus", "Put", "SMALL_PARTS", "STANDARD", "Scenario", "Shelf",
    "ShelfHandlingError", "ShelfSpec", "Sku", "Station", "Take", "Task", "TaskKind", "TaskStatus", "UnknownBin",
    "UnknownShelf", "UnknownSku", "choose_box_type", "generate", "stations_of",
]
