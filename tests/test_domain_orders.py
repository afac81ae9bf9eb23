"""Orders, inbound notes, order boxes and order shelves."""

from __future__ import annotations

import re

import pytest

from fleet.domain import (
    BOX_TYPES,
    BoxType,
    InboundLine,
    InboundNote,
    InboundStatus,
    InvalidQuantity,
    InvalidTransition,
    NoBoxFits,
    Order,
    OrderBox,
    OrderBoxError,
    OrderLine,
    OrderShelf,
    OrderShelfError,
    OrderStatus,
    UnknownSku,
    choose_box_type,
)
from fleet.domain.order_box import PACKING_EFFICIENCY
from maps.model import Cell
from test_domain_inventory import catalogue


def order(*lines: tuple[str, int], order_id: str = "O1", **kw) -> Order:
    return Order(id=order_id, lines=tuple(OrderLine(s, q) for s, q in lines), created=100.0, **kw)


def test_order_volume_weight_and_units():
    o = order(("BOOK", 2), ("PEN", 3))
    assert o.units == 5
    assert o.volume_l(catalogue()) == pytest.approx(4.3)
    assert o.weight_kg(catalogue()) == pytest.approx(2.06)
    with pytest.raises(UnknownSku, match="GHOST"):
        order(("GHOST", 1)).volume_l(catalogue())


def test_order_is_validated():
    with pytest.raises(ValueError, match="has no lines"):
        Order(id="O1", lines=(), created=0.0)
    with pytest.raises(ValueError, match="BOOK on more than one line"):
        order(("BOOK", 1), ("BOOK", 2))
    with pytest.raises(ValueError, match="cut-off 50.0 is before its creation 100.0"):
        order(("BOOK", 1), cutoff=50.0)
    with pytest.raises(InvalidQuantity, match="order line for BOOK"):
        OrderLine("BOOK", 0)
    with pytest.raises(InvalidQuantity):
        OrderLine("BOOK", 1.0)


def test_order_life_cycle():
    o = order(("BOOK", 1), priority=2, cutoff=7300.0)
    assert o.status is OrderStatus.PENDING and o.updated == o.created == 100.0
    o.set_status(OrderStatus.RELEASED, 110.0)
    o.set_status(OrderStatus.PENDING, 115.0)  # its port closed before picking started
    o.set_status(OrderStatus.RELEASED, 120.0)
    o.set_status(OrderStatus.PICKING, 130.0)
    o.set_status(OrderStatus.PICKED, 140.0)
    assert o.updated == 140.0
    with pytest.raises(InvalidTransition, match="order O1: cannot go from picked to cancelled"):
        o.set_status(OrderStatus.CANCELLED, 150.0)
    o.set_status(OrderStatus.PACKED, 160.0)
    with pytest.raises(InvalidTransition, match="nothing \\(final\\)"):
        o.set_status(OrderStatus.PENDING, 170.0)
    assert o.status is OrderStatus.PACKED and o.updated == 160.0


def test_smallest_box_that_fits_is_chosen():
    assert [b.name for b in BOX_TYPES] == ["S", "M", "L", "XL"]
    assert choose_box_type(0.01).name == "S"
    assert choose_box_type(4.0 * PACKING_EFFICIENCY).name == "S"  # exactly full
    assert choose_box_type(4.0 * PACKING_EFFICIENCY + 0.001).name == "M"
    assert choose_box_type(20.0).name == "L"
    assert choose_box_type(38.4).name == "XL"
    # order of the box list does not matter
    assert choose_box_type(5.0, list(reversed(BOX_TYPES))).name == "M"
    assert choose_box_type(order(("BOOK", 2), ("PEN", 3)).volume_l(catalogue())).name == "M"


def test_no_box_fits_is_a_clear_error():
    with pytest.raises(NoBoxFits, match=r"no order box fits 50.00 L of items: the largest, 'XL', takes 38.40 L"):
        choose_box_type(50.0)
    with pytest.raises(ValueError, match="positive item volume"):
        choose_box_type(0.0)
    with pytest.raises(ValueError, match="no box types"):
        choose_box_type(1.0, [])
    with pytest.raises(ValueError, match="inner volume must be positive"):
        BoxType("Z", 0.0, 0.1)


def test_order_box_records_picks_until_complete():
    cat = catalogue()
    box = OrderBox.for_order(order(("BOOK", 2), ("PEN", 1)), BOX_TYPES[1], "BX0001")
    assert not box.complete and box.missing("BOOK") == 2
    box.put(cat["BOOK"], 2)
    with pytest.raises(OrderBoxError, match="cannot put 1 x BOOK, only 0 still missing of 2"):
        box.put(cat["BOOK"], 1)
    with pytest.raises(OrderBoxError, match="does not ask for BRICK"):
        box.put(cat["BRICK"], 1)
    with pytest.raises(InvalidQuantity):
        box.put(cat["PEN"], 0)
    assert not box.complete
    box.put(cat["PEN"], 1)
    assert box.complete and dict(box.picked) == {"BOOK": 2, "PEN": 1}
    assert box.weight_kg == pytest.approx(0.3 + 2.0 + 0.02)


