"""A Para-protected FastAPI API: PARA_API_KEY_ID=<your API key's ID> uvicorn fastapi_app:app"""

import os
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from para_jwt import ParaAPI, ParaClaims, ParaVerifier, SessionInfo
from para_jwt.fastapi import ParaAuth


def create_app(verifier: ParaVerifier, api: ParaAPI | None = None) -> FastAPI:
    auth = ParaAuth(verifier, api=api, warm_up=True)
    app = FastAPI(lifespan=auth.lifespan)  # fetches keys at startup, closes both at shutdown
    auth.install(app)  # refusals: RFC 6750 JSON, as every para_jwt adapter answers

    @app.get("/health")  # no dependency: open
    async def health() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/me")  # a valid Para token, or 401
    async def me(claims: Annotated[ParaClaims, Depends(auth)]) -> dict[str, Any]:
        evm = claims.wallet("EVM")
        return {"user_id": claims.user_id, "evm": evm and evm.address}

    @app.get("/public/greeting")  # anonymous users welcome; a bad token is still refused
    async def greeting(claims: Annotated[ParaClaims | None, Depends(auth.optional)]) -> dict:
        return {"hello": claims.user_id if claims else "stranger"}

    stricter = auth.require(auth_types={"email", "phone"}, wallet_types={"EVM"})

    @app.post("/trades", status_code=201)  # 403 unless the user meets both
    async def trade(claims: Annotated[ParaClaims, Depends(stricter)]) -> dict[str, str]:
        return {"trader": claims.user_id}

    @app.post("/login")  # a Para verification token, checked with Para (needs api=)
    async def login(session: Annotated[SessionInfo, Depends(auth.session)]) -> dict[str, str]:
        return {"signed_in_as": session.identifier}

    return app


if __name__ == "__main__":
    import uvicorn

    verifier = ParaVerifier(os.environ["PARA_API_KEY_ID"], environment="prod")
    api = ParaAPI(os.environ["PARA_SECRET_API_KEY"], environment="prod")
    uvicorn.run(create_app(verifier, api))
