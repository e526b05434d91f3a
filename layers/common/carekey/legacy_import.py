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

Uniqueness is claimed before anything else: a LEGACY#<pk> item, then the
EMAIL#<email> item, each one conditional write naming the new account's id
(atomic: an address registered meanwhile, or another import, wins or loses
as a whole).  Only then is the account written (BatchWriteItem, 25 at a time:
its id is new, nothing can be overwritten), so an account never exists
without its claims.  A run that stops between the claims and the account
leaves claims naming an account that is not there; the next run finds them
and finishes that account under the claimed id.  (One TransactWriteItems per
account would say the same in one request at twice the write units, and the
local emulator copies the whole table for every item of a transaction, which
makes an import of thousands crawl.)

Importing the same file again changes nothing: a row whose pk is imported
already, under the same email, is skipped, whatever its password hash has
become since.  An interrupted import is resumed by running it again.  A bad
row is refused with its reason and never stops the others; a row refused
for its email gives back its pk's claim, so a corrected file imports it.

The import is audited one event per batch of up to 100 accounts ("import",
"accounts_created"), naming every account id it creates, their Django hash
formats, and the operator (the caller's IAM ARN).  One event per account
would put thousands of records on the trail's one ordered writer ahead of
every live event (it chains about ten an invocation); a batch event keeps
the same facts (which accounts, when, by whom) at a hundredth of the load.
A person's own trail starts with their first login; their account's
`legacy_id` and the batch event tie it to the import.  One more event
records the run's totals.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from carekey import audit, django_hashes, passwords, store
from carekey.api import Client
from carekey.schemas import Email, Name, Phone, _no_control_chars

COLUMNS = ("pk", "password", "email", "first_name", "last_name", "phone_number", "isVerified", "is_active", "date_joined")
MODEL = "users.customuser"
IDS_PER_PART = 13  # 13 UUIDs and their spaces: 480 characters
CLAIM_THREADS = 8  # conditional writes in flight at once: DynamoDB takes them in parallel

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
    resumed: bool = False  # an interrupted run claimed it already, under this id

    def resumed_as(self, user_id: str) -> "Candidate":
        self.user.pk, self.user.user_id = f"USER#{user_id}", user_id
        return Candidate(self.row, self.user, self.algorithm, resumed=True)


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
    # Rows of this batch that repeat an email or pk of an earlier row in it:
    # the earlier row wins, as it would in separate batches.
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
    # What earlier runs (or sign-ups) claimed: read first, so a resumed import
    # skips the rows already in with one read for the whole batch.
    todo = _sort_out(fresh, summary)
    with ThreadPoolExecutor(max_workers=CLAIM_THREADS) as pool:
        outcomes = list(pool.map(_claim_both, todo))
    claimed = []
    for c, refusal in zip(todo, outcomes, strict=True):
        if refusal:
            summary.refuse(c.row, c.user.legacy_id, refusal)
        else:
            claimed.append(c)
    # Audited before the accounts are written: a run that stops in between
    # finishes them next time (and records them again) rather than leave an
    # account without its event.
    if claimed:
        audit.record("import", "accounts_created", client, detail=batch_detail(claimed))
    store.put_new_accounts([c.user for c in claimed if not c.resumed])
    finished = [c for c in claimed if not c.resumed or store.put_account_once(c.user)]
    summary.imported += len(finished)
    summary.skipped += len(claimed) - len(finished)  # finished by another run meanwhile
    summary.formats.update(c.algorithm for c in finished)


def batch_detail(created: list[Candidate]) -> dict[str, str]:
    """The audit detail of one batch: how many accounts, of which Django
    formats, and every account id, in parts of at most IDS_PER_PART ids (the
    audit writer keeps 512 characters of each detail value)."""
    detail = {"accounts": str(len(created))}
    detail.update({f"legacy_hash.{name}": str(n) for name, n in sorted(Counter(c.algorithm for c in created).items())})
    ids = [c.user.user_id for c in created]
    for part, start in enumerate(range(0, len(ids), IDS_PER_PART), start=1):
        detail[f"user_ids.{part}"] = " ".join(ids[start : start + IDS_PER_PART])
    return detail


def _classify_repeat(c: Candidate, first: Candidate, summary: Summary) -> None:
    if first.user.email == c.user.email and first.user.legacy_id == c.user.legacy_id:
        summary.skipped += 1  # the same user twice in one file
    elif first.user.email == c.user.email:
        summary.refuse(c.row, c.user.legacy_id, f"its email is also row {first.row}'s (emails compare after canonicalising)")
    else:
        summary.refuse(c.row, c.user.legacy_id, f"its pk is also row {first.row}'s")


def _sort_out(cands: list[Candidate], summary: Summary) -> list[Candidate]:
    """The rows still to import: new ones, and ones an interrupted run claimed
    but did not finish (they take the id of that run's claim).  The others
    are counted as skipped or refused."""
    keys = [k for c in cands for k in (f"EMAIL#{c.user.email}", f"LEGACY#{c.user.legacy_id}")]
    claims = store.claims(keys) if keys else {}
    owners = [uid for key, uid in claims.items() if key.startswith("LEGACY#") and uid != store.ERASED]
    accounts = store.users_by_ids(owners) if owners else {}
    todo = []
    for c in cands:
        legacy_owner = claims.get(f"LEGACY#{c.user.legacy_id}")
        email_owner = claims.get(f"EMAIL#{c.user.email}")
        if legacy_owner == store.ERASED:
            summary.refuse(c.row, c.user.legacy_id, "this person's imported account was erased; not imported again")
        elif legacy_owner is not None:
            account = accounts.get(legacy_owner)
            if account is None:  # claimed by a run that stopped before writing the account
                todo.append(c.resumed_as(legacy_owner))
            elif account.email == c.user.email:
                summary.skipped += 1  # imported before: left exactly as it is now
            else:
                summary.refuse(c.row, c.user.legacy_id, "this pk was imported already, with another email")
        elif email_owner is not None:
            summary.refuse(c.row, c.user.legacy_id, "an account with this email exists already")
        else:
            todo.append(c)
    return todo


def _claim_both(c: Candidate) -> str | None:
    """Take the row's legacy-id claim, then its email claim, each with one
    conditional write; None when both name this row's account, else why not
    (and no claim of this row's is left behind)."""
    uid, legacy_key, email_key = c.user.user_id, f"LEGACY#{c.user.legacy_id}", f"EMAIL#{c.user.email}"
    if store.claim(legacy_key, uid) != uid:
        return "this pk was claimed by another import while this one ran; run the import again"
    if store.claim(email_key, uid) != uid:
        store.release_claim(legacy_key, uid)
        return "an account with this email exists already"
    return None


# ---- after the import: the upgrade counter --------------------------------------------


def upgrade_status() -> Counter:
    """Imported accounts by the hash they have now: "upgraded" (the service's
    own, after a login or a password reset), else the Django algorithm still in place."""
    counts: Counter = Counter()
    for stored in store.imported_password_hashes():
        counts[passwords.legacy_algorithm(stored) or "upgraded"] += 1
    return counts