def test_order_shelf_slots_hold_boxes():
    shelf = OrderShelf.build("OS01", Cell(3, 2))
    assert shelf.shelf_class == "order" and len(shelf.slots) == 8 and "OS01-L2-S1" in shelf.slots
    o1, o2 = order(("PEN", 1), order_id="O1"), order(("BOOK", 1), order_id="O2")
    b1 = OrderBox.for_order(o1, BOX_TYPES[0], "BX1")
    b2 = OrderBox.for_order(o2, BOX_TYPES[0], "BX2")
    assert shelf.place(b1) == "OS01-L1-S1"
    assert shelf.place(b2, "OS01-L3-S2") == "OS01-L3-S2"
    with pytest.raises(OrderShelfError, match="already holds order box BX1"):
        shelf.place(b1)
    with pytest.raises(OrderShelfError, match="slot OS01-L3-S2 already holds order box BX2"):
        shelf.place(OrderBox.for_order(o2, BOX_TYPES[0], "BX3"), "OS01-L3-S2")
    with pytest.raises(OrderShelfError, match="has no slot 'OS01-L9-S9'"):
        shelf.place(OrderBox.for_order(o2, BOX_TYPES[0], "BX3"), "OS01-L9-S9")
    assert shelf.slot_of("BX2") == "OS01-L3-S2" and len(shelf.free_slots()) == 6
    assert not shelf.complete
    b1.put(catalogue()["PEN"], 1)
    b2.put(catalogue()["BOOK"], 1)
    assert shelf.complete
    assert shelf.total_weight_kg == pytest.approx(40.0 + 0.15 + 0.02 + 0.15 + 1.0)
    assert shelf.remove("OS01-L1-S1") is b1
    with pytest.raises(OrderShelfError, match="slot 'OS01-L1-S1' is empty"):
        shelf.remove("OS01-L1-S1")
    with pytest.raises(OrderShelfError, match="holds no order box 'BX1'"):
        shelf.slot_of("BX1")


def test_order_shelf_refuses_boxes_larger_than_its_slots():
    shelf = OrderShelf.build("OS02", Cell(0, 0))
    huge = OrderBox.for_order(order(("BOOK", 1)), BoxType("PALLET", 500.0, 20.0), "BXP")
    with pytest.raises(OrderShelfError, match="no free slot for a PALLET box"):
        shelf.place(huge)
    with pytest.raises(OrderShelfError, match="takes boxes up to 138.24 L"):
        shelf.place(huge, "OS02-L1-S1")
    assert shelf.boxes() == [] and not shelf.complete


def test_inbound_note_lines_and_life_cycle():
    note = InboundNote(id="IN1", lines=(InboundLine("BOOK", 40), InboundLine("PEN", 500, priority=3)),
                       created=5.0, priority=1)
    assert [note.line_priority(line) for line in note.lines] == [1, 3]
    note.set_status(InboundStatus.STOWING, 10.0)
    with pytest.raises(InvalidTransition, match="inbound note IN1: cannot go from stowing to cancelled"):
        note.set_status(InboundStatus.CANCELLED, 11.0)
    note.set_status(InboundStatus.STOWED, 12.0)
    assert note.updated == 12.0
    with pytest.raises(ValueError, match="has no lines"):
        InboundNote(id="IN2", lines=(), created=0.0)
    with pytest.raises(InvalidQuantity, match="inbound line for PEN"):
        InboundLine("PEN", -5)


# --- customers -------------------------------------------------------------------------------------
def test_a_customer_is_checked_and_hides_itself_from_logs():
    from fleet.domain.order import Customer

    ann = Customer(name=" Ann Example ", address="1 Test Road, Testburg", phone=" ", email="ann@example.com")
    assert (ann.name, ann.phone, ann.email) == ("Ann Example", None, "ann@example.com")
    order = Order(id="O1", lines=(OrderLine("A", 1),), created=0.0, customer=ann)
    assert "Ann" not in repr(order) and "example.com" not in repr(order)
    for bad, message in [({"name": "Ann", "address": "1\r\n2"}, "customer address contains a control character (U+000D)"),
                         ({"name": "", "address": "x"}, "customer name must not be blank"),
                         ({"name": "Ann", "address": None}, "customer address is required"),
                         ({"name": "Ann", "address": "x", "email": "no-at-sign"}, "customer email is not a valid email"),
                         ({"name": 7, "address": "x"}, "customer name must be text, got int")]:
        with pytest.raises(ValueError, match=re.escape(message)):
            Customer(**bad)
    with pytest.raises(ValueError, match="customer must be a Customer"):
        Order(id="O2", lines=(OrderLine("A", 1),), created=0.0, customer={"name": "Ann"})
