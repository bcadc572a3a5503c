"""``ParaMiddleware``: every request gets ``request.para_claims``; views decide who may enter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

from ._auth import aauthenticate, authenticate
from ._settings import para

__all__ = ["ParaMiddleware"]

_GetResponse = Callable[[HttpRequest], HttpResponse | Awaitable[HttpResponse]]


class ParaMiddleware:
    """Sets ``request.para_claims`` on every request: the verified claims, or ``None``.

    It refuses nothing by itself: a view decorated with ``@para_required`` (or a
    class-based view with ``ParaRequiredMixin``) answers with the refusal, so a
    public view sees ``None`` for a missing, invalid or expired token alike.
    Under WSGI it verifies in the request's thread; under ASGI it stays
    asynchronous and awaits ``SyncParaVerifier.async_verifier`` in the server's
    loop (no thread hop; a key fetch never blocks the loop). One key set, one
    token cache for both.
    Building it checks ``settings.PARA_JWT``, so a wrong setting stops the server
    at startup.

    Add it to ``MIDDLEWARE``: ``"para_jwt.django.ParaMiddleware"``.

    Args:
        get_response: The rest of Django's middleware chain.

    Raises:
        ImproperlyConfigured: ``settings.PARA_JWT`` is missing or wrong.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: _GetResponse) -> None:
        self.get_response = get_response
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            markcoroutinefunction(self)
        para()

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self._is_async:
            return self._acall(request)
        authenticate(request)
        return self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        await aauthenticate(request)
        # The rest of an async chain answers awaitables (iscoroutinefunction above).
        return await cast(Awaitable[HttpResponse], self.get_response(request))
