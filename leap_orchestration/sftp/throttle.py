"""Failed-login throttling: too many failures for a user, or from an address, lock it for a while."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures_per_user: int = 5
    max_failures_per_address: int = 20  # higher: several partners may share one NAT address
    window_seconds: float = 300
    lockout_seconds: float = 300


class LoginThrottle:
    def __init__(self, policy: ThrottlePolicy = ThrottlePolicy(), clock: Callable[[], float] = time.monotonic):
        self.policy, self.clock = policy, clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._locked_until: dict[tuple[str, str], float] = {}

    def _keys(self, user: str, address: str) -> list[tuple[tuple[str, str], int]]:
        p = self.policy
        return [(("user", user), p.max_failures_per_user), (("address", address), p.max_failures_per_address)]

    def locked(self, user: str, address: str) -> float:
        """Seconds until the user or address may try again (0 when not locked)."""
        now = self.clock()
        return max([0.0] + [self._locked_until.get(k, 0.0) - now for k, _ in self._keys(user, address)])

    def failure(self, user: str, address: str) -> bool:
        """Record a failed login; True if this locks the user or the address."""
        now, locked = self.clock(), False
        for key, limit in self._keys(user, address):
            window = self._failures[key]
            window.append(now)
            while window and window[0] < now - self.policy.window_seconds:
                window.popleft()
            if len(window) >= limit:
                self._locked_until[key] = now + self.policy.lockout_seconds
                window.clear()
                locked = True
        return locked

    def success(self, user: str, address: str) -> None:
        self._failures.pop(("user", user), None)
