"""``@para_required`` for function views, ``ParaRequiredMixin`` for class-based views."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar, Final, Protocol, overload

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.views import View

from .._http_options import refuse_unknown
from .._requirements import Requirements
from ..claims import AuthType, ParaClaims, WalletType
from ..errors import ConfigurationError
from ._auth import CLAIMS_ATTRIBUTE, aauthenticate, admit, authenticate

__all__ = ["ParaRequiredMixin", "get_claims", "para_required"]

_View = Callable[..., Any]
_REQUIRED_OPTIONS: Final = ("auth_types", "wallet_types", "require_wallet")


class _Decorator(Protocol):
    def __call__(self, view: _View, /) -> _View: ...


def get_claims(request: HttpRequest) -> ParaClaims:
    """The verified claims of the request's user, in a view that requires Para.

    Raises:
        ConfigurationError: Nothing authenticated the request with a valid token
            (use ``request.para_claims``, which may be ``None``, on public views).
    """
    claims: ParaClaims | None = getattr(request, CLAIMS_ATTRIBUTE, None)
    if claims is None:
        raise ConfigurationError(
            "get_claims(): this request has no verified Para token: decorate the view "
            "with @para_required (or use ParaRequiredMixin), or read request.para_claims"
        )
    return claims


def _guard(view: _View, requirements: Requirements) -> _View:
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def guarded_async(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            await aauthenticate(request)
            refusal = admit(request, requirements)
            if refusal is not None:
                return refusal
            return await view(request, *args, **kwargs)

        return guarded_async

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        authenticate(request)
        refusal = admit(request, requirements)
        if refusal is not None:
            return refusal
        return view(request, *args, **kwargs)

    return guarded


@overload
def para_required(view: _View, /) -> _View: ...


@overload
def para_required(
    *,
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
) -> _Decorator: ...


def para_required(
    view: Any = None,
    /,
    *,
    auth_types: Iterable[AuthType | str] | None = None,
    wallet_types: Iterable[WalletType | str] | None = None,
    require_wallet: bool = False,
    **unknown: object,
) -> Any:
    """Refuse requests without a valid Para token; ``get_claims(request)`` in the view.

    Bare (``@para_required``) or with options (``@para_required(wallet_types={"EVM"})``),
    on sync and async function views. With ``ParaMiddleware`` the token was verified
    already; without it the decorator verifies it. For class-based views use
    ``ParaRequiredMixin``, or ``method_decorator(para_required, name="dispatch")`` on a
    synchronous view.

    Args:
        view: The view, when used bare.
        auth_types: Accept only users who signed in this way, e.g. ``{"email"}``.
            Default ``None``: any way.
        wallet_types: Accept only users with a Para-custodied wallet of one of these
            chains, e.g. ``{"EVM"}``. Default ``None``: any chain, or none.
        require_wallet: Accept only users with a Para-custodied wallet. Default False.
        **unknown: Refused: a misspelt option must not pass silently.

    Returns:
        The protected view, or a decorator making one.

    Raises:
        ConfigurationError: For a wrong option, at decoration time.
    """
    refuse_unknown("para_required", unknown, _REQUIRED_OPTIONS)
    requirements = Requirements.build(auth_types, wallet_types, require_wallet)

    def decorate(view: _View) -> _View:
        if inspect.isclass(view):
            raise ConfigurationError(
                "@para_required decorates function views; for a class-based view, inherit "
                "ParaRequiredMixin"
            )
        return _guard(view, requirements)

    if view is None:
        return decorate
    if not callable(view):
        raise ConfigurationError(
            "para_required's options are keywords: @para_required(wallet_types={'EVM'})"
        )
    return decorate(view)


class ParaRequiredMixin(View):
    """``para_required`` for a class-based view, sync or async: list it first.

    ::

        class Profile(ParaRequiredMixin, View):
            para_wallet_types = {"EVM"}

            def get(self, request):
                return JsonResponse({"user": get_claims(request).user_id})

    The class attributes ``para_auth_types``, ``para_wallet_types`` and
    ``para_require_wallet`` take ``para_required``'s options, checked when the class
    is defined.
    """

    para_auth_types: ClassVar[Iterable[AuthType | str] | None] = None
    para_wallet_types: ClassVar[Iterable[WalletType | str] | None] = None
    para_require_wallet: ClassVar[bool] = False
    _para_requirements: ClassVar[Requirements] = Requirements()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._para_requirements = Requirements.build(
            cls.para_auth_types, cls.para_wallet_types, cls.para_require_wallet
        )

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """Refuse, or hand the request to the handler method (awaited for async views)."""
        if self.view_is_async:
            return self._dispatch_async(request, *args, **kwargs)
        authenticate(request)
        refusal = admit(request, self._para_requirements)
        if refusal is not None:
            return refusal
        return super().dispatch(request, *args, **kwargs)

    async def _dispatch_async(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        await aauthenticate(request)
        refusal = admit(request, self._para_requirements)
        if refusal is not None:
            return refusal
        response: Awaitable[HttpResponse] = super().dispatch(request, *args, **kwargs)
        return await response
