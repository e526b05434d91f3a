"""Turns the measurements of `make bench` into docs/performance.md and docs/latency.svg."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

# AWS list prices, us-east-1, as published on AWS's pricing pages when this
# table was last reviewed (PRICES_READ).  The build machine cannot reach the
# pages, so the report prints them for the reader to check.
PRICES_READ = "2026-11-24"
PRICES = {
    "lambda_gb_second_arm64": (0.0000133334, "Lambda, arm64, per GB-second"),
    "lambda_request": (0.20 / 1e6, "Lambda, per request"),
    "apigw_rest_request": (3.50 / 1e6, "API Gateway REST API, per request (first 333 million)"),
    "ddb_write_unit": (0.625 / 1e6, "DynamoDB on-demand, per write request unit"),
    "ddb_read_unit": (0.125 / 1e6, "DynamoDB on-demand, per read request unit"),
    "ses_email": (0.10 / 1000, "SES, per email"),
    "logs_ingest_gb": (0.50, "CloudWatch Logs, per GB ingested"),
    "logs_store_gb_month": (0.03, "CloudWatch Logs, per GB-month stored"),
    "kms_key_month": (1.00, "KMS, per customer-managed key per month"),
    "secret_month": (0.40, "Secrets Manager, per secret per month"),
    "cognito_lite_mau": (0.0055, "Cognito Lite, per MAU above 10,000"),
    "cognito_essentials_mau": (0.015, "Cognito Essentials, per MAU above 10,000"),
    "cognito_plus_mau": (0.02, "Cognito Plus (threat protection), per MAU"),
}
P = {k: v for k, (v, _) in PRICES.items()}

# The stated workload, per active user per month.
WORKLOAD = {"logins": 30, "refreshes": 300, "password_resets": 1}
LOG_BYTES_PER_REQUEST = 1100  # Lambda START/END/REPORT lines, one audit anchor, one API access log line
DYNAMODB_MS = 5.0  # DynamoDB's in-region latency per request, assumed (single-digit ms)
CHOSEN_MEMORY = {"password": 1769, "other": 512}


def cpu_share(memory_mb: int) -> float:
    """Lambda gives one full vCPU at 1,769 MB and a proportional share below."""
    return min(1.0, memory_mb / 1769)


def lambda_ms(cpu_ms: float, calls: float, memory_mb: int) -> float:
    return cpu_ms / cpu_share(memory_mb) + calls * DYNAMODB_MS


def _cpu_ms(endpoint: dict[str, Any], getitem_ms: float) -> float:
    """This machine's CPU time of a request: its median less the emulator's share."""
    calls = endpoint["dynamodb"]["reads"] + endpoint["dynamodb"]["writes"]
    return max(0.5, endpoint["median_ms"] - calls * getitem_ms)


def _flow_cost(flow: dict[str, float], cpu_ms: float, memory_mb: int, lambda_invocations: int = 1) -> float:
    duration_s = lambda_ms(cpu_ms, flow["reads"] + flow["writes"], memory_mb) / 1000
    return (
        duration_s * memory_mb / 1024 * P["lambda_gb_second_arm64"]
        + lambda_invocations * P["lambda_request"]
        + P["apigw_rest_request"]
        + flow["wcu"] * P["ddb_write_unit"]
        + flow["rcu"] * P["ddb_read_unit"]
        + LOG_BYTES_PER_REQUEST / 1e9 * (P["logs_ingest_gb"] + 72 * P["logs_store_gb_month"])
    )


def cost_model(data: dict[str, Any]) -> tuple[list[list[str]], float]:
    warm = data["warm"]
    flows, endpoints, base = warm["flows"], warm["endpoints"], warm["baselines_ms"]
    login_cpu = base["checkpw"] + _cpu_ms(endpoints["POST /login"], base["getitem"]) - base["checkpw"]
    refresh_cpu = _cpu_ms(endpoints["POST /token/refresh"], base["getitem"])
    reset_cpu = base["hashpw"] + 5.0
    pw, other = CHOSEN_MEMORY["password"], CHOSEN_MEMORY["other"]
    per_user = {
        "logins": WORKLOAD["logins"] * _flow_cost(flows["login"], login_cpu, pw),
        "refreshes": WORKLOAD["refreshes"] * _flow_cost(flows["token refresh"], refresh_cpu, other),
        "password_resets": WORKLOAD["password_resets"]
        * (
            _flow_cost(flows["forgot-password"], refresh_cpu, other)
            + _flow_cost(flows["verify-password-reset-otp"], refresh_cpu, other)
            + _flow_cost(flows["reset-password"], reset_cpu, pw)
            + 2 * P["ses_email"]
        ),
    }
    mau = 1_000_000
    variable = sum(per_user.values()) * mau
    fixed = P["kms_key_month"] + 2 * P["secret_month"]
    rows = [[name.replace("_", " "), f"{WORKLOAD[name]}", f"${cost * mau:,.2f}"] for name, cost in per_user.items()]
    rows.append(["KMS key and two secrets", "-", f"${fixed:,.2f}"])
    total = variable + fixed
    return rows, total


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
    return f"""## Load

