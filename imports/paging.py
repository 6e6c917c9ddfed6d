"""Keyset pages: a page names the row it starts after, so page 2,000 costs what page 1 does,
and rows added meanwhile neither repeat nor skip a row on the next page (OFFSET paging does
both, and scans every row it skips).

Requests are paged on (created_at, id), the order of their list and of the approvals queue,
with an index of the same columns behind each filter (ImportRequest.Meta.indexes).

A search's page is read in up to three steps (searched_page): among the newest requests first,
then among more of them, then among all of them, sorted after they are found.
"""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import DateTimeField, ExpressionWrapper, F, Lookup, Q, QuerySet, Value
from django.db.models.expressions import OrderBy

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR_RE = re.compile(r"^(-?[0-9]{1,18})_([0-9]{1,18})$")
# How many of the newest requests (beyond the cursor) a search reads first, along the index, and
# how many at most in a second look (searched_page).
SEARCH_WINDOW = 200
WIDEST_WINDOW = 2000
CREATED_AT = F("created_at")
# created_at for sorting, but an expression no index holds: PostgreSQL must find the rows first
# (a search, with its trigram indexes) and sort them after, instead of walking the created_at
# index from the newest row and testing each one against the search.
CREATED_AT_UNINDEXED = ExpressionWrapper(F("created_at") + Value(timedelta(0)), output_field=DateTimeField())


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
    return _read_page(rows, size=size, after=after, before=before, newest_first=newest_first)[0]


def searched_page(
    rows: QuerySet[Any], *, among: QuerySet[Any], size: int, after: str | None = None, before: str | None = None
) -> KeysetPage:
    """keyset_page for `rows`, the rows of `among` a search matched, newest first, in one to
    three queries.

    Walking the created_at index and testing each row is quick when the search matches many
    recent requests, and very slow when its matches are all old (a month's image names: the
    walk crosses every newer request). Finding every match by the search's indexes and sorting
    them is the other way round. PostgreSQL picks one from its estimate of how many rows match,
    which cannot see that matches bunch in time and moves with each ANALYZE: the same search
    took 3 ms or 60-100 ms at 100,000 requests. So a search reads the newest SEARCH_WINDOW rows
    of `among` beyond the cursor first: if enough of them match, they are the page; if some do,
    as many more as should fill it (up to WIDEST_WINDOW); else it finds all matches and sorts
    them."""
    recent, matched = _read_page(rows, size=size, after=after, before=before, window=(among, SEARCH_WINDOW))
    if matched > size:
        return recent
    wider = math.ceil(SEARCH_WINDOW * (size + 1) * 2 / matched) if matched else WIDEST_WINDOW + 1
    if wider <= WIDEST_WINDOW:
        recent, matched = _read_page(rows, size=size, after=after, before=before, window=(among, wider))
        if matched > size:
            return recent
    return _read_page(rows, size=size, after=after, before=before, created_at=CREATED_AT_UNINDEXED)[0]


def _read_page(
    rows: QuerySet[Any],
    *,
    size: int,
    after: str | None,
    before: str | None,
    newest_first: bool = True,
    window: tuple[QuerySet[Any], int] | None = None,
    created_at: Any = CREATED_AT,
) -> tuple[KeysetPage, int]:
    """The page, and how many rows were found for it (more than `size`: there is a page beyond).
    With `window` (a queryset and a number), only that many of its first rows beyond the cursor
    are read; `created_at` is what the rows are sorted by."""
    backwards = parse_cursor(before) if before else None
    forwards = parse_cursor(after) if backwards is None else None
    cursor = backwards or forwards
    # Read the rows before a `before` cursor in reverse order, then turn them round.
    descending = newest_first != bool(backwards)
    beyond = _beyond(*cursor, later=not descending) if cursor else Q()
    rows = rows.filter(beyond)
    if window:
        candidates, length = window
        candidates = candidates.filter(beyond)
        nearest = candidates.order_by(*_order(CREATED_AT, descending=descending)).values("pk")[:length]
        rows = rows.filter(among("pk", nearest, rows=rows))
    found = list(rows.order_by(*_order(created_at, descending=descending))[: size + 1])
    shown = found[:size]
    more = len(found) > size
    if backwards:
        shown.reverse()
        previous = cursor_of(shown[0]) if shown and more else None
        return KeysetPage(shown, previous, cursor_of(shown[-1]) if shown else None), len(found)
    previous = cursor_of(shown[0]) if forwards and shown else None
    return KeysetPage(shown, previous, cursor_of(shown[-1]) if more else None), len(found)


class Among(Lookup):
    """`column = ANY(ARRAY(subquery))`: PostgreSQL runs the subquery once, first, and reads the
    rows it names by an index of the column, or tests rows against its list. Written
    `column IN (subquery)`, it becomes a join, which PostgreSQL may start from elsewhere: for a
    search's window, from the search's trigram indexes, all of them, which is what the window
    is there to avoid; in an OR, from every row of the table."""

    lookup_name = "among"

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} = ANY(ARRAY{rhs})", [*lhs_params, *rhs_params]


def among(column: str, subquery: QuerySet[Any], *, rows: QuerySet[Any]) -> Q:
    """`column` is one of the values `subquery` selects, as a condition on `rows` (Among on
    PostgreSQL; elsewhere `IN`)."""
    if connections[rows.db].vendor == "postgresql":
        return Q(Among(F(column), subquery))
    return Q(**{f"{column}__in": subquery})


def _order(created_at: Any, *, descending: bool) -> list[OrderBy]:
    return [created_at.desc(), F("pk").desc()] if descending else [created_at.asc(), F("pk").asc()]
