"""Status life cycles shared by orders, inbound notes and tasks.

Each status enum comes with a table of the moves it allows; `advance` is the one place
that enforces such a table, so a scheduler bug (finishing a task that never started,
releasing a cancelled order) fails loudly where it happens.
"""

from __future__ import annotations

from enum import Enum
from typing import Mapping, TypeVar

from fleet.domain.errors import InvalidTransition

S = TypeVar("S", bound=Enum)


def advance(what: str, current: S, new: S, allowed: Mapping[S, frozenset[S]]) -> S:
    nexts = allowed.get(current, frozenset())
    if new not in nexts:
        names = ", ".join(sorted(s.value for s in nexts)) or "nothing (final)"
        raise InvalidTransition(what, current.value, getattr(new, "value", new), names)
    return new
