"""Test your Para integration against a local, scriptable Para: ``MockPara``.

Not imported by ``para_jwt`` itself; import it from your tests::

    from para_jwt.testing import MockPara
"""

from __future__ import annotations

from ._mock import Endpoint, MockPara, RecordedRequest

__all__ = ["Endpoint", "MockPara", "RecordedRequest"]
