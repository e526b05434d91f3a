"""Data access: the PynamoDB models and every read and write the flows need.

Flows never build DynamoDB requests themselves.  Every state change here is a
single conditional write or a transaction; nothing reads, decides, then writes
unconditionally.  Table names come from the environment (the template's
resources), and the key schema here matches the template's tables.

Tables
- users:    USER#<id> items (the account) and EMAIL#<email> items (the claim
            that makes an email unique); both written in one transaction,
            when a sign-up's email is verified.  An account imported from the
            Django backend also has a LEGACY#<Django pk> claim, taken with a
            conditional write before the account is written (see
            carekey.legacy_import), so each legacy user is imported once.
- otps:     one item per (purpose, keyed hash of email): the newest code's
            HMAC, its expiry (checked in code) and a TTL for housekeeping;
            and one signup#<keyed hash of email> item per address: the newest
            sign-up waiting for its code (expiry checked in code, TTL cleans up).
- sessions: one item per signed-in session (its refresh-token chain, as digests,
            and the source IP and user agent last seen); the sessions_by_user
            index holds only keys (user, created_at -> session id), so a token
            refresh writes no index entry; a listing fetches the sessions by key.
- limits:   counters and lockouts keyed by hashes of emails and source IPs,
            and the suppression list (suppressed#<keyed hash of email>, no TTL).
- passkeys: one item per (user, WebAuthn credential): its public key and
            sign counter.  WebAuthn challenges live in the otps table.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, PynamoDBException, TransactWriteError, UpdateError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from carekey import errors
from carekey.aws import client
from carekey.config import settings
from carekey.schemas import User


def _region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def now() -> int:
    return int(time.time())


def _ttl(seconds_from_now: int) -> datetime:
    return datetime.fromtimestamp(now() + seconds_from_now, tz=timezone.utc)


def _condition_failed(exc: PynamoDBException) -> bool:
    return exc.cause_response_code == "ConditionalCheckFailedException"


# Why DynamoDB cancels a transaction without deciding anything: another
# transaction touched an item, or capacity ran out.  Retried, never reported
# as a failed condition.
_TRANSIENT_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"})
_TRANSIENT_ERRORS = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionInProgressException",
        "TransactionConflictException",
        "InternalServerError",
    }
)
CONDITION_FAILED = "ConditionalCheckFailed"
TRANSACTION_TRIES = 4


def _write_transaction(build: Any) -> list[str | None]:
    """Commit the transaction `build(tx)` describes.

    Returns [] when it committed; when a condition failed, the cancellation
    code of each item, in PynamoDB's item order (condition checks, deletes,
    puts, updates; each in the order added), None for items that were fine.
    A conflict or a throttle is retried with jittered exponential backoff under
    one client request token (so a retry never applies the writes twice), and
    ends as ServiceBusy (503), never as a failed condition.
    """
    token = uuid.uuid4().hex
    for attempt in range(TRANSACTION_TRIES):
        try:
            with TransactWrite(connection=_connection(), client_request_token=token) as tx:
                build(tx)
            return []
        except TransactWriteError as exc:
            codes = [reason.code if reason else None for reason in exc.cancellation_reasons]
            if exc.cause_response_code == "TransactionCanceledException" and CONDITION_FAILED in codes:
                return codes
            transient = exc.cause_response_code in _TRANSIENT_ERRORS or (
                exc.cause_response_code == "TransactionCanceledException"
                and any(codes)
                and all(code is None or code in _TRANSIENT_REASONS for code in codes)
            )
            if not transient:
                raise
        if attempt + 1 < TRANSACTION_TRIES:
            time.sleep(random.uniform(0, 0.025 * 2**attempt))  # noqa: S311 - jitter, not a secret
    raise errors.ServiceBusy()


class _Meta:
    region = _region()


class UserItem(Model):
    class Meta(_Meta):
        table_name = settings().users_table

    pk = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    email = UnicodeAttribute()
    first_name = UnicodeAttribute(default="")
    last_name = UnicodeAttribute(default="")
    phone_number = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute()
    is_verified = BooleanAttribute(default=False)
    is_active = BooleanAttribute(default=True)
    token_version = NumberAttribute(default=0)
    date_joined = UTCDateTimeAttribute()
    passkey_count = NumberAttribute(null=True)
    legacy_id = UnicodeAttribute(null=True)  # the Django backend's pk, for an imported account
    # Two-step sign-in: the TOTP secrets are KMS ciphertexts (base64), the recovery
    # codes keyed hashes; totp_last_step is the newest time step used (never again).
    totp_pending = UnicodeAttribute(null=True)
    totp_secret = UnicodeAttribute(null=True)
    totp_enabled = BooleanAttribute(null=True)
    totp_last_step = NumberAttribute(null=True)
    recovery_codes = UnicodeSetAttribute(null=True)

    @property
    def mfa_enabled(self) -> bool:
        return bool(self.totp_enabled) and bool(self.totp_secret)

    def public(self) -> User:
        """The user object of the legacy API."""
        return User(
            id=self.user_id,
            email=self.email,
            first_name=self.first_name,
            last_name=self.last_name,
            phone_number=self.phone_number,
            isVerified=self.is_verified,
            date_joined=self.date_joined.isoformat().replace("+00:00", "Z"),
        )


class EmailClaim(Model):
    class Meta(_Meta):
        table_name = settings().users_table

    pk = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()


class LegacyClaim(Model):
    """LEGACY#<Django pk>: the account a Django user was imported as.  Kept,
    marked `erased`, when that account is erased, so that importing the old
    dump again cannot bring the person back."""

    class Meta(_Meta):
        table_name = settings().users_table

    pk = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    erased = BooleanAttribute(null=True)


class OtpItem(Model):
    class Meta(_Meta):
        table_name = settings().otp_table

    pk = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    code_hash = UnicodeAttribute()
    expires_at = NumberAttribute()
    attempts = NumberAttribute(default=0)
    window_start = NumberAttribute(default=0)
    new_email = UnicodeAttribute(null=True)  # an email change's code: the address it moves the account to
    ttl = TTLAttribute(null=True)


class SignupItem(Model):
    """A sign-up waiting for its email to be verified.  It proves nothing and
    claims nothing: the next sign-up for the address replaces it, and only the
    code sent for it turns it into an account."""

    class Meta(_Meta):
        table_name = settings().otp_table

    pk = UnicodeAttribute(hash_key=True)
    signup_id = UnicodeAttribute()
    email = UnicodeAttribute()
    first_name = UnicodeAttribute(default="")
    last_name = UnicodeAttribute(default="")
    phone_number = UnicodeAttribute(null=True)
    password_hash = UnicodeAttribute()
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    ttl = TTLAttribute(null=True)

    def public(self) -> User:
        """What the sign-up answer shows: the account this sign-up would become."""
        joined = datetime.fromtimestamp(int(self.created_at), tz=timezone.utc)
        return User(
            id=self.signup_id,
            email=self.email,
            first_name=self.first_name,
            last_name=self.last_name,
            phone_number=self.phone_number,
            isVerified=False,
            date_joined=joined.isoformat().replace("+00:00", "Z"),
        )


# What a listing fetches of each session: enough to tell live from dead and to
# show where it was used; never a token digest.
SESSION_LISTING = ["session_id", "user_id", "created_at", "token_version", "revoked", "last_used", "refresh_expires_at", "ip", "user_agent"]


class SessionItem(Model):
    """One signed-in session: a chain of refresh tokens, each replacing the last.

    Only SHA-256 digests of refresh tokens are stored.  `generation` counts the
    rotations; `previous_hash` and `rotated_at` let the token just replaced be
    presented again for REFRESH_REUSE_SECONDS (two tabs, a lost response) and
    be told apart from a replay.  Tokens older than `floor_generation` were
    retired by a password change, not rotated: they are refused quietly.
    """

    class Meta(_Meta):
        table_name = settings().sessions_table

    session_id = UnicodeAttribute(hash_key=True)
    user_id = UnicodeAttribute()
    token_version = NumberAttribute(default=0)
    generation = NumberAttribute(default=0)
    floor_generation = NumberAttribute(default=0)
    token_hash = UnicodeAttribute()
    previous_hash = UnicodeAttribute(null=True)
    rotated_at = NumberAttribute(null=True)
    refresh_expires_at = NumberAttribute()
    created_at = NumberAttribute()
    last_used = NumberAttribute()
    revoked = BooleanAttribute(default=False)
    ip = UnicodeAttribute(null=True)  # the source of the login or the latest refresh
    user_agent = UnicodeAttribute(null=True)
    # Routine rotations not yet in the audit trail, and when the session's last
    # audited event was (its login, or the last audited rotation).
    unaudited = NumberAttribute(null=True)
    audited_at = NumberAttribute(null=True)
    ttl = TTLAttribute(null=True)

    def live(self, at: int, idle_seconds: int, max_seconds: int) -> bool:
        return (
            not self.revoked
            and int(self.last_used) >= at - idle_seconds
            and int(self.created_at) >= at - max_seconds
            and int(self.refresh_expires_at) > at
        )


class LimitItem(Model):
    class Meta(_Meta):
        table_name = settings().limits_table

    pk = UnicodeAttribute(hash_key=True)
    count = NumberAttribute(default=0)
    attempts = NumberAttribute(null=True)
    lock_level = NumberAttribute(null=True)
    locked_until = NumberAttribute(null=True)
    hour = NumberAttribute(null=True)  # a login lock item: the hour its `count` of failures is for
    last_sent = NumberAttribute(null=True)
    reason = UnicodeAttribute(null=True)  # suppression: bounce or complaint
    since = NumberAttribute(null=True)
    ttl = TTLAttribute(null=True)


class ChallengeItem(Model):
    """A WebAuthn challenge, in the otps table: single use, bound to a ceremony."""

    class Meta(_Meta):
        table_name = settings().otp_table

    pk = UnicodeAttribute(hash_key=True)
    purpose = UnicodeAttribute()
    user_id = UnicodeAttribute(null=True)
    email_hash = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()
    ttl = TTLAttribute(null=True)


class MfaTokenItem(Model):
    """The second step of one login, in the otps table: keyed by the SHA-256 of
    the mfa_token, bound to the user and the token version of that login, with
    its tries counted; used up by one conditional delete."""

    class Meta(_Meta):
        table_name = settings().otp_table

    pk = UnicodeAttribute(hash_key=True)
    purpose = UnicodeAttribute()  # "mfa.login" or "mfa.enroll"
    user_id = UnicodeAttribute()
    token_version = NumberAttribute()
    attempts = NumberAttribute(default=0)
    expires_at = NumberAttribute()
    ttl = TTLAttribute(null=True)


class PasskeyItem(Model):
    class Meta(_Meta):
        table_name = settings().passkeys_table

    user_id = UnicodeAttribute(hash_key=True)
    key = UnicodeAttribute(range_key=True)  # SHA-256 of the credential id: ids may exceed a sort key's size
    credential_id = UnicodeAttribute()  # base64url, as browsers send it
    public_key = UnicodeAttribute()  # base64url COSE key
    sign_count = NumberAttribute(default=0)
    name = UnicodeAttribute(default="")
    transports = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    aaguid = UnicodeAttribute(null=True)
    backed_up = BooleanAttribute(default=False)
    created_at = NumberAttribute()
    last_used_at = NumberAttribute(null=True)


def _connection() -> Connection:
    return UserItem._get_connection().connection


# ---- users ------------------------------------------------------------------------


def user_by_id(user_id: str) -> UserItem | None:
    try:
        return UserItem.get(f"USER#{user_id}", consistent_read=True)
    except DoesNotExist:
        return None


def user_by_email(email: str) -> UserItem | None:
    try:
        claim = EmailClaim.get(f"EMAIL#{email}", consistent_read=True)
    except DoesNotExist:
        return None
    return user_by_id(claim.user_id)


def signup_key(email_key: str) -> str:
    return f"signup#{email_key}"


def put_signup(
    email_key: str, email: str, password_hash: str, first_name: str, last_name: str, phone_number: str | None, lifetime_seconds: int
) -> SignupItem:
    """Store a sign-up for this address, replacing any earlier one (whoever made it)."""
    t = now()
    signup = SignupItem(
        signup_key(email_key),
        signup_id=str(uuid.uuid4()),
        email=email,
        first_name=first_name,
        last_name=last_name,
        phone_number=phone_number or None,
        password_hash=password_hash,
        created_at=t,
        expires_at=t + lifetime_seconds,
        ttl=_ttl(lifetime_seconds + 86400),
    )
    signup.save()
    return signup


def pending_signup(email_key: str) -> SignupItem | None:
    """The address's newest sign-up, unless it has expired."""
    try:
        signup = SignupItem.get(signup_key(email_key), consistent_read=True)
    except DoesNotExist:
        return None
    return signup if int(signup.expires_at) > now() else None


