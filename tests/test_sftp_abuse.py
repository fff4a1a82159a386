"""Hostile or careless clients: lockouts an outsider can't turn against a partner, session and channel limits,
and an idle watchdog that only reports real idleness."""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import paramiko
import pytest
from sftp_support import FAST_SETTINGS, audit_lines, sftp_server, wait_for

from leap_orchestration.sftp.throttle import LoginThrottle, ThrottlePolicy

A, B = "sunrise-energy", "gridflex"
WRONG = "leap_000000000000_wrongwrongwrongwrongwrong"


def test_lockout_is_per_user_and_address_with_exponential_backoff():
    now = [0.0]
    throttle = LoginThrottle(ThrottlePolicy(), clock=lambda: now[0])
    for expected in [60, 120, 240, 480, 960, 1800, 1800]:  # each lockout doubles, up to 30 minutes
        assert [throttle.failure(A, "10.0.0.1") for _ in range(5)] == [0, 0, 0, 0, expected]
        assert throttle.locked(A, "10.0.0.1") == expected
        assert throttle.locked(A, "10.0.0.2") == 0 and throttle.locked(B, "10.0.0.1") == 0  # only that pair
        now[0] += expected
    throttle.success(A, "10.0.0.1")  # a success starts again from nothing
    assert [throttle.failure(A, "10.0.0.1") for _ in range(5)][-1] == 60
    now[0] += 60 + 3601  # so does an hour without failures
    assert [throttle.failure(A, "10.0.0.1") for _ in range(5)][-1] == 60


def test_an_address_is_slowed_down_never_locked():
    now = [0.0]
    policy = ThrottlePolicy()
    throttle = LoginThrottle(policy, clock=lambda: now[0])
    assert throttle.delay("10.0.0.9") == policy.failure_delay_seconds
    delays = []
    for n in range(40):  # many users guessed from one shared address
        throttle.failure(f"user-{n}", "10.0.0.9")
        delays.append(throttle.delay("10.0.0.9"))
    assert delays == sorted(delays) and delays[0] == policy.failure_delay_seconds
    assert delays[-1] == policy.max_failure_delay_seconds  # grows, capped
    assert throttle.locked(B, "10.0.0.9") == 0  # a partner behind that address is not locked
    assert throttle.delay("10.0.0.10") == policy.failure_delay_seconds  # other addresses are not slowed
    now[0] += policy.address_window_seconds + 1
    assert throttle.delay("10.0.0.9") == policy.failure_delay_seconds


def test_an_outsider_cannot_lock_out_a_partner_or_a_shared_address(leap_home):
    policy = replace(FAST_SETTINGS.throttle, lockout_seconds=120)  # stays locked however slow the machine
    with sftp_server(leap_home, replace(FAST_SETTINGS, throttle=policy)) as srv:
        key_a, key_b = srv.key_for(A), srv.key_for(B)

        def fail(user):
            with pytest.raises(paramiko.AuthenticationException):
                srv.paramiko(user, WRONG, source="127.0.0.2")

        for _ in range(policy.failures_before_lockout):
            fail(A)  # an outsider at 127.0.0.2 who knows A's partner id
        srv.paramiko(A, key_a).close()  # A itself, from its own address, is not locked out
        with pytest.raises(paramiko.AuthenticationException):
            srv.paramiko(A, key_a, source="127.0.0.2")  # only that (user, address) pair is
        with ThreadPoolExecutor(4) as pool:  # 20+ failures from the shared address, for many user names
            list(pool.map(fail, [f"guess-{n}" for n in range(18)]))
        srv.paramiko(B, key_b, source="127.0.0.2").close()  # a partner behind that address still gets in
    events = audit_lines(leap_home)
    assert [(e["partner"], e["address"], e["seconds"]) for e in events if e["event"] == "lockout"] == [
        (A, "127.0.0.2", 120)
    ]
    failures = [e for e in events if e["event"] == "login" and not e["ok"] and e["address"] == "127.0.0.2"]
    assert len(failures) > 20 and {e["reason"] for e in failures} == {"bad credentials", "locked"}


def test_channels_are_limited_per_connection_and_sessions_counted_per_channel(leap_home):
    settings = replace(FAST_SETTINGS, max_sessions_per_partner=3, max_channels_per_connection=2)
    with sftp_server(leap_home, settings) as srv:
        key = srv.key_for(A)
        first = srv.paramiko(A, key)
        one, two = first.open_sftp(), first.open_sftp()
        with pytest.raises(paramiko.ChannelException):
            first.open_sftp()  # a third channel on one connection
        second = srv.paramiko(A, key)  # 2 channels + this login: 3 sessions
        second.open_sftp().listdir("/")  # its first channel is the session its login counted
        with pytest.raises(paramiko.ChannelException):
            second.open_sftp()  # would be a fourth session of the partner
        with pytest.raises(paramiko.AuthenticationException):
            srv.paramiko(A, key)  # so would another connection
        one.close()
        wait_for(lambda: srv.service.sessions[A] == 2, message="the closed channel to be released")
        second.open_sftp().listdir("interval-data")  # room again
        assert two.listdir("/") == ["interval-data", "performance"]
        srv.paramiko(B, srv.key_for(B)).open_sftp().listdir("/")  # other partners are counted apart
        first.close()
        second.close()
    refused = [e for e in audit_lines(leap_home) if e["event"] == "refused" and e["operation"] == "session"]
    assert [e["detail"] for e in refused] == [
        "at most 2 SFTP sessions per connection",
        "at most 3 SFTP sessions per partner",
    ]


def test_the_idle_watchdog_reports_only_real_idleness(leap_home):
    with sftp_server(leap_home, replace(FAST_SETTINGS, idle_timeout_seconds=1.0)) as srv:
        key = srv.key_for(A)
        brief = srv.paramiko(A, key)
        brief.open_sftp().listdir("/")
        brief.close()
        wait_for(lambda: [e for e in audit_lines(leap_home) if e["event"] == "logout"], message="logout")
        idle = srv.paramiko(A, key, source="127.0.0.3")
        idle.open_sftp()
        wait_for(lambda: not idle.get_transport().is_active(), message="the idle session to be closed")
        time.sleep(1.5)  # several watchdog periods after both sessions ended
    timeouts = [e for e in audit_lines(leap_home) if e["event"] == "idle_timeout"]
    assert [e["address"] for e in timeouts] == ["127.0.0.3"]  # the closed session got no false line
    assert 1 <= timeouts[0]["idle_seconds"] <= 5
