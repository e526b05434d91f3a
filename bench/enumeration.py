"""The enumeration section of `make bench`: can time tell an account from a stranger?

For each endpoint that takes an email and answers the same for every address
(register, forgot-password, resend-otp, resend-password-reset-otp, and login
with a wrong password: each account once, Argon2id accounts and accounts
holding a bcrypt-era hash, each against strangers), 200
requests about addresses with an account and 200 about strangers, interleaved
in pairs (one of each, in an order drawn at random for every pair, seeded) so
a busy moment hits both alike and nothing periodic in the harness (a batch
size, a table's growth) can line up with one group, through
the local gateway against moto in-process.  The answer time is what a client
sees: the email queue is consumed between requests, outside the timed part,
as the email sender does after the answer in AWS.

In AWS the email sender is another process: its garbage is never collected
during an answer.  In one process it would be: Python's cyclic collector runs
when allocations since the last collection pass a threshold, so the objects
an account's email work leaves (a code, an email, counters) decide which
later request pays for a collection.  Measured on this harness, 148 of 150
collections during timed requests fell in account requests and one in a
stranger's; that alone made forgot-password and both resends tell accounts
apart.  So the garbage of the email work is collected with it, outside the
timed part (`_after_answer`).

Each pair of samples gets a two-sample Mann-Whitney U test (two-sided, normal
approximation with tie correction; written out below, no SciPy).  The
guarantee holds when no endpoint's p-value is below 0.01.

`python -m bench enumeration` runs this section alone and rewrites its part
of docs/performance.md; `make bench` runs it with the rest.
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
from pathlib import Path
from typing import Any, Callable

from bench import sections

ALPHA = 0.01
BEGIN, END = "<!-- enumeration:begin -->", "<!-- enumeration:end -->"


def mann_whitney_u(x: list[float], y: list[float]) -> tuple[float, float]:
    """(U of x, two-sided p-value) for H0: x and y come from one distribution.

    Ranks the pooled samples (ties get their mean rank), U = R_x - n(n+1)/2,
    and compares U with its mean n*m/2 under H0, using the variance corrected
    for ties and a continuity correction of 1/2."""
    n, m = len(x), len(y)
    if not n or not m:
        raise ValueError("both samples need values")
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    tie_term = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1  # ranks are 1-based
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    r_x = sum(rank for rank, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u = r_x - n * (n + 1) / 2
    total = n + m
    mean = n * m / 2
    variance = n * m / 12 * ((total + 1) - tie_term / (total * (total - 1)))
    if variance <= 0:
        return u, 1.0  # every value equal: nothing to tell apart
    z = (abs(u - mean) - 0.5) / math.sqrt(variance)
    p = math.erfc(max(z, 0.0) / math.sqrt(2))
    return u, min(1.0, p)


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def _after_answer(pump: Any) -> None:
    """The work after an answer, untimed: the email sender's jobs, and the
    collection of the garbage they leave, which in AWS is another process's."""
    pump.drain()
    gc.collect()


