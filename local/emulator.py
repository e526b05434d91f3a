"""Creates what template.yaml declares (tables with TTL, secrets, queues, KMS
keys by alias, S3 buckets with Object Lock, SES identities)
in an AWS-compatible endpoint: moto in-process for unit tests, moto's server
for `make dev`, or any other endpoint."""

from __future__ import annotations

import json
import secrets
import string
from typing import Any

import boto3

from local.template import Stack


def _generated_secret(spec: dict[str, Any]) -> str:
    length = int(spec.get("PasswordLength", 32))
    alphabet = string.ascii_letters + string.digits
    if not spec.get("ExcludePunctuation"):
        alphabet += "!#$%&()*+,-.:;<=>?@[]^_{|}~"
    value = "".join(secrets.choice(alphabet) for _ in range(length))
    template = spec.get("SecretStringTemplate")
    if template and spec.get("GenerateStringKey"):
        data = json.loads(template)
        data[spec["GenerateStringKey"]] = value
        return json.dumps(data)
    return value


_clients: dict[tuple[int, str, str, str | None], tuple[boto3.Session, Any]] = {}


def _client(session: boto3.Session, service: str, region: str, endpoint_url: str | None) -> Any:
    """One client per session, service and endpoint, kept: the tests provision
    afresh for every test, and building a client (loading its service model)
    cost more than all of provisioning's requests together.  Clients made once
    moto is imported are intercepted whenever a mock is active."""
    key = (id(session), service, region, endpoint_url)
    if key not in _clients:  # the session is kept with its client, so its id is never reused
        kw = {"region_name": region, "endpoint_url": endpoint_url} if endpoint_url else {"region_name": region}
        _clients[key] = (session, session.client(service, **kw))
    return _clients[key][1]


def provision(stack: Stack, session: boto3.Session | None = None, endpoint_url: str | None = None) -> None:
    session = session or boto3._get_default_session()
    ddb = _client(session, "dynamodb", stack.region, endpoint_url)
    existing = set(ddb.list_tables().get("TableNames", []))
    for table in stack.tables().values():
        name = table["create"]["TableName"]
        if name not in existing:
            ddb.create_table(**table["create"])
            if table["ttl"]:
                ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=table["ttl"])

    sm = _client(session, "secretsmanager", stack.region, endpoint_url)
    for logical, res in stack.of_type("AWS::SecretsManager::Secret").items():
        name = stack.physical_name(logical)
        try:
            sm.describe_secret(SecretId=name)
        except sm.exceptions.ResourceNotFoundException:
            spec = res["Properties"].get("GenerateSecretString", {})
            sm.create_secret(Name=name, SecretString=_generated_secret(spec))

    ssm = _client(session, "ssm", stack.region, endpoint_url)
    for logical, res in stack.of_type("AWS::SSM::Parameter").items():
        name = stack.physical_name(logical)
        try:
            ssm.get_parameter(Name=name)
        except ssm.exceptions.ParameterNotFound:
            props = stack.resolve(res["Properties"])
            ssm.put_parameter(Name=name, Value=str(props["Value"]), Type=props.get("Type", "String"))
    publish_public_keys(stack, sm, ssm)

    provision_queues(stack, _client(session, "sqs", stack.region, endpoint_url))
    provision_keys(stack, _client(session, "kms", stack.region, endpoint_url))
    provision_buckets(stack, _client(session, "s3", stack.region, endpoint_url))

    ses = _client(session, "ses", stack.region, endpoint_url)
    for logical in stack.of_type("AWS::SES::EmailIdentity"):
        ses.verify_email_identity(EmailAddress=stack.physical_name(logical))


def publish_public_keys(stack: Stack, sm: Any, ssm: Any) -> bool:
    """Write the signing keys' public JWK set where the verifying functions read
    it, as `make deploy` does for a deployed stack; True when written."""
    from carekey.signing import _seed_of, derive_signing_key

    secret_id, parameter = stack.physical_name("SigningKeySecret"), stack.physical_name("PublicKeysParameter")
    current = _secret(sm, secret_id, "AWSCURRENT")
    if current is None:
        raise RuntimeError(f"no signing key in {secret_id}")
    derived = [derive_signing_key(_seed_of(current[1]))]
    previous = _secret(sm, secret_id, "AWSPREVIOUS")
    if previous is not None and previous[0] != current[0]:
        derived.append(derive_signing_key(_seed_of(previous[1])))
    published = json.loads(ssm.get_parameter(Name=parameter)["Parameter"]["Value"]).get("keys", [])
    if any(k.get("kid") == derived[0].kid for k in published):
        return False
    ssm.put_parameter(Name=parameter, Value=json.dumps({"keys": [k.jwk() for k in derived]}, separators=(",", ":")), Type="String", Overwrite=True)
    return True


