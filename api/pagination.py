"""Cursor pagination of the REST API's lists."""

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class Cursor(CursorPagination):
    """Cursor pagination: `next` / `previous` links; the order is the view's `ordering`."""

    page_size = 25
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_ordering(self, request, queryset, view):
        ordering = getattr(view, "ordering", None) or ("-id",)
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except exceptions.NotFound:
            # DRF answers 404 for a cursor it cannot read; it is the request that is wrong.
            raise exceptions.ValidationError({"cursor": ["This cursor is not one this API gave out."]}) from None
