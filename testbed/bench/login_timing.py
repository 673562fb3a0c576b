"""`make bench BENCH_ARGS="--only Login"`: does the login's answer time tell which usernames exist?

One backbone, one connection, one request at a time: an unknown (well-formed) username, a known
one with a wrong password and a known one with the right password, one request of each in turn.
Each round gives each variant's median time and the ratios of the unknown username's median to
the known ones'; the median ratio with its min/max is what we quote
(../shared/design/benchmarks.md). A ratio near 1 means the time tells nothing.
"""

from __future__ import annotations

import http.client
import secrets
import statistics
import string
import time
import urllib.parse
from dataclasses import dataclass, field

from loadtests.client import ConsumerApiClient

UNKNOWN = "unknown username"
WRONG = "known username, wrong password"
RIGHT = "known username, right password"
RATIOS = ((UNKNOWN, WRONG), (UNKNOWN, RIGHT))


@dataclass
class LoginTiming:
    """Median seconds per request of each variant, one value per round."""

    requests_per_round: int
    medians_s: dict[str, list[float]] = field(default_factory=lambda: {UNKNOWN: [], WRONG: [], RIGHT: []})
    unexpected: list[str] = field(default_factory=list)

    def ratios(self, numerator: str, denominator: str) -> list[float]:
        return [a / b for a, b in zip(self.medians_s[numerator], self.medians_s[denominator], strict=True)]


def measure(url: str, *, rounds: int, requests_per_round: int = 20) -> LoginTiming:
    """Onboard a device on the backbone at `url` and time the three kinds of login, alternating.

    The backbone must allow more failed logins than `requests_per_round` (a right password
    resets the count every round), or the wrong password would soon be answered by the lockout.
    """
    client = ConsumerApiClient(url)
    password = "a-bench-password-" + secrets.token_urlsafe(8)
    session = client.onboard(password, with_datawallet=False)
    unknown_user = "USR" + "".join(secrets.choice(string.ascii_letters) for _ in range(17))
    forms = {
        UNKNOWN: client.token_form(unknown_user, password),
        WRONG: client.token_form(session.username, password + "-wrong"),
        RIGHT: client.token_form(session.username, password),
    }
    expected = {UNKNOWN: 400, WRONG: 400, RIGHT: 200}
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 80, timeout=30)
    timing = LoginTiming(requests_per_round)
    names = list(forms)
    try:
        for variant in names:  # warm-up: connections, caches, the client secret check
            _timed_login(connection, forms[variant])
        for round_number in range(rounds):
            times: dict[str, list[float]] = {variant: [] for variant in names}
            for request_number in range(requests_per_round):
                # One request of each variant after another, each time starting with another one,
                # so the machine's noise falls on all of them alike.
                shift = (round_number + request_number) % len(names)
                for variant in names[shift:] + names[:shift]:
                    seconds, status = _timed_login(connection, forms[variant])
                    times[variant].append(seconds)
                    if status != expected[variant]:
                        timing.unexpected.append(f"{variant}: {status}")
            for variant, values in times.items():
                timing.medians_s[variant].append(statistics.median(values))
            measured = ", ".join(
                f"{variant} {values[-1] * 1000:.1f} ms" for variant, values in timing.medians_s.items()
            )
            print(f"  Login timing: round {round_number + 1}: {measured}", flush=True)
    finally:
        connection.close()
    return timing


def _timed_login(connection: http.client.HTTPConnection, form: dict[str, str]) -> tuple[float, int]:
    body = urllib.parse.urlencode(form)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    connection.request("POST", "/connect/token", body, headers)
    response = connection.getresponse()
    response.read()
    return time.perf_counter() - started, response.status


def print_figures(timing: LoginTiming, iterations: int) -> None:
    print()
    print(
        f"Login timing: median time per login, {timing.requests_per_round} sequential logins per variant "
        f"and round (PBKDF2-HMAC-SHA512, {iterations:,} iterations)"
    )
    for variant, values in timing.medians_s.items():
        print(f"  {variant:34} {statistics.median(values) * 1000:8.1f} ms (median of the rounds' medians)")
    for numerator, denominator in RATIOS:
        ratios = timing.ratios(numerator, denominator)
        print(
            f"  {numerator} / {denominator}: median {statistics.median(ratios):.3f} "
            f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        )
    if timing.unexpected:
        print(f"  unexpected answers: {sorted(set(timing.unexpected))}")
