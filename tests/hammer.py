"""Many threads verifying tokens through a key rotation and a refresh."""

from __future__ import annotations

import threading
from collections.abc import Callable

from para_jwt.testing import FakeClock, MockPara


def hammer_through_rotation(
    para: MockPara, clock: FakeClock, verify: Callable[[int, str], str]
) -> None:
    """Eight workers verify batches of tokens; between batches the keys rotate
    and the clock moves past the key set's lifetime. Every answer is checked."""
    workers = 8
    barrier = threading.Barrier(workers + 1)
    batches: list[list[tuple[str, str]]] = []
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        for round_ in range(3):
            barrier.wait()
            for user_id, token in batches[round_]:
                try:
                    got = verify(index, token)
                except BaseException as exc:  # collected and reported below
                    failures.append(exc)
                    continue
                if got != user_id:
                    failures.append(AssertionError(f"{got} for {user_id}"))
            barrier.wait()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for round_ in range(3):
        if round_ == 1:
            para.rotate()
        if round_ == 2:
            clock.advance(700)  # past the 600 s lifetime: a refresh
        users = [f"u{round_}-{i}" for i in range(40)]
        batches.append([(user, para.issue_jwt(user_id=user)) for user in users])
        barrier.wait()
        barrier.wait()
    for thread in threads:
        thread.join()
    assert failures == []
