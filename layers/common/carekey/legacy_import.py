"""Importing the Django backend's users with their password hashes (`make import-users`).

Reads what `python manage.py dumpdata users.CustomUser` writes (a JSON list of
{"model", "pk", "fields"}; JSON Lines too) or a CSV with the same columns
(`pk`, `password`, `email`, `first_name`, `last_name`, `phone_number`,
`isVerified`, `is_active`, `date_joined`).  Each row becomes an account:

- a new UUID as its id, the Django pk kept as `legacy_id`;
- the email canonicalised and validated exactly as sign-up does, names and
  phone number under sign-up's rules, `date_joined`, `isVerified` and
  `is_active` kept;
- the Django hash kept as it is ("django$<hash>", see `carekey.django_hashes`),
  checked at the next login and then replaced by the service's own.

The account, its EMAIL# claim and its LEGACY# claim are written in one
transaction, so a uniqueness claim never exists without its account nor the
other way round.  Importing the same file again changes nothing (a row whose
Django pk and email are already imported is skipped, whatever its password
hash has become since), so an interrupted import is resumed by running it
again.  A bad row is refused with its reason and never stops the others.

Each imported account gets its own audit event ("import", "created"), so the
trail of every person starts with where the account came from; one more
event records the run's totals.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from carekey import audit, django_hashes, otp, passwords, store
from carekey.api import Client
from carekey.schemas import Email, Name, Phone, _no_control_chars

COLUMNS = ("pk", "password", "email", "first_name", "last_name", "phone_number", "isVerified", "is_active", "date_joined")
MODEL = "users.customuser"

LegacyId = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_no_control_chars)]


class LegacyUser(BaseModel):
    """One row, validated: sign-up's rules for the email, names and phone."""

    model_config = ConfigDict(extra="ignore")

    pk: LegacyId
    password: str = Field(max_length=1024)
    email: Email
    first_name: Name = ""
    last_name: Name = ""
    phone_number: Phone | None = None
    isVerified: bool  # noqa: N815 - the legacy field's name
    is_active: bool
    date_joined: datetime


@dataclass(frozen=True)
class Refused:
    row: int
    legacy_id: str
    reason: str


@dataclass
class Summary:
    rows: int = 0
    imported: int = 0
    skipped: int = 0
    refused: list[Refused] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)  # imported accounts by Django hash algorithm

    def refuse(self, row: int, legacy_id: Any, reason: str) -> None:
        self.refused.append(Refused(row, str(legacy_id if legacy_id is not None else "")[:64], reason))


class UnreadableFile(Exception):
    """The file cannot be read as a dump or a CSV at all (one line says why)."""


