"""Goods in and orders in: what a client sends (JSON or CSV), checked against the catalogue
before anything is stored, every problem named with where it is.

An order or a note is all or nothing, and so is a bulk upload: one bad line refuses the
whole upload, with a list of every problem found (up to MAX_PROBLEMS), so a client fixes
its file once rather than line by line.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import Counter
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fleet.domain.order import CUSTOMER_FIELDS, Customer, check_customer_field
from fleet.domain.sku import Catalogue

MAX_PROBLEMS = 20
#: Lines in one upload at most (a bigger file is split by the client).
MAX_LINES = 20000
ID_PATTERN = r"^[A-Za-z0-9_.:-]+$"


class IntakeError(ValueError):
    """The input cannot be taken; `problems` says each reason and where."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems[:MAX_PROBLEMS]
        more = len(problems) - len(self.problems)
        super().__init__("; ".join(self.problems) + (f"; and {more} more" if more else ""))


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderLineIn(_Body):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100000)


def _text(field: str, description: str):
    """A customer field as the domain bounds it (fleet.domain.order.CUSTOMER_FIELDS)."""
    limit, pattern, _, required = CUSTOMER_FIELDS[field]
    return Field(... if required else None, min_length=1 if required else None, max_length=limit, repr=False,
                 description=description + ("" if pattern is None else f"; matches {pattern.pattern}"))


class CustomerIn(_Body):
    """Text on one line, no control characters; outer spaces are stripped."""

    name: str = _text("name", "on the packing label")
    address: str = _text("address", "delivery address, on the packing label")
    reference: str | None = _text("reference", "the customer's own order reference")
    phone: str | None = _text("phone", "contact: shown to admins only")
    email: str | None = _text("email", "contact: shown to admins only")

    @field_validator(*CUSTOMER_FIELDS)
    @classmethod
    def _plain(cls, value, info):
        return check_customer_field(info.field_name, value)

    def customer(self) -> Customer:
        return Customer(**self.model_dump())


class OrderIn(_Body):
    #: Absent: the service names the order.
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID_PATTERN)
    priority: int = Field(default=0, ge=-1000, le=1000, description="higher is more urgent")
    cutoff_in_s: float | None = Field(default=None, ge=0, le=30 * 24 * 3600,
                                      description="seconds from now by which it must be picked")
    customer: CustomerIn | None = Field(default=None, description="who it goes to (personal data: shown by role)")
    lines: list[OrderLineIn] = Field(min_length=1, max_length=500)


class InboundLineIn(_Body):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(gt=0, le=100000)
    priority: int | None = Field(default=None, ge=-1000, le=1000, description="overrides the note's")


class InboundIn(_Body):
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=ID_PATTERN)
    priority: int = Field(default=0, ge=-1000, le=1000)
    lines: list[InboundLineIn] = Field(min_length=1, max_length=500)


@dataclass(frozen=True)
class Checked:
    """An order or a note ready for the scheduler: its id is set and every SKU is known."""

    id: str
    priority: int
    cutoff_in_s: float | None
    lines: tuple[tuple[str, int, int | None], ...]  # sku, quantity, line priority
    customer: Customer | None = None


def check_orders(orders: list[OrderIn], catalogue: Catalogue) -> list[Checked]:
    problems: list[str] = []
    out = []
    for n, order in enumerate(orders, 1):
        name = order.id or f"order #{n}"
        skus = [line.sku for line in order.lines]
        twice = sorted(s for s, k in Counter(skus).items() if k > 1)
        if twice:
            problems.append(f"{name}: SKU(s) {', '.join(twice)} on more than one line; merge the lines")
        problems += _unknown(name, skus, catalogue)
        out.append(Checked(order.id or _new_id("O"), order.priority, order.cutoff_in_s,
                           tuple((line.sku, line.quantity, None) for line in order.lines),
                           order.customer.customer() if order.customer else None))
    problems += _repeated_ids(out)
    if problems:
        raise IntakeError(problems)
    return out


def check_notes(notes: list[InboundIn], catalogue: Catalogue) -> list[Checked]:
    problems: list[str] = []
    out = []
    for n, note in enumerate(notes, 1):
        name = note.id or f"note #{n}"
        problems += _unknown(name, [line.sku for line in note.lines], catalogue)
        out.append(Checked(note.id or _new_id("N"), note.priority, None,
                           tuple((line.sku, line.quantity, line.priority) for line in note.lines)))
    problems += _repeated_ids(out)
    if problems:
        raise IntakeError(problems)
    return out


#: Optional CSV columns that belong to the order, not the line.
ORDER_COLUMNS = ("priority", "cutoff_in_s", *(f"customer_{f}" for f in CUSTOMER_FIELDS))


