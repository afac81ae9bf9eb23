"""The stow and pick workflows: from orders and inbound notes to robot errands.

This is the dispatcher of the warehouse (openTCS' word): it decides which shelf goes to
which port, which robot fetches it, when a robot charges or parks. Routes and who may
enter which cell are traffic control's business, reached through MotionControl; the
people at the ports act through the terminal calls (`confirm_pick`, `scan_bin`,
`depart_stow`).

Each shelf has an itinerary: the ports it is to visit, in order. Planning only appends
to itineraries (a shelf already on its way to one port is chained on to the next, the
customer's pick step 4); a robot carrying a shelf follows its head. Everything runs on
`tick(now)`, so the same object runs in the service and in simulated time.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Callable
from enum import Enum

from drivers.commands import ActionKind, CellAction
from fleet.domain.errors import NoBoxFits
from fleet.domain.inbound import InboundLine, InboundNote, InboundStatus
from fleet.domain.inventory import Inventory
from fleet.domain.order import Order, OrderStatus
from fleet.domain.order_box import OrderBox, choose_box_type
from fleet.domain.order_shelf import OrderShelf
from fleet.domain.shelf import InventoryShelf, Shelf
from fleet.domain.task import Task, TaskKind
from fleet.motion import Errand, ErrandReport, MotionControl, Outcome, Phase
from fleet.scheduler.batching import Batching, Port, release
from fleet.scheduler.charging import BatteryPolicy, Chargers
from fleet.scheduler.robot_choice import FreeRobot, OpenTask, assign_robots
from fleet.scheduler.shelf_choice import cover_lines, plan_stow, sku_shelves
from fleet.scheduler.stations import PortQueue
from fleet.scheduler.terminals import (
    PickPresentation,
    ShortPick,
    StowPresentation,
    StowPut,
    confirm_pick,
    may_depart,
    pick_pairs,
    plan_puts,
    scan_bin,
    stow_presentation,
)
from fleet.traffic.grid import UNREACHABLE
from maps.model import Cell, CellKind, Heading, StationKind, WarehouseMap

log = logging.getLogger(__name__)


class Stage(str, Enum):
    FETCH = "fetch"  # driving to a shelf to lift it
    QUEUE = "queue"  # carrying it to a port, or waiting in the port's queue
    PRESENT = "present"  # at the working cell, the operator works the shelf
    RETURN = "return"  # carrying it back to storage
    ORDER_FETCH = "order_fetch"  # lifting a complete order shelf at its put wall
    PACKING = "packing"  # order shelf to the packing area, set down, emptied, lifted
    ORDER_RETURN = "order_return"  # empty order shelf back to its put wall
    CHARGE = "charge"  # driving to a charger
    CHARGING = "charging"
    WAIT_CHARGER = "wait_charger"  # every charger taken
    UNPLUG = "unplug"
    PARK = "park"


#: Stages in which the robot does work for the stations (robot utilisation).
WORKING = frozenset({Stage.FETCH, Stage.QUEUE, Stage.PRESENT, Stage.RETURN, Stage.ORDER_FETCH, Stage.PACKING,
                     Stage.ORDER_RETURN})
#: Stages of a robot busy with its battery (not stuck however long they last).
CHARGING = frozenset({Stage.CHARGE, Stage.CHARGING, Stage.WAIT_CHARGER, Stage.UNPLUG})


@dataclass
class RobotJob:
    robot_id: str
    stage: Stage
    since: float
    task: Task | None = None
    station: str | None = None
    errand_id: str = ""
    cell: Cell | None = None  # charger or parking cell held for it
    leaving: bool = False  # its shelf was done while it still turned to the port's exit


#: Seconds of waiting for a robot that count as one more line served (`_fetch_order`).
FETCH_AGE_S = 60.0


@dataclass(frozen=True)
class SchedulerConfig:
    batching: Batching = Batching.GREEDY
    release_every_s: float = 30.0
    plan_every_s: float = 2.0
    #: port box slots per round (pick, step 1)
    orders_per_round: int = 8
    #: shelves on their way to one port at most, as a multiple of its slots: a port's
    #: queue refills while the far shelves are still coming; the robots beyond the slots
    #: wait with their shelf where they lifted it. 2.0 kept a third of 120 robots waiting
    #: with shelves for full ports while other ports starved (1 h, medium: utilisation
    #: 0.73 against 0.83-0.91 at 1.0-1.4)
    shelves_per_slot: float = 1.2
    battery: BatteryPolicy = BatteryPolicy()
    park_after_s: float = 20.0
    packing_s: float = 60.0
    optimal_assignment: bool = True
    batching_time_limit_s: float = 1.0
    slotting: bool = False


def check_storage_cell(wmap: WarehouseMap, cell: Cell) -> None:
    """A shelf may stand only on a storage cell of the map (ValueError saying why not)."""
    if not (0 <= cell.x < wmap.width and 0 <= cell.y < wmap.height):
        raise ValueError(f"cell ({cell.x}, {cell.y}) is outside the map ({wmap.width} x {wmap.height})")
    if wmap.kind(cell) is not CellKind.STORAGE:
        raise ValueError(f"cell ({cell.x}, {cell.y}) is {wmap.kind(cell).name.lower()}, not a storage cell")


@dataclass(frozen=True)
class PresentationRecord:
    station_id: str
    kind: StationKind
    shelf_id: str
    start: float
    end: float
    lines: int
    units: int


class Scheduler:
    def __init__(self, wmap: WarehouseMap, motion: MotionControl, inventory: Inventory,
                 order_shelves: list[OrderShelf], config: SchedulerConfig = SchedulerConfig()) -> None:
        self.map = wmap
        self.motion = motion
        self.inventory = inventory
        self.config = config
        self.grid = motion.traffic.grid
        self.shelves: dict[str, Shelf] = {s.id: s for s in inventory.shelves()}
        self.shelves.update((s.id, s) for s in order_shelves)
        for shelf in self.shelves.values():
            if not shelf.carried:
                motion.traffic.shelf_set_down(shelf.cell)
        self.queues = {s.id: PortQueue.of(s) for s in wmap.stations}
        self.kind = {s.id: s.kind for s in wmap.stations}
        self.pick_ports = [s.id for s in wmap.stations_of(StationKind.PICK)]
        self.stow_ports = [s.id for s in wmap.stations_of(StationKind.STOW)]
        # the put wall of a pick port: the order shelves homed nearest it
        self.put_wall: dict[str, list[OrderShelf]] = {p: [] for p in self.pick_ports}
        for shelf in order_shelves:  # each port gets its share, from the nearest shelves
            port = min(self.pick_ports, key=lambda p: (len(self.put_wall[p]),
                                                       self._travel(shelf.home, self.queues[p].working[0]), p))
            self.put_wall[port].append(shelf)
        self.presentations: dict[str, PickPresentation | StowPresentation] = {}
        self.itinerary: dict[str, list[str]] = {}
        self.stow_puts: dict[tuple[str, str], list[StowPut]] = {}
        self.fetches: dict[str, Task] = {}  # shelf id -> fetch task not yet given to a robot
        self.jobs: dict[str, RobotJob] = {}
        self.orders: dict[str, Order] = {}
        self.pending: list[Order] = []
        self.stow_lines: list[tuple[int, float, str, InboundLine]] = []
        self.notes: dict[str, InboundNote] = {}
        self.chargers = Chargers(tuple(wmap.cells_of(CellKind.CHARGER)))
        self.parking = wmap.cells_of(CellKind.PARKING)
        self.packing = wmap.cells_of(CellKind.PACKING)
        self.claimed: dict[Cell, str] = {}  # parking and packing cells promised to a robot
        self.flagged: dict[str, str] = {}  # shelf id -> why it needs an operator
        #: shelves whose home slotting changed, until the service has written them (at most
        #: one entry per shelf)
        self.rehomed: dict[str, Cell] = {}
        self.alarms: list[tuple[float, str]] = []
        self.down: set[str] = set()  # robots faulted, offline or out of service
        #: robots an operator sent to charge: no new work until they have charged full
        self.sent_to_charge: set[str] = set()
        self.idle_since: dict[str, float] = {}
        self.presented: list[PresentationRecord] = []
        self.picked_at: dict[str, float] = {}  # order id -> time its box was complete
        self.units_picked: Counter[str] = Counter()
        self.units_stowed: Counter[str] = Counter()
        self.lines_picked = 0
        self.written_off: Counter[str] = Counter()
        self.no_shelf: list[tuple[float, str]] = []
        self.failed_errands: list[ErrandReport] = []
        #: robot -> shelf the store last saw on it, until the robot says (after a restart)
        self.restored_loads: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._next_release = 0.0
        self._next_plan = 0.0

    # --- input ----------------------------------------------------------------------
    def receive_order(self, order: Order) -> None:
        if order.id in self.orders:
            raise ValueError(f"order {order.id} was already received")
        self.orders[order.id] = order
        self.pending.append(order)

    def cancel_order(self, order_id: str, now: float) -> Order:
        """Only an order still waiting for its batch can be cancelled: once released, its
        box is on an order shelf and units may be in it."""
        order = self.orders.get(order_id)
        if order is None:
            raise KeyError(order_id)
        if order.status is not OrderStatus.PENDING:
            raise ValueError(f"order {order_id} is {order.status.value}; only a pending order can be cancelled")
        order.set_status(OrderStatus.CANCELLED, now)
        self.pending.remove(order)
        return order

    def receive_inbound(self, note: InboundNote) -> None:
        """Inbound step 1: each line becomes a stow task, most urgent first."""
        if note.id in self.notes:
            raise ValueError(f"inbound note {note.id} was already received")
        self.notes[note.id] = note
        for line in note.lines:
            self.inventory.catalogue[line.sku]  # an unknown SKU is refused here, not at the port
            self.stow_lines.append((note.line_priority(line), note.created, note.id, line))
        self.stow_lines.sort(key=lambda s: (-s[0], s[1], s[2]))

    # --- the control cycle ----------------------------------------------------------
    def tick(self, now: float) -> None:
        self.advance(now, self.motion.tick(now))

    def advance(self, now: float, reports: list[ErrandReport]) -> None:
        """One cycle after motion control ticked: for a caller that ticks motion control
        itself (the service's runtime counts the reports for its metrics)."""
        for report in reports:
            self._on_report(report, now)
        self._watch_robots(now)
        if now >= self._next_release:
            self._next_release = now + self.config.release_every_s
            self._release(now)
        if now >= self._next_plan:
            self._next_plan = now + self.config.plan_every_s
            self._plan_picks(now)
            self._plan_stows(now)
            self._settle_queues(now)
        self._assign(now)
        self._between_jobs(now)

    # --- terminals ------------------------------------------------------------------
    def confirm_pick(self, station_id: str, now: float, quantity: int | None = None) -> ShortPick | None:
        p = self._presentation(station_id, PickPresentation)
        short = confirm_pick(self.inventory, p, quantity)
        pair = p.pairs[p.done - 1]
        self.units_picked[pair.sku] += pair.quantity - (short.missing if short is not None else 0)
        if pair.box.missing(pair.sku) == 0:
            self.lines_picked += 1
        if short is not None:
            self.written_off[short.sku] += short.written_off
            self._alarm(now, f"short pick at {station_id}: {short.missing} x {short.sku} missing from shelf "
                             f"{p.shelf.id}; {short.written_off} booked units written off, line re-planned")
            self._next_plan = now  # re-plan the remainder from other shelves at once
        for box in {id(pp.box): pp.box for pp in p.pairs[: p.done]}.values():
            if box.complete and box.order_id not in self.picked_at:
                self._order_picked(box, now)
        if p.finished:
            self._depart(station_id, now)
        return short

    def scan_bin(self, station_id: str, label: str, now: float) -> StowPut:
        p = self._presentation(station_id, StowPresentation)
        put = scan_bin(self.inventory, p, label)
        self.units_stowed[put.sku] += put.quantity
        return put

    def depart_stow(self, station_id: str, measured_weight_kg: float, now: float) -> bool:
        """The shelf at a stow port asks to leave; it does only if count and weight match."""
        p = self._presentation(station_id, StowPresentation)
        if not may_depart(p, measured_weight_kg):
            self._alarm(now, p.alarm)
            return False
        self._depart(station_id, now)
        return True

    def take_out_of_service(self, robot_id: str, now: float) -> None:
        self.motion.robots[robot_id].out_of_service = True
        self._watch_robots(now)

    # --- operator actions -----------------------------------------------------------
    def send_to_charge(self, robot_id: str, now: float) -> str:
        """Operator: charge this robot until full. A free robot goes now (or queues for a
        charger, as a low one does); a busy or paused one finishes first. Returns its stage
        ("charge", "wait_charger") or "when_free". KeyError for an unknown robot,
        ValueError when it cannot go."""
        state = self.motion.robots[robot_id]
        if state.disabled:
            raise ValueError(f"robot {robot_id} is {self._why_down(robot_id)}")
        if not self.chargers.cells:
            raise ValueError("this floor has no charger")
        job = self.jobs.get(robot_id)
        if job is not None and job.stage in CHARGING:
            doing = {Stage.CHARGE: "on its way to a charger", Stage.CHARGING: "charging",
                     Stage.WAIT_CHARGER: "waiting for a charger", Stage.UNPLUG: "leaving its charger"}
            raise ValueError(f"robot {robot_id} is {doing[job.stage]} already")
        if robot_id in self.sent_to_charge:
            raise ValueError(f"robot {robot_id} was sent to charge already; it goes when its job is done")
        self.sent_to_charge.add(robot_id)
        if robot_id in self._free_robots() and state.shelf_id is None and robot_id not in self.restored_loads:
            return self._to_charger(robot_id, now).value
        return "when_free"

    def check_move(self, shelf_id: str, cell: Cell) -> Shelf:
        """Why the shelf cannot move to `cell` now, as a ValueError (KeyError: unknown
        shelf): the target must be a storage cell no other shelf stands on or calls home,
        and the shelf must stand still with nothing planned for it."""
        shelf = self.shelves[shelf_id]
        check_storage_cell(self.map, cell)
        if shelf_id in self.flagged:
            raise ValueError(f"shelf {shelf_id} is flagged ({self.flagged[shelf_id]}); recover it first")
        if shelf.carried:
            raise ValueError(f"shelf {shelf_id} is on robot {shelf.robot}")
        if shelf_id in self.itinerary or shelf_id in self.fetches or self._on_its_way(shelf_id):
            raise ValueError(f"shelf {shelf_id} is booked (for a port, packing or a move); move it once it is back")
        if isinstance(shelf, OrderShelf) and shelf.boxes():
            raise ValueError(f"order shelf {shelf_id} holds order boxes; move it once they are packed")
        if shelf.cell == cell:
            raise ValueError(f"shelf {shelf_id} stands on ({cell.x}, {cell.y}) already")
        for other in self.shelves.values():
            if other is not shelf and (other.home == cell or other.cell == cell and not other.carried):
                what = "stands on" if other.cell == cell and not other.carried else "has its home on"
                raise ValueError(f"shelf {other.id} {what} ({cell.x}, {cell.y})")
        return shelf

    def move_shelf(self, shelf_id: str, cell: Cell, now: float) -> Task:
        """Operator: `cell` becomes the shelf's home at once, and the nearest free robot
        takes it there as it takes any shelf home (so a port that calls the shelf meanwhile
        is served on the way). Refused as `check_move` says."""
        shelf = self.check_move(shelf_id, cell)
        shelf.home = cell
        task = Task(id=f"T{next(self._ids)}", kind=TaskKind.MOVE_SHELF, target=cell, created=now, priority=1,
                    shelf=shelf_id)
        self.fetches[shelf_id] = task
        return task

    def _presentation(self, station_id: str, kind: type) -> PickPresentation | StowPresentation:
        p = self.presentations.get(station_id)
        if p is None:
            raise ValueError(f"port {station_id!r} has no shelf to work")
        if not isinstance(p, kind):
            raise ValueError(f"port {station_id!r} is a {self.kind[station_id].value} port")
        return p

    # --- pick: release and planning -------------------------------------------------
    def _release(self, now: float) -> None:
        """Pick step 1-2: a round of orders for every port with an empty order shelf."""
        ports, target = [], {}
        for port in self.pick_ports:
            shelf = next((s for s in self.put_wall[port] if not s.boxes() and not s.carried and s.at_home), None)
            if shelf is not None:
                coming = frozenset(s for s, stops in self.itinerary.items() if port in stops)
                ports.append(Port(port, min(self.config.orders_per_round, len(shelf.slots)), coming))
                target[port] = shelf
        # only orders the stock not yet promised to released orders can serve: a released
        # order whose stock another port took would hold its box slot for ever
        promised: Counter[str] = Counter()
        for port in self.pick_ports:
            for box in self._open_boxes(port):
                promised.update({sku: box.missing(sku) for sku in box.required})
        candidates = [o for o in self.pending
                      if all(line.quantity <= self.inventory.stock(line.sku) - promised[line.sku] for line in o.lines)]
        if not ports or not candidates:
            return
        skus = {line.sku for o in candidates for line in o.lines}
        holding = sku_shelves(self.inventory, skus)
        holding = {sku: [s for s in shelves if s not in self.flagged] for sku, shelves in holding.items()}
        batch = release(candidates, ports, holding, now, self.config.batching,
                        time_limit=self.config.batching_time_limit_s)
        released = set()
        for port, order_ids in batch.orders.items():
            for order_id in order_ids:
                order = self.orders[order_id]
                try:
                    box_type = choose_box_type(order.volume_l(self.inventory.catalogue))
                except NoBoxFits as exc:
                    order.set_status(OrderStatus.CANCELLED, now)
                    self._alarm(now, f"order {order_id} cancelled: {exc}")
                    released.add(order_id)
                    continue
                box = OrderBox.for_order(order, box_type, f"BOX-{order_id}")
                target[port].place(box)
                order.set_status(OrderStatus.RELEASED, now)
                order.set_status(OrderStatus.PICKING, now)
                released.add(order_id)
                if isinstance(p := self.presentations.get(port), PickPresentation):
                    p.add_boxes(self.inventory, [box])  # the shelf at the port serves the new order now
        self.pending = [o for o in self.pending if o.id not in released]
        self._next_plan = now

    def _open_boxes(self, port: str) -> list[OrderBox]:
        return [b for s in self.put_wall[port] for b in s.boxes() if not b.complete]

    def _plan_picks(self, now: float) -> None:
        """Pick step 3: cover every port's open lines with few shelves, chaining shelves
        already coming to the port first."""
        for port in self.pick_ports:
            need: Counter[str] = Counter()
            for box in self._open_boxes(port):
                for sku in box.required:
                    if box.missing(sku) > 0:
                        need[sku] += box.missing(sku)
            if not need:
                continue
            coming = [s for s, stops in self.itinerary.items() if port in stops]
            have: Counter[str] = Counter()
            for shelf_id in coming:
                shelf = self.shelves[shelf_id]
                if isinstance(shelf, InventoryShelf):
                    have.update(self.inventory.shelf_stock(shelf_id))
            short = [sku for sku in need if have[sku] < need[sku]]
            holding = sku_shelves(self.inventory, short)
            holding = {sku: [s for s in shelves if s not in self.flagged and s not in coming]
                       for sku, shelves in holding.items()}
            servable = [sku for sku in short if holding[sku]]
            if not servable:
                continue
            if self.config.batching is Batching.FCFS:
                # the baseline without grouping: each line calls the first shelf holding
                # its SKU, as batching._fcfs plans it, not a set cover over the port's lines
                shelves = list(dict.fromkeys(holding[sku][0] for sku in servable))
            else:
                to_port = self._from_port(port)
                far = {s: to_port(self.shelves[s].cell) for sku in servable for s in holding[sku]
                       if not self.shelves[s].carried}
                shelves = cover_lines(servable, holding, booked={s: len(stops) for s, stops in self.itinerary.items()},
                                      distance=far)
            for shelf_id in shelves:
                self._route(shelf_id, port, now, priority=self._priority(port))

    def _priority(self, port: str) -> int:
        return max((self.orders[b.order_id].priority for b in self._open_boxes(port)), default=0)

    def _route(self, shelf_id: str, port: str, now: float, priority: int = 0) -> None:
        """Add the port to the shelf's itinerary; a shelf standing in storage is fetched."""
        stops = self.itinerary.setdefault(shelf_id, [])
        stops.append(port)
        shelf = self.shelves[shelf_id]
        if not shelf.carried and shelf_id not in self.fetches and not self._on_its_way(shelf_id):
            task = Task(id=f"T{next(self._ids)}", kind=TaskKind.FETCH_SHELF, target=stops[0], created=now,
                        priority=priority, shelf=shelf_id)
            self.fetches[shelf_id] = task

    def _on_its_way(self, shelf_id: str) -> bool:
        """A robot is already driving to lift the shelf."""
        return any(j.task is not None and j.task.shelf == shelf_id for j in self.jobs.values())

    # --- stow: scan and planning ----------------------------------------------------
    def _plan_stows(self, now: float) -> None:
        """Stow steps 2-3: the next goods are scanned at a port with room in its queue,
        and the scan calls shelves for them."""
        for port in self.stow_ports:
            while self.stow_lines and self._heading_to(port) < self.queues[port].capacity:
                priority, _, note_id, line = self.stow_lines.pop(0)
                busy = set(self.itinerary) | set(self.flagged) | {s.id for s in self.shelves.values() if s.carried}
                working = self.queues[port].working[0]
                plan = plan_stow(self.inventory, line.sku, line.quantity, working, self._travel, busy)
                note = self.notes[note_id]
                if note.status is InboundStatus.OPEN:
                    note.set_status(InboundStatus.STOWING, now)
                if plan.unplaced:
                    self.no_shelf.append((now, f"note {note_id}: {plan.unplaced} x {line.sku}: {plan.reason}"))
                for part in plan.parts:
                    shelf = self.inventory.shelf(part.shelf_id)
                    self.stow_puts[(shelf.id, port)] = plan_puts(self.inventory, shelf, line.sku, part.quantity, note_id)
                    self._route(shelf.id, port, now, priority=priority)

    def _heading_to(self, port: str) -> int:
        """Shelves on their way to or at the port (and not yet left it)."""
        return sum(1 for stops in self.itinerary.values() if stops and stops[0] == port)

    # --- robots: assignment ---------------------------------------------------------
    def _from_port(self, port: str) -> Callable[[Cell], float]:
        """Travel from a cell to the port's first working cell, from one table for all cells."""
        table, index = self.grid.distances(self.grid.index(self.queues[port].working[0])), self.grid.index
        return lambda cell: float(table[index(cell)])

    def _travel(self, a: Cell, b: Cell) -> float:
        d = int(self.grid.distances(self.grid.index(b))[self.grid.index(a)])
        return float("inf") if d >= UNREACHABLE else float(d)

    def _free_robots(self) -> list[str]:
        free = []
        for robot_id, state in self.motion.robots.items():
            if robot_id in self.jobs or robot_id in self.down or state.stopped or state.errand is not None:
                continue  # a paused or emergency-stopped robot takes no new work
            free.append(robot_id)
        return free

    def _assign(self, now: float) -> None:
        """Pick step 3 / stow step 4: the free robot nearest each shelf fetches it. A port
        gets at most `shelves_per_slot` x its slots shelves on their way."""
        if not self.fetches:
            return
        battery = self.config.battery
        robots = [r for r in self._free_robots() if self.motion.robots[r].shelf_id is None  # loaded: _carry_on
                  and battery.may_work(self.motion.robots[r].charge) and not self._wants_charge(r)
                  and r not in self.sent_to_charge]
        robots += [j.robot_id for j in self.jobs.values()
                   if j.stage is Stage.CHARGING and j.robot_id not in self.sent_to_charge
                   and battery.may_leave(self.motion.robots[j.robot_id].charge, True)]
        if not robots:
            return
        coming = Counter(stops[0] for s, stops in self.itinerary.items() if stops and s not in self.fetches)
        full = {port for port in self.queues if self._full(port, coming)}
        packing = [c for c in self.packing if c not in self.claimed]
        tasks = []
        for shelf_id, task in self._fetch_order(now, full):
            if task.kind is TaskKind.MOVE_ORDER_SHELF:
                if not packing:
                    continue
                task.target = min(packing, key=lambda c: (self._travel(self.shelves[shelf_id].cell, c), c.y, c.x))
                packing.remove(task.target)
            elif shelf_id in self.itinerary:  # a move goes to no port, unless one called the shelf meanwhile
                port = self.itinerary[shelf_id][0]
                if self._full(port, coming):
                    continue
                coming[port] += 1
            tasks.append(OpenTask(task.id, self.shelves[shelf_id].cell, task.priority))
        if not tasks:
            return
        free = [FreeRobot(r, self.motion.robots[r].cell, self.motion.robots[r].charge) for r in robots]
        by_task = {t.id: t for t in self.fetches.values()}
        chosen = assign_robots(tasks, free, self._travel, critical=battery.critical,
                               optimal=self.config.optimal_assignment)
        for task_id, robot_id in chosen.items():
            task = by_task[task_id]
            job = self.jobs.get(robot_id)
            if job is not None:  # leaving a charger for work: unplug now, fetch when free
                self._unplug(robot_id, now)
                continue
            del self.fetches[task.shelf]
            task.assign(robot_id, now)
            shelf = self.shelves[task.shelf]
            job = RobotJob(robot_id, Stage.FETCH, now, task=task)
            if task.kind is TaskKind.MOVE_ORDER_SHELF:
                job.stage, job.cell = Stage.ORDER_FETCH, task.target
                self.claimed[task.target] = robot_id
            self.jobs[robot_id] = job
            self.idle_since.pop(robot_id, None)
            self._errand(job, shelf.cell, CellAction(self._action_id(), ActionKind.LIFT, shelf_id=shelf.id))

    def _full(self, port: str, coming: Counter[str]) -> bool:
        """The port has `shelves_per_slot` x its slots shelves on their way already."""
        return coming[port] >= self.config.shelves_per_slot * self.queues[port].capacity

    def _fetch_order(self, now: float, full: set[str]) -> list[tuple[str, Task]]:
        """Which shelves go first while ports have no room for all: by priority, then (but
        for the first-come-first-served baseline) the shelf serving more of its port's open
        lines, so a shelf with one line waits and gathers the lines of orders released
        meanwhile; every FETCH_AGE_S of waiting counts as one line more, so none waits
        for ever. Shelves for the `full` ports wait this cycle and are not ranked (ranking
        them was most of a busy floor's control cycle)."""
        fetches = [(shelf_id, task) for shelf_id, task in self.fetches.items()
                   if task.kind is TaskKind.MOVE_ORDER_SHELF or not self.itinerary.get(shelf_id)
                   or self.itinerary[shelf_id][0] not in full]
        if self.config.batching is Batching.FCFS:
            return sorted(fetches, key=lambda kv: (-kv[1].priority, kv[1].created))
        open_lines: dict[str, Counter[str]] = {}  # port -> SKU -> its open lines there

        def worth(shelf_id: str, task: Task) -> float:
            stops = self.itinerary.get(shelf_id)
            shelf = self.shelves[shelf_id]
            if not stops or self.kind[stops[0]] is not StationKind.PICK or not isinstance(shelf, InventoryShelf):
                return float("inf")  # stow, moves, order shelves: as they come
            if (lines := open_lines.get(stops[0])) is None:
                lines = open_lines[stops[0]] = Counter(sku for box in self._open_boxes(stops[0])
                                                       for sku in box.required if box.missing(sku) > 0)
            served = sum(lines[sku] for sku in self.inventory.shelf_stock(shelf_id) if sku in lines)
            return served + (now - task.created) / FETCH_AGE_S
        return sorted(fetches, key=lambda kv: (-kv[1].priority, -worth(*kv), kv[1].created))

    def _errand(self, job: RobotJob, goal: Cell, *actions: CellAction, heading: Heading | None = None) -> None:
        job.errand_id = f"{job.robot_id}-e{next(self._ids)}"
        self.motion.assign(job.robot_id, Errand(job.errand_id, goal, tuple(actions), heading))

    def _action_id(self) -> str:
        return f"a{next(self._ids)}"

    # --- robots: the stages of a job ------------------------------------------------
    def _on_report(self, report: ErrandReport, now: float) -> None:
        job = self.jobs.get(report.robot_id)
        if job is None or job.errand_id != report.errand_id:
            return  # an errand of a job that was taken away (robot faulted meanwhile)
        if report.outcome is Outcome.FAILED:
            self._errand_failed(job, report, now)
            return
        robot_id = report.robot_id
        if job.stage is Stage.FETCH:
            shelf = self.shelves[job.task.shelf]
            shelf.lift(robot_id)
            job.task.start(now)
            self._to_next_port(job, now)
        elif job.stage is Stage.QUEUE:
            queue = self.queues[job.station]
            slot, cell = queue.slot_of(robot_id), self.motion.robots[robot_id].cell
            if queue.on_working_cell(robot_id, cell):
                self._at_working_cell(job, now)
            elif slot is not None and cell != slot:
                self._send_to_slots(queue, {robot_id: slot}, now)  # the queue moved on meanwhile
        elif job.stage is Stage.RETURN:
            self._lowered(job, now)
        elif job.stage is Stage.ORDER_FETCH:
            self.shelves[job.task.shelf].lift(robot_id)
            job.task.start(now)
            self._pack(job, now)
        elif job.stage is Stage.PACKING:
            self._packed(job, now)
        elif job.stage is Stage.ORDER_RETURN:
            self._lowered(job, now)
        elif job.stage is Stage.CHARGE:
            job.stage, job.since = Stage.CHARGING, now
            self.motion.hold(robot_id)
        elif job.stage is Stage.PRESENT:  # turned to the exit
            if job.leaving:
                job.leaving = False
                self._to_next_port(job, now)
            else:
                self.motion.hold(robot_id)
        elif job.stage is Stage.UNPLUG:
            self._leave_charger(job.robot_id, now)
        elif job.stage is Stage.PARK:
            del self.jobs[robot_id]
            self.idle_since[robot_id] = now

    def _errand_failed(self, job: RobotJob, report: ErrandReport, now: float) -> None:
        self.failed_errands.append(report)
        shelf = f" with shelf {job.task.shelf}" if job.task is not None else ""
        self._alarm(now, f"robot {job.robot_id}: {job.stage.value} errand{shelf} at "
                         f"{self.motion.robots[job.robot_id].cell} failed: {report.reason}")
        if job.stage in (Stage.FETCH, Stage.ORDER_FETCH):
            # the shelf could not be lifted (not there, too heavy): an operator must look
            # at it; calling it again would only fail again
            del self.jobs[job.robot_id]
            self.claimed.pop(job.cell, None)
            shelf_id = job.task.shelf
            self.flagged[shelf_id] = f"lift by {job.robot_id} failed: {report.reason}"
            job.task.fail(report.reason, now)
            for port in self.itinerary.pop(shelf_id, []):
                self._restow(self.stow_puts.pop((shelf_id, port), []))
            return
        self._drop_job(job.robot_id, now, report.reason)

    def _to_next_port(self, job: RobotJob, now: float) -> None:
        """After a lift or a presentation: the next port that still needs the shelf and
        has a free slot (chaining), else back to storage."""
        shelf = self.shelves[job.task.shelf]
        stops = self.itinerary.get(shelf.id, [])
        while stops and not self._still_needed(shelf, stops[0]):
            stops.pop(0)
        at_port = job.station is not None
        if stops and (not at_port or len(self.queues[stops[0]]) < self.queues[stops[0]].capacity):
            port = stops[0]
            job.stage, job.station, job.since = Stage.QUEUE, port, now
            job.task.target = port
            slot = self.queues[port].join(job.robot_id)
            if slot is not None:
                self._errand(job, slot)
            return
        for port in stops:
            self.stow_puts.pop((shelf.id, port), None)
        self.itinerary.pop(shelf.id, None)
        self._return(job, now)

    def _still_needed(self, shelf: Shelf, port: str) -> bool:
        if self.kind[port] is StationKind.STOW:
            return (shelf.id, port) in self.stow_puts
        stock = self.inventory.shelf_stock(shelf.id) if isinstance(shelf, InventoryShelf) else {}
        return any(box.missing(sku) > 0 and stock.get(sku, 0) > 0
                   for box in self._open_boxes(port) for sku in box.required)

    def _return(self, job: RobotJob, now: float) -> None:
        shelf = self.shelves[job.task.shelf]
        if self.config.slotting and job.station is not None and isinstance(shelf, InventoryShelf):
            self._slot(shelf, job.station)
        job.stage, job.station, job.since = Stage.RETURN, None, now
        self._errand(job, shelf.home, CellAction(self._action_id(), ActionKind.LOWER, shelf_id=shelf.id))

    def _slot(self, shelf: InventoryShelf, port: str) -> None:
        """Slotting: the shelf leaving `port` takes the home nearest that port among its own
        and those of shelves now at a port or in one of its slots, whose cells stand empty;
        the shelf whose home it takes gets this one's in exchange, so homes stay one per cell.
        Shelves in demand end up near the stations, and the trip back is short."""
        far = self._from_port(port)
        best, best_d = None, far(shelf.home)
        for job in self.jobs.values():
            other = self.shelves.get(job.task.shelf) if job.task is not None and job.task.shelf else None
            if other is None or other is shelf or not isinstance(other, InventoryShelf) or not self._away(job, other):
                continue
            d = far(other.home)
            if d < best_d:
                best, best_d = other, d
        if best is not None:
            self.swap_homes(shelf.id, best.id)

    def _away(self, job: RobotJob, shelf: InventoryShelf) -> bool:
        """The shelf's robot is at a port or bound for one of its slots, and neither stands
        on nor is granted the shelf's home: a robot beyond a full port's slots waits where it
        lifted the shelf, and pushed aside by traffic it drives back there, so that home is
        not free even while the robot is off it."""
        if job.stage is not Stage.PRESENT and not (
                job.stage is Stage.QUEUE and job.task.kind is TaskKind.FETCH_SHELF and job.station is not None
                and self.queues[job.station].slot_of(job.robot_id) is not None):
            return False
        return shelf.home not in self.motion.traffic.held_cells(job.robot_id)

    def swap_homes(self, a: str, b: str) -> None:
        """Two shelves exchange homes (slotting); the service writes `rehomed` to its store."""
        first, second = self.shelves[a], self.shelves[b]
        first.home, second.home = second.home, first.home
        self.rehomed[a], self.rehomed[b] = first.home, second.home

    def _lowered(self, job: RobotJob, now: float) -> None:
        shelf = self.shelves[job.task.shelf]
        shelf.lower(self.motion.robots[job.robot_id].cell)
        job.task.finish(now)
        del self.jobs[job.robot_id]
        self.idle_since[job.robot_id] = now
        if self.itinerary.get(shelf.id):  # needed again while on its way back
            stops = self.itinerary[shelf.id]
            self.fetches[shelf.id] = Task(id=f"T{next(self._ids)}", kind=TaskKind.FETCH_SHELF, target=stops[0],
                                          created=now, priority=job.task.priority, shelf=shelf.id)
        else:
            self.itinerary.pop(shelf.id, None)

    def _at_working_cell(self, job: RobotJob, now: float) -> None:
        """The operator works the shelf now, or next if another shelf is being worked: at
        a port with two working cells it stands by, so the operator turns to it the moment
        the other shelf is done instead of waiting for the swap."""
        if job.station in self.presentations:
            self.motion.hold(job.robot_id)
        else:
            self._present(job, now)

    def _present_next(self, port: str, now: float) -> None:
        """The shelf that came up first of those standing by at the port's working cells."""
        queue = self.queues[port]
        for robot_id in queue.robots:
            job, state = self.jobs[robot_id], self.motion.robots[robot_id]
            if (robot_id not in self.down and job.stage is Stage.QUEUE and state.phase is Phase.IDLE
                    and queue.on_working_cell(robot_id, state.cell)):
                self._present(job, now)
                return

    def _present(self, job: RobotJob, now: float) -> None:
        port = job.station
        shelf = self.shelves[job.task.shelf]
        if port in self.presentations:  # never two shelves at one working cell
            self._alarm(now, f"robot {job.robot_id} with shelf {shelf.id} at {port}, where shelf "
                             f"{self.presentations[port].shelf.id} is being worked")
            return
        job.stage, job.since = Stage.PRESENT, now
        self.motion.hold(job.robot_id)
        if self.kind[port] is StationKind.PICK:
            p = PickPresentation(port, shelf, pick_pairs(self.inventory, shelf, self._open_boxes(port)), now)
            self.presentations[port] = p
            if p.finished:  # nothing left for it here (picked meanwhile from another shelf)
                self._depart(port, now)
                return
        else:
            puts = self.stow_puts.pop((shelf.id, port))
            self.presentations[port] = stow_presentation(self.inventory, port, shelf, puts, now)
        self._turn_to_exit(job, port)

    def _turn_to_exit(self, job: RobotJob, port: str) -> None:
        """While the operator works the shelf, the robot turns to face the working cell's
        way out (its turntable keeps the shelf still): turning there after the shelf is
        done kept the port empty a second longer at every swap (benchmarks/port_swap.py)."""
        cell = self.motion.robots[job.robot_id].cell
        queue_cells = {c for s in self.map.stations for queue in s.queues for c in queue}
        exits = [h for h in Heading if (t := int(self.grid.ahead[self.grid.index(cell), h])) >= 0
                 and self.grid.cell(t) not in queue_cells]  # into another port's queue: not the way out
        robot = self.motion.robots[job.robot_id]
        if len(exits) == 1 and robot.heading != exits[0] and robot.errand is None:
            self._errand(job, cell, heading=exits[0])

    def _depart(self, port: str, now: float) -> None:
        p = self.presentations.pop(port)
        robot_id = p.shelf.robot
        lines = p.lines if isinstance(p, PickPresentation) else len(p.puts)
        self.presented.append(PresentationRecord(port, self.kind[port], p.shelf.id, p.started, now, lines, p.units))
        if isinstance(p, StowPresentation):
            for note_id in {put.note_id for put in p.puts}:
                self._maybe_stowed(note_id, now)
        stops = self.itinerary.get(p.shelf.id, [])
        if stops and stops[0] == port:
            stops.pop(0)
        self._move_up(self.queues[port], robot_id, now)
        job = self.jobs[robot_id]
        if self.motion.robots[robot_id].errand is not None:
            job.leaving = True  # still turning to the exit: it goes on when the turn is done
        else:
            self._to_next_port(job, now)
        self._present_next(port, now)

    def _move_up(self, queue: PortQueue, robot_id: str, now: float) -> None:
        self._send_to_slots(queue, queue.leave(robot_id), now)

    def _send_to_slots(self, queue: PortQueue, moves: dict[str, Cell], now: float) -> None:
        for robot_id, slot in moves.items():
            state = self.motion.robots[robot_id]
            if robot_id in self.down or self.jobs[robot_id].stage is not Stage.QUEUE:
                continue  # a robot being worked at the port stays where it is
            if state.phase is Phase.DRIVING:
                self.motion.redirect(robot_id, slot)
            elif state.phase is Phase.IDLE:
                job = self.jobs[robot_id]
                if queue.on_working_cell(robot_id, state.cell):
                    self._at_working_cell(job, now)
                else:
                    self._errand(job, slot)

    def _settle_queues(self, now: float) -> None:
        """Robots reach a port in another order than they were sent (a nearer one is
        faster): the queue follows who is there first, so nobody waits for a robot that
        the one-cell-wide queue will not let past."""
        for queue in self.queues.values():
            if len(queue) > 1:
                cells = {r: self.motion.robots[r].cell for r in queue.robots}
                self._send_to_slots(queue, queue.settle(cells), now)

    def _maybe_stowed(self, note_id: str, now: float) -> None:
        if any(n == note_id for _, _, n, _ in self.stow_lines) or \
                any(put.note_id == note_id for puts in self.stow_puts.values() for put in puts) or \
                any(isinstance(p, StowPresentation) and any(put.note_id == note_id for put in p.puts)
                    for p in self.presentations.values()):
            return
        note = self.notes[note_id]
        if note.status is InboundStatus.STOWING:
            note.set_status(InboundStatus.STOWED, now)

    # --- order shelves --------------------------------------------------------------
    def _order_picked(self, box: OrderBox, now: float) -> None:
        """Pick step 5: a complete order shelf is sent to the packing area."""
        order = self.orders[box.order_id]
        order.set_status(OrderStatus.PICKED, now)
        self.picked_at[order.id] = now
        shelf = next(s for shelves in self.put_wall.values() for s in shelves if box in s.boxes())
        self._to_packing(shelf, now)

    def _to_packing(self, shelf: OrderShelf, now: float) -> None:
        if shelf.complete and not self.packing:  # a floor without a packing area packs at the port
            self._empty(shelf, now)
        elif shelf.complete and shelf.id not in self.fetches:
            self.fetches[shelf.id] = Task(id=f"T{next(self._ids)}", kind=TaskKind.MOVE_ORDER_SHELF,
                                          target=self.packing[0], created=now, priority=1, shelf=shelf.id)

    def _pack(self, job: RobotJob, now: float) -> None:
        """The lifted order shelf to its packing cell (job.cell): set down, emptied, lifted."""
        job.stage, job.since = Stage.PACKING, now
        self._errand(job, job.cell,
                     CellAction(self._action_id(), ActionKind.LOWER, shelf_id=job.task.shelf),
                     CellAction(self._action_id(), ActionKind.WAIT, duration=self.config.packing_s),
                     CellAction(self._action_id(), ActionKind.LIFT, shelf_id=job.task.shelf))

    def _packed(self, job: RobotJob, now: float) -> None:
        shelf = self.shelves[job.task.shelf]
        assert isinstance(shelf, OrderShelf)
        self._empty(shelf, now)
        self.claimed.pop(job.cell, None)
        job.stage, job.since, job.cell = Stage.ORDER_RETURN, now, None
        self._errand(job, shelf.home, CellAction(self._action_id(), ActionKind.LOWER, shelf_id=shelf.id))

    def _empty(self, shelf: OrderShelf, now: float) -> None:
        """Packing: the boxes leave the order shelf, which is ready for the next round."""
        for slot, box in list(shelf.slots.items()):
            if box is not None:
                shelf.remove(slot)
                self.orders[box.order_id].set_status(OrderStatus.PACKED, now)

    # --- after a restart ------------------------------------------------------------
    def restore_shelf(self, shelf_id: str, where: Cell | str, home: Cell) -> None:
        """Where the store last saw a shelf: on a robot (its id) or standing on a cell; and
        its home (an operator may have moved it)."""
        shelf = self.shelves[shelf_id]
        shelf.home = home
        if not shelf.carried:
            self.motion.traffic.shelf_lifted(shelf.cell)
        if isinstance(where, str):
            shelf.lift(where)
            self.restored_loads[where] = shelf_id
        else:
            shelf.cell = where
            self.motion.traffic.shelf_set_down(where)

    def restore_box(self, order: Order, shelf_id: str, slot: str, picked: dict[str, int]) -> None:
        """A released order's box back in its put-wall slot, holding the units picked into
        it before the service stopped. Call `resume_packing` once all are back."""
        shelf = self.shelves[shelf_id]
        assert isinstance(shelf, OrderShelf)
        box = OrderBox.for_order(order, choose_box_type(order.volume_l(self.inventory.catalogue)), f"BOX-{order.id}")
        for sku, quantity in picked.items():
            if quantity:
                box.put(self.inventory.catalogue[sku], quantity)
        shelf.place(box, slot)
        self.orders[order.id] = order
        if box.complete:
            self.picked_at[order.id] = order.updated or order.created

    def resume_packing(self, now: float) -> None:
        """Complete order shelves standing still (at home, or set down for packing) are
        sent to the packing area; one on a robot is taken there by `_carry_on`."""
        for shelves in self.put_wall.values():
            for shelf in shelves:
                if shelf.boxes() and not shelf.carried:
                    self._to_packing(shelf, now)

    def resume_moves(self, now: float) -> None:
        """A shelf standing away from its home (a move the restart cut short, or one an
        operator recovered elsewhere) is taken home; call after `resume_packing`."""
        for shelf in self.shelves.values():
            if not shelf.at_home and not shelf.carried and shelf.id not in self.fetches.keys() | self.flagged.keys():
                self.fetches[shelf.id] = Task(id=f"T{next(self._ids)}", kind=TaskKind.MOVE_SHELF, target=shelf.home,
                                              created=now, priority=1, shelf=shelf.id)

    def _carry_on(self, robot_id: str, now: float) -> None:
        """A robot with a shelf on top and no job (the service restarted under it): a
        complete order shelf goes to packing, any other shelf home; planning may call it
        to a port again from there. The robot's report beats the store's record."""
        state = self.motion.robots[robot_id]
        recorded = self.restored_loads.pop(robot_id, None)
        if state.shelf_id is None:  # it set the shelf down where it stands before the store heard
            if self.shelves[recorded].robot == robot_id:
                self.shelves[recorded].lower(state.cell)
                self.motion.traffic.shelf_set_down(state.cell)
            return
        shelf = self.shelves.get(state.shelf_id)
        if shelf is None:
            if state.shelf_id not in self.flagged:
                self.flagged[state.shelf_id] = f"unknown to this warehouse, on robot {robot_id}"
                self._alarm(now, f"robot {robot_id} carries shelf {state.shelf_id!r}, which this warehouse "
                                 "does not know; an operator must take it off")
            return
        if shelf.robot != robot_id:
            shelf.robot = None  # the store had it elsewhere: the robot's report wins
            shelf.lift(robot_id)
        self.fetches.pop(shelf.id, None)
        packing = [c for c in self.packing if c not in self.claimed]
        to_pack = isinstance(shelf, OrderShelf) and shelf.complete and bool(packing)
        task = Task(id=f"T{next(self._ids)}", kind=TaskKind.MOVE_ORDER_SHELF if to_pack else TaskKind.RETURN_SHELF,
                    target=packing[0] if to_pack else shelf.home, created=now, priority=1, shelf=shelf.id)
        task.assign(robot_id, now)
        task.start(now)
        job = RobotJob(robot_id, Stage.RETURN, now, task=task)
        self.jobs[robot_id] = job
        self.idle_since.pop(robot_id, None)
        if to_pack:
            job.cell = packing[0]
            self.claimed[job.cell] = robot_id
            self._pack(job, now)
        else:
            self._return(job, now)

    # --- faults ---------------------------------------------------------------------
    def _watch_robots(self, now: float) -> None:
        """Robots that fault, drop off the network or are taken out of service lose their
        job; it goes to another robot. A shelf on such a robot stays on it in the model and
        is flagged to the operator. A paused or emergency-stopped robot is only frozen: it
        keeps its job and carries on when released (RobotState.disabled)."""
        for robot_id, state in self.motion.robots.items():
            unable = state.disabled
            if unable and robot_id not in self.down:
                self.down.add(robot_id)
                self.sent_to_charge.discard(robot_id)
                self._alarm(now, f"robot {robot_id} is {self._why_down(robot_id)}; its job is reassigned")
                if robot_id in self.jobs:
                    self._drop_job(robot_id, now, f"robot {robot_id} is {self._why_down(robot_id)}")
            elif not unable and robot_id in self.down:
                self.down.discard(robot_id)
                self.idle_since[robot_id] = now

    def _why_down(self, robot_id: str) -> str:
        state = self.motion.robots[robot_id]
        if state.out_of_service:
            return "out of service"
        return "offline" if not state.online else "faulted"

    def _drop_job(self, robot_id: str, now: float, reason: str) -> None:
        job = self.jobs.pop(robot_id)
        self.motion.hold(robot_id, False)
        for queue in self.queues.values():
            if robot_id in queue.robots:
                self._move_up(queue, robot_id, now)
        if job.cell is not None:
            self.claimed.pop(job.cell, None)
        if job.stage in CHARGING:
            self.sent_to_charge.discard(robot_id)
            self._give_charger(robot_id, now)
        task = job.task
        if task is None:
            return
        shelf = self.shelves[task.shelf]
        if shelf.robot == robot_id:
            self.flagged[shelf.id] = f"on robot {robot_id} at {self.motion.robots[robot_id].cell}: {reason}"
            self._alarm(now, f"shelf {shelf.id} is {self.flagged[shelf.id]}; an operator must recover it")
            task.block(reason, now)
            dropped = [p for p, pr in self.presentations.items() if pr.shelf.id == shelf.id]
            for port in dropped:
                del self.presentations[port]
                self._present_next(port, now)  # a shelf standing by at the other working cell
            for port in self.itinerary.pop(shelf.id, []):
                puts = self.stow_puts.pop((shelf.id, port), [])
                self._restow(puts)
        else:  # not lifted yet: another robot fetches it
            task.unassign(now)
            self.fetches[shelf.id] = task

    def _restow(self, puts: list[StowPut]) -> None:
        """Goods planned for a shelf that will not come: back into the stow queue."""
        for put in puts:
            note = self.notes[put.note_id]
            self.stow_lines.insert(0, (note.priority, note.created, note.id, InboundLine(put.sku, put.quantity)))

    def recover_shelf(self, shelf_id: str, cell: Cell, now: float) -> None:
        """Operator: the flagged shelf was taken off its robot and set down at `cell`."""
        if shelf_id not in self.flagged:
            raise ValueError(f"shelf {shelf_id!r} is not flagged")
        shelf = self.shelves[shelf_id]
        shelf.lower(cell)
        del self.flagged[shelf_id]

    # --- between jobs: charging and parking -----------------------------------------
    def _wants_charge(self, robot_id: str) -> bool:
        return self.config.battery.needs_charge(self.motion.robots[robot_id].charge)

    def _between_jobs(self, now: float) -> None:
        battery = self.config.battery
        work_waiting = bool(self.fetches)
        for job in list(self.jobs.values()):
            if job.stage is Stage.CHARGING and battery.may_leave(self.motion.robots[job.robot_id].charge, False):
                self._unplug(job.robot_id, now)
        for robot_id in self._free_robots():
            state = self.motion.robots[robot_id]
            if robot_id in self.restored_loads or (state.shelf_id is not None and robot_id not in self.idle_since):
                # joined with a load (not one whose LoadChanged trails its finished lowering)
                self._carry_on(robot_id, now)
            elif robot_id in self.sent_to_charge or self._wants_charge(robot_id) or not battery.may_work(state.charge):
                self._to_charger(robot_id, now)
            elif not work_waiting and now - self.idle_since.setdefault(robot_id, now) >= self.config.park_after_s \
                    and self.map.kind(state.cell) is not CellKind.PARKING:
                free = [c for c in self.parking if c not in self.claimed and self.motion.traffic.holder(c) is None]
                if free:
                    cell = min(free, key=lambda c: (self._travel(state.cell, c), c))
                    job = RobotJob(robot_id, Stage.PARK, now, cell=cell)
                    self.claimed[cell] = robot_id
                    self.jobs[robot_id] = job
                    self._errand(job, cell)

    def _to_charger(self, robot_id: str, now: float) -> Stage:
        """The nearest free charger, or the charger queue."""
        here = self.motion.robots[robot_id].cell
        cell = self.chargers.request(robot_id, lambda c: self._travel(here, c))
        job = RobotJob(robot_id, Stage.WAIT_CHARGER, now)
        self.jobs[robot_id] = job
        if cell is not None:
            self._go_charge(job, cell, now)
        return job.stage

    def _go_charge(self, job: RobotJob, cell: Cell, now: float) -> None:
        job.stage, job.since, job.cell = Stage.CHARGE, now, None
        self._errand(job, cell, CellAction(self._action_id(), ActionKind.START_CHARGING))

    def _unplug(self, robot_id: str, now: float) -> None:
        job = self.jobs[robot_id]
        job.stage, job.since = Stage.UNPLUG, now
        self._errand(job, self.motion.robots[robot_id].cell, CellAction(self._action_id(), ActionKind.STOP_CHARGING))

    def _leave_charger(self, robot_id: str, now: float) -> None:
        del self.jobs[robot_id]
        self.sent_to_charge.discard(robot_id)
        self.idle_since[robot_id] = now
        self._give_charger(robot_id, now)

    def _give_charger(self, robot_id: str, now: float) -> None:
        handed = self.chargers.release(robot_id)
        if handed is not None:
            waiting, cell = handed
            self._go_charge(self.jobs[waiting], cell, now)

    def _alarm(self, now: float, message: str) -> None:
        log.warning("%s", message)
        self.alarms.append((now, message))