# ---- reading -------------------------------------------------------------------------


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(row number, the row's fields) for every row; a row that cannot be a
    record at all comes as (row number, the reason) instead."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableFile(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    stripped = text.lstrip()
    if path.suffix.lower() == ".csv" or stripped[:1] not in ("[", "{"):
        yield from _csv_rows(text)
    elif stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnreadableFile(f"{path} is not valid JSON: {exc}") from None
        for n, record in enumerate(records, start=1):
            yield n, _dumped_fields(record)
    else:  # JSON Lines (dumpdata --format jsonl)
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield n, _dumped_fields(json.loads(line))
                except json.JSONDecodeError:
                    yield n, "not a JSON record"


def _dumped_fields(record: Any) -> dict[str, Any] | str:
    if not isinstance(record, dict) or not isinstance(record.get("fields"), dict):
        return "not a dumpdata record (no fields)"
    if str(record.get("model", MODEL)).lower() != MODEL:
        return f"a {str(record.get('model'))[:40]} record, not {MODEL}"
    return {**record["fields"], "pk": record.get("pk")}


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise UnreadableFile(f"the CSV lacks the column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    for n, row in enumerate(reader, start=1):
        if None in row:
            yield n, "more values than columns"
            continue
        yield n, dict(row)


# ---- checking ------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    row: int
    user: store.UserItem
    algorithm: str


def candidate(row: int, fields: dict[str, Any]) -> Candidate:
    """The account a row becomes; ValueError with the reason when it cannot."""
    data = dict(fields)
    for name in ("first_name", "last_name"):
        if data.get(name) is None:
            data[name] = ""
    if data.get("phone_number") == "":
        data["phone_number"] = None
    if isinstance(data.get("pk"), int) and not isinstance(data.get("pk"), bool):
        data["pk"] = str(data["pk"])
    if data.get("password") is None:
        data["password"] = ""  # no password at all: like Django's unusable one
    try:
        legacy = LegacyUser.model_validate(data)
    except ValidationError as exc:
        raise ValueError("; ".join(_reason(e) for e in exc.errors())) from None
    try:
        parsed = django_hashes.parse(legacy.password)
    except django_hashes.UnusableHash as exc:
        raise ValueError(str(exc)) from None
    joined = legacy.date_joined if legacy.date_joined.tzinfo else legacy.date_joined.replace(tzinfo=timezone.utc)
    user_id = str(uuid.uuid4())
    user = store.UserItem(
        f"USER#{user_id}",
        user_id=user_id,
        email=legacy.email,
        first_name=legacy.first_name,
        last_name=legacy.last_name,
        phone_number=legacy.phone_number or None,
        password_hash=passwords.legacy_hash(parsed.encoded),
        is_verified=legacy.isVerified,
        is_active=legacy.is_active,
        token_version=0,
        date_joined=joined.astimezone(timezone.utc),
        legacy_id=legacy.pk,
    )
    return Candidate(row, user, parsed.algorithm)


def _reason(error: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in error.get("loc", ())) or "row"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}"  # never the value itself: it may be a password


# ---- importing -----------------------------------------------------------------------


Progress = Callable[[int, Summary], None]


def import_file(path: Path, client: Client, progress: Progress | None = None, batch_size: int = 100) -> Summary:
    """Import every row of the file; see the module's docstring."""
    summary = Summary()
    batch: list[Candidate] = []
    for row, fields in read_rows(path):
        summary.rows += 1
        if isinstance(fields, str):
            summary.refuse(row, None, fields)
        else:
            try:
                batch.append(candidate(row, fields))
            except ValueError as exc:
                summary.refuse(row, fields.get("pk"), str(exc))
        if len(batch) >= batch_size:
            _import_batch(batch, summary, client)
            batch = []
            if progress:
                progress(summary.rows, summary)
    if batch:
        _import_batch(batch, summary, client)
    if progress:
        progress(summary.rows, summary)
    audit.record(
        "import",
        "run_finished",
        client,
        detail={"rows": str(summary.rows), "imported": str(summary.imported), "skipped": str(summary.skipped), "refused": str(len(summary.refused))},
    )
    return summary


def _import_batch(batch: list[Candidate], summary: Summary, client: Client) -> None:
    # Rows of this batch that repeat an email or pk of an earlier row in it: one
    # transaction cannot write an item twice, and the earlier row wins anyway.
    fresh: list[Candidate] = []
    seen_emails: dict[str, Candidate] = {}
    seen_ids: dict[str, Candidate] = {}
    for c in batch:
        first = seen_emails.get(c.user.email) or seen_ids.get(c.user.legacy_id)
        if first is not None:
            _classify_repeat(c, first, summary)
            continue
        seen_emails[c.user.email] = seen_ids[c.user.legacy_id] = c
        fresh.append(c)
    # What earlier runs (or sign-ups) claimed already: read first, so a resumed
    # import skips them without a failed transaction each.
    taken = _taken(fresh)
    new = [c for c in fresh if not _already_there(c, taken, summary)]
    conflicts = {id(u) for u in store.import_accounts([c.user for c in new])}
    if conflicts:  # claimed between the read and the write
        raced = [c for c in new if id(c.user) in conflicts]
        taken = _taken(raced)
        for c in raced:
            if not _already_there(c, taken, summary):
                summary.refuse(c.row, c.user.legacy_id, "its email or legacy id was claimed while importing; run the import again")
    created = [c for c in new if id(c.user) not in conflicts]
    summary.imported += len(created)
    summary.formats.update(c.algorithm for c in created)
    audit.record_many(
        "import",
        [
            audit.Event(
                "created",
                user_id=c.user.user_id,
                email_hash=otp.email_key(c.user.email),
                detail={"legacy_id": c.user.legacy_id, "legacy_hash": c.algorithm},
            )
            for c in created
        ],
        client,
    )


def _classify_repeat(c: Candidate, first: Candidate, summary: Summary) -> None:
    if first.user.email == c.user.email and first.user.legacy_id == c.user.legacy_id:
        summary.skipped += 1  # the same user twice in one file
    elif first.user.email == c.user.email:
        summary.refuse(c.row, c.user.legacy_id, f"its email is also row {first.row}'s (emails compare after canonicalising)")
    else:
        summary.refuse(c.row, c.user.legacy_id, f"its pk is also row {first.row}'s")


@dataclass(frozen=True)
class _Taken:
    claims: dict[str, str]
    accounts: dict[str, store.UserItem]


def _taken(cands: list[Candidate]) -> _Taken:
    keys = [k for c in cands for k in (f"EMAIL#{c.user.email}", f"LEGACY#{c.user.legacy_id}")]
    claims = store.claims(keys) if keys else {}
    owners = [uid for key, uid in claims.items() if key.startswith("EMAIL#")]
    return _Taken(claims, store.users_by_ids(owners) if owners else {})


def _already_there(c: Candidate, taken: _Taken, summary: Summary) -> bool:
    """Classify a row whose email or pk is claimed; False when neither is."""
    email_owner = taken.claims.get(f"EMAIL#{c.user.email}")
    legacy_owner = taken.claims.get(f"LEGACY#{c.user.legacy_id}")
    if email_owner is None and legacy_owner is None:
        return False
    account = taken.accounts.get(email_owner) if email_owner else None
    if account is not None and account.legacy_id == c.user.legacy_id:
        summary.skipped += 1  # imported by an earlier run: left exactly as it is now
    elif email_owner is not None:
        summary.refuse(c.row, c.user.legacy_id, "an account with this email exists already")
    else:
        summary.refuse(c.row, c.user.legacy_id, "this pk was imported already, with another email")
    return True


# ---- after the import: the upgrade counter --------------------------------------------


def upgrade_status() -> Counter:
    """Imported accounts by the hash they have now: "upgraded" (the service's
    own, after a login or a password reset), else the Django algorithm still in place."""
    counts: Counter = Counter()
    for stored in store.imported_password_hashes():
        counts[passwords.legacy_algorithm(stored) or "upgraded"] += 1
    return counts
