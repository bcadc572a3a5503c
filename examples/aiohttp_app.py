"""A Para-protected aiohttp API: PARA_API_KEY_ID=<your API key's ID> python aiohttp_app.py"""

import os
from typing import Any

from aiohttp import web

from para_jwt.aiohttp import (
    get_claims,
    get_claims_or_none,
    para_middleware,
    para_required,
    setup,
)

routes = web.RouteTableDef()


@routes.get("/health")  # excluded below: no token needed
async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/me")  # protected by the middleware
async def me(request: web.Request) -> web.Response:
    claims = get_claims(request)  # ParaClaims: verified, typed
    evm = claims.wallet("EVM")
    return web.json_response({"user_id": claims.user_id, "evm": evm and evm.address})


@routes.get("/public/greeting")  # optional: anonymous users welcome
async def greeting(request: web.Request) -> web.Response:
    claims = get_claims_or_none(request)
    return web.json_response({"hello": claims.user_id if claims else "stranger"})


@routes.post("/trades")
@para_required(auth_types={"email", "phone"}, wallet_types={"EVM"})  # stricter route
async def trade(request: web.Request) -> web.Response:
    return web.json_response({"trader": get_claims(request).user_id}, status=201)


def create_app(**para_settings: Any) -> web.Application:
    app = web.Application(
        middlewares=[para_middleware(exclude=["/health"], optional=["/public/*"])]
    )
    setup(app, **para_settings)  # builds a ParaVerifier now, closes it with the app
    app.add_routes(routes)
    return app


if __name__ == "__main__":
    web.run_app(create_app(api_key_id=os.environ["PARA_API_KEY_ID"], environment="prod"))
