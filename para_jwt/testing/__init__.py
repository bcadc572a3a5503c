"""Test your Para integration against a local, scriptable Para: ``MockPara``.

Not imported by ``para_jwt`` itself; import it from your tests::

    from para_jwt.testing import FakeClock, MockPara

With para_jwt installed, pytest also gets the fixtures ``mock_para``,
``para_verifier``, ``para_api`` and ``para_clock`` (see ``para_jwt.testing.plugin``).
"""

from __future__ import annotations

from ._clock import FakeClock
from ._mock import Endpoint, MockPara, RecordedRequest

__all__ = ["Endpoint", "FakeClock", "MockPara", "RecordedRequest"]
