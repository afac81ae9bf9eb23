"""The scheduler as the service's work: orders and inbound notes in, robots' errands out,
and every stock movement, status and task written to the store.

The runtime's loop thread calls `advance` once per control cycle, right after motion
control ticked; HTTP requests reach the other methods through `Runtime.call`, so the
scheduler stays single-threaded. What a request hands in (orders, notes) is committed
before the scheduler sees it; what a terminal key books is committed before the request
is answered; what the scheduler changes on its own (statuses, tasks) is committed at the
end of the cycle it changed in.

Simulated operators (fleet.scheduler.operators, as in `fleet sim`) work every port no
person has taken over at the console's terminal; they can be switched off so people work
all ports.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from fleet.domain.generator import GeneratorConfig, Scenario, generate
from fleet.domain.inbound import InboundLine, InboundNote, InboundStatus
from fleet.domain.inventory import Inventory
from fleet.domain.order import Customer, Order, OrderLine, OrderStatus
from fleet.domain.task import Task
from fleet.motion import ErrandReport, MotionControl
from fleet.scheduler.kpis import scheduler_kpis
from fleet.scheduler.operators import OperatorTimes, SimulatedOperators
from fleet.scheduler.terminals import PickPresentation, ShortPick, StowPresentation, StowPut
from fleet.scheduler.workflows import Scheduler, SchedulerConfig
from fleet.service.config import Settings
from fleet.service.intake import Checked
from fleet.service.runtime import NotFound, OperatorError
from fleet.service.store import OPEN_NOTE, OPEN_ORDER, Bookings, Store
from maps.model import Cell, WarehouseMap

log = logging.getLogger(__name__)

FINAL_ORDER = frozenset({OrderStatus.PACKED, OrderStatus.CANCELLED})
#: Statuses of an order whose box stands on a put wall.
ON_PUT_WALL = frozenset({OrderStatus.RELEASED, OrderStatus.PICKING, OrderStatus.PICKED})
FINAL_NOTE = frozenset({InboundStatus.STOWED, InboundStatus.CANCELLED})


@dataclass
class Arrivals:
    """Generated orders and notes (a demo's customers), handed in when their time comes."""

    orders: list[Order] = field(default_factory=list)
    notes: list[InboundNote] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.orders.sort(key=lambda o: (o.created, o.id), reverse=True)  # due ones pop off the end
        self.notes.sort(key=lambda n: (n.created, n.id), reverse=True)

    def due(self, now: float) -> tuple[list[Order], list[InboundNote]]:
        orders, notes = [], []
        while self.orders and self.orders[-1].created <= now:
            orders.append(self.orders.pop())
        while self.notes and self.notes[-1].created <= now:
            notes.append(self.notes.pop())
        return orders, notes


def order_row(order: Order) -> dict:
    return {"id": order.id, "created": order.created, "priority": order.priority, "cutoff": order.cutoff,
            "status": order.status.value, "lines": [{"sku": line.sku, "quantity": line.quantity} for line in order.lines],
            "customer": order.customer.as_dict() if order.customer else None}


def note_row(note: InboundNote) -> dict:
    return {"id": note.id, "created": note.created, "priority": note.priority, "status": note.status.value,
            "lines": [{"sku": line.sku, "quantity": line.quantity, "priority": line.priority} for line in note.lines]}


def task_row(task: Task) -> dict:
    target = task.target if isinstance(task.target, str) else f"{task.target.x},{task.target.y}"
    return {"kind": task.kind.value, "target": target, "created": task.created, "priority": task.priority,
            "robot": task.robot, "shelf": task.shelf, "status": task.status.value, "reason": task.reason,
            "updated": task.updated}


class Warehouse:
    """Implements the runtime's `Work`."""

    def __init__(self, scheduler: Scheduler, store: Store, *, operators: OperatorTimes | None, seed: int = 0,
                 arrivals: Arrivals | None = None, stuck_after_s: float = 600.0) -> None:
        self.scheduler = scheduler
        self.store = store
        self.inventory: Inventory = scheduler.inventory
        self.arrivals = arrivals or Arrivals()
        self.stuck_after_s = stuck_after_s
        #: ports a person works from the console; simulated operators leave them alone
        self.manned: set[str] = set()
        self.operators = None if operators is None else \
            SimulatedOperators(self, operators, np.random.default_rng([seed, 6]))
        self._bookings = Bookings()
        self._order_status: dict[str, OrderStatus] = {}  # open orders -> status last written
        self._note_status: dict[str, InboundStatus] = {}
        self._tasks: dict[str, tuple[Task, tuple]] = {}  # unfinished tasks -> (task, what was written)
        self._alarms_raised = 0  # scheduler alarms already in the store
        #: Called on the loop thread at the end of every cycle (what readers are shown).
        self.after_cycle: list[Callable[[], None]] = []

    # --- start ----------------------------------------------------------------------------
    def restore(self, now: float) -> dict[str, int]:
        """Load the store's stock, shelf positions and open orders and notes, or write the
        stock the first time. A released order's box goes back to its put-wall slot with
        the units its lines say were picked, and picking goes on; complete order shelves
        go to packing. Returns what was restored."""
        if not self.store.has_inventory():
            self.store.book(Bookings(bins={b.label: (b.shelf_id, dict(b.contents)) for b in self.inventory.bins()}))
            return {"orders": 0, "notes": 0}
        self._load_stock(self.store.stock_by_bin())
        for shelf_id, row in self.store.shelves().items():
            if shelf_id in self.scheduler.shelves:
                where = row["robot"] if row["robot"] is not None else Cell(row["cell_x"], row["cell_y"])
                self.scheduler.restore_shelf(shelf_id, where, Cell(row["home_x"], row["home_y"]))
        self.store.fail_open_tasks("the service restarted; the scheduler planned anew", now)
        restored = {"orders": 0, "notes": 0}
        places = self.store.box_places()
        for status in OPEN_ORDER:
            after = None
            while rows := self.store.orders(status=status, limit=1000, after=after):
                after = rows[-1]["id"]
                for row in rows:
                    restored["orders"] += self._restore_order(row, places.get(row["id"]), now)
        self.scheduler.resume_packing(now)
        self.scheduler.resume_moves(now)
        for status in OPEN_NOTE:
            after = None
            while rows := self.store.notes(status=status, limit=1000, after=after):
                after = rows[-1]["id"]
                for row in rows:
                    restored["notes"] += self._restore_note(row)
        taken = self.store.taken_ids("orders", (o.id for o in self.arrivals.orders))
        self.arrivals.orders = [o for o in self.arrivals.orders if o.id not in taken]
        taken = self.store.taken_ids("notes", (n.id for n in self.arrivals.notes))
        self.arrivals.notes = [n for n in self.arrivals.notes if n.id not in taken]
        self.flush()
        return restored

    def _load_stock(self, stored: dict[str, dict[str, int]]) -> None:
        for b in self.inventory.bins():
            want = stored.get(b.label, {})
            for sku, quantity in list(b.contents.items()):
                if want.get(sku, 0) < quantity:
                    self.inventory.take(b.label, sku, quantity - want.get(sku, 0))
            for sku, quantity in want.items():
                if b.quantity(sku) < quantity:
                    self.inventory.put(b.label, sku, quantity - b.quantity(sku))

    def _restore_order(self, row: dict, place: tuple[str, str] | None, now: float) -> int:
        status = OrderStatus(row["status"])
        lines = tuple(OrderLine(line["sku"], line["quantity"]) for line in row["lines"])
        customer = Customer(**row["customer"]) if row["customer"] else None
        if status in ON_PUT_WALL and place is not None:
            order = Order(id=row["id"], lines=lines, created=row["created"], priority=row["priority"],
                          cutoff=row["cutoff"], status=status, updated=row["updated"], customer=customer)
            self.scheduler.restore_box(order, *place, {line["sku"]: line["picked"] for line in row["lines"]})
            self._order_status[order.id] = status
            return 1
        if any(line["picked"] for line in row["lines"]):  # a box the store does not place
            message = (f"order {row['id']} was being picked when the service stopped; its box holds "
                       f"{sum(line['picked'] for line in row['lines'])} units: finish it by hand")
            log.warning("%s", message)
            self.scheduler.alarms.append((now, message))
            return 0
        order = Order(id=row["id"], lines=lines, created=row["created"], priority=row["priority"], cutoff=row["cutoff"],
                      customer=customer)
        self.scheduler.receive_order(order)
        self._order_status[order.id] = status  # the next flush writes "pending"
        return 1

    def _restore_note(self, row: dict) -> int:
        lines = tuple(InboundLine(line["sku"], line["quantity"] - line["stowed"], line["priority"])
                      for line in row["lines"] if line["quantity"] > line["stowed"])
        if not lines:
            return 0
        note = InboundNote(id=row["id"], lines=lines, created=row["created"], priority=row["priority"])
        self.scheduler.receive_inbound(note)
        self._note_status[note.id] = InboundStatus(row["status"])
        return 1

    # --- the control cycle (Work) ---------------------------------------------------------
    def advance(self, now: float, reports: list[ErrandReport]) -> None:
        self.scheduler.advance(now, reports)
        orders, notes = self.arrivals.due(now)
        if orders or notes:
            self._receive_generated(orders, notes)
        if self.operators is not None:
            self.operators.work(now, skip=self.manned)
        self.flush()
        for publish in self.after_cycle:
            publish()

    def flush(self) -> None:
        """Write what changed since the last flush, in one transaction."""
        b = self._bookings
        placed = []
        for order_id, written in list(self._order_status.items()):
            order = self.scheduler.orders[order_id]
            if order.status is not written:
                b.orders[order_id] = (order.status.value, order.updated)
                if order.status in ON_PUT_WALL and written not in ON_PUT_WALL:
                    placed.append(order_id)
                if order.status in FINAL_ORDER:
                    del self._order_status[order_id]
                else:
                    self._order_status[order_id] = order.status
        for note_id, written in list(self._note_status.items()):
            note = self.scheduler.notes[note_id]
            if note.status is not written:
                b.notes[note_id] = (note.status.value, note.updated)
                if note.status in FINAL_NOTE:
                    del self._note_status[note_id]
                else:
                    self._note_status[note_id] = note.status
        if placed:
            b.placed.update(self._box_places(placed))
        b.homes.update((shelf_id, (cell.x, cell.y)) for shelf_id, cell in self.scheduler.rehomed.items())
        self.scheduler.rehomed.clear()
        for task in self.live_tasks():
            self._tasks.setdefault(task.id, (task, ()))
        for task_id, (task, written) in list(self._tasks.items()):
            state = (task.status, task.robot, task.updated)
            if state != written:
                b.tasks[task_id] = task_row(task)
                self._tasks[task_id] = (task, state)
            if task.finished:
                del self._tasks[task_id]
        if b:
            self.store.book(b)
            self._bookings = Bookings()
        for at, message in self.scheduler.alarms[self._alarms_raised:]:
            self.store.raise_alarm(at, "scheduler", "warning", message, event=True)
        self._alarms_raised = len(self.scheduler.alarms)

    def _box_places(self, order_ids: list[str]) -> dict[str, tuple[str, str]]:
        """Order shelf and slot of each order's box, for a restart to put it back."""
        wanted = set(order_ids)
        return {box.order_id: (shelf.id, slot) for shelves in self.scheduler.put_wall.values() for shelf in shelves
                for slot, box in shelf.slots.items() if box is not None and box.order_id in wanted}

    def live_tasks(self) -> list[Task]:
        """Tasks waiting for a robot and tasks robots are doing."""
        tasks = list(self.scheduler.fetches.values())
        tasks += [j.task for j in self.scheduler.jobs.values() if j.task is not None]
        return tasks

    # --- orders and notes -----------------------------------------------------------------
    def receive(self, orders: list[Order], notes: list[InboundNote]) -> None:
        """Committed to the store first, then given to the scheduler; all or nothing.
        Raises OperatorError naming every id that exists already."""
        taken = sorted(self.store.taken_ids("orders", (o.id for o in orders)) |
                       {o.id for o in orders if o.id in self.scheduler.orders})
        taken_notes = sorted(self.store.taken_ids("notes", (n.id for n in notes)) |
                             {n.id for n in notes if n.id in self.scheduler.notes})
        if taken or taken_notes:
            what = ([f"order(s) {', '.join(taken[:10])}"] if taken else []) + \
                   ([f"inbound note(s) {', '.join(taken_notes[:10])}"] if taken_notes else [])
            raise OperatorError(f"{' and '.join(what)} exist already; nothing was added")
        self.store.add_orders([order_row(o) for o in orders])
        self.store.add_notes([note_row(n) for n in notes])
        for order in orders:
            self.scheduler.receive_order(order)
            self._order_status[order.id] = order.status
        for note in notes:
            self.scheduler.receive_inbound(note)
            self._note_status[note.id] = note.status

    def take(self, orders: list[Checked], notes: list[Checked], now: float) -> list[str]:
        """Checked input (fleet.service.intake) as orders and notes created now; returns
        their ids."""
        self.receive([Order(id=c.id, lines=tuple(OrderLine(sku, q) for sku, q, _ in c.lines), created=now,
                            priority=c.priority, cutoff=None if c.cutoff_in_s is None else now + c.cutoff_in_s,
                            customer=c.customer)
                      for c in orders],
                     [InboundNote(id=c.id, lines=tuple(InboundLine(sku, q, p) for sku, q, p in c.lines), created=now,
                                  priority=c.priority) for c in notes])
        return [c.id for c in orders] + [c.id for c in notes]

    def _receive_generated(self, orders: list[Order], notes: list[InboundNote]) -> None:
        """A generated order whose id a client used meanwhile is left out, not fatal."""
        taken = self.store.taken_ids("orders", (o.id for o in orders)) | set(self.scheduler.orders)
        taken_notes = self.store.taken_ids("notes", (n.id for n in notes)) | set(self.scheduler.notes)
        for skipped in [o.id for o in orders if o.id in taken] + [n.id for n in notes if n.id in taken_notes]:
            log.warning("generated %s left out: the id is taken", skipped)
        self.receive([o for o in orders if o.id not in taken], [n for n in notes if n.id not in taken_notes])

    def cancel_order(self, order_id: str, now: float) -> None:
        if order_id not in self.scheduler.orders:
            if self.store.taken_ids("orders", [order_id]):
                raise OperatorError(f"order {order_id} is finished or was being picked before a restart; "
                                    "it can no longer be cancelled")
            raise NotFound(f"unknown order {order_id!r}")
        try:
            self.scheduler.cancel_order(order_id, now)
        except ValueError as exc:
            raise OperatorError(str(exc)) from None
        self.flush()

    # --- operator actions on robots and shelves -------------------------------------------
    def send_to_charge(self, robot_id: str, now: float) -> str:
        """The robot's stage ("charge", "wait_charger"), or "when_free" (after its job)."""
        if robot_id not in self.scheduler.motion.robots:
            raise NotFound(f"unknown robot {robot_id!r}")
        try:
            return self.scheduler.send_to_charge(robot_id, now)
        except ValueError as exc:
            raise OperatorError(str(exc)) from None

    def move_shelf(self, shelf_id: str, cell: Cell, now: float) -> str:
        """The shelf's new home is committed before the scheduler acts on it, and the move
        task at once. Returns the task id."""
        if shelf_id not in self.scheduler.shelves:
            raise NotFound(f"unknown shelf {shelf_id!r}")
        try:
            self.scheduler.check_move(shelf_id, cell)
        except ValueError as exc:
            raise OperatorError(str(exc)) from None
        self.store.set_shelf_home(shelf_id, (cell.x, cell.y), now)
        task = self.scheduler.move_shelf(shelf_id, cell, now)
        self.flush()
        return task.id

    # --- terminal keys (simulated operators and people alike) -----------------------------
    @property
    def presentations(self) -> dict[str, PickPresentation | StowPresentation]:
        return self.scheduler.presentations

    def confirm_pick(self, station_id: str, now: float, quantity: int | None = None) -> ShortPick | None:
        p = self.scheduler.presentations[station_id]
        pair = p.lit
        short = self.scheduler.confirm_pick(station_id, now, quantity)
        self._book_bin(pair.bin_label)
        moved = pair.quantity - (short.missing if short is not None else 0)
        if moved:
            self._bookings.picked.append((pair.box.order_id, pair.sku, moved))
        return short

    def scan_bin(self, station_id: str, label: str, now: float) -> StowPut:
        put = self.scheduler.scan_bin(station_id, label, now)
        self._book_bin(put.bin_label)
        self._bookings.stowed.append((put.note_id, put.sku, put.quantity))
        return put

    def depart_stow(self, station_id: str, measured_weight_kg: float, now: float) -> bool:
        return self.scheduler.depart_stow(station_id, measured_weight_kg, now)

    def _book_bin(self, label: str) -> None:
        b = self.inventory.bin(label)
        self._bookings.bins[label] = (b.shelf_id, dict(b.contents))

    # --- reading --------------------------------------------------------------------------
    def kpis(self, now: float) -> dict:
        figures = scheduler_kpis(self.scheduler, now, self.stuck_after_s)
        return {"map": self.scheduler.map.name, "robots": len(self.scheduler.motion.robots), **figures,
                "simulated_seconds": round(now, 1)}

    def box_slot(self, station_id: str, box_label: str) -> tuple[str, str] | None:
        """The order shelf and slot of a box on the port's put wall (the lit box)."""
        for shelf in self.scheduler.put_wall.get(station_id, []):
            for slot, box in shelf.slots.items():
                if box is not None and box.label == box_label:
                    return shelf.id, slot
        return None

    def queue(self, station_id: str) -> list[str]:
        """The port's robots, the one whose shelf is being worked first (at a port with two
        working cells it need not have come first: the next one may stand by already)."""
        robots = list(self.scheduler.queues[station_id].robots)
        p = self.scheduler.presentations.get(station_id)
        if p is not None and p.shelf.robot in robots:
            robots.remove(p.shelf.robot)
            robots.insert(0, p.shelf.robot)
        return robots


def stock_and_demand(settings: Settings, wmap: WarehouseMap) -> Scenario:
    """The catalogue, the stocked shelves and the order shelves (generated from the seed,
    as `fleet sim` does; the store's stock replaces the generated one after the first
    start), and the generated orders and notes the settings ask for."""
    w = settings.warehouse
    return generate(wmap, settings.robots.seed, replace(
        GeneratorConfig(), orders_per_hour=w.orders_per_hour, inbound_notes_per_hour=w.inbound_notes_per_hour,
        duration_s=w.generated_hours * 3600.0, order_shelves_per_pick_station=2,
        spare_storage_cells=w.spare_storage_cells))


def shelf_homes(scenario: Scenario) -> dict[str, Cell]:
    """Every shelf of the scenario (inventory and order shelves) and its home cell."""
    homes = {s.id: s.home for s in scenario.inventory.shelves()}
    homes.update((s.id, s.home) for s in scenario.order_shelves)
    return homes


def build_warehouse(settings: Settings, wmap: WarehouseMap, scenario: Scenario, motion: MotionControl,
                    store: Store, now: float) -> Warehouse:
    """The scheduler on the scenario's floor, restored from the store."""
    w = settings.warehouse
    scheduler = Scheduler(wmap, motion, scenario.inventory, scenario.order_shelves,
                          SchedulerConfig(release_every_s=w.release_every_s, slotting=w.slotting))
    operators = OperatorTimes(w.seconds_per_pick, w.seconds_per_unit, w.seconds_per_stow)
    warehouse = Warehouse(scheduler, store, operators=operators if w.simulated_operators else None,
                          seed=settings.robots.seed, arrivals=Arrivals(list(scenario.orders), list(scenario.inbound)))
    restored = warehouse.restore(now)
    if any(restored.values()):
        log.info("restored %d open orders and %d inbound notes from the store", restored["orders"], restored["notes"])
    return warehouse
