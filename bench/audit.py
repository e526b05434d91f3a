"""The audit section of `make bench`: what the audit trail costs on the
request path, and how many events a second its one writer chains.

`python -m bench audit` runs this section alone (moto in-process) and
rewrites its part of docs/performance.md; `make bench` runs it with the rest.

- Request path: `audit.record(...)` timed alone, with every AWS request it
  makes counted (one SQS FIFO SendMessage; no DynamoDB request, no KMS).
- Writer: EVENTS events submitted first, then the queue drained through the
  local event source in batches of 10 (the template's BatchSize), timed.
  Every request the writer makes is counted per batch, with DynamoDB
  capacity units from the sizes of the items written and read.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

from bench import sections

BEGIN, END = "<!-- audit:begin -->", "<!-- audit:end -->"
EVENTS = 1000

# The writer before seals (one KMS MAC a record, the head written twice a batch),
# per batch of 10 as its code made them: the before column of the section.
BEFORE_PER_BATCH = {
    "kms:GenerateMac": 10,
    "dynamodb:UpdateItem (head)": 2,
    "dynamodb:GetItem": 1,
    "dynamodb:BatchWriteItem": 1,
    "dynamodb:PutItem": 0,
    "s3:PutObject": 1,
    "sqs-fifo:ReceiveMessage": 1,
    "sqs-fifo:DeleteMessageBatch": 1,
}


def _size(item: dict[str, Any]) -> int:
    """DynamoDB's item size, near enough: attribute names plus values as sent
    (a binary value by its bytes)."""
    return sum(len(k) + (len(v["B"]) if isinstance(v, dict) and "B" in v else len(json.dumps(v))) for k, v in item.items())


def _units(op: str, params: dict[str, Any], head_bytes: int) -> tuple[float, float]:
    """(RCU, WCU) of one writer request, or of the index writes one caused."""
    if op == "IndexWrite":
        return 0.0, float(params["WriteUnits"])
    if op == "GetItem":
        return math.ceil(max(head_bytes if params["Key"]["chain"]["S"] == "head" else 100, 1) / 4096), 0.0
    if op == "PutItem":
        return 0.0, math.ceil(_size(params["Item"]) / 1024)
    if op == "BatchWriteItem":
        return 0.0, sum(math.ceil(_size(w["PutRequest"]["Item"]) / 1024) for ws in params["RequestItems"].values() for w in ws)
    if op == "UpdateItem":
        return 0.0, math.ceil(max(head_bytes, 1) / 1024)
    return 0.0, 1.0


def measure(stack: Any, counter_class: Any, events: int = EVENTS, path_samples: int = 300) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from local.emulator import provision
    from local.queues import QueuePump

    counter = counter_class()
    counter.install()
    boto3.setup_default_session(region_name=stack.region)
    with mock_aws(config={"core": {"reset_boto3_session": False}}):
        provision(stack)
        from carekey import audit, aws
        from carekey.api import Client

        aws.reset_clients()
        pump = QueuePump(stack)

        # Events as varied as real ones, so the stores' sizes (and gzip's ratio) are honest:
        # each from its own request and person, addresses and user agents of a crowd.
        rng = random.Random(7)  # noqa: S311 - sample data, reproducible
        agents = [
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            "CareKeyApp/3.2.1 (iOS 17.5; iPhone15,2)",
            "okhttp/4.12.0",
        ]

        def submit(i: int) -> None:
            who = Client(ip=f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}", user_agent=rng.choice(agents), request_id=str(uuid.UUID(int=rng.getrandbits(128))))
            if i % 2:  # a routine refresh summary, as most events are
                audit.record("refresh", "success", who, user_id=str(uuid.UUID(int=rng.getrandbits(128))), detail={"rotations": str(rng.randint(1, 12)), "since": str(1796400000 + i), "why": "interval"})
            else:
                audit.record("login", "success", who, user_id=str(uuid.UUID(int=rng.getrandbits(128))))

        for i in range(20):  # warm: imports, clients, the writer's first batch
            submit(i)
        pump.drain()
        counter.take()

        # The request path: one event's submission, timed alone.
        samples: list[float] = []
        for i in range(path_samples):
            started = time.perf_counter()
            submit(i)
            samples.append(time.perf_counter() - started)
        other = counter.take_other()
        dynamodb_on_path = len(counter.take())
        pump.drain()
        counter.take()
        counter.take_other()

        # The writer: EVENTS events queued, then drained in batches of 10.
        for i in range(events):
            submit(i)
        counter.take()
        counter.take_other()
        started = time.perf_counter()
        delivered = pump.drain()
        seconds = time.perf_counter() - started
        writer_other = counter.take_other()  # first: take() forgets the other requests too
        writer_calls = counter.take()
        table = stack.tables()["AuditTable"]["create"]["TableName"]
        head = boto3.client("dynamodb").get_item(TableName=table, Key={"chain": {"S": "head"}, "seq": {"N": "0"}}, ConsistentRead=True)["Item"]
        head_bytes = _size(head)
        # What a record occupies at rest: its DynamoDB item (its index entry, keys
        # only, is priced by bench.cost from the template), and its share of the archive's objects.
        from carekey.config import settings

        s3 = boto3.client("s3")
        archived = sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=settings().audit_bucket) for o in page.get("Contents", []))
        records = boto3.client("dynamodb").query(
            TableName=table, KeyConditionExpression="chain = :c", ExpressionAttributeValues={":c": {"S": "trail"}}, Limit=200, ScanIndexForward=False
        )["Items"]
        seal_items = boto3.client("dynamodb").query(
            TableName=table, KeyConditionExpression="chain = :c", ExpressionAttributeValues={":c": {"S": "seal"}}, Limit=50, ScanIndexForward=False
        )["Items"]
        total_records = sum(
            page["Count"]
            for page in boto3.client("dynamodb").get_paginator("query").paginate(
                TableName=table, KeyConditionExpression="chain = :c", ExpressionAttributeValues={":c": {"S": "trail"}}, Select="COUNT"
            )
        )

    batches = max(1, math.ceil(delivered / 10))
    ops: dict[str, float] = {}
    rcu = wcu = 0.0
    for op, params in writer_calls:
        if op == "IndexWrite":  # capacity, not a request: shown as the entries written
            name = f"dynamodb: {params['IndexName']} index entries"
            ops[name] = ops.get(name, 0) + 1
            r, w = _units(op, params, head_bytes)
            rcu, wcu = rcu + r, wcu + w
            continue
        ops[f"dynamodb:{op}"] = ops.get(f"dynamodb:{op}", 0) + 1
        if op == "UpdateItem":
            ops["dynamodb:UpdateItem (head)"] = ops.get("dynamodb:UpdateItem (head)", 0) + 1
            ops.pop("dynamodb:UpdateItem")
        r, w = _units(op, params, head_bytes)
        rcu, wcu = rcu + r, wcu + w
    for name, n in writer_other.items():
        ops[name] = ops.get(name, 0) + n
    return {
        "events": delivered,
        "batches": batches,
        "seconds": seconds,
        "events_per_second": delivered / seconds if seconds else 0.0,
        "per_batch": {k: v / batches for k, v in sorted(ops.items())},
        "rcu_per_batch": rcu / batches,
        "wcu_per_batch": wcu / batches,
        "head_bytes": head_bytes,
        # DynamoDB bills storage by item size plus 100 bytes of overhead, in the table and in each index.
        "record_bytes": statistics.mean(_size(r) + 100 for r in records) if records else 0.0,
        "archive_bytes_per_record": archived / max(1, total_records),
        "seal_bytes": statistics.mean(_size(x) + 100 for x in seal_items) if seal_items else 0.0,
        "path": {
            "median_ms": statistics.median(samples) * 1000,
            "p95_ms": sorted(samples)[int(len(samples) * 0.95)] * 1000,
            "requests": {k: v / path_samples for k, v in other.items()},
            "dynamodb_requests": dynamodb_on_path / path_samples,
        },
    }


def section(r: dict[str, Any]) -> str:
    path = r["path"]
    per = r["per_batch"]
    requests = ", ".join(f"{k} x{v:g}" for k, v in path["requests"].items()) or "none"
    rows = []
    for op in sorted(set(per) | set(BEFORE_PER_BATCH)):
        before = BEFORE_PER_BATCH.get(op)
        now = per.get(op, 0.0)
        rows.append(f"| {op} | {'-' if before is None else f'{before:g}'} | {now:.2f} |")
    return "\n".join(
        [
            BEGIN,
            "## The audit trail",
            "",
            "`python -m bench audit` (moto in-process; `bench/audit.py`).",
            "",
            f"**Request path.** Submitting one event (`audit.record`) makes {requests} and",
            f"{path['dynamodb_requests']:g} DynamoDB requests (0 RCU, 0 WCU): median {path['median_ms']:.2f} ms,",
            f"p95 {path['p95_ms']:.2f} ms on the emulator. Before the queue, every audited request read the",
            "chain head (1 RCU) and wrote a two-item transaction (4 WCU) and could contend on the head.",
            "",
            f"**Writer.** {r['events']} events queued, then chained by the one writer in {r['batches']} batches",
            f"of up to 10: **{r['events_per_second']:,.0f} events a second** on this machine ({r['seconds']:.2f} s; the",
            "emulator's time included, and in AWS each request is a network round trip, so count the",
            "requests below rather than this rate). Per batch (the local event source's ReceiveMessage and",
            "DeleteMessageBatch are what Lambda's event source does):",
            "",
            "| request per batch of 10 | before (a MAC a record) | now (a seal a batch) |",
            "|---|---|---|",
            *rows,
            "",
            f"DynamoDB capacity per batch: {r['rcu_per_batch']:.1f} RCU, {r['wcu_per_batch']:.1f} WCU (the head item,",
            f"{r['head_bytes']:,} bytes with the batch it holds, is written once; before, twice; every record",
            "also enters the audit_by_subject index (its keys only), which the operators' audit-by-user query",
            "reads: a write unit each).",
            END,
        ]
    )


def write(results: dict[str, Any], markdown: Path) -> None:
    """Put the section into docs/performance.md, replacing the previous one."""
    sections.replace(markdown, BEGIN, END, section(results))