def measure(stack: Any, n: int = 200) -> dict[str, Any]:
    """Time each endpoint for accounts and strangers (the template `stack`, in
    moto in-process); returns per-endpoint statistics (ms)."""
    import boto3
    from moto import mock_aws

    from local.emulator import provision
    from local.gateway import Gateway
    from local.outbox import Outbox
    from local.queues import QueuePump
    from tests.client import ApiClient

    boto3.setup_default_session(region_name="us-east-1")
    outbox = Outbox()
    outbox.attach(boto3.DEFAULT_SESSION)
    results: dict[str, Any] = {}
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        provision(stack)
        # Clients and keys cached by an earlier section belong to its emulator and outbox.
        from carekey import aws, keys

        aws.reset_clients()
        keys.forget_cached_keys()
        pump = QueuePump(stack)
        # Answers only: the queue is drained between requests, outside the timed part.
        api = ApiClient(Gateway(stack), outbox)
        accounts = [f"account{i}@example.com" for i in range(20)]
        for email in accounts:
            api.register(email)
            _after_answer(pump)
            api.post("/verify-otp", {"email": email, "otp": api.latest_code(email)})
        seq = iter(range(10**7))
        other = "ordinary-lantern-31"
        endpoints: dict[str, Callable[[str], Any]] = {
            "POST /register": lambda e: api.post("/register", {"email": e, "password": other, "password2": other}),
            "POST /forgot-password": lambda e: api.post("/forgot-password", {"email": e}),
            "POST /resend-otp": lambda e: api.post("/resend-otp", {"email": e, "context": "password_reset"}),
            "POST /resend-password-reset-otp": lambda e: api.post("/resend-password-reset-otp", {"email": e}),
        }
        # A wrong password: each account tried once (a lock would answer without a check, for
        # any address alike), Argon2id accounts and accounts holding the bcrypt hash of one
        # made before Argon2id, so the failure floor is measured against both formats.
        from carekey import passwords, store

        for kind in ("Argon2id", "bcrypt-era"):
            signed_up = [f"login-{kind.lower()}{i}@example.com" for i in range(n + 3)]
            for i, email in enumerate(signed_up):
                api.register(email)
                _after_answer(pump)
                api.post("/verify-otp", {"email": email, "otp": api.latest_code(email)})
                _after_answer(pump)
                if kind == "bcrypt-era":
                    user = store.user_by_email(email)
                    store.UserItem(user.pk).update(actions=[store.UserItem.password_hash.set(passwords.bcrypt_hash(f"{other}-{i}"))])
            unused = iter(signed_up)
            endpoints[f"POST /login (wrong password, {kind} account)"] = lambda e, unused=unused: api.post(
                "/login", {"email": next(unused) if e.startswith("account") else e, "password": "not-the-password-77"}
            )
        order = random.Random(20261205)  # noqa: S311 (which of each pair goes first: a reproducible draw, not a secret)
        for name, call in endpoints.items():
            for warm in range(3):  # imports, keys, first connections
                call(accounts[warm])
                call(f"warm{next(seq)}@example.com")
                _after_answer(pump)
            samples: dict[str, list[float]] = {"account": [], "stranger": []}
            statuses: set[int] = set()
            for i in range(n):
                pair = [("account", accounts[i % len(accounts)]), ("stranger", f"stranger{next(seq)}@example.com")]
                order.shuffle(pair)
                for kind, email in pair:
                    started = time.perf_counter()
                    statuses.add(call(email).status)
                    samples[kind].append(time.perf_counter() - started)
                    _after_answer(pump)
            u, p = mann_whitney_u(samples["account"], samples["stranger"])
            results[name] = {
                "n": n,
                "statuses": sorted(statuses),
                "account_median_ms": statistics.median(samples["account"]) * 1000,
                "account_p95_ms": _p95(samples["account"]) * 1000,
                "stranger_median_ms": statistics.median(samples["stranger"]) * 1000,
                "stranger_p95_ms": _p95(samples["stranger"]) * 1000,
                "u": u,
                "p": p,
            }
    return results


def section(results: dict[str, Any]) -> str:
    rows = []
    for name, r in results.items():
        rows.append(
            f"| {name} | {r['n']} + {r['n']} | {'/'.join(map(str, r['statuses']))} | {r['account_median_ms']:.1f} / {r['account_p95_ms']:.1f} "
            f"| {r['stranger_median_ms']:.1f} / {r['stranger_p95_ms']:.1f} | {r['u']:.0f} | {r['p']:.3f} | "
            f"{'indistinguishable' if r['p'] >= ALPHA else '**distinguishable**'} |"
        )
    verdict = all(r["p"] >= ALPHA for r in results.values())
    return "\n".join(
        [
            BEGIN,
            "## Enumeration by timing",
            "",
            "Can the time of an answer tell an address with an account from a stranger? For each",
            "endpoint, requests about accounts and about strangers, in pairs (each pair's order drawn at random), through the local",
            "gateway; the email work runs after the answer (the queue is consumed between requests,",
            "outside the timed part). A two-sided Mann-Whitney U test (`bench/enumeration.py`,",
            f"written out) compares the two samples; the guarantee holds when p >= {ALPHA}.",
            "",
            "| Endpoint | Requests (account + stranger) | Status | Account median / p95 (ms) | Stranger median / p95 (ms) | U | p | Verdict |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Result: {'no endpoint tells accounts from strangers at p < 0.01' if verdict else 'AT LEAST ONE ENDPOINT TELLS ACCOUNTS FROM STRANGERS'}.",
            END,
        ]
    )


def write(results: dict[str, Any], markdown: Path) -> None:
    """Put the section into docs/performance.md, replacing the previous one."""
    sections.replace(markdown, BEGIN, END, section(results))
