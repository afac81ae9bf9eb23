"""Order batching: grouping must pay off in fewer presentations, never in lost orders."""

import numpy as np
import pytest

from fleet.domain.order import Order, OrderLine
from fleet.scheduler.batching import Batching, Port, release


def _stream(seed: int, n_orders: int, n_skus: int, skus_per_shelf: int):
    """Orders over a Zipf-skewed catalogue; each SKU lives on one or two shelves."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_skus + 1)
    popularity /= popularity.sum()
    orders = []
    for i in range(n_orders):
        k = int(min(rng.geometric(0.55), 4))
        skus = rng.choice(n_skus, size=k, replace=False, p=popularity)
        orders.append(Order(id=f"O{i:04d}", lines=tuple(OrderLine(f"SKU{s:04d}", 1) for s in skus), created=float(i)))
    sku_shelves = {}
    for s in range(n_skus):
        shelves = [f"SH{s // skus_per_shelf:03d}"]
        if s < 10:  # fast movers are spread over a second shelf
            shelves.append(f"SH{900 + s:03d}")
        sku_shelves[f"SKU{s:04d}"] = shelves
    return orders, sku_shelves


def _check_valid(batch, orders, ports, sku_shelves):
    by_id = {o.id: o for o in orders}
    assigned = [o for ids in batch.orders.values() for o in ids]
    assert len(assigned) == len(set(assigned)), "an order was given to two ports"
    for port in ports:
        ids = batch.orders.get(port.station_id, [])
        assert len(ids) <= port.slots
        shelves = set(batch.shelves.get(port.station_id, []))
        for oid in ids:
            for line in by_id[oid].lines:
                assert shelves & set(sku_shelves[line.sku]), f"{oid} line {line.sku} has no shelf at {port.station_id}"


@pytest.mark.parametrize("strategy", list(Batching))
def test_every_strategy_fills_slots_and_covers_every_line(strategy):
    orders, sku_shelves = _stream(seed=1, n_orders=120, n_skus=300, skus_per_shelf=8)
    ports = [Port("pick-1", 8), Port("pick-2", 8), Port("pick-3", 8)]
    batch = release(orders, ports, sku_shelves, now=200.0, strategy=strategy, time_limit=2.0)
    _check_valid(batch, orders, ports, sku_shelves)
    assert sum(len(v) for v in batch.orders.values()) == 24, "free slots left while orders wait"


def test_batching_beats_first_come_first_served_on_lines_per_presentation():
    orders, sku_shelves = _stream(seed=7, n_orders=200, n_skus=400, skus_per_shelf=10)
    by_id = {o.id: o for o in orders}
    ports = [Port("pick-1", 10), Port("pick-2", 10)]
    fcfs = release(orders, ports, sku_shelves, now=300.0, strategy=Batching.FCFS)
    greedy = release(orders, ports, sku_shelves, now=300.0, strategy=Batching.GREEDY)
    best = release(orders, ports, sku_shelves, now=300.0, strategy=Batching.OPTIMAL, time_limit=3.0)
    lpp = {b.strategy: b.lines_per_presentation(by_id) for b in (fcfs, greedy, best)}
    assert lpp[Batching.GREEDY] > 1.2 * lpp[Batching.FCFS], lpp
    assert lpp[Batching.OPTIMAL] >= lpp[Batching.GREEDY] * 0.999, lpp


def test_urgent_orders_are_not_passed_over():
    orders, sku_shelves = _stream(seed=3, n_orders=60, n_skus=200, skus_per_shelf=8)
    urgent = Order(id="RUSH", lines=(OrderLine("SKU0199", 1),), created=59.5, priority=1)
    ports = [Port("pick-1", 4)]
    for strategy in (Batching.GREEDY, Batching.OPTIMAL):
        batch = release(orders + [urgent], ports, sku_shelves, now=60.0, strategy=strategy, time_limit=2.0)
        assert "RUSH" in batch.orders["pick-1"], strategy


def test_orders_no_shelf_can_serve_are_left_out():
    orders, sku_shelves = _stream(seed=5, n_orders=10, n_skus=50, skus_per_shelf=5)
    orphan = Order(id="GHOST", lines=(OrderLine("SKU-NOWHERE", 1),), created=0.0, priority=5)
    batch = release(orders + [orphan], [Port("pick-1", 20)], sku_shelves, now=10.0)
    assert "GHOST" not in batch.orders["pick-1"]
    assert len(batch.orders["pick-1"]) == 10


@pytest.mark.parametrize("strategy", [Batching.GREEDY, Batching.OPTIMAL])
def test_orders_that_shelves_already_coming_to_a_port_can_serve_go_there(strategy):
    """A port with released orders has shelves on their way: a new order those shelves
    hold rides on them and costs no presentation."""
    sku_shelves = {"A": ["S1"], "B": ["S2"], "C": ["S3"]}
    orders = [Order(id=f"o{i}", lines=(OrderLine(sku, 1),), created=float(i)) for i, sku in enumerate("ABC")]
    port = Port("pick-1", 2, coming=frozenset({"S3"}))
    batch = release(orders, [port], sku_shelves, now=10.0, strategy=strategy, time_limit=2.0)
    assert batch.orders["pick-1"] == ["o0", "o2"]  # o0 is the oldest: it anchors the port
    assert batch.shelves["pick-1"] == ["S1"]  # S3 is coming anyway