def orders_from_csv(text: str) -> list[OrderIn]:
    """Columns order_id, sku, quantity (required); the order's fields priority,
    cutoff_in_s, customer_name, customer_address, customer_reference, customer_phone,
    customer_email (optional). One row per order line, each row repeating its order's
    fields (or leaving them empty after the first): rows of one order that disagree are
    refused, since they are two orders under one id more often than a typo."""
    grouped: dict[str, dict] = {}
    problems: list[str] = []
    for row_no, row in _rows(text, ("order_id", "sku", "quantity"), ORDER_COLUMNS):
        order = grouped.setdefault(row["order_id"], {"id": row["order_id"], "lines": [], "rows": [], "fields": {}})
        order["rows"].append(row_no)
        order["lines"].append({"sku": row["sku"], "quantity": row["quantity"]})
        for key in ORDER_COLUMNS:
            if row.get(key):
                value, first_row = order["fields"].setdefault(key, (row[key], row_no))
                if value != row[key]:  # the values are not named: they may be personal data
                    problems.append(f"{row['order_id']} row {row_no}: {key} differs from row {first_row}; "
                                    "the rows of one order must agree")
    if problems:
        raise IntakeError(problems)
    return _validated(OrderIn, (_order_item(order) for order in grouped.values()))


def _order_item(grouped: dict) -> dict:
    fields = {key: value for key, (value, _) in grouped.pop("fields").items()}
    customer = {key.removeprefix("customer_"): fields.pop(key) for key in list(fields) if key.startswith("customer_")}
    return grouped | fields | ({"customer": customer} if customer else {})


def notes_from_csv(text: str) -> list[InboundIn]:
    """Columns note_id, sku, quantity (required), priority, line_priority (optional)."""
    grouped: dict[str, dict] = {}
    for row_no, row in _rows(text, ("note_id", "sku", "quantity"), ("priority", "line_priority")):
        note = grouped.setdefault(row["note_id"], {"id": row["note_id"], "lines": [], "rows": []})
        note["rows"].append(row_no)
        line = {"sku": row["sku"], "quantity": row["quantity"]}
        if row.get("line_priority"):
            line["priority"] = row["line_priority"]
        note["lines"].append(line)
        if row.get("priority") and "priority" not in note:
            note["priority"] = row["priority"]
    return _validated(InboundIn, grouped.values())


def _rows(text: str, required: tuple[str, ...], optional: tuple[str, ...]):
    """The rows as (line number, {column: text}); a file the csv module cannot read at
    all (a stray quote or carriage return) is an IntakeError naming the line, never a crash."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        yield from _checked_rows(reader, required, optional)
    except csv.Error as exc:
        raise IntakeError([f"near line {reader.line_num + 1}: not readable as CSV: {exc}"]) from None


def _checked_rows(reader: csv.DictReader, required: tuple[str, ...], optional: tuple[str, ...]):
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        raise IntakeError([f"CSV header must name {', '.join(required)} (optional: {', '.join(optional)}); "
                           f"missing {', '.join(missing)}"])
    unknown = [c for c in header if c not in required + optional]
    if unknown:
        raise IntakeError([f"CSV header: unknown column(s) {', '.join(unknown)}"])
    reader.fieldnames = header
    rows = 0
    for row_no, row in enumerate(reader, 2):
        rows += 1
        if rows > MAX_LINES:
            raise IntakeError([f"more than {MAX_LINES} lines in one upload; split the file"])
        if None in row or any(row.get(c) is None for c in required):
            raise IntakeError([f"row {row_no}: expected {len(header)} values"])
        yield row_no, {k: v.strip() for k, v in row.items() if v is not None}
    if rows == 0:
        raise IntakeError(["the CSV has a header but no rows"])


def _validated(model: type[BaseModel], grouped) -> list:
    from pydantic import ValidationError

    out, problems = [], []
    for item in grouped:
        rows = item.pop("rows")
        try:
            out.append(model.model_validate(item))
        except ValidationError as exc:
            for e in exc.errors():
                where = ".".join(str(p) for p in e["loc"])
                if e["loc"][:1] == ("lines",) and len(e["loc"]) > 1 and isinstance(e["loc"][1], int):
                    where = f"row {rows[e['loc'][1]]} {'.'.join(str(p) for p in e['loc'][2:])}"
                problems.append(f"{item['id'] or '(no id)'}: {where}: {e['msg']}")
    if problems:
        raise IntakeError(problems)
    return out


def _unknown(name: str, skus: list[str], catalogue: Catalogue) -> list[str]:
    return [f"{name} line {i}: unknown SKU {sku!r}" for i, sku in enumerate(skus, 1) if sku not in catalogue]


def _repeated_ids(items: list[Checked]) -> list[str]:
    counts = Counter(c.id for c in items)
    return [f"id {i} appears more than once in the upload" for i in sorted(i for i, n in counts.items() if n > 1)]


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
