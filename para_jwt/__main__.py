"""``python -m para_jwt``: the ``para-jwt`` command."""

from para_jwt.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
