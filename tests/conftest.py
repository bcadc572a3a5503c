from __future__ import annotations

import pytest

from para_jwt.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    # A fixed start (2027-01-15) keeps test failures reproducible.
    return FakeClock(1_800_000_000.0)
