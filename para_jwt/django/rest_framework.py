"""Django REST framework: ``ParaAuthentication`` and the ``ParaRequired`` permissions.

::

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["para_jwt.django.rest_framework.ParaAuthentication"],
    }

    class Me(APIView):
        permission_classes = [ParaRequired]

        def get(self, request):
            return Response({"user": request.auth.user_id})

``request.auth`` is the verified ``ParaClaims``; ``request.user`` comes from
``PARA_JWT["USER"]`` (default: an unsaved ``ParaUser``). The refusals have the
status, ``WWW-Authenticate`` and ``Retry-After`` of every para_jwt adapter and the
same JSON members; DRF renders the body itself (compact JSON). For the very bytes
the other adapters send, set ``REST_FRAMEWORK["EXCEPTION_HANDLER"]`` to this
module's ``exception_handler``.
"""

from __future__ import annotations

try:
    import rest_framework  # noqa: F401 - only to fail early, naming what to install
except ImportError as _missing:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "para_jwt.django.rest_framework needs Django REST framework: "
        "pip install 'para-jwt[django]' djangorestframework"
    ) from _missing

from collections.abc import Iterable, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .._http import Absent, Refused, Rejection
from .._requirements import Requirements
from ..claims import AuthType, ParaClaims, WalletType
from ._auth import CLAIMS_ATTRIBUTE, authenticate, recorded_refusal
from ._settings import answer, log_refusal, para

__all__ = [
    "HasParaWallet",
    "ParaAuthentication",
    "ParaRefusal",
    "ParaRequired",
    "exception_handler",
]


class ParaRefusal(APIException):
    """A para_jwt refusal, as DRF raises it: the status, headers and JSON members of
    every para_jwt adapter.

    Not an ``AuthenticationFailed``: DRF would replace its ``WWW-Authenticate``
    (which says what was wrong, RFC 6750 §3) by the bare challenge.

    Args:
        rejection: Why the request is refused.
    """

    def __init__(self, rejection: Rejection) -> None:
        body = {"error": rejection.error, "error_description": rejection.description}
        super().__init__(detail=body)
        #: The para_jwt refusal behind it.
        self.rejection = rejection
        self.status_code = rejection.status
        # DRF's exception handler turns these two into the headers.
        self.auth_header = rejection.headers.get("WWW-Authenticate")
        retry_after = rejection.headers.get("Retry-After")
        self.wait = None if retry_after is None else int(retry_after)


def _refuse(request: HttpRequest, rejection: Rejection) -> ParaRefusal:
    log_refusal(request, rejection)
    return ParaRefusal(rejection)


class ParaAuthentication(BaseAuthentication):
    """Authenticates a DRF request by its ``Authorization: Bearer`` Para token.

    ``authenticate`` returns ``(user, claims)``: ``request.auth`` is the verified
    ``ParaClaims`` and ``request.user`` is ``PARA_JWT["USER"](claims)``, by default a
    ``ParaUser``. Without bearer credentials it returns ``None``, as DRF expects,
    so other authentication classes may try and public views serve anonymous
    users; a token that is sent but invalid is refused (401, or 503 when Para's
    keys are unreachable) even on public views. With ``ParaMiddleware`` the token
    verified there is not verified again.
    """

    def authenticate(self, request: Request) -> tuple[Any, ParaClaims] | None:
        """Verify the request's token.

        Args:
            request: DRF's request.

        Returns:
            ``(user, claims)``, or ``None`` without bearer credentials.

        Raises:
            ParaRefusal: The credentials are malformed or invalid, or Para's keys
                cannot be had.
        """
        django_request: HttpRequest = request._request
        authenticate(django_request)
        claims: ParaClaims | None = getattr(django_request, CLAIMS_ATTRIBUTE)
        if claims is None:
            refusal = recorded_refusal(django_request)
            if refusal.error == "missing_token":
                return None
            raise _refuse(django_request, refusal)
        return para().user_for(claims), claims

    def authenticate_header(self, request: Request) -> str:
        """The challenge of a 401 without credentials, so DRF answers 401, not 403."""
        return para().gate.absent(Absent.NO_HEADER).headers["WWW-Authenticate"]


class ParaRequired(BasePermission):
    """Only requests authenticated by ``ParaAuthentication``, meeting the requirements.

    In ``permission_classes`` as a class (``[ParaRequired]``: a valid token) or as
    an instance with ``para_required``'s options
    (``[ParaRequired(auth_types={"email"})]``). A request without a token is refused
    as by the other adapters (401 ``missing_token``); one that fails a requirement
    with 403 ``insufficient_scope``.

    Args:
        auth_types: Accept only users who signed in this way, e.g. ``{"email"}``.
            Default ``None``: any way.
        wallet_types: Accept only users with a Para-custodied wallet of one of these
            chains, e.g. ``{"EVM"}``. Default ``None``: any chain, or none.
        require_wallet: Accept only users with a Para-custodied wallet. Default False.

    Raises:
        ConfigurationError: For a wrong option, when the permission is made.
    """

    def __init__(
        self,
        *,
        auth_types: Iterable[AuthType | str] | None = None,
        wallet_types: Iterable[WalletType | str] | None = None,
        require_wallet: bool = False,
    ) -> None:
        self._requirements = Requirements.build(auth_types, wallet_types, require_wallet)

    def __call__(self) -> ParaRequired:
        """DRF makes each entry of ``permission_classes`` by calling it: an instance
        stands for itself."""
        return self

    def has_permission(self, request: Request, view: Any) -> bool:
        """``True``, or raise the refusal (DRF would otherwise answer its own 403).

        Raises:
            ParaRefusal: 401 without a verified token, 403 for a requirement not met.
        """
        django_request: HttpRequest = request._request
        claims = request.auth
        if not isinstance(claims, ParaClaims):
            # Why there is no token (no header, another scheme) if ParaAuthentication
            # looked; else the plain "no token".
            refusal = recorded_refusal(django_request, default=Absent.NO_HEADER)
            raise _refuse(django_request, refusal)
        unmet: Rejection | None = None
        try:
            self._requirements.enforce(para().gate, claims)
        except Refused as refused:
            unmet = refused.rejection
        if unmet is not None:
            # Raised outside the except block: nothing chained to what DRF sees.
            raise _refuse(django_request, unmet)
        return True


class HasParaWallet(ParaRequired):
    """``ParaRequired`` for users with a Para-custodied wallet: ``[HasParaWallet("EVM")]``.

    Args:
        *wallet_types: The chains accepted (``"EVM"``, ``"SOLANA"``, ``"COSMOS"``);
            none: any chain.
    """

    def __init__(self, *wallet_types: WalletType | str) -> None:
        super().__init__(wallet_types=wallet_types or None, require_wallet=True)


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> HttpResponse | None:
    """DRF's exception handler, answering ``ParaRefusal`` with the other adapters' bytes.

    Optional: ``REST_FRAMEWORK["EXCEPTION_HANDLER"] =
    "para_jwt.django.rest_framework.exception_handler"``. Everything else goes to
    DRF's own handler.

    Args:
        exc: The exception a view raised.
        context: DRF's context (view, request...).

    Returns:
        The answer, or ``None`` for DRF to re-raise ``exc``.
    """
    if isinstance(exc, ParaRefusal):
        return answer(exc.rejection)
    # Imported here: DRF imports this module while rest_framework.views is loading
    # (DEFAULT_AUTHENTICATION_CLASSES), which a module-level import would then re-enter.
    from rest_framework.views import exception_handler as drf_exception_handler

    response: HttpResponse | None = drf_exception_handler(exc, context)
    return response