`make load` on {run['generated']}: Locust, headless, {run['users']} users for
{run['seconds']} s against the local API (`make dev`'s server, bcrypt cost
{run['bcrypt_cost']}, on this {run['machine_cores']}-core machine, Locust
itself sharing the cores). The mix: each person signs in from their own
loopback address, then refreshes and reads their profile (10 each), signs in
again (2) and asks for a reset code (1); one user in ten is an attacker
sending wrong passwords for five accounts, each from a new address. A 429
counts as the limits at work, not as a failure.

{table(["endpoint", "requests", "a second", "p50", "p95", "p99", "failures"], rows)}

What the server answered (its own log, so no 5xx can hide): {answers}.
**5xx answers: {run['server_5xx']}.** Audit trail afterwards: {run['audit_verify']};
{run['audit_records']} records written during the run for {run['audited_answers']}
answers that must each leave at least one ({'complete' if run['audit_verify_ok'] and run['audit_records'] >= run['audited_answers'] else 'INCOMPLETE'}).
"""


def memory_table(data: dict[str, Any]) -> list[list[str]]:
    warm = data["warm"]
    check, login = warm["baselines_ms"]["checkpw"], warm["flows"]["login"]
    other_cpu = _cpu_ms(warm["endpoints"]["POST /login"], warm["baselines_ms"]["getitem"]) - check
    rows = []
    for memory in (512, 1024, 1769, 2048):
        ms = lambda_ms(check + max(0.0, other_cpu), login["reads"] + login["writes"], memory)
        per_million = ms / 1000 * memory / 1024 * P["lambda_gb_second_arm64"] * 1e6
        rows.append([f"{memory} MB", f"{cpu_share(memory):.2f}", f"{ms:.0f} ms", f"${per_million:.2f}"])
    return rows


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
        target = 1.10 if kind in ("checkpw", "hashpw") else 3.0
        ratio = e["median_ms"] / base[kind]
        label = {"checkpw": "bcrypt.checkpw", "hashpw": "bcrypt.hashpw", "getitem": "one GetItem"}[kind]
        d = e["dynamodb"]
        warm_rows.append(
            [name, f"{e['median_ms']:.1f} ms", f"{e['p95_ms']:.1f} ms", label, f"{ratio:.2f}x", f"{target:g}x", "met" if ratio <= target else "missed",
             f"{d['reads'] + d['writes']:.0f}", f"{e['dynamodb_ms']:.1f} ms"]
        )
        if ratio > target:
            warm_miss.append((name, ratio, target, d["reads"] + d["writes"]))

    flow_rows = [
        [name, f"{f['reads']:.0f}", f"{f['writes']:.0f}", f"{f['rcu']:.0f}", f"{f['wcu']:.0f}", f"{f['scans']:.0f}"] for name, f in warm["flows"].items()
    ]
    scans = sum(f["scans"] for f in warm["flows"].values())
    cost_rows, total = cost_model(data)
    cognito = {
        "Lite": (1_000_000 - 10_000) * P["cognito_lite_mau"],
        "Essentials": (1_000_000 - 10_000) * P["cognito_essentials_mau"],
        "Plus": 1_000_000 * P["cognito_plus_mau"],
    }
    login_profile = ", ".join(f"{name} {ms:.0f} ms" for name, ms in cold["import_profile"])
    svg_path.write_text(svg(warm["endpoints"]))

    miss_text = []
    if cold_miss:
        miss_text.append(
            f"- **Cold start** missed for {', '.join(cold_miss)}. The measured cause is the import profile of a handler "
            f"(cumulative, top-level packages, in the same bare Python): {login_profile}. Every function needs the "
            "Powertools logger, the pydantic request models, PynamoDB and the X-Ray SDK that Powertools Tracer "
            "loads (and PyJWT pulls in cryptography.x509 for the token functions); none of these is needed by only "
            "some paths, so lazy imports cannot remove them (the email validator, needed by only some paths, is "
            "imported lazily). Dropping Tracer for Lambda's own active tracing would save the X-Ray SDK's share "
            "but lose the DynamoDB subsegments in traces; the project keeps it."
        )
    for name, ratio, target, calls in warm_miss:
        e = warm["endpoints"][name]
        ops = ", ".join(f"{op} x{count:g}" for op, count in e["ops"].items())
        kind = e["baseline"]
        own = e["own_ms"] - (base[kind] if kind != "getitem" else 0.0)
        what = "bcrypt excluded" if kind != "getitem" else "everything but DynamoDB"
        miss_text.append(
            f"- **{name}** {ratio:.2f}x against {target:g}x. Measured cause: {calls:.0f} DynamoDB requests ({ops}), "
            f"which take {e['dynamodb_ms']:.1f} ms of its {e['median_ms']:.1f} ms median (timed around each request; "
            f"moto's transactions copy the table for rollback, so they slow as the audit table grows). The service's "
            f"own time ({what}) is {own:.1f} ms, {own / base['getitem']:.1f} GetItems. The requests "
            "are the design: the authorizer reads the user and the session on every call (immediate logoff), rate "
            "limits are atomic counters, and every event is appended to the audit chain (a head read and a "
            "transaction)."
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
({base_cold:.0f} ms). Median of the runs. Target: at most 1.5x.

{table(["function", "init", "vs boto3 only", "target"], cold_rows)}

Import profile of the login handler: {login_profile}.

## Warm latency

Median and 95th percentile through the local gateway (template routes, the
authorizer on protected routes, real REST proxy events), bcrypt cost
{warm['bcrypt_cost']}. Baselines: `bcrypt.checkpw` {base['checkpw']:.1f} ms,
`bcrypt.hashpw` {base['hashpw']:.1f} ms, one raw GetItem {base['getitem']:.2f} ms.
For scale, the emulator serves one raw conditional UpdateItem in
{base['updateitem']:.2f} ms and one two-item TransactWriteItems in
{base['transact']:.2f} ms.

{table(["endpoint", "median", "p95", "baseline", "ratio", "target", "", "DynamoDB requests", "time in DynamoDB"], warm_rows)}

![latency per endpoint](latency.svg)

## DynamoDB work per flow

Counted through botocore's client call path for one run of each flow.
Capacity units: strongly consistent reads of items under 4 KB are 1 RCU,
writes of items under 1 KB are 1 WCU, transactions count double. No Scan
anywhere: {int(scans)} in all flows.

{table(["flow", "read requests", "write requests", "RCU", "WCU", "Scan"], flow_rows)}

## Package

The built layer, zipped: {layer['zipped_mb']:.2f} MB (from {layer['source']}). Target: at most 10 MB: {'met' if layer['zipped_mb'] <= 10 else 'missed'}.
boto3 and botocore come with the Lambda runtime and are not shipped.

## Cost per million monthly active users

Workload per active user per month: {WORKLOAD['logins']} logins,
{WORKLOAD['refreshes']} token refreshes, {WORKLOAD['password_resets']} password
reset (forgot, verify, reset; two emails). Lambda duration is this machine's
measured CPU time scaled to Lambda's CPU share at the function's memory,
plus {DYNAMODB_MS:g} ms per DynamoDB request (counted above). Memory:
{CHOSEN_MEMORY['password']} MB for the functions that hash passwords,
{CHOSEN_MEMORY['other']} MB for the rest (see below). Logs: about
{LOG_BYTES_PER_REQUEST} bytes a request, ingested and kept six years.

{table(["part", "times per user a month", "cost a month, 1M MAU"], cost_rows)}

**Total: ${total:,.0f} a month for a million active users**, against Cognito
at the same scale: Lite ${cognito['Lite']:,.0f}, Essentials
${cognito['Essentials']:,.0f}, Plus (the tier with compromised-credential
and adaptive protection, closest to what this service does) ${cognito['Plus']:,.0f}.
Cognito's prices exclude its email (SES) and any Lambda triggers.

Prices (us-east-1, list prices as published on AWS's pricing pages, table
reviewed {PRICES_READ}; the build machine cannot fetch the pages, so check
them before quoting):

{table(["item", "price"], [[label, f"${value:.10g}"] for value, label in PRICES.values()])}

## Memory size

bcrypt is CPU-bound and Lambda's CPU grows with memory up to one full vCPU
at 1,769 MB. Login at each size (this machine's measured CPU time divided by
the CPU share, plus DynamoDB time), and the Lambda cost of a million logins:

{table(["memory", "vCPU share", "login duration", "Lambda cost / 1M logins"], memory_table(data))}

Below 1,769 MB a password hash costs the same money at any size (half the
memory, twice the time) but is slower, so the functions that hash passwords
(register, login, reset-password, change-password) should run at 1,769 MB:
the fastest login for the same price. Past 1,769 MB bcrypt gets no faster
(one thread) and every millisecond costs more. The other functions wait on
DynamoDB most of the time and are cheapest at 512 MB. The template does
exactly this: `PasswordFunctionMemorySize` (default 1,769 MB) for register,
login, reset-password and change-password, `FunctionMemorySize` (default
512 MB) for the rest.

{load_section()}
## Scale on paper

**10,000 sign-ups a minute (167 a second).**
- Lambda: register spends about {base['hashpw']:.0f} ms hashing at one vCPU,
  so 167 a second keep about {167 * base['hashpw'] / 1000:.0f} executions busy;
  the default regional quota is 1,000. `ReservedConcurrency` keeps other
  functions from starving them.
- DynamoDB on-demand: a sign-up is {warm['flows']['register']['wcu']:.0f} WCU,
  about {167 * warm['flows']['register']['wcu']:.0f} WCU a second in all, within
  what a new on-demand table serves (4,000 writes a second). Hot keys: the
  per-IP counters put every sign-up from one address on one item (DynamoDB
  allows 1,000 WCU a second per partition), so a single NAT address tops out
  near that, and the sign-up cap per IP (20 an hour) refuses such bursts long
  before. The audit trail's chain heads are the real limit: every event
  moves one of 4 heads in a transaction, so conflicts rise with load; the
  number of chains (`CHAINS` in carekey/audit.py) must grow with the event
  rate, or the trail move to a stream.
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