def activate_signup(code_key: str, code_hash: str, signup: SignupItem) -> UserItem | None:
    """Use up the code, retire the sign-up it was sent for and create the
    verified account with that sign-up's password, in one transaction.  Fails
    (None) when the code does not hold, when a later sign-up replaced this one,
    or when the address has an account already."""
    user = UserItem(
        f"USER#{signup.signup_id}",
        user_id=signup.signup_id,
        email=signup.email,
        first_name=signup.first_name,
        last_name=signup.last_name,
        phone_number=signup.phone_number,
        password_hash=signup.password_hash,
        is_verified=True,
        is_active=True,
        token_version=0,
        date_joined=datetime.fromtimestamp(int(signup.created_at), tz=timezone.utc),
    )
    claim = EmailClaim(f"EMAIL#{signup.email}", user_id=signup.signup_id)

    def build(tx: TransactWrite) -> None:
        tx.delete(OtpItem(code_key), condition=_consume_condition(code_hash))
        tx.delete(SignupItem(signup.pk), condition=(SignupItem.signup_id == signup.signup_id) & (SignupItem.expires_at > now()))
        tx.save(claim, condition=EmailClaim.pk.does_not_exist())
        tx.save(user, condition=UserItem.pk.does_not_exist())

    return None if _write_transaction(build) else user


# ---- importing the Django backend's users ----------------------------------------

def claims(keys: list[str]) -> dict[str, str]:
    """The user id each existing EMAIL#... or LEGACY#... claim names (one
    strongly consistent BatchGetItem per 100 keys); an erased person's
    LEGACY# claim names ERASED."""
    return {key: ERASED if item.get("erased", {}).get("BOOL") else item["user_id"]["S"] for key, item in _batch_get(keys).items()}


