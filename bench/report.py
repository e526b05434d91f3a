"""Turns the measurements of `make bench` into docs/performance.md and docs/latency.svg."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from bench import importing
from bench.cost import (  # the prices and the model live in bench/cost.py
    ACCESS_LOG_ARCHIVE_RATIO,
    AUDIT_ARCHIVE_BYTES,
    AUDIT_RECORD_BYTES,
    AUDIT_SEAL_BYTES,
    BCRYPT_MEMORY_MB,
    DYNAMODB_MS,
    EDGE,
    MAU,
    NOW,
    PRICES,
    PRICES_READ,
    RESTORES_PER_INVOCATION,
    SECONDS_A_MONTH,
    TARGET_PER_MAU,
    WORKLOAD,
    Levers,
    P,
    access_log_archive_months,
    audit_events,
    audit_index_entry_bytes,
    audit_indexes,
    audit_months_kept,
    audit_storage_per_event,
    cpu_share,
    email_cost,
    fixed_monthly,
    flow_cost,
    function_log_retention_months,
    lambda_ms,
    log_retention_months,
    memory_sizes,
    refresh_audit_share,
    snapstart_functions,
    xray_monthly,
)
from local.template import Stack

PARTS = ("api", "lambda", "dynamodb", "other", "logs", "storage", "egress")
FLOOR_NOTES = """Why flows are above their floor (the operations are in the table):

