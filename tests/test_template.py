"""template.yaml: the deployable shape of the service, and the controls it carries."""

from __future__ import annotations

from typing import Any

import pytest
from carekey.catalog import ENDPOINTS

from bench.cost import SECONDS_A_MONTH, P, fixed_monthly, memory_sizes, snapstart_functions
from local.template import Stack, load
from tests.conftest import STACK

T = load()
R = T["Resources"]


def _of(kind: str) -> dict[str, Any]:
    return {k: v for k, v in R.items() if v["Type"] == kind}


FUNCTIONS = _of("AWS::Serverless::Function")
TABLES = _of("AWS::DynamoDB::Table")


def test_cfn_lint_finds_nothing():
    from cfnlint.api import lint

    matches = lint(open("template.yaml").read(), regions=["us-east-1", "eu-west-1"])
    assert [str(m) for m in matches if m.rule.id[0] in "EW"] == []


def test_globals_pin_runtime_architecture_tracing_and_the_layer():
    g = T["Globals"]["Function"]
    assert g["Runtime"] == "python3.12" and g["Architectures"] == ["arm64"]
    # One sampling decision at the API stage: the functions trace what it sampled, nothing more
    assert g["Tracing"] == "PassThrough"
    assert g["Layers"] == [{"Ref": "CommonLayer"}]
    assert g["KmsKeyArn"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert g["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]


def test_the_layer_builds_its_package_where_lambda_imports_it():
    layer = R["CommonLayer"]
    assert layer["Properties"]["ContentUri"] == "layers/common/"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    makefile = open("layers/common/Makefile").read()
    assert '$(ARTIFACTS_DIR)/python/carekey' in makefile and "manylinux2014_aarch64" in makefile


def test_every_catalogued_endpoint_is_a_route_and_back():
    routes = {(r.path, r.method) for r in STACK.routes() if r.method != "ANY"}
    documented = {(e.path, e.method) for e in ENDPOINTS}
    assert routes == documented
    protected = {(r.path, r.method) for r in STACK.routes() if r.authorizer}
    # every path also has an ANY route to its own function, which answers other methods with 405
    assert {r.path for r in STACK.routes() if r.method == "ANY"} == {e.path for e in ENDPOINTS}
    assert protected == {(e.path, e.method) for e in ENDPOINTS if e.auth}


def test_one_function_per_step_each_with_its_own_kms_encrypted_log_group():
    # twenty-four steps, account deletion, the operators' API and its audit reader, the audit writer, the email
    # sender and the SES feedback consumer
    assert len(FUNCTIONS) == 30
    retention = T["Parameters"]["FunctionLogRetentionDays"]
    assert retention["Default"] == 90 and min(retention["AllowedValues"]) >= 30
    for name, fn in FUNCTIONS.items():
        group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        props = R[group]["Properties"]
        assert props["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}, name
        # Function logs serve operations for FunctionLogRetentionDays; the audit writer's log
        # (one anchor line a batch: the chain's end and seal) keeps the audit period
        expected = 2192 if name == "AuditWriterFunction" else {"Ref": "FunctionLogRetentionDays"}
        assert props["RetentionInDays"] == expected, name
    # The access log serves operations in CloudWatch Logs; its six years are in the locked archive
    # (test_the_access_log_is_archived_six_years_in_a_locked_bucket)
    access = R["ApiAccessLogGroup"]["Properties"]
    assert access["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}
    assert access["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}


def test_tables_are_encrypted_recoverable_and_protected():
    for name, table in TABLES.items():
        p = table["Properties"]
        assert p["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Fn::GetAtt": ["DataKey", "Arn"]}}, name
        assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert p["DeletionProtectionEnabled"] is True, name
        assert table["DeletionPolicy"] == "Retain", name


# The functions that list a user's sessions (GET /sessions, the operators' session
# count and erasure) and the attributes a token refresh writes (store.rotate_session).
SESSION_LISTERS = {"SessionsFunction", "AdminUsersFunction", "DeleteAccountFunction"}
REFRESH_WRITES = {"generation", "token_hash", "previous_hash", "rotated_at", "refresh_expires_at", "last_used", "ip", "user_agent",
                  "unaudited", "audited_at"}


def _session_index_phase(stack: Stack) -> tuple[dict[str, str], set[str], set[str]]:
    """The sessions table's indexes (name -> projection), the index the listing
    functions read, and the index ARNs their policies let them query."""
    indexes = {i["IndexName"]: i["Projection"]["ProjectionType"] for i in stack.tables()["SessionsTable"]["create"]["GlobalSecondaryIndexes"]}
    read = {stack.function_environment(name)["SESSIONS_USER_INDEX"] for name in SESSION_LISTERS}
    queried = set()
    for name in SESSION_LISTERS:
        for policy in stack.resolve(R[name]["Properties"]["Policies"]):
            for s in policy.get("Statement", []) if isinstance(policy, dict) else []:
                resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
                queried |= {r.rsplit("/", 1)[1] for r in resources if "dynamodb:Query" in s["Action"] and "/index/" in r}
    return indexes, read, queried


def test_the_sessions_user_index_holds_keys_only_and_an_old_stack_moves_to_it_one_index_a_deploy():
    # A new stack: one index of a user's sessions, keys only, and none of its keys is written by a token refresh
    [index] = TABLES["SessionsTable"]["Properties"]["GlobalSecondaryIndexes"][:1]
    assert index["IndexName"] == "sessions_by_user" and index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert not {k["AttributeName"] for k in index["KeySchema"]} & REFRESH_WRITES
    assert T["Parameters"]["LegacySessionIndex"]["Default"] == "drop"
    new = _session_index_phase(Stack())
    assert new == ({"sessions_by_user": "KEYS_ONLY"}, {"sessions_by_user"}, {"sessions_by_user"})
    # Only the functions that list sessions are told the index, and only those that show sessions fetch them by key
    told = {name for name in FUNCTIONS if "SESSIONS_USER_INDEX" in Stack().function_environment(name)}
    assert told == SESSION_LISTERS
    fetch = {name for name in SESSION_LISTERS if "dynamodb:BatchGetItem" in _table_actions(FUNCTIONS[name]).get("SessionsTable", set())}
    assert fetch == {"SessionsFunction", "AdminUsersFunction"}
    # An old stack (only by_user) upgrades in deploys that each add or delete at most one index (CloudFormation's
    # limit) and never read an index that is not there and active: read, then keep, then drop
    phases = [({"by_user": "INCLUDE"}, {"by_user"}, {"by_user"})]
    phases += [_session_index_phase(Stack(overrides={"LegacySessionIndex": value})) for value in ("read", "keep", "drop")]
    assert phases[1] == ({"sessions_by_user": "KEYS_ONLY", "by_user": "INCLUDE"}, {"by_user"}, {"by_user"})
    assert phases[2] == ({"sessions_by_user": "KEYS_ONLY", "by_user": "INCLUDE"}, {"sessions_by_user"}, {"sessions_by_user"})
    assert phases[3] == new
    for before, after in zip(phases, phases[1:], strict=False):
        assert len(set(before[0]) ^ set(after[0])) <= 1
        assert before[1] <= set(after[0])  # while the functions update, the index they read until then is there
        assert after[1] <= set(before[0]) & set(after[0])  # the index they read next was added (and backfilled) by an earlier deploy
        assert after[2] == after[1]  # each function may query exactly the index it reads


def _queried_indexes(statements: list[Any]) -> set[str]:
    """The index names these (resolved) policy statements let their holder query."""
    out = set()
    for s in statements:
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        out |= {r.rsplit("/", 1)[1] for r in resources if "dynamodb:Query" in _actions(s) and "/index/" in r}
    return out


def _audit_index_phase(stack: Stack) -> tuple[dict[str, str], set[str], set[str]]:
    """The audit table's indexes (name -> projection), the index the operators'
    audit reads query (AdminAuditFunction; `make audit-export` takes the stack's
    function environment), and the indexes AdminAuditFunction and the auditors'
    AuditReadPolicy may query."""
    indexes = {i["IndexName"]: i["Projection"]["ProjectionType"] for i in stack.tables()["AuditTable"]["create"]["GlobalSecondaryIndexes"]}
    read = {stack.function_environment("AdminAuditFunction")["AUDIT_SUBJECT_INDEX"], stack.service_environment()["AUDIT_SUBJECT_INDEX"]}
    statements = [s for p in stack.resolve(R["AdminAuditFunction"]["Properties"]["Policies"]) if isinstance(p, dict) for s in p.get("Statement", [])]
    statements += _dynamodb_statements(stack, R["AuditReadPolicy"])
    return indexes, read, _queried_indexes(statements)


def _dynamodb_statements(stack: Stack, policy: dict[str, Any]) -> list[dict[str, Any]]:
    """A managed policy's DynamoDB statements, resolved for `stack`."""
    return [stack.resolve(s) for s in _statements(policy) if any(a.startswith("dynamodb:") for a in _actions(s))]


def test_the_audit_subject_index_holds_keys_only_and_an_old_stack_moves_to_it_one_index_a_deploy():
    # Given a new stack: one index of a person's records, by subject and time, keys only (each record stored once)
    [index] = TABLES["AuditTable"]["Properties"]["GlobalSecondaryIndexes"][:1]
    assert index["IndexName"] == "audit_by_subject" and index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert index["KeySchema"] == [{"AttributeName": "subject", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}]
    assert T["Parameters"]["LegacyAuditIndex"]["Default"] == "drop"
    new = _audit_index_phase(Stack())
    assert new == ({"audit_by_subject": "KEYS_ONLY"}, {"audit_by_subject"}, {"audit_by_subject"})
    # Then only the operators' audit function is told the index
    assert {name for name in FUNCTIONS if "AUDIT_SUBJECT_INDEX" in Stack().function_environment(name)} == {"AdminAuditFunction"}
    # An old stack (only by_subject, projection ALL) upgrades in deploys that each add or delete at most one index
    # (CloudFormation's limit) and never read an index that is not there and active: read, then keep, then drop
    phases = [({"by_subject": "ALL"}, {"by_subject"}, {"by_subject"})]
    phases += [_audit_index_phase(Stack(overrides={"LegacyAuditIndex": value})) for value in ("read", "keep", "drop")]
    assert phases[1] == ({"audit_by_subject": "KEYS_ONLY", "by_subject": "ALL"}, {"by_subject"}, {"by_subject"})
    assert phases[2] == ({"audit_by_subject": "KEYS_ONLY", "by_subject": "ALL"}, {"audit_by_subject"}, {"audit_by_subject"})
    assert phases[3] == new
    for before, after in zip(phases, phases[1:], strict=False):
        assert len(set(before[0]) ^ set(after[0])) <= 1
        assert before[1] <= set(after[0])  # while the functions update, the index they read until then is there
        assert after[1] <= set(before[0]) & set(after[0])  # the index they read next was added (and backfilled) by an earlier deploy
        assert after[2] == after[1]  # the function and the auditors may query exactly the index they read
    # And the old index, while kept, is the one the old stack had: same keys, every attribute
    [old] = Stack(overrides={"LegacyAuditIndex": "keep"}).tables()["AuditTable"]["create"]["GlobalSecondaryIndexes"][1:]
    assert old == {"IndexName": "by_subject", "KeySchema": index["KeySchema"], "Projection": {"ProjectionType": "ALL"}}
    # And in every phase the operators' function fetches by key only records (partition trail), never a seal or the head
    for value in ("read", "keep", "drop"):
        stack = Stack(overrides={"LegacyAuditIndex": value})
        statements = [s for p in stack.resolve(R["AdminAuditFunction"]["Properties"]["Policies"]) if isinstance(p, dict) for s in p.get("Statement", [])]
        on_table = [s for s in statements if s["Resource"] == stack.arn("AuditTable")]
        assert [(s["Action"], s["Condition"]) for s in on_table] == [
            (["dynamodb:BatchGetItem"], {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["trail"]}})
        ]
        auditors = _dynamodb_statements(stack, R["AuditReadPolicy"])
        assert any("dynamodb:BatchGetItem" in _actions(s) and stack.arn("AuditTable") in s["Resource"] for s in auditors)


def test_ttl_only_on_short_lived_items_and_audit_records():
    with_ttl = {n for n, t in TABLES.items() if t["Properties"].get("TimeToLiveSpecification")}
    assert with_ttl == {"OtpTable", "SessionsTable", "LimitsTable", "AuditTable"}


def test_the_audit_table_keeps_a_hot_window_the_writer_and_the_operators_reader_are_told():
    # Given the template
    hot = T["Parameters"]["AuditHotDays"]
    # Then DynamoDB keeps audit records AuditHotDays (default 90, at least 30), by TTL on `expires`
    assert hot["Type"] == "Number" and hot["Default"] == 90 and hot["MinValue"] == 30
    assert "AuditRetentionDays" in hot["Description"] and "archive" in hot["Description"]
    assert R["AuditTable"]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "expires", "Enabled": True}
    # And the writer (which sets `expires`) and the operators' audit reader (which states the window) read it
    for name in ("AuditWriterFunction", "AdminAuditFunction"):
        assert STACK.function_environment(name)["AUDIT_HOT_DAYS"] == "90", name
    # While the archive keeps every record six years, whatever the window
    assert R["AuditArchiveBucket"]["Properties"]["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Days"] == {"Ref": "AuditRetentionDays"}


def test_key_rotation_and_secrets_under_the_key():
    assert R["DataKey"]["Properties"]["EnableKeyRotation"] is True
    for name, secret in _of("AWS::SecretsManager::Secret").items():
        assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}, name
        assert "GenerateSecretString" in secret["Properties"] and "SecretString" not in secret["Properties"]


def _table_actions(fn: dict[str, Any]) -> dict[str, set[str]]:
    """Table logical id -> DynamoDB actions a function's policies grant."""
    out: dict[str, set[str]] = {}

    def visit(statements):
        for s in statements:
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            for r in resources:
                if isinstance(r, dict) and "Fn::GetAtt" in r and r["Fn::GetAtt"][0] in TABLES:
                    out.setdefault(r["Fn::GetAtt"][0], set()).update(a for a in s["Action"] if a.startswith("dynamodb:"))

    for p in fn["Properties"].get("Policies", []):
        if isinstance(p, dict) and "Ref" in p:
            visit(R[p["Ref"]]["Properties"]["PolicyDocument"]["Statement"])
        elif isinstance(p, dict) and "Statement" in p:
            visit(p["Statement"])
    return out


def test_least_privilege_per_function():
    verify = _table_actions(FUNCTIONS["VerifyOtpFunction"])
    assert "SessionsTable" not in verify
    assert all(not a.endswith(("Scan", "Query", "*")) for acts in verify.values() for a in acts)
    assert _table_actions(FUNCTIONS["ApiRootFunction"]) == {}
    assert _table_actions(FUNCTIONS["JwksFunction"]) == {}
    assert set(_table_actions(FUNCTIONS["AuthorizerFunction"])) == {"UsersTable", "SessionsTable"}
    for name, fn in FUNCTIONS.items():
        for table, actions in _table_actions(fn).items():
            assert "dynamodb:Scan" not in actions and "dynamodb:*" not in actions, name
            if table == "AuditTable":
                assert name == "AdminAuditFunction" and actions == {"dynamodb:BatchGetItem"}, name


def _statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return policy["Properties"]["PolicyDocument"]["Statement"]


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_only_the_writer_touches_audit_records_and_it_cannot_delete_them():
    # Request-path functions may only send to the audit queue; the operators' audit function reads
    # records by key (those its index lists, partition trail: see the subject index's test) and writes nothing
    for name, fn in FUNCTIONS.items():
        assert _table_actions(fn).get("AuditTable", set()) == ({"dynamodb:BatchGetItem"} if name == "AdminAuditFunction" else set()), name
    assert _statements(R["AuditSubmitPolicy"]) == [{"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": {"Fn::GetAtt": ["AuditQueue", "Arn"]}}]
    # The writer puts records (partition "trail") and seals (partition "seal"), reads whether a seal
    # is stored, and reads and moves only its head (partition "head"); it never reads a record
    writer = R["AuditWriterFunction"]["Properties"]
    assert writer["Role"] == {"Fn::GetAtt": ["AuditWriterRole", "Arn"]}
    statements = R["AuditWriterRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    on_table = [s for s in statements if s["Resource"] == {"Fn::GetAtt": ["AuditTable", "Arn"]}]
    grants = {tuple(s["Action"]): s["Condition"]["ForAllValues:StringEquals"]["dynamodb:LeadingKeys"] for s in on_table}
    assert grants == {
        ("dynamodb:BatchWriteItem",): ["trail"],
        ("dynamodb:GetItem", "dynamodb:PutItem"): ["seal"],
        ("dynamodb:GetItem", "dynamodb:UpdateItem"): ["head"],
    }
    every_action = [a for s in statements for a in _actions(s)]
    assert not any(a.endswith(("DeleteItem", "Query", "Scan", "DeleteObject", "DeleteObjectVersion", "*")) for a in every_action)
    # Records are read only through the auditors' policy, which no function holds
    read = [a for s in _statements(R["AuditReadPolicy"]) for a in _actions(s)]
    assert "dynamodb:Query" in read and "kms:VerifyMac" in read and "kms:GenerateMac" not in read
    for name, fn in FUNCTIONS.items():
        assert {"Ref": "AuditReadPolicy"} not in fn["Properties"].get("Policies", []), name


def test_audit_submissions_queue_in_one_order_and_failures_are_kept():
    queue = R["AuditQueue"]["Properties"]
    assert queue["FifoQueue"] is True and queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["AuditDeadLetterQueue", "Arn"]}
    assert queue["KmsMasterKeyId"] and R["AuditDeadLetterQueue"]["Properties"]["FifoQueue"] is True
    (event,) = R["AuditWriterFunction"]["Properties"]["Events"].values()
    assert event["Type"] == "SQS" and event["Properties"]["Queue"] == {"Fn::GetAtt": ["AuditQueue", "Arn"]}
    # Lambda asks an event source queue's visibility timeout to be six times the function's
    assert queue["VisibilityTimeout"] >= 6 * R["AuditWriterFunction"]["Properties"]["Timeout"]


def test_only_the_writer_may_generate_audit_macs():
    key = R["AuditMacKey"]["Properties"]
    assert (key["KeySpec"], key["KeyUsage"]) == ("HMAC_256", "GENERATE_VERIFY_MAC")
    statements = key["KeyPolicy"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow" and "kms:GenerateMac" in _actions(s)]
    assert [s["Principal"] for s in allows] == [{"AWS": {"Fn::GetAtt": ["AuditWriterRole", "Arn"]}}]
    deny = next(s for s in statements if s["Effect"] == "Deny")
    assert deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {"Fn::GetAtt": ["AuditWriterRole", "Arn"]}
    admin = next(s for s in statements if s["Sid"] == "AccountAdministersButCannotMac")
    assert not any(a in ("kms:*", "kms:GenerateMac") or a.startswith("kms:Generate") for a in _actions(admin))


def test_the_archive_is_locked_in_compliance_mode_for_six_years():
    bucket = R["AuditArchiveBucket"]
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": {"Ref": "AuditRetentionDays"}}
    assert T["Parameters"]["AuditRetentionDays"]["Default"] == 2192 and T["Parameters"]["AuditRetentionDays"]["MinValue"] == 2192
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert all(props["PublicAccessBlockConfiguration"].values())
    denied = [a for s in _statements(R["AuditArchiveBucketPolicy"]) if s["Effect"] == "Deny" for a in _actions(s)]
    assert {"s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:BypassGovernanceRetention"} <= set(denied)


def test_data_key_is_used_only_through_aws_services():
    (statement,) = _statements(R["KeyUsePolicy"])
    services = statement["Condition"]["StringEquals"]["kms:ViaService"]
    assert {s["Fn::Sub"].split(".")[0] for s in services} == {"dynamodb", "secretsmanager", "lambda", "sqs", "s3"}


def test_every_alarm_reaches_the_topic_an_address_subscribes_to():
    alarms = _of("AWS::CloudWatch::Alarm")
    watched = {a["Properties"]["MetricName"] for a in alarms.values()}
    assert {"AuditSubmissionFailures", "ApproximateNumberOfMessagesVisible", "RefreshReuse", "LoginLockouts", "EmailFailures", "5XXError"} <= watched
    for name, alarm in alarms.items():
        assert {"Ref": "AlarmTopic"} in alarm["Properties"]["AlarmActions"], name
    subscription = R["AlarmEmailSubscription"]
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"} and subscription["Properties"]["Protocol"] == "email"


def test_access_log_names_the_authorizers_principal():
    fmt = R["AuthApi"]["Properties"]["AccessLogSetting"]["Format"]
    assert '"principal":"$context.authorizer.principalId"' in fmt


def test_api_authorizer_is_never_cached_and_errors_are_json():
    api = R["AuthApi"]["Properties"]
    identity = api["Auth"]["Authorizers"]["TokenAuthorizer"]["Identity"]
    assert identity["ReauthorizeEvery"] == 0
    assert api["TracingEnabled"] is True
    rule = R["ApiSamplingRule"]["Properties"]["SamplingRule"]
    assert rule["ServiceName"] == {"Fn::Sub": "${AWS::StackName}-api/${Stage}"} and api["Name"] == {"Fn::Sub": "${AWS::StackName}-api"}
    assert rule["ServiceType"] == "AWS::ApiGateway::Stage" and rule["ReservoirSize"] == 1 and rule["FixedRate"] == {"Ref": "TraceSampleRate"}
    assert T["Parameters"]["TraceSampleRate"]["Default"] == 0
    for kind in ("UNAUTHORIZED", "ACCESS_DENIED", "DEFAULT_4XX", "DEFAULT_5XX"):
        assert "application/json" in api["GatewayResponses"][kind]["ResponseTemplates"]


def test_transport_tls_and_waf():
    assert R["EmailConfigurationSet"]["Properties"]["DeliveryOptions"]["TlsPolicy"] == "REQUIRE"
    domain = R["AuthApi"]["Properties"]["Domain"]["Fn::If"][1]
    assert domain["SecurityPolicy"] == "TLS_1_2"
    rule = R["WebAcl"]["Properties"]["Rules"][0]["Statement"]["RateBasedStatement"]
    assert rule["AggregateKeyType"] == "IP" and rule["Limit"] == {"Ref": "WafRateLimit"}
    assert R["WebAcl"]["Condition"] == "WafEnabled"


@pytest.mark.parametrize("param", ["BcryptCost", "OtpMaxAttempts", "OtpResendCooldownSeconds", "OtpSendsPerHour", "LoginLockoutThreshold",
                                   "LoginLockoutMaxSeconds", "LoginFailuresPerHour", "IpFailuresPerHour", "SessionIdleMinutes",
                                   "SessionMaxHours", "AccessTokenMinutes", "RefreshTokenHours", "MaxBodyBytes",
                                   "WebAuthnChallengeSeconds", "WebAuthnMaxPasskeys", "IpCodeRequestsPerHour", "SignupTtlHours"])
def test_every_limit_is_a_parameter_whose_default_matches_the_code(param):
    from carekey.config import Settings

    env_name = "".join("_" + c if c.isupper() else c for c in param).lstrip("_").upper().replace("WEB_AUTHN", "WEBAUTHN")
    default = Settings.model_fields[next(k for k, f in Settings.model_fields.items() if f.alias == env_name)].default
    assert int(T["Parameters"][param]["Default"]) == default
    assert T["Globals"]["Function"]["Environment"]["Variables"][env_name] == {"Ref": param}


def test_outputs_give_the_api_url():
    assert "ApiUrl" in T["Outputs"] and "JwksUrl" in T["Outputs"]


def test_reserved_concurrency_is_set_by_parameter_and_on_in_prod():
    assert T["Globals"]["Function"]["ReservedConcurrentExecutions"] == {
        "Fn::If": ["ReserveConcurrency", {"Ref": "ReservedConcurrency"}, {"Ref": "AWS::NoValue"}]
    }
    assert "ReservedConcurrency=50" in open("samconfig.toml").read()


def test_every_checkov_suppression_gives_its_reason():
    skips = [(name, s) for name, r in R.items() for s in (r.get("Metadata", {}).get("checkov", {}).get("skip", []))]
    assert skips
    for name, skip in skips:
        assert skip["id"].startswith("CKV_") and len(skip.get("comment", "")) > 40, name


def test_password_hashing_functions_get_their_own_memory_size_with_room_for_argon2():
    # Argon2id's memory (KiB) fits the smallest size allowed, with room for the function itself
    assert T["Parameters"]["PasswordFunctionMemorySize"]["Default"] == 1024
    smallest = min(T["Parameters"]["PasswordFunctionMemorySize"]["AllowedValues"])
    assert T["Parameters"]["Argon2MemoryKiB"]["Default"] / 1024 + 100 <= smallest
    # and so does the most a deployer may set: no combination the template allows runs out of memory hashing
    assert T["Parameters"]["Argon2MemoryKiB"]["MaxValue"] / 1024 + 100 <= smallest
    env = T["Globals"]["Function"]["Environment"]["Variables"]
    assert env["ARGON2_MEMORY_KIB"] == {"Ref": "Argon2MemoryKiB"} and env["ARGON2_ITERATIONS"] == {"Ref": "Argon2Iterations"}
    hashing = {n for n, f in FUNCTIONS.items() if f["Properties"].get("MemorySize") == {"Ref": "PasswordFunctionMemorySize"}}
    assert hashing == {
        "RegisterFunction", "LoginFunction", "ResetPasswordFunction", "ChangePasswordFunction", "ChangeEmailFunction",
        "WebAuthnRegisterFunction", "DeleteAccountFunction", "AdminUsersFunction", "MfaFunction",
    }
    assert T["Globals"]["Function"]["MemorySize"] == {"Ref": "FunctionMemorySize"}


def test_snapstart_is_on_exactly_where_a_person_waits_on_a_cold_start():
    # Given the template with its default parameters
    # When the functions whose published versions get SnapStart are read (Globals' default, each function's own)
    on = snapstart_functions(STACK)
    # Then every function behind a public route, and the authorizer in front of them, has it
    routes = STACK.routes()
    waited_on = {r.function for r in routes if not r.iam} | {r.authorizer for r in routes if r.authorizer}
    assert waited_on and on == waited_on
    # And the queue and SNS consumers and the operators' (IAM-signed) functions do not pay for its cache
    assert set(FUNCTIONS) - on == {
        "AuditWriterFunction", "EmailSenderFunction", "EmailFeedbackFunction", "AdminUsersFunction", "AdminAuditFunction",
    }
    for name in set(FUNCTIONS) - on:
        assert FUNCTIONS[name]["Properties"]["SnapStart"] == {"ApplyOn": "None"}, name
        assert not any(e["Type"] == "Api" and (e["Properties"].get("Auth") or {}).get("Authorizer") != "AWS_IAM"
                       for e in (FUNCTIONS[name]["Properties"].get("Events") or {}).values()), name


def test_enable_snapstart_false_turns_it_off_everywhere_and_its_cache_costs_nothing():
    # Given a deployment with EnableSnapStart=false
    stack = Stack(overrides={"EnableSnapStart": "false"})
    # When its SnapStart functions and fixed monthly cost are read
    # Then no function has SnapStart and its cache costs nothing
    assert snapstart_functions(stack) == set()
    assert fixed_monthly(stack)["snapstart_cache"] == 0.0


def test_the_snapstart_cache_is_billed_for_the_memory_of_the_functions_that_have_it():
    # Given the default template, where some functions go without SnapStart
    sizes, on = memory_sizes(STACK), snapstart_functions(STACK)
    assert on < set(sizes)
    # When the fixed monthly cost is modelled
    cache = fixed_monthly(STACK)["snapstart_cache"]
    # Then it is the cache price for the memory of exactly those functions, less than for all of them
    per_gb_month = SECONDS_A_MONTH * P["snapstart_cache_gb_second"]
    assert cache == pytest.approx(sum(sizes[n] for n in on) / 1024 * per_gb_month)
    assert cache < sum(sizes.values()) / 1024 * per_gb_month


def test_email_work_is_queued_retried_dead_lettered_encrypted_and_alarmed():
    queue, dead = R["EmailQueue"]["Properties"], R["EmailDeadLetterQueue"]["Properties"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["EmailDeadLetterQueue", "Arn"]}, "maxReceiveCount": 5}
    for props in (queue, dead):
        assert props["KmsMasterKeyId"] == {"Ref": "DataKey"}
    assert queue["VisibilityTimeout"] >= 6 * T["Globals"]["Function"]["Timeout"]  # AWS's advice for Lambda consumers
    alarm = R["EmailDeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["EmailDeadLetterQueue", "QueueName"]}}]
    assert alarm["Threshold"] == 0 and alarm["ComparisonOperator"] == "GreaterThanThreshold"
    source = FUNCTIONS["EmailSenderFunction"]["Properties"]["Events"]["EmailJobs"]
    assert source["Type"] == "SQS" and source["Properties"]["Queue"] == {"Fn::GetAtt": ["EmailQueue", "Arn"]}
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_answers_about_an_email_cannot_depend_on_its_account():
    # The four endpoints can count, hash, keep a sign-up and queue a job: they cannot
    # read an account, issue a code or send an email before they answer.
    for name in ("RegisterFunction", "ForgotPasswordFunction", "ResendOtpFunction", "ResendPasswordResetOtpFunction"):
        policies = FUNCTIONS[name]["Properties"]["Policies"]
        assert "UsersTable" not in _table_actions(FUNCTIONS[name]), name
        assert {"Ref": "SesPolicy"} not in policies and {"Ref": "EmailQueuePolicy"} in policies, name
    limits = {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}  # the shared LimitsPolicy
    assert _table_actions(FUNCTIONS["RegisterFunction"]) == {"OtpTable": {"dynamodb:PutItem"}, "LimitsTable": limits}


def test_bounces_and_complaints_reach_the_feedback_function():
    destination = R["EmailFeedbackDestination"]["Properties"]
    assert destination["ConfigurationSetName"] == {"Ref": "EmailConfigurationSet"}
    assert destination["EventDestination"]["MatchingEventTypes"] == ["bounce", "complaint"]
    assert destination["EventDestination"]["SnsDestination"]["TopicARN"] == {"Ref": "EmailFeedbackTopic"}
    assert R["EmailFeedbackTopic"]["Properties"]["KmsMasterKeyId"] == {"Ref": "DataKey"}
    event = FUNCTIONS["EmailFeedbackFunction"]["Properties"]["Events"]["SesFeedback"]
    assert event == {"Type": "SNS", "Properties": {"Topic": {"Ref": "EmailFeedbackTopic"}}}
    assert FUNCTIONS["EmailFeedbackFunction"]["Properties"]["DeadLetterQueue"]["TargetArn"] == {"Fn::GetAtt": ["EmailDeadLetterQueue", "Arn"]}


def _policies_of(fn: dict[str, Any]) -> list[Any]:
    return fn["Properties"].get("Policies", [])


def _reads(statements: list[dict[str, Any]], action: str, resource: Any) -> bool:
    return any(s["Effect"] == "Allow" and action in _actions(s) and s["Resource"] == resource for s in statements)


def test_only_the_functions_that_sign_tokens_can_read_the_signing_seed():
    # Given every grant of every function and role in the template
    signing_secret = {"Ref": "SigningKeySecret"}
    readers = set()
    for name, fn in FUNCTIONS.items():
        for policy in _policies_of(fn):
            statements = _statements(R[policy["Ref"]]) if isinstance(policy, dict) and "Ref" in policy else policy.get("Statement", [])
            if _reads(statements, "secretsmanager:GetSecretValue", signing_secret):
                readers.add(name)
    for name, role in _of("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            assert not _reads(policy["PolicyDocument"]["Statement"], "secretsmanager:GetSecretValue", signing_secret), name
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            assert arn != {"Ref": "SigningPolicy"}, name
    # Then exactly the functions that issue tokens can, and the verifiers read only the public keys
    assert readers == {
        "LoginFunction", "LoginMfaFunction", "MfaFunction", "TokenRefreshFunction", "ChangePasswordFunction", "ChangeEmailFunction",
        "WebAuthnLoginFunction",
    }
    for verifier in ("AuthorizerFunction", "JwksFunction"):
        assert {"Ref": "PublicKeysPolicy"} in _policies_of(FUNCTIONS[verifier]), verifier
    public = _statements(R["PublicKeysPolicy"])
    assert [a for s in public for a in _actions(s)] == ["ssm:GetParameter"]
    assert R["PublicKeysParameter"]["Properties"]["Type"] == "String"  # public keys only, nothing secret


def test_the_http_api_option_gives_protected_functions_the_public_keys_not_the_seed():
    from local.http_api import http_api_template

    resources = http_api_template()["Resources"]
    for name in ("ProfileFunction", "LogoutFunction", "WebAuthnCredentialsFunction"):
        policies = resources[name]["Properties"]["Policies"]
        assert {"Ref": "PublicKeysPolicy"} in policies and {"Ref": "SigningPolicy"} not in policies, name


def test_every_kms_grant_to_a_function_names_the_service_it_goes_through():
    # The data key is used through AWS services; the direct KMS calls are the audit MAC
    # key's (GenerateMac, VerifyMac) and the TOTP secrets' (Encrypt, Decrypt), where
    # kms:ViaService does not apply: the latter are bound to their encryption context.
    for name, policy in _of("AWS::IAM::ManagedPolicy").items():
        for s in _statements(policy):
            kms = [a for a in _actions(s) if a.startswith("kms:")]
            if not kms or name == "AuditReadPolicy" and kms == ["kms:VerifyMac"]:
                continue
            if name == "MfaSecretPolicy":
                assert sorted(kms) == ["kms:Decrypt", "kms:Encrypt"]
                assert s["Condition"]["StringEquals"] == {"kms:EncryptionContext:purpose": "totp-secret"}
                continue
            assert "kms:ViaService" in s.get("Condition", {}).get("StringEquals", {}), name


# CloudWatch Logs accepts only these retentions (PutRetentionPolicy).
CLOUDWATCH_RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}


def _granted(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_the_access_log_group_keeps_lines_for_operations_only():
    # Given the access log group and its retention parameter
    parameter = T["Parameters"]["AccessLogRetentionDays"]
    # Then CloudWatch Logs keeps the lines AccessLogRetentionDays (90 by default), one of the values it accepts
    assert R["ApiAccessLogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}
    assert parameter["Default"] == 90 and set(parameter["AllowedValues"]) == CLOUDWATCH_RETENTION_DAYS
    assert T["Parameters"]["FunctionLogRetentionDays"]["AllowedValues"] and set(T["Parameters"]["FunctionLogRetentionDays"]["AllowedValues"]) <= CLOUDWATCH_RETENTION_DAYS


def test_every_access_log_line_goes_to_the_archive_stream():
    # Given the subscriptions on the access log group
    subscriptions = [r["Properties"] for r in _of("AWS::Logs::SubscriptionFilter").values()
                     if r["Properties"]["LogGroupName"] == {"Ref": "ApiAccessLogGroup"}]
    # Then one, with an empty pattern (every line), sends to the delivery stream through its own role
    assert len(subscriptions) == 1
    (subscription,) = subscriptions
    assert subscription["FilterPattern"] == ""
    assert subscription["DestinationArn"] == {"Fn::GetAtt": ["AccessLogDeliveryStream", "Arn"]}
    assert subscription["RoleArn"] == {"Fn::GetAtt": ["AccessLogSubscriptionRole", "Arn"]}
    # And the HTTP API option logs to the same group, so its lines are archived too
    from local.http_api import http_api_template

    http = http_api_template()["Resources"]
    (stage,) = (r for r in http.values() if r["Type"] == "AWS::Serverless::HttpApi")
    assert stage["Properties"]["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}


def test_the_access_log_is_archived_six_years_in_a_locked_bucket():
    # Given the delivery stream and the bucket it delivers to
    stream = R["AccessLogDeliveryStream"]["Properties"]
    s3 = stream["ExtendedS3DestinationConfiguration"]
    assert s3["BucketARN"] == {"Fn::GetAtt": ["AccessLogArchiveBucket", "Arn"]}
    bucket = R["AccessLogArchiveBucket"]
    props = bucket["Properties"]
    # Then every object is locked in COMPLIANCE mode for AuditRetentionDays (at least six years), versioned, never deleted
    assert props["ObjectLockEnabled"] is True
    assert props["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": {"Ref": "AuditRetentionDays"}}
    assert T["Parameters"]["AuditRetentionDays"]["MinValue"] == 2192
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["DeletionPolicy"] == "Retain" and bucket["UpdateReplacePolicy"] == "Retain"
    # And it is encrypted with the data key, never public, and owned by the account alone
    (sse,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert sse["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]}}
    assert s3["EncryptionConfiguration"] == {"KMSEncryptionConfig": {"AWSKMSKeyARN": {"Fn::GetAtt": ["DataKey", "Arn"]}}}
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": {"Fn::GetAtt": ["DataKey", "Arn"]}}
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True)
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    # And only the stream's role adds objects, nobody removes or unlocks one, and only over TLS
    statements = {s["Sid"]: s for s in _statements(R["AccessLogArchiveBucketPolicy"])}
    assert statements["OnlyTheStreamAddsLines"]["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {"Fn::GetAtt": ["AccessLogDeliveryRole", "Arn"]}
    assert {"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:BypassGovernanceRetention"} <= set(
        _actions(statements["NoLineIsEverRemovedOrUnlocked"]))
    assert all(s["Effect"] == "Deny" for s in statements.values())
    assert statements["TlsOnly"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # And the lines are kept as CloudWatch Logs delivers them (gzip), in few large objects, with delivery errors logged
    assert s3["CompressionFormat"] == "UNCOMPRESSED" and "ProcessingConfiguration" not in s3
    assert s3["BufferingHints"] == {"SizeInMBs": 128, "IntervalInSeconds": 900}
    logging = s3["CloudWatchLoggingOptions"]
    assert logging["Enabled"] is True and logging["LogGroupName"] == {"Ref": "AccessLogDeliveryErrorLogGroup"}
    assert R["AccessLogDeliveryErrorLogGroup"]["Properties"]["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    alarm = R["AccessLogArchiveDeliveryAlarm"]["Properties"]
    assert alarm["MetricName"] == "DeliveryToS3.DataFreshness" and alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    assert alarm["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": {"Ref": "AccessLogDeliveryStream"}}]
    # And auditors read it with the audit read policy
    readable = [r for s in _statements(R["AuditReadPolicy"]) if "s3:GetObject" in _actions(s) for r in s["Resource"]]
    assert {"Fn::Sub": "${AccessLogArchiveBucket.Arn}/*"} in readable


def test_the_archive_roles_hold_only_what_delivery_needs():
    # Given the role CloudWatch Logs uses to put lines into the stream
    subscription = R["AccessLogSubscriptionRole"]["Properties"]
    (trust,) = subscription["AssumeRolePolicyDocument"]["Statement"]
    # Then only CloudWatch Logs in this region assumes it, and only for the access log group
    assert trust["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    sources = trust["Condition"]["StringLike"]["aws:SourceArn"]
    assert sources and all("log-group:${ApiAccessLogGroup}" in s["Fn::Sub"] for s in sources)
    # And it may only put records into that one stream
    assert _granted(R["AccessLogSubscriptionRole"]) == [
        {"Effect": "Allow", "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"], "Resource": {"Fn::GetAtt": ["AccessLogDeliveryStream", "Arn"]}}
    ]
    # Given the role Firehose uses to write the archive
    delivery = R["AccessLogDeliveryRole"]["Properties"]
    (trust,) = delivery["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "firehose.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    granted = _granted(R["AccessLogDeliveryRole"])
    # Then no grant is a wildcard action or resource, and nothing reads, deletes or unlocks an object
    for s in granted:
        assert s["Effect"] == "Allow" and not any("*" in a for a in _actions(s)), s
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        assert all(r != "*" for r in resources), s
    actions = {a for s in granted for a in _actions(s)}
    assert actions == {
        "s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject", "s3:AbortMultipartUpload",
        "kms:GenerateDataKey", "kms:Decrypt", "logs:PutLogEvents",
    }
    # And it writes objects only under the stream's prefixes of the archive bucket
    (put,) = (s for s in granted if "s3:PutObject" in _actions(s))
    assert put["Resource"] == [{"Fn::Sub": "${AccessLogArchiveBucket.Arn}/access-log/*"}, {"Fn::Sub": "${AccessLogArchiveBucket.Arn}/delivery-errors/*"}]
    assert _s3_prefixes_match(R["AccessLogDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"])
    # And uses the data key only through S3, for objects of that bucket
    (kms,) = (s for s in granted if any(a.startswith("kms:") for a in _actions(s)))
    assert kms["Resource"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    assert kms["Condition"]["StringEquals"] == {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}
    assert kms["Condition"]["StringLike"] == {"kms:EncryptionContext:aws:s3:arn": {"Fn::Sub": "${AccessLogArchiveBucket.Arn}/*"}}
    (logs,) = (s for s in granted if "logs:PutLogEvents" in _actions(s))
    assert logs["Resource"] == {"Fn::GetAtt": ["AccessLogDeliveryErrorLogGroup", "Arn"]}


def _s3_prefixes_match(s3: dict[str, Any]) -> bool:
    """The stream's object prefixes are the ones its role may write under."""
    return s3["Prefix"].startswith("access-log/") and s3["ErrorOutputPrefix"].startswith("delivery-errors/")


def test_older_access_log_lines_move_to_glacier_instant_retrieval_and_never_expire():
    # Given the access log archive's lifecycle
    (rule,) = R["AccessLogArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    # Then objects move to Glacier Instant Retrieval (still readable in milliseconds) after the cost model's months
    from bench.cost import ARCHIVE_STANDARD_MONTHS

    assert rule["Status"] == "Enabled"
    assert rule["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": round(ARCHIVE_STANDARD_MONTHS * 30.4)}]
    # And no rule ever expires or deletes a line: the six years are Object Lock's
    assert not {"ExpirationInDays", "ExpirationDate", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload"} & set(rule)
