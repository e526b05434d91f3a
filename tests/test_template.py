"""template.yaml: the deployable shape of the service, and the controls it carries."""

from __future__ import annotations

from typing import Any

import pytest
from carekey.catalog import ENDPOINTS

from local.template import load
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
    assert g["Tracing"] == "Active"
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


def test_one_function_per_step_each_with_its_own_kms_encrypted_six_year_log_group():
    assert len(FUNCTIONS) == 20
    for name, fn in FUNCTIONS.items():
        group = fn["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        props = R[group]["Properties"]
        assert props["RetentionInDays"] >= 2192, name
        assert props["KmsKeyId"] == {"Fn::GetAtt": ["DataKey", "Arn"]}, name
    access = R["ApiAccessLogGroup"]["Properties"]
    assert access["RetentionInDays"] >= 2192 and "KmsKeyId" in access


def test_tables_are_encrypted_recoverable_and_protected():
    for name, table in TABLES.items():
        p = table["Properties"]
        assert p["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Fn::GetAtt": ["DataKey", "Arn"]}}, name
        assert p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert p["DeletionProtectionEnabled"] is True, name
        assert table["DeletionPolicy"] == "Retain", name


def test_ttl_only_on_short_lived_items():
    with_ttl = {n for n, t in TABLES.items() if t["Properties"].get("TimeToLiveSpecification")}
    assert with_ttl == {"OtpTable", "SessionsTable", "LimitsTable"}


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
                assert actions <= {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}, name


def test_audit_records_can_be_put_but_only_heads_updated():
    statements = R["AuditPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    put = next(s for s in statements if s["Action"] == ["dynamodb:PutItem"])
    update = next(s for s in statements if s["Action"] == ["dynamodb:UpdateItem"])
    assert put["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == ["chain#*"]
    assert update["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == ["head#*"]
    assert not any("DeleteItem" in s["Action"] for s in statements)


def test_api_authorizer_is_never_cached_and_errors_are_json():
    api = R["AuthApi"]["Properties"]
    identity = api["Auth"]["Authorizers"]["TokenAuthorizer"]["Identity"]
    assert identity["ReauthorizeEvery"] == 0
    assert api["TracingEnabled"] is True
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
                                   "WebAuthnChallengeSeconds", "WebAuthnMaxPasskeys"])
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


def test_password_hashing_functions_get_a_full_vcpu():
    assert T["Parameters"]["PasswordFunctionMemorySize"]["Default"] == 1769
    hashing = {n for n, f in FUNCTIONS.items() if f["Properties"].get("MemorySize") == {"Ref": "PasswordFunctionMemorySize"}}
    assert hashing == {"RegisterFunction", "LoginFunction", "ResetPasswordFunction", "ChangePasswordFunction", "WebAuthnRegisterFunction"}
    assert T["Globals"]["Function"]["MemorySize"] == {"Ref": "FunctionMemorySize"}
