"""A Para-protected Flask API: PARA_API_KEY_ID=<your API key's ID> python flask_app.py"""

import os
from typing import Any

from flask import Flask

from para_jwt.flask import ParaJWT, get_claims, para_required

para = ParaJWT()


def create_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(  # the defaults; create_app(PARA_...=...) overrides them
        PARA_API_KEY_ID=os.environ.get("PARA_API_KEY_ID"),
        PARA_ENVIRONMENT=os.environ.get("PARA_ENVIRONMENT", "prod"),
    )
    app.config.update(config)
    para.init_app(app)  # builds a SyncParaVerifier now; closed at exit

    @app.get("/health")  # no decorator: open to everyone
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/me")
    @para_required  # one line protects the route
    def me() -> dict[str, Any]:
        claims = get_claims()  # ParaClaims: verified, typed
        evm = claims.wallet("EVM")
        return {"user_id": claims.user_id, "evm": evm and evm.address}

    @app.post("/trades")
    @para_required(auth_types={"email", "phone"}, wallet_types={"EVM"})  # stricter
    def trade() -> tuple[dict[str, Any], int]:
        return {"trader": get_claims().user_id}, 201

    return app


if __name__ == "__main__":
    create_app().run(port=8080)
