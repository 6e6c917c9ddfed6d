"""Keyset pages: a page names the row it starts after, so page 2,000 costs what page 1 does,
and rows added meanwhile neither repeat nor skip a row on the next page (OFFSET paging does
both, and scans every row it skips).

Requests are paged on (created_at, id), the order of their list and of the approvals queue,
with an index of the same columns behind each filter (ImportRequest.Meta.indexes).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR_RE = re.compile(r"^(-?[0-9]{1,18})_([0-9]{1,18})$")


@dataclass(frozen=True)
class KeysetPage:
    object_list: list[Any]
    # The cursors of the pages before and after this one (None: there is none).
    previous_cursor: str | None
    next_cursor: str | None

    @property
    def has_other_pages(self) -> bool:
        return bool(self.previous_cursor or self.next_cursor)


def cursor_of(row: Any) -> str:
    return f"{(row.created_at - EPOCH) // timedelta(microseconds=1)}_{row.pk}"


def parse_cursor(text: str | None) -> tuple[datetime, int] | None:
    """The (created_at, id) a cursor names; None for a missing or malformed one (the first page)."""
    match = CURSOR_RE.match(text or "")
    if not match:
        return None
    try:
        return EPOCH + timedelta(microseconds=int(match.group(1))), int(match.group(2))
    except OverflowError:
        return None


def _beyond(at: datetime, pk: int, *, later: bool) -> Q:
    # The first condition alone bounds the index range; the second breaks ties on created_at.
    # (A row-value comparison would say it at once, but Django has no public lookup for it.)
    if later:
        return Q(created_at__gte=at) & (Q(created_at__gt=at) | Q(created_at=at, pk__gt=pk))
    return Q(created_at__lte=at) & (Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk))


def keyset_page(
    rows: QuerySet[Any], *, size: int, after: str | None = None, before: str | None = None, newest_first: bool = True
) -> KeysetPage:
    """The page of `rows` that follows the cursor `after` (or precedes `before`), ordered by
    (created_at, id), newest first unless told otherwise. One query."""
    order = ["-created_at", "-pk"] if newest_first else ["created_at", "pk"]
    backwards = parse_cursor(before) if before else None
    forwards = parse_cursor(after) if backwards is None else None
    if backwards:
        # Read the rows before the cursor in reverse order, then turn them round.
        reverse = [name[1:] if name.startswith("-") else f"-{name}" for name in order]
        found = list(rows.filter(_beyond(*backwards, later=newest_first)).order_by(*reverse)[: size + 1])
        shown = found[:size][::-1]
        more_before = len(found) > size
        return KeysetPage(
            shown, cursor_of(shown[0]) if shown and more_before else None, cursor_of(shown[-1]) if shown else None
        )
    if forwards:
        rows = rows.filter(_beyond(*forwards, later=not newest_first))
    found = list(rows.order_by(*order)[: size + 1])
    shown = found[:size]
    previous = cursor_of(shown[0]) if forwards and shown else None
    return KeysetPage(shown, previous, cursor_of(shown[-1]) if len(found) > size else None)
