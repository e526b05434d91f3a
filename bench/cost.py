"""The cost model of `make bench`: what a million monthly active users cost a
month, for each way the service deploys (REST API or HTTP API), from the
requests each flow was measured to make.

Every price is a list price for us-east-1 as read on AWS's pricing pages on
PRICES_READ; the build machine cannot reach them, so the report prints every
price and its date for the reader to check before quoting.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from local.template import Stack

PRICES_READ = "2026-11-25"
PRICES = {
    "lambda_gb_second_arm64": (0.0000133334, "Lambda, arm64, per GB-second"),
    "lambda_request": (0.20 / 1e6, "Lambda, per request"),
    "snapstart_cache_gb_second": (0.0000015046, "Lambda SnapStart (Python), cache, per GB-second of a published version"),
    "snapstart_restore_gb": (0.0001397998, "Lambda SnapStart (Python), restore, per GB restored"),
    "apigw_rest_request": (3.50 / 1e6, "API Gateway REST API, per request (first 333 million)"),
    "apigw_http_request": (1.00 / 1e6, "API Gateway HTTP API, per request (first 300 million, 512 KB each)"),
    "ddb_write_unit": (0.625 / 1e6, "DynamoDB on-demand, per write request unit"),
    "ddb_read_unit": (0.125 / 1e6, "DynamoDB on-demand, per read request unit"),
    "sqs_request": (0.40 / 1e6, "SQS standard queue, per request"),
    "sqs_fifo_request": (0.50 / 1e6, "SQS FIFO queue, per request"),
    "kms_request": (0.03 / 1e4, "KMS, per request (GenerateMac, Decrypt, ...)"),
    "s3_put": (0.005 / 1e3, "S3 Standard, per PUT"),
    "ses_email": (0.10 / 1000, "SES, per email"),
    "logs_ingest_gb": (0.50, "CloudWatch Logs, per GB ingested"),
    "logs_store_gb_month": (0.03, "CloudWatch Logs, per GB-month stored"),
    "firehose_ingest_gb": (0.029, "Kinesis Data Firehose, Direct PUT ingestion, per GB (first 500 TB; each record rounded up to 5 KB)"),
    "s3_standard_gb_month": (0.023, "S3 Standard, per GB-month (first 50 TB)"),
    "s3_glacier_ir_gb_month": (0.004, "S3 Glacier Instant Retrieval, per GB-month"),
    "s3_glacier_ir_transition": (0.02 / 1000, "S3 lifecycle transition to Glacier Instant Retrieval, per object"),
    "ddb_storage_gb_month": (0.25, "DynamoDB Standard table class, per GB-month stored (beyond the first 25 GB)"),
    "xray_trace": (5.00 / 1e6, "X-Ray, per trace recorded (beyond 100,000 a month)"),
    "cloudwatch_metric_month": (0.30, "CloudWatch, per custom metric per month (first 10,000 metrics)"),
    "cloudwatch_alarm_month": (0.10, "CloudWatch, per standard-resolution alarm metric per month"),
    "data_out_gb": (0.09, "Data transfer out to the internet, per GB (first 10 TB a month; 100 GB a month free)"),
    "kms_key_month": (1.00, "KMS, per customer-managed key per month"),
    "secret_month": (0.40, "Secrets Manager, per secret per month"),
    "cognito_lite_mau": (0.0055, "Cognito Lite, per MAU above 10,000"),
    "cognito_essentials_mau": (0.015, "Cognito Essentials, per MAU above 10,000"),
    "cognito_plus_mau": (0.02, "Cognito Plus (threat protection), per MAU"),
}
P = {k: v for k, (v, _) in PRICES.items()}

# The stated workload, per active user per month.
WORKLOAD = {"logins": 30, "refreshes": 300, "password_resets": 1}
MAU = 1_000_000
TARGET_PER_MAU = 1485.0 / MAU  # a tenth of Cognito Essentials at a million MAU

# Log bytes a request writes (JSON, ingested): the API access log line (about
# 330 bytes with its values) plus what the functions log, as the bench measures
# each flow (`log_bytes`: INFO lines and metrics' EMF lines on the request path;
# `consumer_log_bytes`: the queue consumers', per batch in AWS); FUNCTION_LOG_BYTES
# when a run did not measure it. Lambda's START/END/REPORT lines are off
# (SystemLogLevel WARN in template.yaml).
ACCESS_LOG_BYTES = 330
FUNCTION_LOG_BYTES = 60
# The audit writer's lines for one event (its anchor line and metric, a batch's share).
AUDIT_LOG_BYTES_PER_EVENT = 76
# The access log's archive (template.yaml: ApiAccessLogGroup -> subscription ->
# AccessLogDeliveryStream -> AccessLogArchiveBucket). CloudWatch Logs hands
# Firehose gzip records, each a batch of lines in its JSON envelope, and they are
# stored as delivered. Stored bytes per line byte, measured: 200,000 lines from
# the template's access log Format with realistic values (random request ids,
# 20,000 users' addresses and ids, six user agents, the workload's route mix, 95%
# 200s), wrapped in CloudWatch Logs' envelope (event id, timestamp, log group and
# stream) in records of 130 lines (a second's requests at a million users'
# average rate), each gzipped (level 6): 0.218 of the line bytes, 4.6x smaller.
# Records of 10 lines give 2.5x, of 2,000 lines 5.0x; decompressing in Firehose
# and gzipping a whole buffer gives 4.9x with the envelope, 7.7x without it.
ACCESS_LOG_ARCHIVE_RATIO = 4.6
# CloudWatch Logs bills stored log data compressed: see CW_STORED_RATIO.
# Firehose bills a subscription's record by its (compressed) size rounded up to
# 5 KB; a record holds many lines, so billing each line's uncompressed bytes is
# an upper bound whenever a record carries 16 lines or more (5 KB / 330 bytes).
RESPONSE_BYTES = 1500
DYNAMODB_MS = 5.0  # DynamoDB's in-region latency per request, assumed (single-digit ms)
# SnapStart restores: assumed one per thousand invocations (a new execution
# environment for every thousand requests is far more churn than a steady
# load causes), each restoring the function's memory size.
RESTORES_PER_INVOCATION = 1 / 1000
SECONDS_A_MONTH = 730 * 3600

# What each flow does at the edge: HTTP requests, and which are protected (an
# authorizer invocation on the REST API; none on the HTTP API).
EDGE = {
    "login": {"requests": 1, "protected": 0},
    "token refresh": {"requests": 1, "protected": 0},
    "forgot-password": {"requests": 1, "protected": 0},
    "verify-password-reset-otp": {"requests": 1, "protected": 0},
    "reset-password": {"requests": 1, "protected": 0},
}


def cpu_share(memory_mb: int) -> float:
    """Lambda gives one full vCPU at 1,769 MB and a proportional share below."""
    return min(1.0, memory_mb / 1769)


def lambda_ms(cpu_ms: float, calls: float, memory_mb: int) -> float:
    return cpu_ms / cpu_share(memory_mb) + calls * DYNAMODB_MS


def memory_sizes(stack: Stack | None = None) -> dict[str, int]:
    """Each function's memory (MB) as the template's defaults set it."""
    stack = stack or Stack()
    default = int(stack.resolve(stack.template["Globals"]["Function"].get("MemorySize", 128)))
    out = {}
    for logical, res in stack.of_type("AWS::Serverless::Function").items():
        size = res["Properties"].get("MemorySize")
        out[logical] = int(stack.resolve(size)) if size is not None else default
    return out


# The memory the functions that hash passwords had with bcrypt at cost 12 (one
# full vCPU: the check dominated a login, so the fastest size cost no more).
BCRYPT_MEMORY_MB = 1769


def password_functions(stack: Stack | None = None) -> set[str]:
    """The functions sized by PasswordFunctionMemorySize (those that check or hash a password)."""
    stack = stack or Stack()
    return {
        logical for logical, res in stack.of_type("AWS::Serverless::Function").items()
        if res["Properties"].get("MemorySize") == {"Ref": "PasswordFunctionMemorySize"}
    }


@lru_cache(maxsize=1)
def _template_sizes() -> dict[str, int]:
    return memory_sizes()


def snapstart_functions(stack: Stack | None = None) -> set[str]:
    """The functions whose published versions have SnapStart (and so a cache
    billed every second): the Globals' `ApplyOn`, unless a function sets its own."""
    stack = stack or Stack()
    default = (stack.template["Globals"]["Function"].get("SnapStart") or {}).get("ApplyOn", "None")
    on = set()
    for logical, res in stack.of_type("AWS::Serverless::Function").items():
        own = (res["Properties"].get("SnapStart") or {}).get("ApplyOn")
        if stack.resolve(own if own is not None else default) == "PublishedVersions":
            on.add(logical)
    return on


