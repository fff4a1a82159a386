"""Failed-login throttling that an outsider can't turn against a partner or a shared address.

- **Lockouts are per (user, address) pair**: 5 failures lock that pair for 60 s, each further lockout doubles
  (to 30 min); a success resets it, and a pair quiet for an hour starts again from nothing. Someone who knows
  a partner id can only lock themselves out: the partner, logging in from its own address, is not affected.
- **An address is only slowed down**, never locked: every failed login is answered after a delay that grows
  with the address's recent failures (capped), so guessing from one address gets slow while partners behind
  the same NAT address, whose logins succeed, wait for nothing.

Memory stays bounded: quiet pairs and addresses are forgotten.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    failures_before_lockout: int = 5  # per (user, address)
    lockout_seconds: float = 60  # the first lockout of a pair; each further one doubles
    max_lockout_seconds: float = 1800
    forget_after_seconds: float = 3600  # a pair without failures this long starts again from nothing
    failure_delay_seconds: float = 1.0  # every failed login is answered after at least this
    address_window_seconds: float = 300
    address_free_failures: int = 5  # failures from an address in the window before its delay grows
    address_delay_step_seconds: float = 0.5  # then this much more per failure
    max_failure_delay_seconds: float = 10.0


@dataclass
class _Pair:
    failures: int = 0
    lockouts: int = 0
    locked_until: float = 0.0
    last_failure: float = 0.0


class LoginThrottle:
    def __init__(
        self, policy: ThrottlePolicy = ThrottlePolicy(), clock: Callable[[], float] = time.monotonic
    ):
        self.policy, self.clock = policy, clock
        self._pairs: dict[tuple[str, str], _Pair] = {}
        self._addresses: dict[str, deque[float]] = {}
        self._calls = 0

    def locked(self, user: str, address: str) -> float:
        """Seconds until this user may try again from this address (0 when not locked)."""
        pair = self._pairs.get((user, address))
        return max(0.0, pair.locked_until - self.clock()) if pair else 0.0

    def failure(self, user: str, address: str) -> float:
        """Record a failed login (wrong key); the lockout it starts in seconds, or 0."""
        now, p = self.clock(), self.policy
        self.address_failure(address)
        pair = self._pairs.get((user, address))
        if pair is None or now - pair.last_failure > p.forget_after_seconds:
            pair = self._pairs[(user, address)] = _Pair()
        pair.last_failure = now
        pair.failures += 1
        if pair.failures < p.failures_before_lockout:
            return 0.0
        pair.failures = 0
        pair.lockouts += 1
        seconds = min(p.lockout_seconds * 2 ** (pair.lockouts - 1), p.max_lockout_seconds)
        pair.locked_until = now + seconds
        return seconds

    def address_failure(self, address: str) -> None:
        """Record a failed login from `address` (counts towards its delay only)."""
        now = self.clock()
        window = self._addresses.setdefault(address, deque())
        window.append(now)
        self._trim(window, now)
        self._calls += 1
        if self._calls % 1024 == 0:
            self._forget_quiet(now)

    def success(self, user: str, address: str) -> None:
        self._pairs.pop((user, address), None)

    def delay(self, address: str) -> float:
        """How long to wait before answering a failed login from `address`."""
        p = self.policy
        window = self._addresses.get(address)
        if window:
            self._trim(window, self.clock())
        extra = max(0, len(window or ()) - p.address_free_failures) * p.address_delay_step_seconds
        return min(p.failure_delay_seconds + extra, p.max_failure_delay_seconds)

    def _trim(self, window: deque[float], now: float) -> None:
        while window and window[0] < now - self.policy.address_window_seconds:
            window.popleft()

    def _forget_quiet(self, now: float) -> None:
        p = self.policy
        self._pairs = {
            k: v
            for k, v in self._pairs.items()
            if v.locked_until > now or now - v.last_failure <= p.forget_after_seconds
        }
        for address in list(self._addresses):
            self._trim(self._addresses[address], now)
            if not self._addresses[address]:
                del self._addresses[address]
