"""Turn a list query into the services' PageRequest and a service Page into the API's ListPage."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from api_server.query_params import ListPage, ListQuery
from api_server.services.paging import Page, PageRequest, Sortable, fingerprint, parse_order

T = TypeVar("T")
_PAGING_FIELDS = {"limit", "offset", "after", "order_by"}


def page_request(query: ListQuery, orderable: Mapping[str, Sortable]) -> PageRequest:
    """Validate order_by and bind the filters into the cursor's fingerprint."""
    filters = query.model_dump(mode="json", exclude=_PAGING_FIELDS)
    return PageRequest(limit=query.limit, offset=query.offset, after=query.after,
                       order=parse_order(query.order_by, orderable), fingerprint=fingerprint(filters))


def list_page(page: Page, items: Sequence[T] | Callable[[Any], T]) -> ListPage[T]:
    """The API's page shape, with items given or built row by row."""
    built = list(items) if not callable(items) else [items(row) for row in page.rows]
    return ListPage[T](items=built, limit=page.limit, offset=page.offset, total=page.total,
                       next=page.next, has_more=page.has_more)