def log_retention_months(stack: Stack | None = None) -> float:
    """How long CloudWatch Logs keeps the API access log (AccessLogRetentionDays: operations)."""
    stack = stack or Stack()
    return int(stack.resolve(stack.resources["ApiAccessLogGroup"]["Properties"]["RetentionInDays"])) / 30.4


def access_log_archive_months(stack: Stack | None = None) -> float:
    """How long the archive keeps the access log (its Object Lock default retention)."""
    stack = stack or Stack()
    rule = stack.resources["AccessLogArchiveBucket"]["Properties"]["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]
    return int(stack.resolve(rule["Days"])) / 30.4


def access_log_archive_objects(stack: Stack | None = None) -> float:
    """Objects Firehose puts in the archive a month: one a buffer interval (at a
    million users the compressed lines fill a few MB of the 128 MB buffer in 15 minutes)."""
    stack = stack or Stack()
    hints = stack.resources["AccessLogDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]["BufferingHints"]
    return SECONDS_A_MONTH / int(stack.resolve(hints["IntervalInSeconds"]))


def function_log_retention_months(stack: Stack | None = None) -> float:
    """How long the request-path functions' own logs are kept (their longest retention)."""
    stack = stack or Stack()
    days = []
    for logical, res in stack.of_type("AWS::Serverless::Function").items():
        group = (res["Properties"].get("LoggingConfig") or {}).get("LogGroup", {}).get("Ref")
        if group and logical != "AuditWriterFunction":
            days.append(int(stack.resolve(stack.resources[group]["Properties"]["RetentionInDays"])))
    return max(days or [0]) / 30.4


CW_STORED_RATIO = 0.15


# The archive's objects move to Glacier Instant Retrieval after this many months
# (template.yaml: AccessLogArchiveBucket's lifecycle rule, 90 days).
ARCHIVE_STANDARD_MONTHS = 90 / 30.4


def function_log_bytes(flow: dict[str, Any], extra_audit_events: float = 0.0) -> float:
    """What a flow's functions write to CloudWatch Logs, the consumers' lines shared by a batch."""
    if "log_bytes" not in flow:
        return FUNCTION_LOG_BYTES + extra_audit_events * AUDIT_LOG_BYTES_PER_EVENT
    return flow["log_bytes"] + flow.get("consumer_log_bytes", 0.0) / BATCH + extra_audit_events * AUDIT_LOG_BYTES_PER_EVENT


def _log_cost(requests: float, access_months: float, function_months: float, archive_months: float = 0.0, function_bytes: float = FUNCTION_LOG_BYTES) -> float:
    """CloudWatch Logs (ingestion, and storage for each log's retention), and the
    access log's archive: Firehose ingestion and S3 Standard storage of the
    compressed lines for `archive_months` (0: no archive)."""
    ingest = (requests * ACCESS_LOG_BYTES + function_bytes) / 1e9 * P["logs_ingest_gb"]
    # Steady state: a month's bytes are stored for as many months as they are kept,
    # billed compressed (CloudWatch Logs stores log data gzipped; AWS's pricing
    # examples assume compressed data is CW_STORED_RATIO of what was ingested).
    stored = (requests * ACCESS_LOG_BYTES * access_months + function_bytes * function_months) / 1e9 * CW_STORED_RATIO * P["logs_store_gb_month"]
    archived = 0.0
    if archive_months:
        line_gb = requests * ACCESS_LOG_BYTES / 1e9
        standard = min(archive_months, ARCHIVE_STANDARD_MONTHS)
        stored_gb = line_gb / ACCESS_LOG_ARCHIVE_RATIO
        archived = line_gb * P["firehose_ingest_gb"] + stored_gb * (
            standard * P["s3_standard_gb_month"] + (archive_months - standard) * P["s3_glacier_ir_gb_month"]
        )
    return ingest + stored + archived


# A queue consumer (the audit writer, the email sender) takes its messages in
# batches of up to BATCH (the event source's BatchSize): per batch, Lambda's
# event source makes one receive and one delete request and invokes the
# consumer once, and the audit writer puts one archive object in S3. The local
# event source delivers one request's messages at a time, so these per-batch
# costs are counted here per message, divided by the batch.
BATCH = 10
CONSUMER_MS_PER_BATCH = 50.0  # the consumer's own time for a batch (mostly waiting on AWS), assumed

# The audit writer's DynamoDB work per batch of BATCH events, as `python -m bench
# audit` counts it (capacity from item sizes; the head item holds the batch
# gzipped, about 2 KB). Replaced by the measured figures when the run has them (data["audit"]).
# The design before seals wrote the head twice a batch and MAC'd every record.
AUDIT_WRITER_PER_BATCH = {"rcu": 2.0, "wcu": 24.0}  # with the subject index's entries (10, a unit each), the head gzipped
AUDIT_WRITER_BEFORE_PER_BATCH = {"rcu": 2.0, "wcu": 32.0}  # with the subject index's 10 entries, which its count missed


@dataclass(frozen=True)
class Levers:
    """The cost levers, each on or off, so the report can show what each one saves."""

    mac_per_batch: bool = True  # one KMS GenerateMac a batch (a seal), not one a record
    writer_head_once: bool = True  # the writer's head written once a batch, its seal marks it stored
    function_log_months: float | None = None  # None: the template's FunctionLogRetentionDays
    refresh_summaries: bool = True  # routine rotations summarised a session an interval, not one event each
    snapstart_where_waited: bool = True  # SnapStart (and its cache) only on the functions a person waits on
    access_log_archive: bool = True  # the access log's six years in the locked S3 archive, not in CloudWatch Logs
    audit_hot_window: bool = True  # DynamoDB keeps audit records AuditHotDays (its TTL), the locked archive six years
    argon2id: bool = True  # passwords hashed with Argon2id at PasswordFunctionMemorySize, not bcrypt at cost 12 and 1,769 MB
    # Settings a deployer may change, for the plan's figures (None: the template's default).
    refresh_audit_minutes: int | None = None  # RefreshAuditMinutes
    audit_hot_days: int | None = None  # AuditHotDays


NOW = Levers()


def _per_message(fifo: bool) -> float:
    request = P["sqs_fifo_request" if fifo else "sqs_request"]
    consumer = _template_sizes().get("AuditWriterFunction" if fifo else "EmailSenderFunction", 512)
    invocation = P["lambda_request"] + CONSUMER_MS_PER_BATCH / 1000 * consumer / 1024 * P["lambda_gb_second_arm64"]
    return (2 * request + invocation) / BATCH


def _calls_cost(calls: dict[str, float], levers: Levers = NOW) -> float:
    """Requests to other AWS services that a flow made (counted, not assumed),
    with the per-batch work of the queue consumers shared by a batch.  The
    local event source runs the audit writer once per request, so its
    GenerateMac (one a batch with seals) is shared by a batch here."""
    price = {
        "sqs:SendMessage": P["sqs_request"],
        "sqs:SendMessageBatch": P["sqs_request"],
        "sqs-fifo:SendMessage": P["sqs_fifo_request"],
        "sqs-fifo:SendMessageBatch": P["sqs_fifo_request"],
        "kms:GenerateMac": P["kms_request"] / BATCH if levers.mac_per_batch else P["kms_request"],
        "kms:VerifyMac": P["kms_request"],
        "kms:Decrypt": P["kms_request"],
        "kms:Encrypt": P["kms_request"],
        "kms:GenerateDataKey": P["kms_request"],
        "s3:PutObject": P["s3_put"] / BATCH,
        "ses:SendEmail": P["ses_email"],
        "ses:SendRawEmail": P["ses_email"],
        "sesv2:SendEmail": P["ses_email"],
    }
    messages = sum(n for op, n in calls.items() if op.startswith("sqs:Send"))
    fifo_messages = sum(n for op, n in calls.items() if op.startswith("sqs-fifo:Send"))
    consumers = messages * _per_message(False) + fifo_messages * _per_message(True)
    return consumers + sum(n * price.get(op, 0.0) for op, n in calls.items())


def email_cost(flow: dict[str, Any]) -> float:
    """What a flow's emails cost (SES, counted in the run), the part of its
    "other" that Cognito's own prices leave out: Cognito bills its email apart
    (SES, or its capped built-in sender)."""
    return sum(n * P["ses_email"] for op, n in flow.get("calls", {}).items() if op.split(":")[0] in ("ses", "sesv2"))


# Routine token rotations reach the audit trail as one summary a session every
# REFRESH_AUDIT_MINUTES (carekey/flows/sessions.py). The bench's refreshes come
# from one address within that interval, so they submit none; the model adds a
# session's summaries (a session kept open refreshes once an access token's
# lifetime, so ACCESS_TOKEN_MINUTES / REFRESH_AUDIT_MINUTES of its rotations send
# one) and rotations from a new address, each recorded at once: assumed one in
# NEW_ADDRESS_SHARE (a phone moving between networks now and then).
NEW_ADDRESS_SHARE = 0.05


REFRESH_AUDITED_REREAD_RCU = 2.0


def refresh_audit_share(stack: Stack | None = None, access_minutes: int | None = None, every_minutes: int | None = None) -> float:
    """Audit events per token refresh, from the template's defaults (or another
    access-token lifetime, or another summary interval)."""
    stack = stack or Stack()
    env = stack.function_environment("TokenRefreshFunction")
    every, access = every_minutes or int(env["REFRESH_AUDIT_MINUTES"]), access_minutes or int(env["ACCESS_TOKEN_MINUTES"])
    return 1.0 if every == 0 else min(1.0, access / every + NEW_ADDRESS_SHARE)


# What one audit event costs beyond its request: the SQS FIFO message, the
# writer's share of a batch (seal, archive object) as _calls_cost prices them.
ONE_AUDIT_EVENT = {"sqs-fifo:SendMessage": 1.0, "kms:GenerateMac": 1.0, "s3:PutObject": 1.0}


def audit_events(flow: dict[str, Any]) -> float:
    """Audit events a flow submitted (one SQS FIFO message each)."""
    return sum(n for op, n in flow.get("calls", {}).items() if op.startswith("sqs-fifo:Send"))


# What an audit record occupies at rest, when the run did not measure it
# (`python -m bench audit`): its DynamoDB item with DynamoDB's 100 bytes of
# overhead (its index entries come on top: audit_index_bytes), and its share of
# the archive's objects (JSON lines gzipped, one object a batch).
AUDIT_RECORD_BYTES = 830.0
AUDIT_ARCHIVE_BYTES = 205.0
AUDIT_SEAL_BYTES = 1100.0  # a batch's seal item in DynamoDB (its digests and MAC), a tenth an event
# A record's entry in a keys-only index: DynamoDB stores the index's keys and the
# table's, names and values, plus 100 bytes of overhead. subject is a 36-character
# user id or, for an event about an address alone, a 64-hex keyed hash (the
# longer counted); at an ISO time of 27 characters; chain "trail"; seq a number
# (DynamoDB stores a number in at most about 8 bytes at these magnitudes).
AUDIT_KEYS_ONLY_ENTRY_BYTES = float(
    len("subject") + 64 + len("at") + 27 + len("chain") + len("trail") + len("seq") + 8 + 100
)


def audit_months_kept(stack: Stack | None = None) -> tuple[float, float]:
    """(months DynamoDB keeps a record, months the archive keeps it): the
    template's AuditHotDays when it has one (DynamoDB's TTL), else the archive's
    retention (DynamoDB would keep records for ever: priced at the six years)."""
    stack = stack or Stack()
    params = stack.template.get("Parameters", {})
    archive = int(params["AuditRetentionDays"]["Default"]) / 30.4
    hot = params.get("AuditHotDays")
    return (int(hot["Default"]) / 30.4 if hot else archive), archive


def _kept(levers: Levers) -> tuple[float, float]:
    hot, archive = audit_months_kept()
    if levers.audit_hot_days is not None:
        hot = levers.audit_hot_days / 30.4
    return (hot if levers.audit_hot_window else archive), archive


def audit_indexes(stack: Stack | None = None) -> dict[str, str]:
    """The audit table's indexes in the template: name -> projection."""
    stack = stack or Stack()
    indexes = stack.tables()["AuditTable"]["create"].get("GlobalSecondaryIndexes", [])
    return {i["IndexName"]: i["Projection"]["ProjectionType"] for i in indexes}


def audit_index_entry_bytes(projection: str, record: float) -> float:
    """A record's entry (of `record` bytes as an item) in an index of this
    projection: a whole copy (ALL), or the keys (KEYS_ONLY)."""
    if projection == "ALL":
        return record
    if projection == "KEYS_ONLY":
        return AUDIT_KEYS_ONLY_ENTRY_BYTES
    raise ValueError(f"the model prices an audit index projecting ALL or KEYS_ONLY, not {projection}")


def audit_index_bytes(record: float, stack: Stack | None = None) -> float:
    """What the audit table's indexes store for one record, as the template
    projects them (seals and the head have no subject, so no entry)."""
    return sum(audit_index_entry_bytes(projection, record) for projection in audit_indexes(stack).values())


def audit_storage_per_event(
    measured: dict[str, Any] | None = None, kept: tuple[float, float] | None = None, stack: Stack | None = None
) -> float:
    """What one audit event a month costs at rest, in steady state: each month's
    records are stored for as many months as they are kept (the first 25 GB of
    DynamoDB free are left out: at this scale they are a rounding), with their
    index entries as `stack` (the template's defaults) projects them."""
    record = (measured or {}).get("record_bytes") or AUDIT_RECORD_BYTES
    archived = (measured or {}).get("archive_bytes_per_record") or AUDIT_ARCHIVE_BYTES
    seal = (measured or {}).get("seal_bytes") or AUDIT_SEAL_BYTES
    hot, archive = kept or audit_months_kept()
    dynamodb = (record + audit_index_bytes(record, stack) + seal / BATCH) * hot
    return (dynamodb * P["ddb_storage_gb_month"] + archived * archive * P["s3_standard_gb_month"]) / 1e9


def audit_writer_units(levers: Levers = NOW, measured: dict[str, Any] | None = None) -> dict[str, float]:
    """The writer's (RCU, WCU) per audit event, at a batch of BATCH."""
    if not levers.writer_head_once:
        per_batch = AUDIT_WRITER_BEFORE_PER_BATCH
    elif measured:
        per_batch = {"rcu": measured["rcu_per_batch"], "wcu": measured["wcu_per_batch"]}
    else:
        per_batch = AUDIT_WRITER_PER_BATCH
    return {"rcu": per_batch["rcu"] / BATCH, "wcu": per_batch["wcu"] / BATCH}


def flow_cost(
    flow: dict[str, Any], name: str, cpu_ms: float, memory_mb: int, api: str, months: float,
    levers: Levers = NOW, function_months: float | None = None, audit_measured: dict[str, Any] | None = None,
    extra_audit_events: float = 0.0,
    archive_months: float | None = None,
) -> dict[str, float]:
    """One run of a flow, by part, for `api` in ("rest", "http"); `extra_audit_events`
    adds events the measured run did not submit (the refreshes' summaries). `months`: the
    access log in CloudWatch Logs; `archive_months`: in the archive (None: the template's)."""
    edge = EDGE.get(name, {"requests": 1, "protected": 0})
    invocations = edge["requests"] + (edge["protected"] if api == "rest" else 0)
    duration_s = lambda_ms(cpu_ms, flow["reads"] + flow["writes"], memory_mb) / 1000
    gb_s = duration_s * memory_mb / 1024
    # The audit writer's DynamoDB work, counted per event locally, is replaced by its per-batch share.
    writer = audit_writer_units(levers, audit_measured)
    events = audit_events(flow) + extra_audit_events
    # A refresh that sends a summary leaves the routine path after its eventually consistent
    # read and decides from a strongly consistent one (account and session: 2 RCU more).
    rcu = flow["rcu"] - flow.get("audit_rcu", 0.0) + events * writer["rcu"] + extra_audit_events * REFRESH_AUDITED_REREAD_RCU
    wcu = flow["wcu"] - flow.get("audit_wcu", 0.0) + events * writer["wcu"]
    if levers.function_log_months is not None:
        function_months = levers.function_log_months
    if archive_months is None:
        archive_months = access_log_archive_months()
    if not levers.access_log_archive:  # the design before: six years in CloudWatch Logs, no archive
        months, archive_months = archive_months, 0.0
    return {
        "api": edge["requests"] * P["apigw_rest_request" if api == "rest" else "apigw_http_request"],
        "lambda": gb_s * P["lambda_gb_second_arm64"] + invocations * P["lambda_request"]
        + invocations * RESTORES_PER_INVOCATION * memory_mb / 1024 * P["snapstart_restore_gb"],
        "dynamodb": wcu * P["ddb_write_unit"] + rcu * P["ddb_read_unit"],
        "other": _calls_cost(flow.get("calls", {}), levers) + extra_audit_events * _calls_cost(ONE_AUDIT_EVENT, levers),
        "logs": _log_cost(
            edge["requests"], months, months if function_months is None else function_months, archive_months,
            function_bytes=function_log_bytes(flow, extra_audit_events),
        ),
        "storage": events * audit_storage_per_event(audit_measured, _kept(levers)),
        # The responses' bytes to the internet (measured: status line, headers, body; TLS
        # and TCP framing not counted), RESPONSE_BYTES when the run did not measure them.
        "egress": flow.get("response_bytes", RESPONSE_BYTES) / 1e9 * P["data_out_gb"],
    }


def xray_monthly(api: str, requests: float, stack: Stack | None = None) -> float:
    """X-Ray traces a month. The REST API's stage samples (ApiSamplingRule: one
    request a second, and TraceSampleRate of the rest) and the functions trace
    only what it sampled (Tracing: PassThrough); the HTTP API cannot sample, so
    with PassThrough nothing is traced there."""
    if api != "rest":
        return 0.0
    stack = stack or Stack()
    rule = stack.resources["ApiSamplingRule"]["Properties"]["SamplingRule"]
    reservoir = float(rule["ReservoirSize"]) * SECONDS_A_MONTH
    rate = float(stack.resolve(rule["FixedRate"]))
    return (min(requests, reservoir) + rate * max(0.0, requests - reservoir)) * P["xray_trace"]


def metrics_and_alarms(stack: Stack | None = None) -> float:
    """CloudWatch's custom metrics (each metric name the service emits, with the
    service dimension, and the cold-start metric per function) and the alarms."""
    import re
    from pathlib import Path

    stack = stack or Stack()
    code = Path(__file__).resolve().parent.parent / "layers" / "common" / "carekey"
    names = {m for f in code.rglob("*.py") for m in re.findall(r'add_metric\(name="(\w+)"', f.read_text())}
    metrics = len(names) + len(stack.of_type("AWS::Serverless::Function"))
    alarms = len(stack.of_type("AWS::CloudWatch::Alarm"))
    return metrics * P["cloudwatch_metric_month"] + alarms * P["cloudwatch_alarm_month"]


def fixed_monthly(stack: Stack | None = None, levers: Levers = NOW) -> dict[str, float]:
    """What the stack costs a month whatever the traffic: SnapStart's cache is
    billed for the memory of each function that has it on, every second (with
    the lever off: of every function, as when the Globals set it for all)."""
    sizes = memory_sizes(stack)
    if not levers.argon2id:
        sizes.update(dict.fromkeys(password_functions(stack), BCRYPT_MEMORY_MB))
    cached = snapstart_functions(stack) if levers.snapstart_where_waited else set(sizes)
    snapstart = sum(mb / 1024 for logical, mb in sizes.items() if logical in cached) * SECONDS_A_MONTH * P["snapstart_cache_gb_second"]
    return {
        "metrics_and_alarms": metrics_and_alarms(stack),
        "snapstart_cache": snapstart,
        "keys_and_secrets": P["kms_key_month"] * 2 + 2 * P["secret_month"],
        "access_log_archive_objects": access_log_archive_objects(stack) * (P["s3_put"] + P["s3_glacier_ir_transition"]),
    }
