"""Order batching: which released orders each pick port works in its next round.

A robot trip is the expensive thing in goods-to-person picking, and an operator
works a shelf once it is at the port, whatever number of order lines it serves there. So
the batch is built to make each shelf presentation serve as many of the port's order
lines as possible: orders that need the same shelves go to the same port.

Three strategies share one result type so that they can be compared on the same order
stream (benchmarks/batching.py):

- `fcfs`: first come, first served, no grouping (the baseline a warehouse starts with);
- `greedy`: fills each port by adding the order that needs the fewest new shelves per
  line it brings; fast, and the fallback when the optimiser runs out of time;
- `optimal`: CP-SAT (OR-Tools) over orders x ports x shelves, minimising presentations
  while serving as many orders (weighted by urgency) as the slots allow; it starts from
  the greedy answer as a hint, so it is never worse than greedy when it stops early.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Sequence

from fleet.domain.order import Order
from fleet.scheduler.shelf_choice import cover_lines


class Batching(str, Enum):
    FCFS = "fcfs"
    GREEDY = "greedy"
    OPTIMAL = "optimal"


@dataclass(frozen=True)
class Port:
    """A pick port as batching sees it: how many orders (box slots) a round takes, and
    the shelves already on their way to it for orders released before: a new order whose
    lines those shelves hold costs no presentation there."""

    station_id: str
    slots: int
    coming: frozenset[str] = frozenset()


@dataclass
class Batch:
    """One round: orders per port, and the shelves each port will be presented."""

    orders: dict[str, list[str]] = field(default_factory=dict)  # station id -> order ids
    shelves: dict[str, list[str]] = field(default_factory=dict)  # station id -> shelf ids
    strategy: Batching = Batching.FCFS
    optimal: bool = False  # the optimiser proved its answer optimal

    @property
    def presentations(self) -> int:
        return sum(len(s) for s in self.shelves.values())

    def lines(self, orders: Mapping[str, Order]) -> int:
        return sum(len(orders[o].lines) for ids in self.orders.values() for o in ids)

    def lines_per_presentation(self, orders: Mapping[str, Order]) -> float:
        return self.lines(orders) / self.presentations if self.presentations else 0.0


def urgency(order: Order, now: float) -> float:
    """Why an order goes first: priority, then a deadline that comes close, then age."""
    score = 1000.0 * order.priority + (now - order.created) / 60.0
    if order.cutoff is not None:
        score += 500.0 / max(1.0, (order.cutoff - now) / 60.0)
    return score


def _urgency_class(order: Order, now: float) -> int:
    """Coarse urgency for the optimiser: express orders, and orders near their cut-off."""
    near_cutoff = order.cutoff is not None and order.cutoff - now < 1800.0
    return order.priority + int(near_cutoff)


def release(
    orders: Sequence[Order],
    ports: Sequence[Port],
    sku_shelves: Mapping[str, Sequence[str]],
    now: float,
    strategy: Batching = Batching.OPTIMAL,
    time_limit: float = 1.0,
    candidates_per_slot: int = 12,
) -> Batch:
    """Choose the next round for the ports from the pending `orders`.

    `sku_shelves` lists, per SKU, the shelves that hold it (best first); an order with a
    SKU no shelf holds cannot be served and is left out. Only the most urgent
    `candidates_per_slot` x slots orders are considered, so the model stays small and an
    order can not be passed over forever by newer, better-fitting ones.
    """
    servable = [o for o in orders if all(sku_shelves.get(line.sku) for line in o.lines)]
    ranked = sorted(servable, key=lambda o: (-urgency(o, now), o.created, o.id))
    if strategy is Batching.FCFS:
        return _fcfs(sorted(servable, key=lambda o: (o.created, o.id)), ports, sku_shelves)
    pool = ranked[: candidates_per_slot * sum(p.slots for p in ports)]
    greedy = _greedy(pool, ports, sku_shelves, now)
    if strategy is Batching.GREEDY or not pool:
        return greedy
    return _optimal(pool, ports, sku_shelves, now, time_limit, hint=greedy)


def _skus(orders: Sequence[Order]) -> list[str]:
    return [line.sku for o in orders for line in o.lines]


def _fcfs(orders: Sequence[Order], ports: Sequence[Port], sku_shelves: Mapping[str, Sequence[str]]) -> Batch:
    """Orders in arrival order, dealt to ports in turn; each line fetches the first shelf
    that holds its SKU, as a system without batching would."""
    batch = Batch(strategy=Batching.FCFS)
    free = {p.station_id: p.slots for p in ports}
    turn = [p.station_id for p in ports]
    i = 0
    for order in orders:
        open_ports = [s for s in turn if free[s] > 0]
        if not open_ports:
            break
        station = open_ports[i % len(open_ports)]
        i += 1
        free[station] -= 1
        batch.orders.setdefault(station, []).append(order.id)
        shelves = batch.shelves.setdefault(station, [])
        for line in order.lines:
            first = sku_shelves[line.sku][0]
            if first not in shelves:
                shelves.append(first)
    return batch


def _greedy(orders: Sequence[Order], ports: Sequence[Port], sku_shelves: Mapping[str, Sequence[str]], now: float) -> Batch:
    batch = Batch(strategy=Batching.GREEDY)
    left = list(orders)  # most urgent first
    for port in ports:
        if not left:
            break
        taken = [left.pop(0)]  # the most urgent order anchors the port
        coming = sorted(port.coming)
        shelves = set(cover_lines(_skus(taken), sku_shelves, preferred=coming)) | port.coming
        while len(taken) < port.slots and left:
            def cost(o: Order) -> tuple[float, float]:
                new = sum(1 for line in o.lines if not shelves.intersection(sku_shelves[line.sku]))
                return (new / len(o.lines), -urgency(o, now))

            best = min(left, key=cost)
            left.remove(best)
            taken.append(best)
            shelves = set(cover_lines(_skus(taken), sku_shelves, preferred=sorted(shelves))) | port.coming
        batch.orders[port.station_id] = [o.id for o in taken]
        batch.shelves[port.station_id] = [
            s for s in cover_lines(_skus(taken), sku_shelves, preferred=sorted(shelves)) if s not in port.coming]
    return batch


def _optimal(orders: Sequence[Order], ports: Sequence[Port], sku_shelves: Mapping[str, Sequence[str]],
             now: float, time_limit: float, hint: Batch) -> Batch:
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    by_id = {o.id: o for o in orders}
    shelves = sorted({s for o in orders for line in o.lines for s in sku_shelves[line.sku]})
    x = {(o.id, p.station_id): model.new_bool_var(f"x_{o.id}_{p.station_id}") for o in orders for p in ports}
    y = {(p.station_id, s): model.new_bool_var(f"y_{p.station_id}_{s}") for p in ports for s in shelves}
    for o in orders:
        model.add_at_most_one(x[o.id, p.station_id] for p in ports)
    for p in ports:
        model.add(sum(x[o.id, p.station_id] for o in orders) <= p.slots)
        for o in orders:
            for line in o.lines:
                # an order at a port needs, for each line, some shelf with its SKU there
                model.add_bool_or([y[p.station_id, s] for s in sku_shelves[line.sku]]).only_enforce_if(x[o.id, p.station_id])
    # Age already chose the pool, and the most urgent orders are served whatever they
    # cost (one per port, as greedy anchors them), so no order waits forever. Within the
    # pool, a filled slot outweighs any number of presentations, a higher class of
    # urgency outweighs grouping, and grouping decides the rest.
    for o in orders[: len(ports)]:
        model.add_exactly_one(x[o.id, p.station_id] for p in ports)
    coming = {p.station_id: p.coming for p in ports}  # presented there anyway: free
    scale = 1 + len(shelves) * len(ports)
    weight = {o.id: scale * (10 + 5 * _urgency_class(o, now)) for o in orders}
    model.maximize(
        sum(weight[o.id] * x[o.id, p.station_id] for o in orders for p in ports)
        - sum(var for (station, shelf), var in y.items() if shelf not in coming[station])
    )
    for (oid, station), var in x.items():
        model.add_hint(var, oid in hint.orders.get(station, []))
    for (station, shelf), var in y.items():
        model.add_hint(var, shelf in hint.shelves.get(station, []))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit
    solver.parameters.num_workers = 2
    solver.parameters.random_seed = 0
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return hint
    batch = Batch(strategy=Batching.OPTIMAL, optimal=status == cp_model.OPTIMAL)
    for p in ports:
        taken = [by_id[o.id] for o in orders if solver.value(x[o.id, p.station_id])]
        if taken:
            batch.orders[p.station_id] = [o.id for o in taken]
            chosen = sorted(p.coming) + [s for s in shelves if solver.value(y[p.station_id, s]) and s not in p.coming]
            batch.shelves[p.station_id] = [s for s in cover_lines(_skus(taken), sku_shelves, preferred=chosen)
                                           if s not in p.coming]
    return batch