def _secret(sm: Any, secret_id: str, stage: str) -> tuple[str, str] | None:
    try:
        got = sm.get_secret_value(SecretId=secret_id, VersionStage=stage)
    except sm.exceptions.ResourceNotFoundException:
        return None
    return got["VersionId"], got["SecretString"]


# Queue properties that are SQS attributes of the same name.
_QUEUE_ATTRIBUTES = (
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "DelaySeconds",
    "FifoQueue",
    "FifoThroughputLimit",
    "KmsDataKeyReusePeriodSeconds",
    "KmsMasterKeyId",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "VisibilityTimeout",
)


def _attribute(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, dict) else str(value)


def provision_queues(stack: Stack, sqs: Any) -> None:
    """Every AWS::SQS::Queue of the template, dead-letter queues first so a
    redrive policy can name them."""
    queues = stack.of_type("AWS::SQS::Queue")

    def depth(logical: str) -> int:
        policy = (queues[logical].get("Properties") or {}).get("RedrivePolicy") or {}
        target = (policy.get("deadLetterTargetArn") or {}).get("Fn::GetAtt", [None])[0]
        return 1 + depth(target) if target in queues else 0

    for logical in sorted(queues, key=depth):
        props = stack.resolve(queues[logical].get("Properties") or {})
        attributes = {k: _attribute(props[k]) for k in _QUEUE_ATTRIBUTES if k in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        sqs.create_queue(QueueName=stack.physical_name(logical), Attributes=attributes)


def provision_keys(stack: Stack, kms: Any) -> None:
    """Every KMS key the template gives an alias to, with its spec and usage
    (the emulator makes its own key ids; code names keys by alias)."""
    existing = {a["AliasName"] for a in kms.list_aliases()["Aliases"]}
    for logical, res in stack.of_type("AWS::KMS::Alias").items():
        alias = stack.physical_name(logical)
        if alias in existing:
            continue
        key = res["Properties"]["TargetKeyId"]["Ref"]
        props = stack.resolve(stack.resources[key]["Properties"])
        created = kms.create_key(
            Description=str(props.get("Description", key)),
            KeySpec=props.get("KeySpec", "SYMMETRIC_DEFAULT"),
            KeyUsage=props.get("KeyUsage", "ENCRYPT_DECRYPT"),
        )
        kms.create_alias(AliasName=alias, TargetKeyId=created["KeyMetadata"]["KeyId"])


def provision_buckets(stack: Stack, s3: Any) -> None:
    """Every bucket with its Object Lock default retention, versioning and public
    access block.  Encryption is not asked of the emulator: it stores plain bytes."""
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for logical, res in stack.of_type("AWS::S3::Bucket").items():
        name = stack.physical_name(logical)
        if name in existing:
            continue
        props = stack.resolve(res.get("Properties") or {})
        locked = props.get("ObjectLockEnabled") in (True, "true")
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=locked)
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]})
        lock = props.get("ObjectLockConfiguration")
        if lock:
            retention = {k: int(v) if k in ("Days", "Years") else v for k, v in lock["Rule"]["DefaultRetention"].items()}
            s3.put_object_lock_configuration(
                Bucket=name, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}}
            )
        if props.get("PublicAccessBlockConfiguration"):
            block = {k: v in (True, "true") for k, v in props["PublicAccessBlockConfiguration"].items()}
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=block)


_kms_lightened = False


def skip_unused_kms_key_pairs() -> None:
    """Stop moto making an RSA key pair for every KMS key.

    moto gives each key a 2,048-bit RSA private key, whatever its spec, though
    only asymmetric keys ever use it (Sign, Verify, GetPublicKey); symmetric
    and HMAC keys work on their own key material.  Generating it was a third of
    provisioning's time, which the tests pay for every test.  Keys of an
    asymmetric spec still get their own pair."""
    global _kms_lightened
    if _kms_lightened:
        return
    from moto.kms import models

    original = models.generate_private_key
    unused: list[Any] = []

    def generate_private_key(key_spec: str) -> Any:
        if key_spec.startswith(("RSA_", "ECC_")):
            return original(key_spec)
        if not unused:
            unused.append(original(key_spec))
        return unused[0]

    models.generate_private_key = generate_private_key
    _kms_lightened = True


_dynamodb_serialised = False


def serialise_dynamodb() -> None:
    """Make moto's DynamoDB apply one request at a time.

    Real DynamoDB applies each conditional write and transaction atomically;
    moto checks and applies in Python without a lock, so under threads it can
    let two conditional writes both succeed.  One lock around moto's request
    dispatch restores DynamoDB's guarantee, so concurrency tests test our code,
    not the emulator.
    """
    global _dynamodb_serialised
    if _dynamodb_serialised:
        return
    import threading

    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def call_action(self: Any) -> Any:
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _dynamodb_serialised = True