- **The audit writer's share.** Every audited request submits one SQS message
  on its request path (no DynamoDB request there); the writer then reads its
  head and the last seal (GetItem x2), moves the head (UpdateItem), stores the
  records (BatchWriteItem) and the seal (PutItem). The local event source hands
  the writer one request's event at a time, so those per-batch requests are
  counted once per event here; in AWS a batch of up to 10 events shares them,
  and the cost model counts them so (the audit section's per-batch figures).
- **Limits that cannot be overshot.** A login, code check or reset takes a
  unit of the per-IP failure budget before it runs and gives it back when it
  succeeds (two UpdateItems where a read and a conditional write of one would
  race), and the per-address limits are separate counters.
- **Login** reads its lock item, which holds both the lockout and this hour's
  failure count (one GetItem of one item, where two items were read before),
  admits the attempt with one conditional UpdateItem that counts it against
  both, reads the account, writes the session (PutItem) and settles the
  attempt (UpdateItem: the lock cleared, its hourly unit given back). A wrong
  password needs no write after the check.
- **The email sender** (forgot-password, register) reads the account and
  suppression list, writes the code and counts the mailbox's hourly cap.
- **Logout** is measured after a fresh login, so its row includes one.
- **Token refresh** submits no audit event when it is routine (the session
  counts it; one summary an hour, docs/audit.md), so its row is the floor; the
  cost model adds the summaries and new-address rotations it would send."""


# The endpoints that check or hash a password: their baseline (bcrypt at BCRYPT_COST,
# the work before Argon2id) and the Argon2id work they do now, subtracted from their own time.
PASSWORD_BASELINES = {"bcrypt_check": "password_check", "bcrypt_hash": "password_hash"}


def pw_memory() -> int:
    """The memory of the functions that hash passwords, as the template sets it."""
    return memory_sizes().get("LoginFunction", 1024)


def _cpu_ms(endpoint: dict[str, Any], getitem_ms: float) -> float:
    """This machine's CPU time of a request: its median time outside DynamoDB
    calls (timed around each one), at least half a millisecond."""
    return max(0.5, endpoint.get("own_ms", endpoint["median_ms"]))


def cost_model(data: dict[str, Any], levers: Levers = NOW, access_minutes: int | None = None) -> dict[str, Any]:
    """Cost a month for a million active users, by workload item and by part,
    for the REST API (template.yaml) and the HTTP API option.  `access_minutes`
    models another access-token lifetime: refreshes scale inversely with it."""
    workload = dict(WORKLOAD)
    if access_minutes:
        default = int(Stack().function_environment("TokenRefreshFunction")["ACCESS_TOKEN_MINUTES"])
        workload["refreshes"] = WORKLOAD["refreshes"] * default / access_minutes
    warm = data["warm"]
    flows, endpoints, base = warm["flows"], warm["endpoints"], warm["baselines_ms"]
    sizes = memory_sizes()
    pw, other = sizes.get("LoginFunction", 1769), sizes.get("TokenRefreshFunction", 512)
    login_cpu = _cpu_ms(endpoints["POST /login"], base["getitem"])
    refresh_cpu = _cpu_ms(endpoints["POST /token/refresh"], base["getitem"])
    reset_cpu = base["password_hash"] + 5.0
    if not levers.argon2id:  # the design before: a bcrypt check (cost 12) in place of the Argon2id one, at one vCPU
        pw = BCRYPT_MEMORY_MB
        login_cpu += base["bcrypt_check"] - base["password_check"]
        reset_cpu = base["bcrypt_hash"] + 5.0
    months, function_months = log_retention_months(), function_log_retention_months()
    archive_months = access_log_archive_months()
    audit_measured = data.get("audit")
    plan = {
        "logins": [("login", login_cpu, pw)],
        "refreshes": [("token refresh", refresh_cpu, other)],
        "password_resets": [
            ("forgot-password", refresh_cpu, other),
            ("verify-password-reset-otp", refresh_cpu, other),
            ("reset-password", reset_cpu, pw),
        ],
    }
    # Audit events a refresh submits in AWS beyond the measured run's (see refresh_audit_share).
    share = refresh_audit_share(access_minutes=access_minutes, every_minutes=levers.refresh_audit_minutes) if levers.refresh_summaries else 1.0
    extra = {"token refresh": max(0.0, share - audit_events(flows.get("token refresh", {})))}
    out: dict[str, Any] = {"refresh_audit_share": share, "fixed": fixed_monthly(levers=levers), "retention_months": months, "archive_months": archive_months, "function_retention_months": levers.function_log_months or function_months}
    for api in ("rest", "http"):
        items: dict[str, dict[str, float]] = {}
        for item, steps in plan.items():
            parts = dict.fromkeys(PARTS, 0.0)
            for flow_name, cpu, memory in steps:
                if flow_name not in flows:
                    continue
                costs = flow_cost(
                    flows[flow_name], flow_name, cpu, memory, api, months, levers, function_months, audit_measured,
                    extra_audit_events=extra.get(flow_name, 0.0), archive_months=archive_months,
                )
                for part, value in costs.items():
                    parts[part] += value * workload[item] * MAU
            items[item] = parts
        variable = sum(sum(p.values()) for p in items.values())
        requests = sum(workload[item] * EDGE.get(name, {"requests": 1})["requests"] for item, steps in plan.items() for name, _, _ in steps) * MAU
        xray = xray_monthly(api, requests)
        email = sum(workload[item] * MAU * email_cost(flows[name]) for item, steps in plan.items() for name, _, _ in steps if name in flows)
        out[api] = {"items": items, "xray": xray, "email": email, "total": variable + xray + sum(out["fixed"].values())}
    return out



def audit_at_rest(model: dict[str, Any], measured: dict[str, Any] | None) -> dict[str, Any]:
    """The audit trail's storage in the model: sizes, how long each store keeps a record, and what that costs."""
    hot, archive = audit_months_kept()
    record = (measured or {}).get("record_bytes") or AUDIT_RECORD_BYTES
    archived = (measured or {}).get("archive_bytes_per_record") or AUDIT_ARCHIVE_BYTES
    seal = (measured or {}).get("seal_bytes") or AUDIT_SEAL_BYTES
    total = sum(parts["storage"] for parts in model["http"]["items"].values())
    per_event = audit_storage_per_event(measured)
    events = total / per_event if per_event else 0.0
    s3 = events * archived * archive * P["s3_standard_gb_month"] / 1e9
    has_window = "AuditHotDays" in Stack().template.get("Parameters", {})
    return {
        "record": record, "archived": archived, "seal": seal, "hot": hot, "archive": archive, "events": events, "s3": s3, "dynamodb": total - s3,
        "indexed": audit_index_text(record),
        "hot_source": "`AuditHotDays`; its TTL deletes it then, the archive keeps it" if has_window else "for ever: priced here at the archive's six years",
    }


def audit_index_text(record: float, stack: Stack | None = None) -> str:
    """How the audit table's indexes hold a record of `record` bytes, as the template projects them."""
    query = "that answers the operators' audit-by-user query"
    parts = []
    for name, projection in audit_indexes(stack).items():
        if projection == "KEYS_ONLY":
            entry = audit_index_entry_bytes(projection, record)
            parts.append(
                f"stored once: the {name} index {query} holds only its keys ({entry:.0f} bytes an entry with "
                f"the overhead; the query then fetches the records by key), {1 - (record + entry) / (2 * record):.0%} "
                "fewer bytes than with an index holding a full copy"
            )
        else:
            parts.append(f"stored again by the {name} index (projection {projection}) {query}")
    return "; ".join(parts) or "in no index"


def gap_plan(
    model: dict[str, Any], target: float, longer_tokens: dict[str, Any] | None = None,
    settings: dict[str, dict[str, Any]] | None = None, both: dict[str, Any] | None = None,
) -> str:
    """The gap to the cost target, where it lies and what would close it, from
    the model's own parts (HTTP API: the cheaper deployment)."""
    http, rest = model["http"], model["rest"]
    if http["total"] <= target:
        return (
            f"**The target is met** with the HTTP API option (${http['total']:,.0f}). The REST API costs "
            f"${rest['total']:,.0f}: its request price alone is ${rest['total'] - http['total']:,.0f} more."
        )
    items = http["items"]
    refresh, logins, resets = items["refreshes"], items["logins"], items["password_resets"]
    audit_parts = ("other", "storage")
    priced = {
        "API Gateway's request price": sum(i["api"] for i in items.values()),
        "the refreshes' DynamoDB (an eventually consistent read of the account and session, the rotation, the summaries' share of the writer)": refresh["dynamodb"],
        "the audit events' queue, seals and storage (logins, refresh summaries, resets)": sum(i[p] for i in items.values() for p in audit_parts) - resets["other"],
        f"Lambda for 30 logins (an Argon2id check each, at {pw_memory():,} MB)": logins["lambda"],
        "two emails a reset (the code, then the notice that the password changed)": resets["other"],
        "the refreshes' Lambda": refresh["lambda"],
        "data out (the responses' bytes)": sum(i["egress"] for i in items.values()),
    }
    listed = "; ".join(f"{name} ${value:,.0f}" for name, value in priced.items())
    return (
        f"**The gap and its cause.** With the HTTP API the total is ${http['total']:,.0f}, "
        f"${http['total'] - target:,.0f} over ${target:,.0f}. The model now counts what it used to miss (index "
        "writes, the audit trail at rest, data out, X-Ray traces, metrics and alarms), so this is the whole bill "
        f"for the workload. The largest parts: {listed}. Each is at its floor for what it does: a refresh is one "
        "read and one conditional write (an index write no more: the sessions' user index carries keys only), "
        "a login one Argon2id check, a reset two emails, and an audit event one FIFO message, a tenth of a seal "
        "and of an archive object, its record and index entry, and its bytes at rest. "
        "**The plan.** The workload sets the rest of the price: 300 refreshes a user a month follow from "
        "5-minute access tokens (`AccessTokenMinutes`). The authorizer checks the session on every call, so a "
        "logout or a disabled account takes effect at the next call whatever the token's lifetime; "
        + (
            f"at 15 minutes a third as many refreshes make the HTTP API total ${longer_tokens['http']['total']:,.0f} "
            f"({'under' if longer_tokens['http']['total'] <= target else 'over'} the target) and the REST API's "
            f"${longer_tokens['rest']['total']:,.0f}. The default stays at 5 minutes: a token's life "
            "bounds how long a resource server that verifies tokens offline against the JWKS "
            "(docs/resource-servers.md) honours a session that has ended: that is the deployer's trade. "
            if longer_tokens
            else "a longer lifetime is the deployer's lever. "
        )
        + (
            "Smaller levers, each the deployer's setting, priced by the same model (HTTP API): "
            + "; ".join(
                f"{what} ${http['total'] - alt['http']['total']:,.0f} less (${alt['http']['total']:,.0f})"
                for what, alt in (settings or {}).items()
            )
            + f"; both together ${both['http']['total']:,.0f}"
            + (" (under the target). " if both["http"]["total"] <= target else ", still over at 5-minute tokens. ")
            if settings and both
            else ""
        )
        + "What each gives up: the summaries every two hours make the audit trail's record of a session's routine "
        "rotations coarser (the API access log, archived six years, still has every request), and a 30-day "
        "window leaves older records to the archive (`make audit-export`) instead of the operators' "
        "audit-by-user query."
    )


def plan_settings(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The model at the settings the gap's plan names, one at a time."""
    return {
        "routine rotations summarised every two hours (`RefreshAuditMinutes` 120)": cost_model(data, Levers(refresh_audit_minutes=120)),
        "DynamoDB keeping audit records 30 days (`AuditHotDays` 30, its least)": cost_model(data, Levers(audit_hot_days=30)),
    }


def lever_rows(data: dict[str, Any]) -> list[list[str]]:
    """Each cost lever's effect: the model with every lever on, against the same
    model with that one lever off (REST API; the HTTP API saves the same)."""
    now = cost_model(data)["rest"]["total"]
    flows = data["warm"]["flows"]
    share = cost_model(data)["refresh_audit_share"]
    events = (audit_events(flows.get("login", {})) * WORKLOAD["logins"] + max(share, audit_events(flows.get("token refresh", {}))) * WORKLOAD["refreshes"]) * MAU
    rows = []
    for name, off in (
        ("a session's routine token rotations audited as one summary an interval, not one event each", Levers(refresh_summaries=False)),
        ("one KMS MAC a writer batch (a seal), not one a record", Levers(mac_per_batch=False)),
        ("the writer's head written once a batch (its seal marks the batch stored)", Levers(writer_head_once=False)),
        ("function logs kept FunctionLogRetentionDays, not six years", Levers(function_log_months=72.1)),
        ("SnapStart only on the functions a person waits on (not the queue consumers, not the operators')", Levers(snapstart_where_waited=False)),
        ("the access log's six years in the locked S3 archive (Firehose), not in CloudWatch Logs", Levers(access_log_archive=False)),
        ("DynamoDB keeps audit records AuditHotDays (TTL), the locked archive the six years", Levers(audit_hot_window=False)),
        ("passwords hashed with Argon2id at 1,024 MB, not bcrypt (cost 12) at 1,769 MB", Levers(argon2id=False)),
    ):
        before = cost_model(data, off)["rest"]["total"]
        rows.append([name, f"${before:,.0f}", f"${now:,.0f}", f"${before - now:,.0f}"])
    rows.append(["login's lockout and hourly failure count in one item (one read unit a login less, one write a failure less)", "-", "-", "in the login row"])
    rows.append([f"(audit events a month from logins and refreshes: {events / 1e6:,.0f} million)", "", "", ""])
    return rows


def cost_rows(model: dict[str, Any]) -> list[list[str]]:
    rows = []
    for item in WORKLOAD:
        rest, http = model["rest"]["items"][item], model["http"]["items"][item]
        rows.append([item.replace("_", " "), f"{WORKLOAD[item]}", f"${sum(rest.values()):,.0f}", f"${sum(http.values()):,.0f}"])
    rows.append(["X-Ray traces (sampled at the REST API's stage; none on the HTTP API)", "-", f"${model['rest']['xray']:,.0f}", f"${model['http']['xray']:,.0f}"])
    for name, value in model["fixed"].items():
        rows.append([name.replace("_", " ") + " (fixed)", "-", f"${value:,.0f}", f"${value:,.0f}"])
    rows.append(["**total**", "", f"**${model['rest']['total']:,.0f}**", f"**${model['http']['total']:,.0f}**"])
    return rows


def part_rows(model: dict[str, Any]) -> list[list[str]]:
    rows = []
    for api, label in (("rest", "REST API"), ("http", "HTTP API")):
        for item in WORKLOAD:
            parts = model[api]["items"][item]
            rows.append([label, item.replace("_", " ")] + [f"${parts[p]:,.0f}" for p in PARTS])
    return rows


# The least each flow needs from DynamoDB, and why (requests, not capacity units).
FLOORS: dict[str, tuple[int, str]] = {
    "register": (2, "one conditional write that claims the sign-up, one atomic per-IP sign-up counter"),
    "verify-otp": (2, "one transaction that uses the code and activates the account, one per-IP guard update"),
    "login": (3, "one read of the account and its lock item (both in one BatchGetItem), one per-IP guard update, one write of the new session"),
    "token refresh": (2, "one BatchGetItem (account and session, eventually consistent when routine), one conditional update that rotates the token"),
    "GET /profile (with authorizer)": (2, "the authorizer's BatchGetItem (account and session: immediate logoff), the profile read"),
    "forgot-password": (3, "one per-IP counter on the request path; then the email sender's account read and code write"),
    "verify-password-reset-otp": (2, "one per-IP guard update, one conditional code check"),
    "reset-password": (2, "one per-IP guard update, one transaction (use the code, set the password, end sessions)"),
    "logout": (2, "the authorizer's BatchGetItem, one session update"),
}


def floor_rows(flows: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, f in flows.items():
        now = int(round(f["reads"] + f["writes"]))
        ops = ", ".join(f"{op} x{n}" for op, n in sorted((f.get("ops") or {}).items()))
        floor, why = FLOORS.get(name, (now, "not analysed"))
        rows.append([name, f"{now}", ops or "-", f"{floor}", why, f"{max(0, now - floor)}"])
    return rows


def memory_table(data: dict[str, Any]) -> list[list[str]]:
    warm = data["warm"]
    check, login = warm["baselines_ms"]["password_check"], warm["flows"]["login"]
    other_cpu = _cpu_ms(warm["endpoints"]["POST /login"], warm["baselines_ms"]["getitem"]) - check
    rows = []
    for memory in (512, 1024, 1769, 2048):
        ms = lambda_ms(check + max(0.0, other_cpu), login["reads"] + login["writes"], memory)
        per_million = ms / 1000 * memory / 1024 * P["lambda_gb_second_arm64"] * 1e6
        rows.append([f"{memory} MB", f"{cpu_share(memory):.2f}", f"{ms:.0f} ms", f"${per_million:.2f}"])
    return rows


def memory_choice(data: dict[str, Any]) -> str:
    """What the template's size for the password functions gives, against one
    full vCPU and against half its size, from the memory table's model."""
    base = data["warm"]["baselines_ms"]
    rows = {int(r[0].split()[0]): r for r in memory_table(data)}
    chosen, full = rows.get(pw_memory()), rows[1769]
    if chosen is None:
        return ""
    price = float(chosen[3].lstrip("$")) / float(full[3].lstrip("$"))
    text = f"a login in {chosen[2]} for {price:.0%} of the 1,769 MB price."
    half = rows.get(pw_memory() // 2)
    if half is not None:
        # A failed login answers at a fixed time after it began: one bcrypt check plus one Argon2id
        # check, each with the failure floor's margin.
        from carekey.passwords import FLOOR_MARGIN

        failed = (base["bcrypt_check"] + base["password_check"]) * FLOOR_MARGIN / cpu_share(pw_memory() // 2)
        text += (
            f" At {pw_memory() // 2} MB a login is cheaper ({half[3]} a million) but takes {half[2]}, and a failed one, "
            f"which waits out one bcrypt check plus one Argon2id check (each with {FLOOR_MARGIN - 1:.0%} added) at that size's CPU share, about {failed / 1000:.1f} s."
        )
    return text


def light_memory_table(data: dict[str, Any]) -> list[list[str]]:
    """A token refresh at each memory size a waiting function could have: its
    duration (CPU time over the CPU share, plus DynamoDB's), and what a million
    cost in Lambda (duration, and SnapStart's restores at one in a thousand)."""
    warm = data["warm"]
    refresh = warm["flows"]["token refresh"]
    cpu = _cpu_ms(warm["endpoints"]["POST /token/refresh"], warm["baselines_ms"]["getitem"])
    rows = []
    for memory in (128, 256, 512, 1024):
        ms = lambda_ms(cpu, refresh["reads"] + refresh["writes"], memory)
        gb = memory / 1024
        per_million = (ms / 1000 * gb * P["lambda_gb_second_arm64"] + RESTORES_PER_INVOCATION * gb * P["snapstart_restore_gb"]) * 1e6
        cache = gb * SECONDS_A_MONTH * P["snapstart_cache_gb_second"]
        rows.append([f"{memory} MB", f"{cpu_share(memory):.3f}", f"{ms:.0f} ms", f"${per_million:.2f}", f"${cache:.2f}"])
    return rows


def peak_memory(data: dict[str, Any]) -> str:
    rss = data["cold"].get("rss_mb") or {}
    if not rss:
        return "not measured in this run"
    top = max(rss, key=rss.get)
    return f"{min(rss.values()):.0f} to {rss[top]:.0f} MB ({top} the most)"


LOAD_JSON = Path(__file__).resolve().parent.parent / "docs" / "load.json"


def load_section() -> str:
    """The load test's figures (`make load` writes docs/load.json)."""
    if not LOAD_JSON.exists():
        return "## Load\n\nNo load run recorded yet: `make load` writes docs/load.json.\n"
    run = json.loads(LOAD_JSON.read_text())
    rows = [
        [r["name"], f"{r['requests']}", f"{r['rps']:.1f}", f"{r['p50_ms']:.0f} ms", f"{r['p95_ms']:.0f} ms", f"{r['p99_ms']:.0f} ms", f"{r['failures']}"]
        for r in run["endpoints"]
    ]
    answers = "; ".join(f"{route}: " + ", ".join(f"{n} x {code}" for code, n in codes.items()) for route, codes in run["server_answers"].items())
    # bench/load.py records the Argon2id settings it ran with; a run from before Argon2id has none.
    memory_kib, iterations = run.get("argon2_memory_kib"), run.get("argon2_iterations", 1)
    hashing = (
        f"Argon2id at {memory_kib:,} KiB and {iterations} pass{'es' if iterations > 1 else ''}, "
        f"a failed login answering one bcrypt check (cost {run['bcrypt_cost']}) plus one Argon2id check after it began"
        if memory_kib
        else f"bcrypt cost {run['bcrypt_cost']}"
    )
    return f"""## Load

`make load` on {run['generated']}: Locust, headless, {run['users']} users for
{run['seconds']} s against the local API (`make dev`'s server, {hashing},
on this {run['machine_cores']}-core machine, Locust
itself sharing the cores). The mix: each person signs in from their own
loopback address, then refreshes and reads their profile (10 each), signs in
again (2) and asks for a reset code (1); one user in ten is an attacker
sending wrong passwords for five accounts, each from a new address. A 429
counts as the limits at work, not as a failure.

{table(["endpoint", "requests", "a second", "p50", "p95", "p99", "failures"], rows)}

What the server answered (its own log, so no 5xx can hide): {answers}.
**5xx answers: {run['server_5xx']}.** Audit trail afterwards: {run['audit_verify']};
{run['audit_records']} records written during the run for {run['audited_answers']}
answers that must each leave at least one (logins and reset requests; a routine token
refresh is counted in its session and summarised hourly) ({'complete' if run['audit_verify_ok'] and run['audit_records'] >= run['audited_answers'] else 'INCOMPLETE'}).
"""


def table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def svg(endpoints: dict[str, dict[str, Any]]) -> str:
    width, row, left = 900, 34, 300
    names = list(endpoints)
    top = max(max(e["samples_ms"]) for e in endpoints.values())
    scale = (width - left - 40) / max(top, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(names) + 60}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="18" font-weight="bold">Warm latency per endpoint (ms, this machine, moto in-process): dots are runs, bar is the median</text>',
    ]
    for i, name in enumerate(names):
        y = 40 + i * row
        e = endpoints[name]
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{html.escape(name)}</text>')
        parts.append(f'<rect x="{left}" y="{y + 4}" width="{e["median_ms"] * scale:.1f}" height="14" fill="#9ecae1"/>')
        for s in e["samples_ms"]:
            parts.append(f'<circle cx="{left + s * scale:.1f}" cy="{y + 11}" r="2" fill="#08519c" fill-opacity="0.5"/>')
        parts.append(f'<text x="{left + e["median_ms"] * scale + 6:.1f}" y="{y + 15}">{e["median_ms"]:.1f}</text>')
    axis_y = 40 + len(names) * row
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - 40}" y2="{axis_y}" stroke="#444"/>')
    for tick in range(0, int(top) + 1, max(1, int(top / 8) or 1)):
        x = left + tick * scale
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 14}" text-anchor="middle">{tick}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write(data: dict[str, Any], markdown: Path, svg_path: Path) -> None:
    m, cold, warm, layer = data["machine"], data["cold"], data["warm"], data["layer"]
    argon = warm["argon2"]
    base_cold = cold["baseline_ms"]
    cold_rows, cold_miss = [], []
    for name, ms in sorted(cold["functions_ms"].items(), key=lambda kv: -kv[1]):
        ratio = ms / base_cold
        cold_rows.append([name, f"{ms:.0f} ms", f"{ratio:.2f}x", "met" if ratio <= 1.5 else "missed"])
        if ratio > 1.5:
            cold_miss.append(name)

    base = warm["baselines_ms"]
    warm_rows, warm_miss = [], []
    for name, e in warm["endpoints"].items():
        kind = e["baseline"]
        target = 1.10 if kind in PASSWORD_BASELINES else 3.0
        ratio = e["median_ms"] / base[kind]
        label = {"bcrypt_check": f"bcrypt check, cost {warm['bcrypt_cost']}", "bcrypt_hash": f"bcrypt hash, cost {warm['bcrypt_cost']}", "getitem": "one GetItem"}[kind]
        d = e["dynamodb"]
        warm_rows.append(
            [name, f"{e['median_ms']:.1f} ms", f"{e['p95_ms']:.1f} ms", label, f"{ratio:.2f}x", f"{target:g}x", "met" if ratio <= target else "missed",
             f"{d['reads'] + d['writes']:.0f}", f"{e['dynamodb_ms']:.1f} ms"]
        )
        if ratio > target:
            warm_miss.append((name, ratio, target, d["reads"] + d["writes"]))

    flow_rows = [
        [name, f"{f['reads']:.0f}", f"{f['writes']:.0f}", f"{f['rcu']:.0f}", f"{f['wcu']:.0f}", f"{f.get('index_wcu', 0):.0f}", f"{f['scans']:.0f}"]
        for name, f in warm["flows"].items()
    ]
    scans = sum(f["scans"] for f in warm["flows"].values())
    model = cost_model(data)
    cost_target = TARGET_PER_MAU * MAU
    kms_cost = sum(
        warm["flows"].get(flow, {}).get("calls", {}).get("kms:GenerateMac", 0) * P["kms_request"] / 10 * times * MAU
        for flow, times in (("login", WORKLOAD["logins"]), ("token refresh", WORKLOAD["refreshes"]))
    )
    snapstart = model["fixed"]["snapstart_cache"]
    snapstart_count, function_count = len(snapstart_functions()), len(memory_sizes())
    cognito = {
        "Lite": (1_000_000 - 10_000) * P["cognito_lite_mau"],
        "Essentials": (1_000_000 - 10_000) * P["cognito_essentials_mau"],
        "Plus": 1_000_000 * P["cognito_plus_mau"],
    }
    cold_when = f" Measured {cold['generated']} (`python -m bench cold`)." if cold.get("generated") else ""
    warm_when = f" Measured {warm['generated']} (`python -m bench warm`), after the rest of the run." if warm.get("generated") else ""
    login_profile = ", ".join(f"{name} {ms:.0f} ms" for name, ms in cold["import_profile"])
    svg_path.write_text(svg(warm["endpoints"]))
    audit_rest = audit_at_rest(model, data.get("audit"))
    log_bytes = ", ".join(
        f"{name} {warm['flows'][name]['log_bytes']:.0f} bytes" for name in ("login", "token refresh", "forgot-password", "reset-password") if "log_bytes" in warm["flows"].get(name, {})
    ) or "not measured in this run"

    miss_text = []
    if cold_miss:
        miss_text.append(
            f"- **Cold start** missed for {', '.join(cold_miss)}. The measured cause is the import profile of a handler "
            f"(cumulative, top-level packages, in the same bare Python): {login_profile}. Every function needs the "
            "Powertools logger, the pydantic request models and PynamoDB, and the token functions PyJWT with "
            "cryptography. Already done: the X-Ray SDK (Powertools Tracer, about 90 ms) is off the import path "
            "(Lambda's own tracing instead), pydantic models build lazily (a function builds only its own), and "
            "botocore no longer loads pyOpenSSL (the layer ships it for passkey attestation) and with it "
            "cryptography's OpenSSL bindings in every function (about 50 ms of init), the JWKS function serves the "
            "published keys as JSON without PyJWT or cryptography, and listing or removing passkeys no longer loads "
            "the WebAuthn library. "
            "What remains is each function's real work; SnapStart (on by default where a person waits) takes all of "
            "it off the cold path: init runs once when a version is published, and a new environment restores the "
            "snapshot (restore time cannot be measured off AWS). Without SnapStart, the next lever is the settings "
            "model: as a plain dataclass, the functions that take no request body (the authorizer, JWKS, the docs, "
            "the sign-in page, the queue consumers) would not import pydantic at all (pydantic, pydantic_core and "
            "annotated_types above). The operators' functions (admin_users, admin_audit) and the queue and SNS "
            "consumers go without SnapStart: nobody waits on their cold start, and its cache would be billed for "
            "them every second."
        )
    for name, ratio, target, calls in warm_miss:
        e = warm["endpoints"][name]
        ops = ", ".join(f"{op} x{count:g}" for op, count in e["ops"].items())
        kind = e["baseline"]
        own = e["own_ms"] - (base[PASSWORD_BASELINES[kind]] if kind != "getitem" else 0.0)
        what = "the Argon2id work excluded" if kind != "getitem" else "everything but DynamoDB"
        miss_text.append(
            f"- **{name}** {ratio:.2f}x against {target:g}x. Measured cause: {calls:.0f} DynamoDB requests ({ops}), "
            f"which take {e['dynamodb_ms']:.1f} ms of its {e['median_ms']:.1f} ms median (timed around each request; "
            f"moto's transactions copy the table for rollback, so they slow as the audit table grows). The service's "
            f"own time ({what}) is {own:.1f} ms, {own / base['getitem']:.1f} GetItems. The requests "
            "are the design: the authorizer reads the user and the session on every call (immediate logoff), rate "
            "limits are atomic counters, and every audited event is one SQS message whose writer (run within the "
            "request here) stores the record and moves the chain head."
        )
    if model["http"]["total"] > cost_target:
        http, rest = model["http"], model["rest"]
        miss_text.append(
            f"- **Cost** ${http['total']:,.0f} a month for a million active users with the HTTP API "
            f"(${rest['total']:,.0f} with the REST API) against ${cost_target:,.0f}, ${http['total'] - cost_target:,.0f} over. "
            f"Like for like with Cognito, whose prices leave out its email, it is ${http['total'] - http['email']:,.0f} "
            f"(${http['email']:,.0f} of the total is SES: the reset's code and its notice). The measured cause, part by "
            "part, and the plan (the deployer's settings that close it, each priced, and what each gives up) are under "
            "Cost per million monthly active users below."
        )
    if not miss_text:
        miss_text.append("- Every target is met.")

    doc = f"""# Performance and cost

Generated by `make bench` on {m['date']} in {data['seconds']:.0f} s. Do not edit by hand.

Machine: {html.escape(m['cpu'])}, {m['cores']} cores, Python {m['python']}, {m['os']}.
Timings are ratios against a baseline measured in the same run, so the
machine's speed cancels out. Warm timings use moto in-process: a DynamoDB
request there costs about {base['getitem']:.2f} ms, against single-digit
milliseconds in AWS.

## Targets

{chr(10).join(miss_text)}

## Cold start

Each handler imported from the layer built by its own Makefile (for this
machine's architecture), in a bare Python 3.12 that sees only the layer,
the function's code and boto3, against a handler that imports only boto3
and sees only boto3 ({base_cold:.0f} ms; with the layer on its path botocore
would load the layer's pyOpenSSL, as the functions did before they blocked it).
Median of the runs. Target: at most 1.5x.{cold_when}

{table(["function", "init", "vs boto3 only", "target"], cold_rows)}

Import profile of the login handler: {login_profile}.

## Warm latency

Median and 95th percentile through the local gateway (template routes, the
authorizer on protected routes, real REST proxy events).{warm_when} Argon2id at
{argon['memory_kib']:,} KiB and {argon['iterations']} pass{'es' if argon['iterations'] > 1 else ''}: one check {base['password_check']:.1f} ms, one hash
{base['password_hash']:.1f} ms. The endpoints that check or hash a password are held to
1.1x of what that work cost with bcrypt at cost {warm['bcrypt_cost']} (a check {base['bcrypt_check']:.1f} ms,
a hash {base['bcrypt_hash']:.1f} ms), the hash before Argon2id, which every failed check
still costs (so a failure tells no account from another, nor from none); the
others to 3x one raw GetItem ({base['getitem']:.2f} ms).
For scale, the emulator serves one raw conditional UpdateItem in
{base['updateitem']:.2f} ms and one two-item TransactWriteItems in
{base['transact']:.2f} ms.

{table(["endpoint", "median", "p95", "baseline", "ratio", "target", "", "DynamoDB requests", "time in DynamoDB"], warm_rows)}

![latency per endpoint](latency.svg)

## DynamoDB work per flow

Counted through botocore's client call path for one run of each flow.
Capacity units: strongly consistent reads of items under 4 KB are 1 RCU,
writes of items under 1 KB are 1 WCU, transactions count double. A write
that puts, removes or changes an item's entry in a global secondary index
(its keys, or an attribute the index projects) also writes the index, a WCU
per KB of the entry: the bench reads each item before and after every write
to count them (the "of it, indexes" column; the audit records' index
entries are in the writer's figures below). The refreshes move the service's
clock on a few seconds each, as real ones minutes apart do. No Scan
anywhere: {int(scans)} in all flows.

{table(["flow", "read requests", "write requests", "RCU", "WCU", "of it, indexes", "Scan"], flow_rows)}

### Requests per flow against the floor

The floor is the least the design needs (counted as requests); what is
above it is explained under the table.

{table(["flow", "requests now", "which", "floor", "what the floor is", "above the floor"], floor_rows(warm["flows"]))}

{FLOOR_NOTES}

## Package

The built layer, zipped: {layer['zipped_mb']:.2f} MB (from {layer['source']}). Target: at most 10 MB: {'met' if layer['zipped_mb'] <= 10 else 'missed'}.
boto3 and botocore come with the Lambda runtime and are not shipped.

## Cost per million monthly active users

Workload per active user per month: {WORKLOAD['logins']} logins,
{WORKLOAD['refreshes']} token refreshes, {WORKLOAD['password_resets']} password
reset (forgot, verify, reset). Every request each flow makes was counted in
one run above (DynamoDB capacity units, and every other AWS request: SQS,
KMS, S3, SES), including what the queue consumers do for it (the email
sender, the audit writer), which the local event source runs within the
request. Lambda duration is this machine's measured CPU time scaled to
Lambda's CPU share at the function's memory (from the template), plus
{DYNAMODB_MS:g} ms per DynamoDB request. Logs: the API access log line and the
functions' own lines, measured per flow at the template's level (INFO lines and
the metrics' EMF lines: {log_bytes}; the queue consumers' lines, per batch in
AWS, shared by its events; Lambda's START/END/REPORT lines are off), ingested
by CloudWatch Logs: the access log kept there {model['retention_months']:.0f} months
(`AccessLogRetentionDays`), function logs {model['function_retention_months']:.0f} months
(the template's retentions), and the access log's archive: Firehose
ingestion of the lines and S3 Standard storage for
{model['archive_months']:.0f} months of CloudWatch Logs' gzip records
({ACCESS_LOG_ARCHIVE_RATIO:g}x smaller than the lines, measured; see
`bench/cost.py`), one S3 PUT a 15-minute buffer (fixed).
SnapStart: the cache of the published version of each function that has it
({snapstart_count} of {function_count}, those a person waits on; fixed), and one
restore per thousand invocations (an assumption well above a steady load's
churn). Target: at most ${cost_target:,.0f} a month (a tenth of Cognito
Essentials).

{table(["part", "times per user a month", "REST API (template.yaml)", "HTTP API (`make deploy API=http`)"], cost_rows(model))}

By part, a month for a million active users:

{table(["API", "workload", "API Gateway", "Lambda", "DynamoDB", "SQS, KMS, S3, SES", "logs", "audit trail at rest", "data out"], part_rows(model))}

**REST API: ${model['rest']['total']:,.0f}; HTTP API: ${model['http']['total']:,.0f} a month for a
million active users** ({'met' if model['http']['total'] <= cost_target else 'missed'} with the HTTP API, {'met' if model['rest']['total'] <= cost_target else 'missed'} with the REST API,
against ${cost_target:,.0f}), where Cognito at the same scale costs: Lite ${cognito['Lite']:,.0f}, Essentials
${cognito['Essentials']:,.0f}, Plus (the tier with compromised-credential
and adaptive protection, closest to what this service does) ${cognito['Plus']:,.0f}.
Cognito's prices exclude its email (SES) and any Lambda triggers; like for
like, without this service's email (${model['http']['email']:,.0f} of SES a month), the HTTP API costs
${model['http']['total'] - model['http']['email']:,.0f} and the REST API ${model['rest']['total'] - model['rest']['email']:,.0f}.

**The levers, each shown against the model with that lever alone undone**
(REST API, a month for a million active users):

{table(["lever", "without it", "with it (now)", "saved"], lever_rows(data))}

**Where the money goes.** API Gateway's REST price alone is $1,050 of the
refreshes; the HTTP API option cuts it to $300. The audit trail costs each
event an SQS FIFO message, a tenth of a KMS GenerateMac (one seal a batch of
10: about ${kms_cost:,.0f} a month here) and the writer's share of a batch's
DynamoDB work (`docs/audit.md`). The API access log stays
{model['retention_months']:.0f} months in CloudWatch Logs for operations
(`AccessLogRetentionDays`) and the audit period
({model['archive_months']:.0f} months) in the Object-Locked S3 archive (delivered
by Firehose as CloudWatch Logs' gzip records, {ACCESS_LOG_ARCHIVE_RATIO:g}x smaller than
the lines, S3 Standard at $0.023 a GB-month for 90 days, then Glacier Instant Retrieval at $0.004,
still readable in milliseconds). The logs' cost is now mostly
CloudWatch's ingestion ($0.50 a GB, paid once by every line) and the archive's
storage. CloudWatch Logs bills stored data compressed (the model takes 15% of
the ingested bytes, as AWS's pricing examples do), so six years in CloudWatch
would cost about what the S3 archive costs: the archive's worth is its Object
Lock (nobody, the account's root included, can delete or change a line for six
years), not the money. Function logs are kept
{model['function_retention_months']:.0f} months (`FunctionLogRetentionDays`;
docs/hipaa.md argues both). SnapStart's cache (${snapstart:,.0f} a month, fixed) buys cold starts off
the request path, so only the functions a person waits on have it: the queue
and SNS consumers and the operators' functions go without (template.yaml);
`EnableSnapStart=false` removes it for small deployments.

**The audit trail at rest** (steady state: once the oldest records are as old as
they are kept, every month adds as many as expire). A record is
{audit_rest['record']:.0f} bytes in DynamoDB (with its 100 bytes of overhead),
{audit_rest['indexed']},
with a tenth of its batch's seal ({audit_rest['seal']:.0f} bytes), and {audit_rest['archived']:.0f} bytes in
the locked archive (a batch's JSON lines, gzipped).
DynamoDB keeps a record {audit_rest['hot']:.0f} months ({audit_rest['hot_source']}) at
$0.25 a GB-month; the archive {audit_rest['archive']:.0f} months (`AuditRetentionDays`) in S3
Standard at $0.023 (its objects of about {audit_rest['archived'] * 10 / 1000:.0f} KB are below the 128 KB that S3's
infrequent-access and Glacier classes bill at least, so they would cost more
there). {audit_rest['events'] / 1e6:,.0f} million records a month: ${audit_rest['dynamodb']:,.0f} a month in
DynamoDB and ${audit_rest['s3']:,.0f} in the archive.

{gap_plan(model, cost_target, cost_model(data, access_minutes=15), plan_settings(data), cost_model(data, Levers(refresh_audit_minutes=120, audit_hot_days=30)))}

What the HTTP API option gives up, and why the REST API stays the default:
AWS WAF attaches only to a REST API (with the HTTP API, put CloudFront and
WAF in front, whose own request price erases part of the saving), and a
path no route serves answers the HTTP API's `404 {{"message": "Not Found"}}`
instead of the documented error body. Nor can an HTTP API sample X-Ray traces:
the functions trace only what an upstream sampled (`Tracing: PassThrough`, so
that the REST API's one decision holds end to end), so behind the HTTP API
nothing is traced (Lambda's own sampling, `Tracing: Active`, would trace one
request a second and 5% of the rest per function: about $80 a month here).
Everything else of the contract holds
(`tests/test_http_api_option.py`): the functions check bearer tokens
themselves, so 401s keep their body, and a protected call is one Lambda
invocation instead of two.

Prices (us-east-1, list prices as published on AWS's pricing pages, table
reviewed {PRICES_READ}; the build machine cannot fetch the pages, so check
them before quoting):

{table(["item", "price"], [[label, f"${value:.10g}"] for value, label in PRICES.values()])}

## Memory size

Argon2id is CPU-bound (one lane) and Lambda's CPU grows with memory up to one
full vCPU at 1,769 MB. Login at each size (this machine's measured CPU time
divided by the CPU share, plus DynamoDB time), and the Lambda cost of a
million logins:

{table(["memory", "vCPU share", "login duration", "Lambda cost / 1M logins"], memory_table(data))}

Below 1,769 MB a check's CPU costs the same money at any size (half the
memory, twice the time), while a login's waits on DynamoDB are billed in
proportion to memory: with bcrypt at cost 12 the check dominated and 1,769 MB
gave the fastest login for the same price; with Argon2id the waits weigh as
much as the check, so a smaller size is cheaper. The template runs the
functions that hash passwords at {pw_memory():,} MB (`PasswordFunctionMemorySize`):
{memory_choice(data)} Argon2id's {argon['memory_kib'] // 1024} MiB fit any of the sizes.

The other functions mostly wait on DynamoDB, and a wait is billed in
proportion to memory while their little CPU time costs the same at any size:
the smaller, the cheaper, down to what they need. A token refresh (the
workload's most frequent request) at each size:

{table(["memory", "vCPU share", "refresh duration", "Lambda cost / 1M refreshes", "SnapStart cache a month, per function"], light_memory_table(data))}

What they need: each function's peak memory (RSS) after its import, with the
boto3 clients for DynamoDB, SQS, KMS, SES and S3 made (more than any one
makes), measured in the cold-start runs: {peak_memory(data)}. At 256 MB that
leaves well over half for Lambda's runtime client and a request's work; at
128 MB about a third, at a fourteenth of a vCPU. The template runs them at
256 MB (`FunctionMemorySize`), and the functions that hash passwords at
{pw_memory():,} MB (`PasswordFunctionMemorySize`: register, login, reset-password,
change-password and the others that check a password); both are Parameters.

{importing.section(data["import"]) + chr(10) + chr(10) if data.get("import") else ""}{load_section()}
## Scale on paper

**10,000 sign-ups a minute (167 a second).**
- Lambda: register spends about {base['password_hash']:.0f} ms hashing at one vCPU
  ({base['password_hash'] / cpu_share(pw_memory()):.0f} ms at {pw_memory():,} MB),
  so 167 a second keep about {max(1, round(167 * base['password_hash'] / cpu_share(pw_memory()) / 1000))} executions busy hashing;
  the default regional quota is 1,000. `ReservedConcurrency` keeps other
  functions from starving them.
- DynamoDB on-demand: a sign-up is {warm['flows']['register']['wcu']:.0f} WCU,
  about {167 * warm['flows']['register']['wcu']:.0f} WCU a second in all, within
  what a new on-demand table serves (4,000 writes a second). Hot keys: the
  per-IP counters put every sign-up from one address on one item (DynamoDB
  allows 1,000 WCU a second per partition), so a single NAT address tops out
  near that, and the sign-up cap per IP (20 an hour) refuses such bursts long
  before. The audit trail has one writer that orders and chains events
  from an SQS FIFO queue, one batch of up to 10 at a time (one message
  group is delivered in order, one batch after another), so its throughput
  is ten events per writer invocation; the queue absorbs bursts and the
  writer catches up. Past what one ordered group sustains, the chain must
  split into several message groups, each with its own chain.
- SES: a new account sends 1 email a second in the sandbox and 14 a second
  after production access; 167 a second needs a quota raise first.
- API Gateway: the account's 10,000 requests a second are far off, but the
  stage throttle in the template (200 a second, bursts of 500) is not;
  raise it with the expected peak.

**A million monthly active users.** The workload above is about
{sum(WORKLOAD.values()) - 1 + 3:.0f} requests a user, 330 million a month, 130
a second on average and perhaps ten times that at peak: the same stage
throttle and SES quota apply, DynamoDB on-demand absorbs it, and the tables
grow by about 1 KB a user plus the audit trail (about 300 bytes an event,
kept six years).
"""
    markdown.write_text(doc)


if __name__ == "__main__":
    import sys

    root = Path(__file__).resolve().parent.parent
    sys.path[:0] = [str(root), str(root / "layers" / "common")]
    from bench import audit as audit_section

    target = root / "docs" / "performance.md"
    kept = target.read_text() if target.exists() else ""
    data = json.loads((root / ".local" / "bench.json").read_text())
    if "audit" not in data and (root / ".local" / "bench-audit.json").exists():
        data["audit"] = json.loads((root / ".local" / "bench-audit.json").read_text())
    write(data, target, root / "docs" / "latency.svg")
    for begin, end in (("<!-- enumeration:begin -->", "<!-- enumeration:end -->"), (audit_section.BEGIN, audit_section.END)):
        if begin in kept and end in kept and begin not in target.read_text():
            block = kept[kept.index(begin) : kept.index(end) + len(end)]
            target.write_text(target.read_text().rstrip("\n") + "\n\n" + block + "\n")
    print("re-rendered docs/performance.md from .local/bench.json")