ERASED = "erased"


def users_by_ids(user_ids: list[str]) -> dict[str, UserItem]:
    found = _batch_get([f"USER#{uid}" for uid in user_ids])
    return {key.removeprefix("USER#"): UserItem.from_raw_data(item) for key, item in found.items()}


def _batch_get(
    keys: list[str], table: str | None = None, key: str = "pk", attributes: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """The items (of the users table unless `table`) with these string keys, by
    key (see batch_get_items); a key with no item is absent.  `attributes`: only
    these are read (`key` among them)."""
    table = table or UserItem.Meta.table_name
    unique = list(dict.fromkeys(keys))
    return {item[key]["S"]: item for item in batch_get_items(table, [{key: {"S": k}} for k in unique], attributes)}


def batch_get_items(table: str, keys: list[dict[str, Any]], attributes: list[str] | None = None) -> list[dict[str, Any]]:
    """The items of `table` with these keys (each in DynamoDB's form, e.g.
    {"pk": {"S": ...}}; no key twice), in no particular order: one strongly
    consistent BatchGetItem per 100 keys, what DynamoDB leaves unprocessed asked
    again with jittered backoff (ServiceBusy after eight tries); a key with no
    item has none.  `attributes`: only these are read."""
    found: list[dict[str, Any]] = []
    reading: dict[str, Any] = {"ConsistentRead": True}
    if attributes:
        reading["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(attributes)))
        reading["ExpressionAttributeNames"] = {f"#a{i}": name for i, name in enumerate(attributes)}
    for start in range(0, len(keys), 100):
        request: dict[str, Any] = {table: {"Keys": keys[start : start + 100], **reading}}
        for attempt in range(8):
            answer = client("dynamodb").batch_get_item(RequestItems=request)
            found.extend(answer.get("Responses", {}).get(table, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not a secret
        else:
            raise errors.ServiceBusy()
    return found


def claim(key: str, user_id: str) -> str:
    """Claim EMAIL#... or LEGACY#... for `user_id` with one conditional write
    (atomic: of any number of claimants exactly one wins).  Returns the user
    id the claim names afterwards: `user_id` when it won or held it already."""
    ddb = client("dynamodb")
    table = UserItem.Meta.table_name
    try:
        ddb.put_item(
            TableName=table,
            Item={"pk": {"S": key}, "user_id": {"S": user_id}},
            ConditionExpression="attribute_not_exists(pk)",
        )
        return user_id
    except ddb.exceptions.ConditionalCheckFailedException:
        held = ddb.get_item(TableName=table, Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
        return held["user_id"]["S"] if held else claim(key, user_id)  # released meanwhile: try again


def release_claim(key: str, user_id: str) -> None:
    """Give back a claim this import took, only if it still names `user_id`."""
    ddb = client("dynamodb")
    try:
        ddb.delete_item(
            TableName=UserItem.Meta.table_name,
            Key={"pk": {"S": key}},
            ConditionExpression="user_id = :u",
            ExpressionAttributeValues={":u": {"S": user_id}},
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        pass


def put_new_accounts(users: list[UserItem]) -> None:
    """Write accounts whose ids are new (fresh UUIDs: nothing to overwrite),
    25 to a BatchWriteItem, retrying what DynamoDB leaves unprocessed."""
    table = UserItem.Meta.table_name
    for start in range(0, len(users), 25):
        request: dict[str, Any] = {table: [{"PutRequest": {"Item": u.serialize()}} for u in users[start : start + 25]]}
        for attempt in range(10):
            request = client("dynamodb").batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                break
            time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not a secret
        else:
            raise errors.ServiceBusy()


def put_account_once(user: UserItem) -> bool:
    """Write an account unless one with its id exists (finishing an import
    that stopped after its claims): never overwrites, so an upgraded hash stays."""
    try:
        user.save(condition=UserItem.pk.does_not_exist())
    except PutError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def imported_password_hashes() -> Any:
    """The password hash of every imported account (a scan: for the operator's
    upgrade count, never on a request path)."""
    for user in UserItem.scan(UserItem.legacy_id.exists(), attributes_to_get=["password_hash"]):
        yield user.password_hash


def update_profile(user_id: str, changes: dict[str, str | None]) -> UserItem | None:
    user = UserItem(f"USER#{user_id}")
    actions = []
    for name, value in changes.items():
        attr = getattr(UserItem, name)
        actions.append(attr.remove() if value in (None, "") and name == "phone_number" else attr.set(value))
    if not actions:
        return user_by_id(user_id)
    try:
        user.update(actions=actions, condition=UserItem.pk.exists() & (UserItem.is_active == True))  # noqa: E712
    except UpdateError as exc:
        if _condition_failed(exc):
            return None
        raise
    return user


def replace_password_hash(user: UserItem, new_hash: str) -> bool:
    """Store a rehash (cost changed) only if the password did not change meanwhile."""
    try:
        UserItem(user.pk).update(
            actions=[UserItem.password_hash.set(new_hash)],
            condition=UserItem.password_hash == user.password_hash,
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def change_password(user: UserItem, new_hash: str, proof: "MfaProof | None" = None) -> int | None:
    """Set a new password if the old one is still in place; end every session by
    bumping the token version.  With `proof`, the second-factor code is used up
    in the same write.  Returns the new token version, or None on a race (or a
    code used meanwhile)."""
    item = UserItem(user.pk)
    actions, condition = [UserItem.password_hash.set(new_hash), UserItem.token_version.add(1)], UserItem.password_hash == user.password_hash
    if proof is not None:
        actions, condition = actions + proof.actions(), condition & proof.condition()
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if _condition_failed(exc):
            return None
        raise
    return int(item.token_version)


def end_all_sessions(user_id: str) -> None:
    UserItem(f"USER#{user_id}").update(actions=[UserItem.token_version.add(1)], condition=UserItem.pk.exists())


# ---- operators' changes to an account ---------------------------------------------


def _update_account(user_id: str, actions: list[Any]) -> UserItem | None:
    """Apply `actions` to the account in one conditional update; the account
    as it is afterwards, or None when there is no such account."""
    try:
        answer = UserItem._get_connection().update_item(
            f"USER#{user_id}", actions=actions, condition=UserItem.pk.exists(), return_values="ALL_NEW"
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return None
        raise
    return UserItem.from_raw_data(answer["Attributes"])


def set_active(user_id: str, active: bool) -> UserItem | None:
    """Activate or deactivate the account.  Deactivating also bumps the token
    version, so every session and every access token ends at the next check
    (the authorizer reads the account on every request)."""
    actions = [UserItem.is_active.set(active)]
    if not active:
        actions.append(UserItem.token_version.add(1))
    return _update_account(user_id, actions)


def end_sessions_of(user_id: str) -> UserItem | None:
    """End every session and access token of the account (bump the token version)."""
    return _update_account(user_id, [UserItem.token_version.add(1)])


def retire_password(user_id: str, unusable_hash: str) -> UserItem | None:
    """Replace the password with one nobody knows and end every session, in one write."""
    return _update_account(user_id, [UserItem.password_hash.set(unusable_hash), UserItem.token_version.add(1)])


def live_session_count(user_id: str, token_version: int, idle_seconds: int, max_seconds: int) -> int:
    """How many sessions of the account still work: not ended, from the current
    token version, not idle or old beyond their limits (the sessions created
    within `max_seconds`, fetched by key and judged here)."""
    t = now()
    sessions = _sessions_by_id(_session_ids(user_id, created_since=t - max_seconds))
    return sum(1 for s in sessions if int(s.token_version) == token_version and s.live(t, idle_seconds, max_seconds))


def erase_account(user: UserItem) -> bool:
    """Delete the account and free its address, in one transaction: of parallel
    erasures exactly one succeeds (True); the others, and an account already
    gone, get False.  What hangs off the account is removed by `erase_traces`."""

    def build(tx: TransactWrite) -> None:
        tx.delete(UserItem(user.pk), condition=UserItem.pk.exists() & (UserItem.user_id == user.user_id))
        tx.delete(EmailClaim(f"EMAIL#{user.email}"), condition=EmailClaim.pk.does_not_exist() | (EmailClaim.user_id == user.user_id))
        if getattr(user, "legacy_id", None):  # an imported person: a re-import must not bring them back
            tx.update(LegacyClaim(f"LEGACY#{user.legacy_id}"), actions=[LegacyClaim.user_id.set(user.user_id), LegacyClaim.erased.set(True)])

    return not _write_transaction(build)


def erase_traces(user_id: str, code_keys: list[str]) -> None:
    """Delete what an erased account leaves behind: its sessions, its passkeys,
    and its pending codes and sign-ups (`code_keys`, in the otps table).  Each
    delete is idempotent, so an interrupted erasure can simply run again."""
    with SessionItem.batch_write() as batch:
        for session_id in _session_ids(user_id):
            batch.delete(SessionItem(session_id))
    with PasskeyItem.batch_write() as batch:
        for key in PasskeyItem.query(user_id, consistent_read=True, attributes_to_get=["user_id", "key"]):
            batch.delete(PasskeyItem(user_id, key.key))
    with OtpItem.batch_write() as batch:
        for key in code_keys:
            batch.delete(OtpItem(key))


def clear_limit_items(keys: list[str]) -> None:
    """Delete lockouts, counters and cooldowns (absent ones are no error)."""
    with LimitItem.batch_write() as batch:
        for key in keys:
            batch.delete(LimitItem(key))


def reset_code_tries(key: str) -> None:
    """Give a pending code its full try budget back (nothing when there is no code)."""
    try:
        OtpItem(key).update(actions=[OtpItem.attempts.set(0), OtpItem.window_start.set(now())], condition=OtpItem.pk.exists())
    except UpdateError as exc:
        if not _condition_failed(exc):
            raise


# ---- one-time codes ---------------------------------------------------------------


@dataclass(frozen=True)
class OtpRecord:
    user_id: str
    code_hash: str
    expires_at: int
    attempts: int
    new_email: str | None = None


def put_otp(key: str, user_id: str, code_hash: str, ttl_seconds: int) -> None:
    """Store a new code for `key`, replacing any older one, with a fresh try
    budget: the guesses spent on an older code say nothing about this one (the
    address's daily ceiling of wrong guesses, in `carekey.limits`, still holds)."""
    t = now()
    OtpItem(key).update(
        actions=[
            OtpItem.user_id.set(user_id),
            OtpItem.code_hash.set(code_hash),
            OtpItem.expires_at.set(t + ttl_seconds),
            OtpItem.ttl.set(_ttl(ttl_seconds + 86400)),
            OtpItem.attempts.set(0),
            OtpItem.window_start.set(t),
        ]
    )


def put_signup_code(key: str, signup: SignupItem, code_hash: str, ttl_seconds: int) -> bool:
    """`put_otp` for the code of a sign-up, only while that sign-up is the
    address's newest: a slow worker can never bind the address's code to a
    sign-up that a later one replaced.  False when it was replaced or expired."""
    t = now()
    actions = [
        OtpItem.user_id.set(signup.signup_id),
        OtpItem.code_hash.set(code_hash),
        OtpItem.expires_at.set(t + ttl_seconds),
        OtpItem.ttl.set(_ttl(ttl_seconds + 86400)),
        OtpItem.attempts.set(0),
        OtpItem.window_start.set(t),
    ]

    def build(tx: TransactWrite) -> None:
        tx.condition_check(SignupItem, signup.pk, condition=(SignupItem.signup_id == signup.signup_id) & (SignupItem.expires_at > t))
        tx.update(OtpItem(key), actions=actions)

    return not _write_transaction(build)  # only the sign-up's check has a condition


def put_email_change_code(key: str, user_id: str, new_email: str, code_hash: str, ttl_seconds: int) -> None:
    """Store the code of an account's email change and the address it moves the
    account to, replacing any earlier change, with its own tries: the code
    only proves the new address answers (the password was checked when it was
    asked for), and each one costs a password check, a cooldown and the
    address's hourly cap."""
    t = now()
    OtpItem(key).update(
        actions=[
            OtpItem.user_id.set(user_id),
            OtpItem.code_hash.set(code_hash),
            OtpItem.new_email.set(new_email),
            OtpItem.expires_at.set(t + ttl_seconds),
            OtpItem.attempts.set(0),
            OtpItem.window_start.set(t),
            OtpItem.ttl.set(_ttl(ttl_seconds + 86400)),
        ]
    )


def reserve_otp_try(key: str) -> OtpRecord | None:
    """Count one try against the code *before* it is compared, atomically, so
    parallel guesses cannot exceed the budget.  None when there is no code."""
    item = OtpItem(key)
    try:
        item.update(actions=[OtpItem.attempts.add(1)], condition=OtpItem.pk.exists())
    except UpdateError as exc:
        if _condition_failed(exc):
            return None
        raise
    return OtpRecord(item.user_id, item.code_hash, int(item.expires_at), int(item.attempts), item.new_email)


def _consume_condition(code_hash: str) -> Any:
    # Still the code that was checked (not used up, not replaced), still in time.
    return (OtpItem.code_hash == code_hash) & (OtpItem.expires_at > now())


def verify_email(key: str, code_hash: str, user_id: str) -> bool:
    """Use up the code and mark an account created unverified (before sign-ups
    were kept apart from accounts) verified, in one transaction.  False when the code was used up or replaced meanwhile, or the account is
    gone or already verified.  The try budget was enforced when this try was
    reserved, so parallel right answers cannot starve each other: exactly one
    of them uses the code up."""

    def build(tx: TransactWrite) -> None:
        tx.delete(OtpItem(key), condition=_consume_condition(code_hash))
        tx.update(
            UserItem(f"USER#{user_id}"),
            actions=[UserItem.is_verified.set(True)],
            condition=UserItem.pk.exists() & (UserItem.is_verified == False),  # noqa: E712
        )

    return not _write_transaction(build)


def reset_password(key: str, code_hash: str, user_id: str, new_hash: str) -> bool:
    """Use up the reset code, set the password and end every session, atomically.
    False when the code was used up or replaced meanwhile, or the account is gone."""

    def build(tx: TransactWrite) -> None:
        tx.delete(OtpItem(key), condition=_consume_condition(code_hash))
        tx.update(
            UserItem(f"USER#{user_id}"),
            actions=[UserItem.password_hash.set(new_hash), UserItem.token_version.add(1)],
            condition=UserItem.pk.exists(),
        )

    return not _write_transaction(build)


def switch_email(key: str, code_hash: str, user: UserItem, new_email: str, old_code_keys: list[str] | None = None) -> int | None:
    """Move the account to `new_email` with the code sent there, in one
    transaction: the code is used up, the old address's claim is freed, the new
    one claimed, the account's email set and every session ended (token
    version bumped), and the old address's pending codes (`old_code_keys`)
    deleted: a reset code sent there must not act on the account once it has
    moved.  Returns the new token version; None when the code was
    used up or replaced meanwhile, the new address was claimed meanwhile, or
    the account changed (email, password or sessions) since it was read."""
    version = int(user.token_version)

    def build(tx: TransactWrite) -> None:
        tx.delete(OtpItem(key), condition=_consume_condition(code_hash) & (OtpItem.new_email == new_email))
        tx.delete(EmailClaim(f"EMAIL#{user.email}"), condition=EmailClaim.user_id == user.user_id)
        tx.save(EmailClaim(f"EMAIL#{new_email}", user_id=user.user_id), condition=EmailClaim.pk.does_not_exist())
        tx.update(
            UserItem(user.pk),
            actions=[UserItem.email.set(new_email), UserItem.token_version.set(version + 1)],
            condition=UserItem.pk.exists()
            & (UserItem.email == user.email)
            & (UserItem.is_active == True)  # noqa: E712
            & (UserItem.token_version == version),
        )
        for old_key in old_code_keys or []:
            tx.delete(OtpItem(old_key))

    return None if _write_transaction(build) else version + 1


# ---- sessions (refresh-token families) --------------------------------------------


def new_session_id() -> str:
    return str(uuid.uuid4())


# How much of a user agent a session keeps: enough to tell devices apart.
USER_AGENT_CHARS = 256


def seen_from(ip: str, user_agent: str) -> tuple[str | None, str | None]:
    """The address and agent a session stores for a request."""
    return (ip[:64] or None), (user_agent[:USER_AGENT_CHARS] or None)


def create_session(
    session_id: str,
    user_id: str,
    token_version: int,
    token_hash: str,
    lifetime_seconds: int,
    refresh_seconds: int,
    ip: str = "",
    user_agent: str = "",
) -> SessionItem:
    t = now()
    seen_ip, seen_agent = seen_from(ip, user_agent)
    item = SessionItem(
        session_id,
        user_id=user_id,
        token_version=token_version,
        generation=0,
        floor_generation=0,
        token_hash=token_hash,
        refresh_expires_at=t + refresh_seconds,
        created_at=t,
        last_used=t,
        revoked=False,
        ip=seen_ip,
        user_agent=seen_agent,
        unaudited=0,
        audited_at=t,  # the login is audited
        ttl=_ttl(lifetime_seconds + 86400),
    )
    item.save(condition=SessionItem.session_id.does_not_exist())
    return item


def user_and_session(user_id: str, session_id: str, consistent: bool = True) -> tuple[UserItem | None, SessionItem | None]:
    """Both items in one BatchGetItem: the authorizer's one read, strongly
    consistent.  With `consistent=False` both are read eventually consistent
    (half the read units; either may be up to about a second old), for a
    caller whose every use of them is checked again by a conditional write or
    by a strongly consistent read."""
    users, sessions = UserItem.Meta.table_name, SessionItem.Meta.table_name
    request = {
        users: {"Keys": [{"pk": {"S": f"USER#{user_id}"}}], "ConsistentRead": consistent},
        sessions: {"Keys": [{"session_id": {"S": session_id}}], "ConsistentRead": consistent},
    }
    found: dict[str, list[dict[str, Any]]] = {users: [], sessions: []}
    for _ in range(5):  # unprocessed keys are rare; retry them a few times
        answer = client("dynamodb").batch_get_item(RequestItems=request)
        for table, items in answer.get("Responses", {}).items():
            found[table].extend(items)
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            break
    else:
        raise RuntimeError("DynamoDB left keys unprocessed")
    user = UserItem.from_raw_data(found[users][0]) if found[users] else None
    family = SessionItem.from_raw_data(found[sessions][0]) if found[sessions] else None
    return user, family


def rotate_session(
    session_id: str,
    generation: int,
    old_hash: str,
    new_hash: str,
    refresh_seconds: int,
    idle_cutoff: int,
    created_after: int,
    ip: str = "",
    user_agent: str = "",
    audited: bool = True,
    as_read: SessionItem | None = None,
) -> bool:
    """Move the session to its next refresh token, only if `old_hash` is still its
    current one and the session is live: of parallel rotations, exactly one wins.
    The session remembers where this refresh came from, and counts the rotation
    as not yet audited unless `audited` (then the count starts again).  The
    condition on `generation` orders a session's rotations, so the count read
    with the session before this update is exactly the one it replaces.

    With `as_read` (the session as a read that may be stale returned it), also
    only if the session's last audited event is still the one that read saw:
    whether this rotation is audited was decided from it, and a summary put back
    (`restore_unaudited`) changes it without a rotation.  The source address
    and agent change only with a rotation, which `generation` already checks."""
    t = now()
    seen_ip, seen_agent = seen_from(ip, user_agent)
    condition = (
        (SessionItem.generation == generation)
        & (SessionItem.token_hash == old_hash)
        & (SessionItem.revoked == False)  # noqa: E712
        & (SessionItem.last_used >= idle_cutoff)
        & (SessionItem.created_at >= created_after)
        & (SessionItem.refresh_expires_at > t)
    )
    if as_read is not None:
        seen = as_read.audited_at
        condition &= SessionItem.audited_at.does_not_exist() if seen is None else SessionItem.audited_at == int(seen)
    try:
        SessionItem(session_id).update(
            actions=[
                SessionItem.generation.set(generation + 1),
                SessionItem.token_hash.set(new_hash),
                SessionItem.previous_hash.set(old_hash),
                SessionItem.rotated_at.set(t),
                SessionItem.refresh_expires_at.set(t + refresh_seconds),
                SessionItem.last_used.set(t),
                SessionItem.ip.set(seen_ip) if seen_ip else SessionItem.ip.remove(),
                SessionItem.user_agent.set(seen_agent) if seen_agent else SessionItem.user_agent.remove(),
                *([SessionItem.unaudited.set(0), SessionItem.audited_at.set(t)] if audited else [SessionItem.unaudited.add(1)]),
            ],
            condition=condition,
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def restore_unaudited(session_id: str, rotations: int, audited_at: int | None) -> None:
    """Undo a rotation's summary whose audit event could not be submitted: its
    rotations count again, and the session's last audited event is the one
    before.  ADD commutes with any rotation made since, so nothing is lost."""
    actions = [SessionItem.unaudited.add(rotations)]
    actions.append(SessionItem.audited_at.set(audited_at) if audited_at is not None else SessionItem.audited_at.remove())
    try:
        SessionItem(session_id).update(actions=actions, condition=SessionItem.session_id.exists())
    except UpdateError as exc:
        if not _condition_failed(exc):
            raise


def session_by_id(session_id: str) -> SessionItem | None:
    try:
        return SessionItem.get(session_id, consistent_read=True)
    except DoesNotExist:
        return None


def renew_session(session: SessionItem, token_version: int, new_hash: str, refresh_seconds: int) -> bool:
    """Give a live session the next refresh token after a password change.  The
    tokens before it are retired (refused without ending the session)."""
    t = now()
    generation = int(session.generation)
    try:
        SessionItem(session.session_id).update(
            actions=[
                SessionItem.generation.set(generation + 1),
                SessionItem.floor_generation.set(generation + 1),
                SessionItem.token_version.set(token_version),
                SessionItem.token_hash.set(new_hash),
                SessionItem.previous_hash.remove(),
                SessionItem.rotated_at.set(t),
                SessionItem.refresh_expires_at.set(t + refresh_seconds),
                SessionItem.last_used.set(t),
            ],
            condition=(SessionItem.generation == generation) & (SessionItem.revoked == False),  # noqa: E712
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def revoke_session(session_id: str) -> SessionItem | None:
    """End a session; the session as it now is (its rotations not yet audited
    among its attributes), or None when there is no such session."""
    item = SessionItem(session_id)
    try:
        item.update(actions=[SessionItem.revoked.set(True)], condition=SessionItem.session_id.exists())
    except UpdateError as exc:
        if not _condition_failed(exc):
            raise
        return None
    return item


def _session_ids(user_id: str, created_since: int | None = None) -> list[str]:
    """The ids of the user's sessions (those created since `created_since`),
    newest first, from the user index: keys only, and, like any index,
    eventually consistent."""
    condition, values = "user_id = :u", {":u": {"S": user_id}}
    if created_since is not None:
        condition += " AND created_at >= :c"
        values[":c"] = {"N": str(created_since)}
    pages = client("dynamodb").get_paginator("query").paginate(
        TableName=SessionItem.Meta.table_name,
        IndexName=settings().sessions_user_index,
        KeyConditionExpression=condition,
        ExpressionAttributeValues=values,
        ProjectionExpression="session_id",
        ScanIndexForward=False,
    )
    return [item["session_id"]["S"] for page in pages for item in page["Items"]]


def _sessions_by_id(session_ids: list[str]) -> list[SessionItem]:
    """These sessions, in this order, read strongly consistently and without
    their token digests; one deleted since its id was listed is left out."""
    found = _batch_get(session_ids, table=SessionItem.Meta.table_name, key="session_id", attributes=SESSION_LISTING)
    return [SessionItem.from_raw_data(found[s]) for s in session_ids if s in found]


def sessions_of(user_id: str) -> list[SessionItem]:
    """The user's sessions, newest first: the user index lists them, a
    BatchGetItem per 100 fetches them (no token digests).  Ended ones too:
    the caller tells live from dead."""
    return _sessions_by_id(_session_ids(user_id))


def end_session(user_id: str, session_id: str, token_version: int) -> SessionItem | None:
    """End one live session of this user, in one conditional update: the session
    as it now is, or None when it is unknown, someone else's, already ended, or
    from before the user's current token version (ended by a password or email change)."""
    item = SessionItem(session_id)
    try:
        item.update(
            actions=[SessionItem.revoked.set(True)],
            condition=SessionItem.session_id.exists()
            & (SessionItem.user_id == user_id)
            & (SessionItem.revoked == False)  # noqa: E712
            & (SessionItem.token_version == token_version),
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return None
        raise
    return item


# ---- counters and lockouts --------------------------------------------------------


def count_hit(key: str, window_seconds: int, amount: int = 1) -> int:
    """Atomically add to the counter for the current fixed window; return the total."""
    window = now() // window_seconds
    item = LimitItem(f"{key}#{window}")
    item.update(actions=[LimitItem.count.add(amount), LimitItem.ttl.set(_ttl(window_seconds * 2))])
    return int(item.count)


def count_under_limit(key: str, window_seconds: int, limit: int) -> str | None:
    """Add one to the counter for the current fixed window only while it is
    below `limit`, in one conditional update: under any concurrency at most
    `limit` calls per window are counted.  Returns the counter's item key (to
    give the unit back with `uncount`), or None when the limit is reached."""
    item_key = f"{key}#{now() // window_seconds}"
    try:
        LimitItem(item_key).update(
            actions=[LimitItem.count.add(1), LimitItem.ttl.set(_ttl(window_seconds * 2))],
            condition=LimitItem.count.does_not_exist() | (LimitItem.count < limit),
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return None
        raise
    return item_key


def uncount(item_key: str) -> None:
    """Give back one unit taken by `count_under_limit` (never below zero)."""
    try:
        LimitItem(item_key).update(actions=[LimitItem.count.add(-1)], condition=LimitItem.count > 0)
    except UpdateError as exc:
        if not _condition_failed(exc):
            raise


def counter_value(key: str, window_seconds: int) -> int:
    try:
        return int(LimitItem.get(f"{key}#{now() // window_seconds}", consistent_read=True).count)
    except DoesNotExist:
        return 0


@dataclass(frozen=True)
class SendClaim:
    """A claimed cooldown: when it was taken, and the time it replaced (None
    when there was none), for `release_send_slot` to put back."""

    taken_at: int
    previous: int | None


def claim_send_slot(key: str, cooldown_seconds: int) -> SendClaim | None:
    """Take the right to send an email to this address now, or None while the
    cooldown runs."""
    t = now()
    try:
        answer = LimitItem._get_connection().update_item(
            key,
            actions=[LimitItem.last_sent.set(t), LimitItem.ttl.set(_ttl(max(cooldown_seconds, 1) * 2))],
            condition=LimitItem.last_sent.does_not_exist() | (LimitItem.last_sent <= t - cooldown_seconds),
            return_values="ALL_OLD",  # the item as it was (UPDATED_OLD may leave out a value set again unchanged)
        )
    except UpdateError as exc:
        if not _condition_failed(exc):
            raise
        return None
    previous = (answer.get("Attributes") or {}).get("last_sent", {}).get("N")
    return SendClaim(t, int(previous) if previous is not None else None)


def release_send_slot(key: str, claim: SendClaim) -> None:
    """Undo `claim_send_slot` when nothing was sent, unless another claim came
    since: the cooldown it replaced comes back (a sign-up's code claims without
    waiting, and must not wipe out a cooldown that was running)."""
    try:
        if claim.previous is None:
            LimitItem(key).delete(condition=LimitItem.last_sent == claim.taken_at)
        else:
            LimitItem(key).update(actions=[LimitItem.last_sent.set(claim.previous)], condition=LimitItem.last_sent == claim.taken_at)
    except (DeleteError, UpdateError) as exc:
        if not _condition_failed(exc):
            raise


def lock_state(key: str) -> LimitItem | None:
    try:
        return LimitItem.get(key, consistent_read=True)
    except DoesNotExist:
        return None


def _update_limit(key: str, actions: list[Any], condition: Any) -> bool:
    """One conditional update of a limit item: False when its condition did not hold."""
    try:
        LimitItem(key).update(actions=actions, condition=condition)
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def _holds_unit_of(hour: int) -> Any:
    """The condition for giving back a unit of `hour`'s failures: the item still counts that hour, above zero."""
    return (LimitItem.hour == hour) & (LimitItem.count > 0)


def hour_failures(item: LimitItem | None, hour: int) -> int:
    """The failures a login lock item counts in this hour (0 when its count is of an earlier hour)."""
    if item is None or item.hour is None or int(item.hour) != hour:
        return 0
    return int(item.count or 0)


def admit_attempt(
    key: str, seen: LimitItem | None, threshold: int, base_lock: int, max_lock: int, ttl_seconds: int, hour: int, hourly_cap: int
) -> bool:
    """Compare-and-set admission of one login attempt.

    The first `threshold - 1` attempts pass freely.  From the threshold on, an
    attempt is admitted only when no lock is in force, and it sets the next
    lock (doubling, capped) as it goes; a success clears it.  So under any
    concurrency at most one attempt per lock period reaches the password
    check.

    The same write counts the attempt as one of this hour's failures, only
    while the hour has fewer than `hourly_cap` (a condition DynamoDB checks,
    so parallel attempts cannot pass the cap between them); an attempt that
    turns out right gives its unit back (`settle_attempt`,
    `give_back_attempt`).  False when another request changed the state
    first, or the hour's cap is reached.
    """
    attempts = int(seen.attempts or 0) if seen else 0
    level = int(seen.lock_level or 0) if seen else 0
    actions = [LimitItem.attempts.set(attempts + 1), LimitItem.ttl.set(_ttl(ttl_seconds))]
    if attempts + 1 >= threshold:
        lock_for = min(max_lock, base_lock * (2 ** min(level, 30)))
        actions += [LimitItem.locked_until.set(now() + lock_for), LimitItem.lock_level.set(level + 1)]
    if seen is None or seen.attempts is None:
        condition = LimitItem.attempts.does_not_exist()
    else:
        condition = LimitItem.attempts == attempts
    if seen is not None and seen.hour is not None and int(seen.hour) == hour:
        actions.append(LimitItem.count.add(1))  # atomic: other writers may have moved the count since the read
        condition &= (LimitItem.hour == hour) & (LimitItem.count < hourly_cap)
    else:
        actions += [LimitItem.hour.set(hour), LimitItem.count.set(1)]  # an earlier hour's count no longer holds
        condition &= LimitItem.hour.does_not_exist() | (LimitItem.hour < hour)  # never wind a later hour back
    return _update_limit(key, actions, condition)


def settle_attempt(key: str, hour: int | None) -> None:
    """An admitted attempt was right: the lock, its level and the attempts
    before it no longer hold, and its unit of `hour`'s failures is given back
    (None: the unit went back already).  One UpdateItem; a second only when
    the hour turned (or an operator cleared the item) since the admission, and
    then nothing is given back.  The item stays for the hour's count."""
    cleared = [LimitItem.attempts.remove(), LimitItem.locked_until.remove(), LimitItem.lock_level.remove()]
    if hour is not None and _update_limit(key, [*cleared, LimitItem.count.add(-1)], _holds_unit_of(hour)):
        return
    _update_limit(key, cleared, LimitItem.pk.exists())  # never creates an item


def give_back_attempt(key: str, hour: int) -> None:
    """An admitted attempt was no failure, but its lockout state stays (a right
    password before the second step): only its unit of the hour's failures goes back."""
    _update_limit(key, [LimitItem.count.add(-1)], _holds_unit_of(hour))


def count_login_failure(key: str, hour: int, ttl_seconds: int) -> None:
    """Count a failure that went through no admission (a passkey step refused
    for its sign-in token) among this hour's failures."""
    new_hour = [LimitItem.hour.set(hour), LimitItem.count.set(1), LimitItem.ttl.set(_ttl(ttl_seconds))]
    for _ in range(5):
        # Into the item's hour when it is this one (or a later one, on a clock a little ahead), else a new hour's count.
        if _update_limit(key, [LimitItem.count.add(1)], LimitItem.hour >= hour):
            return
        if _update_limit(key, new_hour, LimitItem.hour.does_not_exist() | (LimitItem.hour < hour)):
            return


def clear_lock(key: str) -> None:
    """Drop a login lock item: its lock and this hour's failures with it."""
    LimitItem(key).delete()


# ---- passkeys (WebAuthn credentials) and their challenges -------------------------


def put_challenge(key: str, purpose: str, ttl_seconds: int, user_id: str | None = None, email_hash: str | None = None) -> None:
    ChallengeItem(
        key,
        purpose=purpose,
        user_id=user_id,
        email_hash=email_hash,
        expires_at=now() + ttl_seconds,
        ttl=_ttl(ttl_seconds + 3600),
    ).save(condition=ChallengeItem.pk.does_not_exist())


def take_challenge(key: str, purpose: str) -> ChallengeItem | None:
    """Use a challenge up: one conditional delete, so of any number of parallel
    answers at most one gets it.  None when unknown, expired, used or for another ceremony."""
    condition = ChallengeItem.pk.exists() & (ChallengeItem.purpose == purpose) & (ChallengeItem.expires_at > now())
    try:
        answer = ChallengeItem._get_connection().delete_item(key, condition=condition, return_values="ALL_OLD")
    except PynamoDBException as exc:
        if _condition_failed(exc):
            return None
        raise
    return ChallengeItem.from_raw_data(answer["Attributes"])


class PasskeyRefused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "duplicate" or "too_many"


def add_passkey(item: PasskeyItem, max_count: int) -> None:
    """Store a new passkey and count it on the account, in one transaction,
    so that parallel registrations cannot pass the cap."""

    def build(tx: TransactWrite) -> None:
        tx.save(item, condition=PasskeyItem.key.does_not_exist())
        tx.update(
            UserItem(f"USER#{item.user_id}"),
            actions=[UserItem.passkey_count.add(1)],
            condition=UserItem.pk.exists() & (UserItem.passkey_count.does_not_exist() | (UserItem.passkey_count < max_count)),
        )

    codes = _write_transaction(build)  # item 0: the passkey (a put), item 1: the account (an update)
    if codes:
        raise PasskeyRefused("duplicate" if codes[0] == CONDITION_FAILED else "too_many")


def remove_passkey(user_id: str, key: str) -> bool:
    def build(tx: TransactWrite) -> None:
        tx.delete(PasskeyItem(user_id, key), condition=PasskeyItem.key.exists())
        tx.update(UserItem(f"USER#{user_id}"), actions=[UserItem.passkey_count.add(-1)], condition=UserItem.pk.exists())

    return not _write_transaction(build)


def passkeys_of(user_id: str) -> list[PasskeyItem]:
    return list(PasskeyItem.query(user_id, consistent_read=True))


def passkey(user_id: str, key: str) -> PasskeyItem | None:
    try:
        return PasskeyItem.get(user_id, key, consistent_read=True)
    except DoesNotExist:
        return None


def record_passkey_use(item: PasskeyItem, new_sign_count: int) -> bool:
    """Move the sign counter forward, only from the value this request checked."""
    try:
        PasskeyItem(item.user_id, item.key).update(
            actions=[PasskeyItem.sign_count.set(new_sign_count), PasskeyItem.last_used_at.set(now())],
            condition=PasskeyItem.key.exists() & (PasskeyItem.sign_count == int(item.sign_count)),
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


# ---- the suppression list ---------------------------------------------------------


def _suppression_key(email_key: str) -> str:
    return f"suppressed#{email_key}"


def suppress_address(email_key: str, reason: str) -> bool:
    """Put an address on the suppression list (no TTL: it stays until an
    operator removes it).  True when it was not on it before."""
    try:
        LimitItem(_suppression_key(email_key)).update(
            actions=[LimitItem.reason.set(reason), LimitItem.since.set(now())],
            condition=LimitItem.pk.does_not_exist(),
        )
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def is_suppressed(email_key: str) -> bool:
    try:
        LimitItem.get(_suppression_key(email_key), consistent_read=True)
    except DoesNotExist:
        return False
    return True


# ---- two-step sign-in: TOTP, recovery codes, mfa tokens ---------------------------


@dataclass(frozen=True)
class MfaProof:
    """A second-factor code that checked out, used up by the write it joins:
    a TOTP time step (only if newer than the last one used) or a recovery code
    (only if still on the account).  Of parallel writes with one code, one wins."""

    secret: str  # the ciphertext the code was checked against: the secret must not have changed
    step: int | None = None
    recovery_hash: str | None = None

    def actions(self) -> list[Any]:
        if self.recovery_hash is not None:
            return [UserItem.recovery_codes.delete({self.recovery_hash})]
        assert self.step is not None
        return [UserItem.totp_last_step.set(self.step)]

    def condition(self) -> Any:
        base = UserItem.pk.exists() & (UserItem.totp_enabled == True) & (UserItem.totp_secret == self.secret)  # noqa: E712
        if self.recovery_hash is not None:
            return base & UserItem.recovery_codes.contains(self.recovery_hash)
        return base & (UserItem.totp_last_step.does_not_exist() | (UserItem.totp_last_step < self.step))


def _update_user(user_id: str, actions: list[Any], condition: Any) -> bool:
    try:
        UserItem(f"USER#{user_id}").update(actions=actions, condition=condition)
    except UpdateError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def set_pending_totp(user_id: str, ciphertext: str) -> bool:
    """Store a new pending secret (replacing any earlier one), unless TOTP is on."""
    return _update_user(
        user_id,
        [UserItem.totp_pending.set(ciphertext)],
        UserItem.pk.exists() & (UserItem.is_active == True) & (UserItem.totp_enabled.does_not_exist() | (UserItem.totp_enabled == False)),  # noqa: E712
    )


def _enable_actions_and_condition(pending: str, step: int, recovery_hashes: set[str]) -> tuple[list[Any], Any]:
    actions = [
        UserItem.totp_secret.set(pending),
        UserItem.totp_enabled.set(True),
        UserItem.totp_last_step.set(step),
        UserItem.recovery_codes.set(recovery_hashes),
        UserItem.totp_pending.remove(),
    ]
    condition = (
        UserItem.pk.exists()
        & (UserItem.is_active == True)  # noqa: E712
        & (UserItem.totp_pending == pending)
        & (UserItem.totp_enabled.does_not_exist() | (UserItem.totp_enabled == False))  # noqa: E712
    )
    return actions, condition


def enable_totp(user_id: str, pending: str, step: int, recovery_hashes: set[str]) -> bool:
    """Turn the checked pending secret into the account's, with its recovery
    codes and the step just used, if that secret is still the pending one and
    TOTP is still off: of parallel confirmations, one wins."""
    actions, condition = _enable_actions_and_condition(pending, step, recovery_hashes)
    return _update_user(user_id, actions, condition)


def disable_totp(user_id: str, proof: MfaProof) -> bool:
    actions = [
        UserItem.totp_enabled.set(False),
        UserItem.totp_secret.remove(),
        UserItem.totp_pending.remove(),
        UserItem.recovery_codes.remove(),
    ]
    if proof.step is not None:
        actions.append(UserItem.totp_last_step.set(proof.step))
    return _update_user(user_id, actions, proof.condition())


def use_mfa_proof(user_id: str, proof: MfaProof) -> bool:
    """Use a checked second-factor code up on its own (a change whose main write
    comes later, or is an erasure): of parallel uses of one code, one wins."""
    return _update_user(user_id, proof.actions(), proof.condition())


def replace_recovery_codes(user_id: str, proof: MfaProof, recovery_hashes: set[str]) -> bool:
    actions = [UserItem.recovery_codes.set(recovery_hashes)]
    if proof.step is not None:
        actions.append(UserItem.totp_last_step.set(proof.step))
    return _update_user(user_id, actions, proof.condition())


def put_mfa_token(key: str, purpose: str, user_id: str, token_version: int, ttl_seconds: int) -> None:
    MfaTokenItem(
        key,
        purpose=purpose,
        user_id=user_id,
        token_version=token_version,
        attempts=0,
        expires_at=now() + ttl_seconds,
        ttl=_ttl(ttl_seconds + 3600),
    ).save(condition=MfaTokenItem.pk.does_not_exist())


def _live_token(purpose: str) -> Any:
    return MfaTokenItem.pk.exists() & (MfaTokenItem.purpose == purpose) & (MfaTokenItem.expires_at > now())


def peek_mfa_token(key: str, purpose: str, max_attempts: int) -> MfaTokenItem | None:
    """The token, if live, of this purpose and not out of tries (no try spent)."""
    try:
        item = MfaTokenItem.get(key, consistent_read=True)
    except DoesNotExist:
        return None
    if item.purpose != purpose or int(item.expires_at) <= now() or int(item.attempts) >= max_attempts:
        return None
    return item


def try_mfa_token(key: str, purpose: str, max_attempts: int) -> MfaTokenItem | None:
    """Spend one of the token's tries (conditional increment): None when the
    token is unknown, used, expired, of another purpose or out of tries."""
    try:
        answer = MfaTokenItem._get_connection().update_item(
            key,
            actions=[MfaTokenItem.attempts.add(1)],
            condition=_live_token(purpose) & (MfaTokenItem.attempts < max_attempts),
            return_values="ALL_NEW",
        )
    except PynamoDBException as exc:
        if _condition_failed(exc):
            return None
        raise
    return MfaTokenItem.from_raw_data(answer["Attributes"])


def drop_mfa_token(key: str) -> None:
    try:
        MfaTokenItem(key).delete()
    except DeleteError:
        pass


def take_mfa_token(key: str, purpose: str) -> bool:
    """Use the token up alone (one conditional delete): the passkey second step."""
    try:
        MfaTokenItem(key).delete(condition=_live_token(purpose))
    except DeleteError as exc:
        if _condition_failed(exc):
            return False
        raise
    return True


def complete_mfa_login(key: str, purpose: str, user_id: str, proof: MfaProof) -> bool:
    """Use up the mfa_token and the code in one transaction: the token once, the code once."""

    def build(tx: TransactWrite) -> None:
        tx.delete(MfaTokenItem(key), condition=_live_token(purpose) & (MfaTokenItem.user_id == user_id))
        tx.update(UserItem(f"USER#{user_id}"), actions=proof.actions(), condition=proof.condition())

    return not _write_transaction(build)


def complete_enrollment(key: str, user_id: str, pending: str, step: int, recovery_hashes: set[str]) -> bool:
    """Use up the enrolment token and turn TOTP on, in one transaction."""
    actions, condition = _enable_actions_and_condition(pending, step, recovery_hashes)

    def build(tx: TransactWrite) -> None:
        tx.delete(MfaTokenItem(key), condition=_live_token("mfa.enroll") & (MfaTokenItem.user_id == user_id))
        tx.update(UserItem(f"USER#{user_id}"), actions=actions, condition=condition)

    return not _write_transaction(build)
