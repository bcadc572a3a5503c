from typing import Any

from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from para_jwt.django.rest_framework import HasParaWallet, ParaRequired


class Health(APIView):
    permission_classes = (AllowAny,)  # open to everyone

    def get(self, request: Request) -> Response:
        return Response({"ok": True})


class Me(APIView):
    permission_classes = (ParaRequired,)  # a valid Para token

    def get(self, request: Request) -> Response:
        claims = request.auth  # ParaClaims: verified, typed
        evm = claims.wallet("EVM")
        # request.user: a ParaUser by default (PARA_JWT["USER"] maps claims to yours)
        return Response({"user_id": request.user.id, "evm": evm and evm.address})


class Trades(APIView):
    permission_classes = (HasParaWallet("EVM"),)  # and a Para EVM wallet

    def post(self, request: Request) -> Response:
        trade: dict[str, Any] = {"trader": request.auth.user_id}
        return Response(trade, status=201)
