"""`make bench`: measures cold start, warm latency, DynamoDB work per flow and
package size, models cost and memory size, and writes docs/performance.md
(with docs/latency.svg).

Timings are reported as ratios against a baseline measured in the same run
on the same machine, so the machine's speed cancels out:
- cold start: importing each function's handler from the built layer, in a
  bare Python that sees only the layer and boto3, against a handler that
  imports only boto3;
- warm latency: each endpoint through the local gateway against moto
  in-process, against one Argon2id check or hash at the template's parameters
  (endpoints that check or hash a password) or one
  raw DynamoDB GetItem on the same emulator (the others).

`python -m bench enumeration` and `python -m bench import` run one section
alone and rewrite only that part of docs/performance.md; `python -m bench
cold` and `python -m bench warm` re-measure one section into the saved run
(.local/bench.json), which `python -m bench.report` then re-renders.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "common")]

# The service's configuration: the template's defaults (Argon2id 46 MiB, one pass), with
# the per-address and per-IP limits lifted so repeated runs measure the flows.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "ERROR",
    }
)
for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(key, None)

from local.template import Stack  # noqa: E402

STACK = Stack(name="carekey-bench")
os.environ.update(STACK.service_environment())
os.environ.update({"POWERTOOLS_LOG_LEVEL": "ERROR", "IP_REGISTRATIONS_PER_HOUR": "1000000", "IP_FAILURES_PER_HOUR": "1000000", "OTP_RESEND_COOLDOWN_SECONDS": "0", "OTP_SENDS_PER_HOUR": "1000000", "IP_CODE_REQUESTS_PER_HOUR": "1000000"})

from bench import report  # noqa: E402

PASSWORD = "violet-kettle-harbour-42"


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p95_ms(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


# ---- cold start -------------------------------------------------------------------------


def cold_start(runs: int) -> dict[str, Any]:
    from local.check_build import bare_python, native_layer

    functions = {Path(STACK.handler_of(lid)[0]).name: STACK.handler_of(lid)[0] for lid in STACK.of_type("AWS::Serverless::Function")}
    timer = "import time\nstarted = time.perf_counter()\n{body}\nprint(time.perf_counter() - started)\n"
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        layer, runtime = native_layer(Path(tmp))
        baseline_dir = Path(tmp) / "baseline"
        baseline_dir.mkdir()
        (baseline_dir / "app.py").write_text("import boto3  # noqa: F401\n\ndef lambda_handler(event, context):\n    return {}\n")
        targets = {"(boto3 only)": baseline_dir, **functions}
        for _ in range(runs):  # interleaved, so a busy moment hits every target alike
            for name, code_dir in targets.items():
                # The baseline sees boto3 alone: with the layer on its path, botocore would
                # find the layer's pyOpenSSL and load it (and cryptography) at import.
                paths = [code_dir, runtime] if name == "(boto3 only)" else [code_dir, layer, runtime]
                done = bare_python(paths, timer.format(body="import app"))
                if done.returncode != 0:
                    raise RuntimeError(f"{name} did not import: {done.stderr[-1000:]}")
                results.setdefault(name, []).append(float(done.stdout.strip()))
        # Peak memory (RSS) after the import and with the boto3 clients made that the
        # functions use between them (more than any one function makes): what a
        # function's memory size must hold beside Lambda's runtime client.
        rss_code = (
            "import resource\nimport app  # noqa: F401\nimport boto3\n"
            "clients = [boto3.client(s, region_name='us-east-1') for s in ('dynamodb', 'sqs', 'kms', 'sesv2', 's3')]\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
        )
        rss = {}
        for name, code_dir in functions.items():
            done = bare_python([code_dir, layer, runtime], rss_code)
            if done.returncode == 0:
                rss[name] = float(done.stdout.strip().splitlines()[-1])
        detail = subprocess.run(
            [sys.executable, "-S", "-E", "-X", "importtime", "-c", f"import sys; sys.path[:0] = {[str(functions['login']), str(layer), str(runtime)]!r}\nimport app"],
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"},
        )
    base = statistics.median(results.pop("(boto3 only)"))
    rows = {name: statistics.median(s) for name, s in results.items()}
    return {"baseline_ms": base * 1000, "functions_ms": {k: v * 1000 for k, v in rows.items()}, "import_profile": _top_imports(detail.stderr), "rss_mb": rss}


def _top_imports(importtime: str) -> list[tuple[str, float]]:
    """Import time by top-level package (ms): the self time of every module, summed
    under its first name component, so each millisecond is counted once."""
    totals: dict[str, float] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        own, _, name = (part.strip() for part in line.split("|"))
        own = own.removeprefix("import time:").strip()
        if not own.isdigit():
            continue
        package = name.split(".")[0]
        if package == "app":
            continue
        totals[package] = totals.get(package, 0.0) + int(own) / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])[:10]


# ---- warm latency and DynamoDB work ---------------------------------------------------------


class IndexWrites:
    """The global secondary index writes a table write causes, which DynamoDB
    bills as write units beside the table's own (the request counts none of them).

    Per index, by the item before and after the write (read from the emulator,
    outside the timings): an item entering or leaving the index is one index
    write, one whose index key changes is two (a delete and a put), one that
    stays with a projected attribute changed is one, and any other write none.
    Each is billed by the projected entry's size, a unit a KB begun."""

    WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}

    def __init__(self, tables: dict[str, Any]) -> None:
        self.tables: dict[str, tuple[list[str], list[dict[str, Any]]]] = {}
        for table in tables.values():
            create = table["create"]
            if create.get("GlobalSecondaryIndexes"):
                keys = [k["AttributeName"] for k in create["KeySchema"]]
                self.tables[create["TableName"]] = (keys, create["GlobalSecondaryIndexes"])

    def targets(self, op: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(table, key) of every item the write may change, on tables with indexes."""

        def key_of(table: str, item: dict[str, Any]) -> dict[str, Any]:
            return {k: item[k] for k in self.tables[table][0]}

        out: list[tuple[str, dict[str, Any]]] = []
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            table = params["TableName"]
            if table in self.tables:
                out.append((table, key_of(table, params["Item"]) if op == "PutItem" else params["Key"]))
        elif op == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                if table in self.tables:
                    for r in requests:
                        out.append((table, key_of(table, r["PutRequest"]["Item"]) if "PutRequest" in r else r["DeleteRequest"]["Key"]))
        elif op == "TransactWriteItems":
            for entry in params["TransactItems"]:
                for kind, body in entry.items():
                    if kind != "ConditionCheck" and body["TableName"] in self.tables:
                        out.append((body["TableName"], key_of(body["TableName"], body["Item"]) if kind == "Put" else body["Key"]))
        return out

    @staticmethod
    def _size(attrs: dict[str, Any]) -> int:
        return sum(len(k) + (len(v["B"]) if isinstance(v, dict) and "B" in v else len(json.dumps(v))) for k, v in attrs.items())

    def units(self, table: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, int]]:
        """(index name, write units) for one item's change."""
        table_keys, indexes = self.tables[table]
        out = []
        for index in indexes:
            index_keys = [k["AttributeName"] for k in index["KeySchema"]]
            projection = index["Projection"]

            def projected(item: dict[str, Any] | None, index_keys: list[str] = index_keys, projection: dict[str, Any] = projection) -> dict[str, Any] | None:
                if item is None or any(k not in item for k in index_keys):
                    return None  # not in this (sparse) index
                kind = projection["ProjectionType"]
                if kind == "ALL":
                    return dict(item)
                names = set(table_keys) | set(index_keys) | (set(projection.get("NonKeyAttributes", [])) if kind == "INCLUDE" else set())
                return {k: v for k, v in item.items() if k in names}

            old, new = projected(before), projected(after)
            if old is None and new is None or old == new:
                continue
            size = max(self._size(old or {}), self._size(new or {}))
            writes = 2 if old and new and any(old[k] != new[k] for k in index_keys) else 1
            out.append((index["IndexName"], writes * max(1, -(-size // 1024))))
        return out


class DynamoCounter:
    """Counts DynamoDB requests by operation, through botocore's client call path,
    and the index writes each causes (as ("IndexWrite", {...}) entries beside them)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.seconds = 0.0  # time spent inside DynamoDB calls (the emulator's share)
        self.overhead = 0.0  # time spent reading items to count index writes (not the service's)
        self.other: list[str] = []  # every other AWS request, as "service:Operation"
        self.indexes = IndexWrites(STACK.tables())

    def install(self) -> None:
        import botocore.client

        # One wrapper at a time: a second counter (a later section) replaces the first.
        original = getattr(botocore.client.BaseClient._make_api_call, "_uncounted", botocore.client.BaseClient._make_api_call)
        counter = self

        def item(client: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
            try:
                return original(client, "GetItem", {"TableName": table, "Key": key, "ConsistentRead": True}).get("Item")
            except Exception:  # noqa: BLE001 - a table the flow has not made yet
                return None

        def counting(client: Any, operation: str, params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            if service != "dynamodb":
                if service == "sqs" and str(params.get("QueueUrl", "")).endswith(".fifo"):
                    service = "sqs-fifo"
                counter.other.append(f"{service}:{operation}")
                return original(client, operation, params)
            counter.calls.append((operation, params))
            targets = counter.indexes.targets(operation, params) if operation in IndexWrites.WRITES else []
            aside = time.perf_counter()
            before = [item(client, table, key) for table, key in targets]
            started = time.perf_counter()
            counter.overhead += started - aside
            try:
                return original(client, operation, params)
            finally:
                counter.seconds += time.perf_counter() - started
                aside = time.perf_counter()
                for (table, key), old in zip(targets, before, strict=True):
                    for index, units in counter.indexes.units(table, old, item(client, table, key)):
                        counter.calls.append(("IndexWrite", {"TableName": table, "IndexName": index, "WriteUnits": units}))
                counter.overhead += time.perf_counter() - aside

        counting._uncounted = original  # type: ignore[attr-defined]
        botocore.client.BaseClient._make_api_call = counting  # type: ignore[method-assign]

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        calls, self.calls = self.calls, []
        self.seconds = 0.0
        self.overhead = 0.0
        self.other = []
        return calls

    def take_other(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for name in self.other:
            counted[name] = counted.get(name, 0) + 1
        self.other = []
        return counted


def operations(calls: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """Requests by operation (index writes are capacity, not requests)."""
    ops: dict[str, int] = {}
    for op, _ in calls:
        if op != "IndexWrite":
            ops[op] = ops.get(op, 0) + 1
    return ops


READS = {"GetItem", "Query", "Scan", "BatchGetItem"}


def _items(op: str, params: dict[str, Any]) -> float:
    """Capacity units of one request whose items are each under 1 KB: a batch
    bills every item it asks for, found or not, as its own read or write; a
    Query or Scan is taken as one item (the flows' are small); a read not
    strongly consistent is half a unit an item."""
    if op == "BatchGetItem":
        return sum(len(table["Keys"]) * (1.0 if table.get("ConsistentRead") else 0.5) for table in params["RequestItems"].values())
    if op == "BatchWriteItem":
        return sum(len(requests) for requests in params["RequestItems"].values())
    if op in READS:
        return 1.0 if params.get("ConsistentRead") else 0.5
    return 1


def capacity(calls: list[tuple[str, dict[str, Any]]]) -> dict[str, float]:
    """Requests and capacity units; every item here is under 1 KB; index writes are counted in `wcu` and apart in `index_wcu`."""
    out = {**capacity_of(calls), "scans": sum(1 for op, _ in calls if op == "Scan")}
    audit_table = STACK.tables()["AuditTable"]["create"]["TableName"]

    def on_audit(params: dict[str, Any]) -> bool:
        return params.get("TableName") == audit_table or audit_table in (params.get("RequestItems") or {})

    # The audit writer's share, which the cost model replaces by its per-batch figures
    # (the local event source hands it one request's events at a time).
    if any(on_audit(p) for _, p in calls):
        audit = capacity_of([(op, params) for op, params in calls if on_audit(params)])
        out.update({"audit_reads": audit["reads"], "audit_writes": audit["writes"], "audit_rcu": audit["rcu"], "audit_wcu": audit["wcu"]})
    return out


def capacity_of(calls: list[tuple[str, dict[str, Any]]]) -> dict[str, float]:
    reads = writes = rcu = wcu = index_wcu = 0.0
    for op, params in calls:
        if op == "IndexWrite":
            wcu, index_wcu = wcu + params["WriteUnits"], index_wcu + params["WriteUnits"]
        elif op in READS:
            reads, rcu = reads + 1, rcu + _items(op, params)
        elif op == "TransactWriteItems":
            writes, wcu = writes + 1, wcu + 2 * len(params["TransactItems"])
        elif op == "TransactGetItems":
            reads, rcu = reads + 1, rcu + 2 * len(params["TransactItems"])
        else:
            writes, wcu = writes + 1, wcu + _items(op, params)
    return {"reads": reads, "writes": writes, "rcu": rcu, "wcu": wcu, "index_wcu": index_wcu}


CONSUMERS = {"AuditWriterFunction", "EmailSenderFunction", "EmailFeedbackFunction"}
CONSUMER_METRICS = {"AuditRecordsWritten", "EmailFailures", "EmailJobFailures", "EmailSuppressions"}


class LogBytes:
    """What the service writes to CloudWatch Logs while a flow runs, as Lambda
    would ingest it: the log lines at the template's level (INFO, JSON) and the
    metrics' EMF lines, split between the request path's functions and the
    queue consumers (whose lines are per batch in AWS)."""

    def __init__(self) -> None:
        import io

        self.lines = io.StringIO()
        self.stdout = io.StringIO()
        self.request_path = self.consumers = 0

    def __enter__(self) -> "LogBytes":
        import contextlib
        import logging

        from carekey.observability import logger

        self._logger, self._level = logger, logger.log_level
        self._handler = logging.StreamHandler(self.lines)
        self._handler.setFormatter(logger.registered_formatter)
        logger.addHandler(self._handler)
        logger.setLevel("INFO")
        self._metrics = os.environ.get("POWERTOOLS_METRICS_DISABLED")
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "false"
        self._redirect = contextlib.redirect_stdout(self.stdout)
        self._redirect.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._redirect.__exit__(*exc)
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._level)
        if self._metrics is None:
            os.environ.pop("POWERTOOLS_METRICS_DISABLED", None)
        else:
            os.environ["POWERTOOLS_METRICS_DISABLED"] = self._metrics
        for line in self.lines.getvalue().splitlines():
            consumer = json.loads(line).get("function_name") in CONSUMERS
            self._add(len(line) + 1, consumer)
        for line in self.stdout.getvalue().splitlines():
            if line.startswith('{"_aws"'):  # EMF; the service's log lines were counted above
                self._add(len(line) + 1, bool(set(json.loads(line)) & CONSUMER_METRICS))

    def _add(self, n: int, consumer: bool) -> None:
        if consumer:
            self.consumers += n
        else:
            self.request_path += n


def warm(runs_hash: int, runs_fast: int) -> dict[str, Any]:
    import boto3
    from argon2 import PasswordHasher, Type
    from moto import mock_aws

    from local.emulator import provision
    from local.gateway import Gateway
    from local.outbox import Outbox

    counter = DynamoCounter()
    counter.install()
    boto3.setup_default_session(region_name="us-east-1")
    outbox = Outbox()
    outbox.attach(boto3.DEFAULT_SESSION)
    tseq = iter(range(10**6))
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        provision(STACK)
        from local.queues import QueuePump

        # The queue consumers (audit writer, email sender) run within each request, so a
        # flow's count includes what they do for it, as it will cost in AWS.
        gateway = Gateway(STACK, queues=QueuePump(STACK))
        # The bytes each response sends to the internet: status line, headers, body, and
        # the headers API Gateway adds that the local gateway does not (Date, Content-Length,
        # Connection, x-amzn-RequestId, x-amz-apigw-id, X-Amzn-Trace-Id: about 200 bytes).
        sent: list[int] = []
        handle = gateway.handle

        def sending(*args: Any, **kwargs: Any) -> Any:
            response = handle(*args, **kwargs)
            sent.append(len(response.body) + sum(len(k) + len(v) + 4 for k, v in response.headers.items()) + 17 + 200)
            return response

        gateway.handle = sending  # type: ignore[method-assign]
        from tests.client import ApiClient

        api = ApiClient(gateway, outbox)
        # The service's clock, moved on a few seconds before each refresh: in use a refresh
        # comes minutes after the last, so the times it records (last use, expiry) change, and
        # with them the index entries that carry them. Back-to-back in one second they would not.
        from carekey import store

        clock = {"offset": 0}
        real_now = store.now
        store.now = lambda: real_now() + clock["offset"]  # type: ignore[assignment]

        def later() -> None:
            clock["offset"] += 2

        cost = int(os.environ["BCRYPT_COST"])
        memory_kib, iterations = int(os.environ["ARGON2_MEMORY_KIB"]), int(os.environ["ARGON2_ITERATIONS"])
        hasher = PasswordHasher(time_cost=iterations, memory_cost=memory_kib, parallelism=1, hash_len=32, salt_len=16, type=Type.ID)
        prehashed = b"0" * 64  # the service hashes a 64-character keyed pre-hash
        stored = hasher.hash(prehashed)

        def timed(fn: Callable[[], Any], n: int) -> list[float]:
            out = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
            return out

        # Warm every function once (imports, key loading) before timing.
        api.verified_user("bench@example.com")
        tokens = api.login("bench@example.com")
        for path in ("/", "/.well-known/jwks.json", "/profile"):
            api.get(path, token=tokens["access"])
        counter.take()

        results: dict[str, dict[str, Any]] = {}
        baseline_check = timed(lambda: hasher.verify(stored, prehashed), runs_hash)
        baseline_hash = timed(lambda: hasher.hash(prehashed), runs_hash)
        # bcrypt at BCRYPT_COST: what a login's check cost before Argon2id, and what every failed check still costs.
        import bcrypt

        bcrypt_stored = bcrypt.hashpw(prehashed, bcrypt.gensalt(cost))
        baseline_bcrypt_check = timed(lambda: bcrypt.checkpw(prehashed, bcrypt_stored), runs_hash)
        baseline_bcrypt_hash = timed(lambda: bcrypt.hashpw(prehashed, bcrypt.gensalt(cost)), runs_hash)
        ddb = boto3.client("dynamodb")
        users = STACK.tables()["UsersTable"]["create"]["TableName"]
        baseline_get = timed(lambda: ddb.get_item(TableName=users, Key={"pk": {"S": "EMAIL#bench@example.com"}}, ConsistentRead=True), runs_fast * 2)
        # What the emulator charges for the other kinds of request, to tell its time from the service's.
        limits = STACK.tables()["LimitsTable"]["create"]["TableName"]
        raw_update = timed(
            lambda: ddb.update_item(
                TableName=limits, Key={"pk": {"S": "bench"}}, UpdateExpression="ADD #c :one",
                ConditionExpression="attribute_not_exists(#l) OR #l < :now",
                ExpressionAttributeNames={"#c": "count", "#l": "locked_until"}, ExpressionAttributeValues={":one": {"N": "1"}, ":now": {"N": "1"}},
            ),
            runs_fast,
        )
        raw_transact = timed(
            lambda: ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": limits, "Item": {"pk": {"S": f"bench-t-{next(tseq)}"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Update": {"TableName": limits, "Key": {"pk": {"S": "bench-head"}}, "UpdateExpression": "ADD #c :one", "ExpressionAttributeNames": {"#c": "count"}, "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                ]
            ),
            runs_fast,
        )
        counter.take()

        def measure(name: str, fn: Callable[[], Any], n: int, baseline: str) -> None:
            counter.take()
            samples, own, calls = [], [], []
            for _ in range(n):
                counter.seconds = counter.overhead = 0.0
                t = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - t - counter.overhead)
                own.append(samples[-1] - counter.seconds)
                calls += counter.calls
                counter.calls = []
            dynamodb_ms = median_ms(samples) - median_ms(own)
            ops = operations(calls)
            results[name] = {
                "ops": {op: count / n for op, count in sorted(ops.items())},
                "dynamodb_ms": dynamodb_ms,
                "own_ms": median_ms(own),
                "median_ms": median_ms(samples),
                "p95_ms": p95_ms(samples),
                "samples_ms": [s * 1000 for s in samples],
                "baseline": baseline,
                "dynamodb": {k: v / n for k, v in capacity(calls).items()},
            }

        seq = iter(range(10**6))
        measure("POST /login", lambda: api.post("/login", {"email": "bench@example.com", "password": PASSWORD}), runs_hash, "bcrypt_check")
        measure("POST /register", lambda: api.register(f"new{next(seq)}@example.com"), runs_hash, "bcrypt_hash")

        def refresh_chain() -> Callable[[], Any]:
            state = {"refresh": api.login("bench@example.com")["refresh"]}
            counter.take()

            def step() -> None:
                later()
                state["refresh"] = api.post("/token/refresh", {"refresh": state["refresh"]}).json()["refresh"]

            return step

        step = refresh_chain()
        measure("POST /token/refresh", step, runs_fast, "getitem")
        access = api.login("bench@example.com")["access"]
        counter.take()
        measure("GET /profile", lambda: api.get("/profile", token=access), runs_fast, "getitem")
        measure("PUT /profile", lambda: api.put("/profile", {"first_name": "Bench"}, token=access), runs_fast, "getitem")
        measure("POST /verify-otp (wrong code)", lambda: api.post("/verify-otp", {"email": "bench@example.com", "otp": "000000"}), runs_fast, "getitem")
        measure("POST /forgot-password", lambda: api.post("/forgot-password", {"email": "bench@example.com"}), runs_fast, "getitem")
        measure("GET /", lambda: api.get("/"), runs_fast, "getitem")
        measure("GET /.well-known/jwks.json", lambda: api.get("/.well-known/jwks.json"), runs_fast, "getitem")

        # DynamoDB work of each whole flow, once.
        flows: dict[str, dict[str, float]] = {}

        def flow(name: str, fn: Callable[[], Any]) -> None:
            counter.take()
            sent.clear()
            with LogBytes() as logged:
                fn()
            other = counter.take_other()
            calls = counter.take()
            ops = operations(calls)
            flows[name] = {
                **capacity(calls), "calls": other, "ops": ops, "log_bytes": logged.request_path, "consumer_log_bytes": logged.consumers,
                "response_bytes": sum(sent),
            }

        flow("register", lambda: api.register("flow@example.com"))
        flow("verify-otp", lambda: api.post("/verify-otp", {"email": "flow@example.com", "otp": api.latest_code("flow@example.com")}))
        login_body: dict[str, Any] = {}
        flow("login", lambda: login_body.update(api.login("flow@example.com")))
        flow("token refresh", lambda: (later(), api.post("/token/refresh", {"refresh": login_body["refresh"]})))
        flow("GET /profile (with authorizer)", lambda: api.get("/profile", token=login_body["access"]))
        flow("forgot-password", lambda: api.post("/forgot-password", {"email": "flow@example.com"}))
        code = api.latest_code("flow@example.com")
        flow("verify-password-reset-otp", lambda: api.post("/verify-password-reset-otp", {"email": "flow@example.com", "otp": code}))
        flow(
            "reset-password",
            lambda: api.post("/reset-password", {"email": "flow@example.com", "otp": code, "new_password": "bright-harbour-compass-31", "confirm_password": "bright-harbour-compass-31"}),
        )
        flow("logout", lambda: api.post("/logout", {}, token=api.login("flow@example.com", "bright-harbour-compass-31")["access"]))
        store.now = real_now  # type: ignore[assignment]

    return {
        "baselines_ms": {
            "password_check": median_ms(baseline_check),
            "password_hash": median_ms(baseline_hash),
            "bcrypt_check": median_ms(baseline_bcrypt_check),
            "bcrypt_hash": median_ms(baseline_bcrypt_hash),
            "getitem": median_ms(baseline_get),
            "updateitem": median_ms(raw_update),
            "transact": median_ms(raw_transact),
        },
        "endpoints": results,
        "flows": flows,
        "bcrypt_cost": cost,  # accounts hashed before Argon2id, and the failure floor
        "argon2": {"memory_kib": memory_kib, "iterations": iterations},
    }


def layer_size() -> dict[str, Any]:
    from local.check_build import _zip_size

    built = ROOT / ".aws-sam" / "build" / "CommonLayer"
    if built.exists():
        return {"zipped_mb": _zip_size(built) / 1e6, "source": ".aws-sam/build/CommonLayer (sam build, arm64)"}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["make", "-s", "-C", str(ROOT / "layers" / "common"), "build-CommonLayer", f"ARTIFACTS_DIR={tmp}"], check=True)
        return {"zipped_mb": _zip_size(Path(tmp)) / 1e6, "source": "layers/common/Makefile (arm64 wheels)"}


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "os": platform.platform(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _import_measured_apart() -> dict[str, Any]:
    """The import section in a process of its own: it serves the emulator over
    HTTP, and the service's cached clients and table connections of the
    in-process sections must never meet it (nor, unmocked, reach for AWS)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "import.json"
        subprocess.run([sys.executable, "-m", "bench", "measure-import", str(out)], cwd=ROOT, check=True)
        return json.loads(out.read_text())


def main(argv: list[str]) -> int:
    from bench import enumeration, importing

    quick = os.environ.get("BENCH_QUICK") == "1"
    started = time.perf_counter()
    raw = ROOT / ".local" / "bench.json"  # the measurements, so `python -m bench.report` can re-render
    if argv[:1] == ["audit"]:  # this section alone, in place in docs/performance.md
        from bench import audit as audit_section

        results = audit_section.measure(STACK, DynamoCounter, events=300 if quick else audit_section.EVENTS)
        audit_section.write(results, ROOT / "docs" / "performance.md")
        saved = ROOT / ".local" / "bench-audit.json"
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(results))
        print(audit_section.section(results))
        print(f"updated the audit section of docs/performance.md in {time.perf_counter() - started:.0f}s")
        return 0
    if argv[:1] == ["import"]:  # this section alone, in place in docs/performance.md
        measured = importing.measure(STACK, users=1000 if quick else 5000, logins=3 if quick else 5)
        importing.write(measured, ROOT / "docs" / "performance.md")
        if raw.exists():  # a later re-render keeps these figures
            saved = json.loads(raw.read_text())
            saved["import"] = measured
            raw.write_text(json.dumps(saved))
        print(importing.section(measured))
        print(f"updated the import section of docs/performance.md in {time.perf_counter() - started:.0f}s")
        return 0
    if argv[:1] == ["measure-import"] and len(argv) == 2:  # the import section, measured for a whole run
        Path(argv[1]).write_text(json.dumps(importing.measure(STACK, users=1000 if quick else 5000, logins=3 if quick else 5)))
        return 0
    if argv[:1] == ["cold"] and raw.exists():  # the cold-start section alone, into the saved run, re-rendered
        saved = json.loads(raw.read_text())
        saved["cold"] = cold_start(runs=3 if quick else 7)
        saved["cold"]["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        raw.write_text(json.dumps(saved))
        print(f"measured cold starts in {time.perf_counter() - started:.0f}s; `python -m bench.report` re-renders docs/performance.md")
        return 0
    if argv[:1] == ["warm"] and raw.exists():  # latency, requests per flow and cost, into the saved run, re-rendered
        saved = json.loads(raw.read_text())
        saved["warm"] = warm(runs_hash=5 if quick else 15, runs_fast=20 if quick else 100)
        saved["warm"]["generated"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        raw.write_text(json.dumps(saved))
        print(f"measured warm latency in {time.perf_counter() - started:.0f}s; `python -m bench.report` re-renders docs/performance.md")
        return 0
    if argv[:1] == ["enumeration"]:  # this section alone, in place in docs/performance.md
        results = enumeration.measure(STACK, n=40 if quick else 200)
        enumeration.write(results, ROOT / "docs" / "performance.md")
        print(enumeration.section(results))
        print(f"updated the enumeration section of docs/performance.md in {time.perf_counter() - started:.0f}s")
        return 0 if all(r["p"] >= enumeration.ALPHA for r in results.values()) else 1
    data = {
        "machine": machine(),
        "cold": cold_start(runs=3 if quick else 7),
        "warm": warm(runs_hash=5 if quick else 15, runs_fast=20 if quick else 100),
        "layer": layer_size(),
        "import": _import_measured_apart(),
    }
    from bench import audit as audit_section

    data["audit"] = audit_section.measure(STACK, DynamoCounter, events=300 if quick else audit_section.EVENTS)
    enumerated = enumeration.measure(STACK, n=40 if quick else 200)
    data["seconds"] = time.perf_counter() - started
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(data))
    report.write(data, ROOT / "docs" / "performance.md", ROOT / "docs" / "latency.svg")
    enumeration.write(enumerated, ROOT / "docs" / "performance.md")
    audit_section.write(data["audit"], ROOT / "docs" / "performance.md")
    print(f"wrote docs/performance.md and docs/latency.svg in {data['seconds']:.0f}s")
    told = [name for name, r in enumerated.items() if r["p"] < enumeration.ALPHA]
    if told:  # a security promise broken: the run fails, the report says where
        print(f"enumeration by timing: {', '.join(told)} told accounts from strangers (p < {enumeration.ALPHA})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
