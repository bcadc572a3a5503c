"""Views of every kind the Django adapter protects."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from para_jwt.django import ParaRequiredMixin, get_claims, para_required
from para_jwt.django.rest_framework import HasParaWallet, ParaRequired, exception_handler


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


async def aok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


me = para_required(ok)
evm = para_required(wallet_types={"EVM"})(ok)
ame = para_required(aok)
aevm = para_required(wallet_types={"EVM"})(aok)


@para_required
def who(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": get_claims(request).user_id})


@para_required
async def awho(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"user": get_claims(request).user_id})


def public(request: HttpRequest) -> JsonResponse:
    claims = request.para_claims  # type: ignore[attr-defined]
    return JsonResponse({"user": claims and claims.user_id})


class Profile(ParaRequiredMixin, View):
    para_wallet_types = {"EVM"}  # noqa: RUF012 - the mixin's option

    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user": get_claims(request).user_id})


class AsyncProfile(ParaRequiredMixin, View):
    async def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user": get_claims(request).user_id})


@method_decorator(para_required(auth_types={"email"}), name="dispatch")
class EmailOnly(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        return JsonResponse({"user": get_claims(request).user_id})


# --- DRF ------------------------------------------------------------------------------


class DrfMe(APIView):
    permission_classes = [ParaRequired]  # noqa: RUF012 - DRF's API

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.id, "claims_user": request.auth.user_id})


class DrfEvm(APIView):
    permission_classes = [HasParaWallet("EVM")]  # noqa: RUF012 - DRF's API

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.id})


class DrfPublic(APIView):
    permission_classes = [AllowAny]  # noqa: RUF012 - DRF's API

    def get(self, request: Request) -> Response:
        return Response({"authenticated": bool(request.user and request.user.is_authenticated)})


class DrfDefault(APIView):
    """DRF's own IsAuthenticated: a missing token is DRF's 401 body, with our challenge."""

    permission_classes = [IsAuthenticated]  # noqa: RUF012 - DRF's API

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.id})


class _SameBytes:
    """The refusal matrix's DRF views: the documented exception handler, plain 'ok'."""

    def get_exception_handler(self) -> Any:
        return exception_handler

    def get(self, request: Request) -> HttpResponse:
        return HttpResponse("ok", content_type="text/plain")


class MatrixMe(_SameBytes, APIView):
    permission_classes = [ParaRequired]  # noqa: RUF012 - DRF's API


class MatrixEvm(_SameBytes, APIView):
    permission_classes = [ParaRequired(wallet_types={"EVM"})]  # noqa: RUF012 - DRF's API
