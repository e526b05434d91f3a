"""Importing the Django backend's users with their password hashes.

Fixtures are made by Django's own hashers (Django is a test-only dependency),
so each format is the real one; most use lower costs than Django's defaults
to keep the suite fast, and one test uses every default."""

from __future__ import annotations

import io
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import django
import pytest
from carekey import audit_trail, audit_verify, django_hashes, legacy_import, passwords, store
from carekey.api import Client
from carekey.config import settings
from django.conf import settings as django_settings

from local import audit_tool, import_users
from tests.client import PASSWORD

if not django_settings.configured:
    django_settings.configure(PASSWORD_HASHERS=["django.contrib.auth.hashers.PBKDF2PasswordHasher"], USE_TZ=True)
    django.setup()

from django.contrib.auth.hashers import (  # noqa: E402 - needs the settings above
    Argon2PasswordHasher,
    BCryptPasswordHasher,
    BCryptSHA256PasswordHasher,
    PBKDF2PasswordHasher,
    PBKDF2SHA1PasswordHasher,
    make_password,
)


class FastPBKDF2(PBKDF2PasswordHasher):
    iterations = 1000


class FastPBKDF2SHA1(PBKDF2SHA1PasswordHasher):
    iterations = 1000


class FastBCryptSHA256(BCryptSHA256PasswordHasher):
    rounds = 4


class FastBCrypt(BCryptPasswordHasher):
    rounds = 4


class FastArgon2(Argon2PasswordHasher):
    time_cost, memory_cost, parallelism = 1, 64, 1


FAST = {
    "pbkdf2_sha256": FastPBKDF2(),
    "pbkdf2_sha1": FastPBKDF2SHA1(),
    "bcrypt_sha256": FastBCryptSHA256(),
    "bcrypt": FastBCrypt(),
    "argon2": FastArgon2(),
}
DJANGO_PASSWORD = "Legacy pässword 2019!"  # Django hashes the UTF-8 bytes, unnormalised
OPERATOR = Client(ip="operator", user_agent="pytest-import", request_id="import-test")


def row(pk: int, email: str, password_hash: str, **fields: Any) -> dict[str, Any]:
    """One record as `manage.py dumpdata users.CustomUser` writes it."""
    values = {
        "password": password_hash,
        "last_login": None,
        "is_superuser": False,
        "email": email,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "phone_number": "+15551234567",
        "isVerified": True,
        "is_active": True,
        "date_joined": "2019-03-04T05:06:07.123Z",
        "groups": [],
        "user_permissions": [],
    }
    values.update(fields)
    return {"model": "users.customuser", "pk": pk, "fields": values}


def dump(tmp_path: Path, records: list[Any], name: str = "users.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records))
    return path


def imported(tmp_path: Path, records: list[Any]) -> legacy_import.Summary:
    return legacy_import.import_file(dump(tmp_path, records), OPERATOR)


def stored_hash(email: str) -> str:
    user = store.user_by_email(email)
    assert user is not None
    return user.password_hash


def user_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=settings().users_table)["Items"]


# ---- every format: first login verifies and upgrades, the second is native -------------


@pytest.mark.parametrize("algorithm", list(FAST))
def test_a_django_password_logs_in_and_the_hash_becomes_the_services_own(api, tmp_path, monkeypatch, algorithm):
    # Given a user imported with a hash made by Django's own hasher
    django_hash = make_password(DJANGO_PASSWORD, hasher=FAST[algorithm])
    assert django_hash.startswith(algorithm + "$")
    summary = imported(tmp_path, [row(7, "ada@example.com", django_hash)])
    assert (summary.imported, summary.skipped, summary.refused) == (1, 0, [])
    assert stored_hash("ada@example.com") == "django$" + django_hash
    # When they log in with their Django password
    first = api.post("/login", {"email": "ada@example.com", "password": DJANGO_PASSWORD})
    # Then they are in, and the stored hash is the service's own, for the same password
    assert first.status == 200, first.body
    upgraded = stored_hash("ada@example.com")
    assert upgraded.startswith(passwords.CURRENT + "$") and not passwords.needs_rehash(upgraded)
    assert passwords.verify_password(DJANGO_PASSWORD, upgraded)
    # And the second login uses the native hash only: no Django check runs
    monkeypatch.setattr(django_hashes, "verify", lambda *a: pytest.fail("a Django hash was checked after the upgrade"))
    assert api.post("/login", {"email": "ada@example.com", "password": DJANGO_PASSWORD}).status == 200
    assert stored_hash("ada@example.com") == upgraded


def test_djangos_default_costs_and_old_iteration_counts_verify(tmp_path):
    # Given hashes at each hasher's default cost (PBKDF2 1,500,000 rounds) and an old 10,000-round one
    defaults = (PBKDF2PasswordHasher, PBKDF2SHA1PasswordHasher, BCryptSHA256PasswordHasher, BCryptPasswordHasher, Argon2PasswordHasher)
    hashes = [make_password(DJANGO_PASSWORD, hasher=h()) for h in defaults]
    assert hashes[0].startswith("pbkdf2_sha256$1500000$")
    hashes.append(PBKDF2SHA1PasswordHasher().encode(DJANGO_PASSWORD, "oldsalt", iterations=10_000))
    for django_hash in hashes:
        # Then each parses for import and verifies the right password, and only it
        django_hashes.parse(django_hash)
        assert django_hashes.verify(DJANGO_PASSWORD, django_hash), django_hash[:20]
        assert not django_hashes.verify(DJANGO_PASSWORD + " ", django_hash)


def test_bcrypt_reads_only_the_first_72_bytes_as_djangos_bcrypt_did(tmp_path):
    import bcrypt

    # Given a hash of a long password made by a bcrypt that truncated (as bcrypt < 5 did for Django)
    long_password = "x" * 72 + "-ignored-tail"
    django_hash = "bcrypt$" + bcrypt.hashpw(long_password.encode()[:72], bcrypt.gensalt(4)).decode()
    # Then the full password verifies, as it did in Django
    assert django_hashes.verify(long_password, django_hash)
    assert not django_hashes.verify("y" * 72, django_hash)


@pytest.mark.parametrize(
    "algorithm, changed",
    [("argon2", ("m=64,", "m=4194304,")), ("argon2", ("t=1,", "t=100000,")), ("bcrypt", ("$2b$04$", "$2b$31$"))],
    ids=["argon2 at 4 GiB", "argon2 at 100,000 passes", "bcrypt at cost 31"],
)
def test_a_django_hash_changed_past_the_import_limits_matches_nothing_and_never_runs(monkeypatch, algorithm, changed):
    import argon2

    # Given an imported hash whose row was changed since (by hand, or corrupted) past what the import accepts
    made = make_password(DJANGO_PASSWORD, hasher=FAST[algorithm])
    stored = made.replace(*changed)
    with pytest.raises(django_hashes.UnusableHash):
        django_hashes.parse(stored)
    ran: list[bytes] = []
    monkeypatch.setattr(argon2._password_hasher, "verify_secret", lambda encoded, *a: ran.append(encoded) or False)
    monkeypatch.setattr(django_hashes.bcrypt, "hashpw", lambda secret, salt: ran.append(salt) or b"")
    # When its password is checked, on its own and by a login's check
    # Then it matches nothing, and neither Argon2 nor bcrypt is run on it
    assert django_hashes.verify(DJANGO_PASSWORD, stored) is False
    assert passwords.verify_password(DJANGO_PASSWORD, passwords.legacy_hash(stored)) is False
    assert ran == []
    # While the hash as made is run
    django_hashes.verify(DJANGO_PASSWORD, made)
    assert len(ran) == 1


# ---- failures: lockouts, unusable passwords ---------------------------------------------


def test_wrong_passwords_against_a_django_hash_count_toward_the_lockout(api, tmp_path):
    # Given an imported user
    imported(tmp_path, [row(8, "bob@example.com", make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha256"]))])
    # When five wrong passwords are tried
    for _ in range(5):
        wrong = api.post("/login", {"email": "bob@example.com", "password": "not-the-password"})
        assert wrong.status == 401 and wrong.json()["error"] == "Invalid credentials"
    # Then the account is locked like any other: the right password is refused, nothing is upgraded
    locked = api.post("/login", {"email": "bob@example.com", "password": DJANGO_PASSWORD})
    assert locked.status == 401 and locked.body == wrong.body
    assert stored_hash("bob@example.com").startswith("django$pbkdf2_sha256$")


def test_an_unusable_django_password_never_logs_in_and_forgot_password_sets_one(api, tmp_path, outbox):
    # Given a user Django had given an unusable password, and one with none at all
    unusable = make_password(None)
    assert unusable.startswith("!")
    summary = imported(tmp_path, [row(9, "una@example.com", unusable), row(10, "nopw@example.com", "")])
    assert summary.imported == 2 and summary.formats == {"unusable": 2}
    # When anything is tried as a password, even the stored text itself
    for email, attempt in (("una@example.com", unusable), ("una@example.com", ""), ("nopw@example.com", "")):
        r = api.post("/login", {"email": email, "password": attempt})
        assert r.status in (400, 401)
        if r.status == 401:
            assert r.json()["error"] == "Invalid credentials"
    # Then forgot-password gives them a password of the service's own
    assert api.post("/forgot-password", {"email": "una@example.com"}).status == 200
    code = api.latest_code("una@example.com")
    reset = api.post(
        "/reset-password", {"email": "una@example.com", "otp": code, "new_password": PASSWORD, "confirm_password": PASSWORD}
    )
    assert reset.status == 200, reset.body
    assert api.post("/login", {"email": "una@example.com", "password": PASSWORD}).status == 200
    assert stored_hash("una@example.com").startswith(passwords.CURRENT + "$")


def _login_seconds(api, email: str, password: str) -> float:
    started = time.perf_counter()
    assert api.post("/login", {"email": email, "password": password}).status == 401
    return time.perf_counter() - started


def test_a_wrong_password_costs_an_imported_account_what_it_costs_a_native_one_and_a_stranger(api, tmp_path, settings_override):
    # Given a bcrypt failure floor that takes measurable time, a native account, and imported
    # accounts whose Django checks are far cheaper (one PBKDF2 round; an unusable password)
    settings_override(BCRYPT_COST="10", LOGIN_LOCKOUT_THRESHOLD="100")
    api.verified_user("native@example.com")
    cheap = PBKDF2SHA1PasswordHasher().encode(DJANGO_PASSWORD, "salt", iterations=1)
    imported(tmp_path, [row(11, "cheap@example.com", cheap), row(12, "unusable@example.com", make_password(None))])
    # When wrong passwords are tried for each, in turns (so a busy moment hits all alike), keeping the fastest of seven
    emails = ("native@example.com", "cheap@example.com", "unusable@example.com", "stranger@example.com")
    samples: dict[str, list[float]] = {email: [] for email in emails}
    for _ in range(7):
        for email in emails:
            samples[email].append(_login_seconds(api, email, "not-the-password"))
    cost = {email: min(seconds) for email, seconds in samples.items()}
    # Then each costs what the native account and the stranger do: the failure answers at the same fixed deadline
    native = cost["native@example.com"]
    for email, seconds in cost.items():
        assert 0.75 * native < seconds < 1.5 * native, (email, cost)


# ---- what is kept ------------------------------------------------------------------------


def test_fields_are_kept_ids_are_new_and_emails_canonical(api, tmp_path):
    # Given a Django user with a mixed-case, padded email
    django_hash = make_password(DJANGO_PASSWORD, hasher=FAST["argon2"])
    imported(tmp_path, [row(41, "  Grace.Hopper@Example.COM ", django_hash, first_name="Grace", last_name="Hopper", phone_number="")])
    # Then the account has a new UUID, the pk as legacy_id, and the Django fields
    user = store.user_by_email("grace.hopper@example.com")
    assert user is not None and str(uuid.UUID(user.user_id)) == user.user_id
    assert user.legacy_id == "41" and user.phone_number is None
    assert (user.first_name, user.last_name, user.is_verified, user.is_active) == ("Grace", "Hopper", True, True)
    body = api.login("grace.hopper@example.com", DJANGO_PASSWORD)
    assert body["user"]["date_joined"] == "2019-03-04T05:06:07.123000Z"
    assert body["user"]["id"] == user.user_id and body["user"]["email"] == "grace.hopper@example.com"


def test_unverified_and_deactivated_django_users_stay_so(api, tmp_path):
    # Given an unverified and a deactivated Django user
    h = make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha256"])
    imported(tmp_path, [row(51, "unv@example.com", h, isVerified=False), row(52, "off@example.com", h, is_active=False)])
    # Then the right password gets the legacy API's answers for each, and nothing is upgraded
    unverified = api.post("/login", {"email": "unv@example.com", "password": DJANGO_PASSWORD})
    assert unverified.status == 403 and unverified.json()["error"] == "Email not verified"
    deactivated = api.post("/login", {"email": "off@example.com", "password": DJANGO_PASSWORD})
    assert deactivated.status == 403 and deactivated.json()["error"] == "Account deactivated"
    assert stored_hash("unv@example.com").startswith("django$")


def test_an_imported_email_is_taken_for_sign_up(api, tmp_path, outbox):
    # Given an imported user
    imported(tmp_path, [row(61, "taken@example.com", make_password(DJANGO_PASSWORD, hasher=FAST["bcrypt"]))])
    # When someone signs up with that email
    assert api.register("taken@example.com").status == 201
    # Then the address's owner is told, as for any account, and no second account appears
    assert [m["subject"] for m in outbox.to("taken@example.com")] == ["Someone tried to register with your CareKey email"]
    assert len([i for i in user_items() if i["pk"]["S"].startswith("USER#")]) == 1
    assert stored_hash("taken@example.com").startswith("django$bcrypt$")


# ---- idempotent, resumable, refusals -------------------------------------------------------


def test_importing_the_same_file_again_changes_nothing(api, tmp_path):
    # Given an imported file, one of whose users has logged in since (hash upgraded)
    records = [row(100 + i, f"p{i}@example.com", make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha1"])) for i in range(30)]
    path = dump(tmp_path, records)
    assert legacy_import.import_file(path, OPERATOR).imported == 30
    api.login("p3@example.com", DJANGO_PASSWORD)
    before = sorted(json.dumps(i, sort_keys=True) for i in user_items())
    # When it is imported again
    again = legacy_import.import_file(path, OPERATOR)
    # Then every row is skipped and no item changed: the upgraded hash stays upgraded
    assert (again.imported, again.skipped, again.refused) == (0, 30, [])
    assert sorted(json.dumps(i, sort_keys=True) for i in user_items()) == before
    assert stored_hash("p3@example.com").startswith(passwords.CURRENT + "$")


@pytest.mark.parametrize("dies_in", ["put_new_accounts", "claim"])
def test_an_interrupted_import_continues_where_it_stopped(tmp_path, monkeypatch, dies_in):
    # Given a file of 250 users and an import that dies in its third batch (after
    # that batch's claims, before its accounts; or halfway through its claims)
    records = [row(1000 + i, f"r{i}@example.com", make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha256"])) for i in range(250)]
    path = dump(tmp_path, records)
    real, calls = getattr(store, dies_in), []
    limit = 3 if dies_in == "put_new_accounts" else 2 * 200 + 2 * 50

    def dies(*args):
        calls.append(1)
        if len(calls) == limit:
            raise ConnectionError("network gone")
        return real(*args)

    monkeypatch.setattr(store, dies_in, dies)
    with pytest.raises(ConnectionError):
        legacy_import.import_file(path, OPERATOR)
    monkeypatch.setattr(store, dies_in, real)
    assert len([i for i in user_items() if i["pk"]["S"].startswith("USER#")]) == 200
    # When it is run again
    resumed = legacy_import.import_file(path, OPERATOR)
    # Then it skips what was done, finishes the rest under the ids already claimed, and each user exists once
    assert (resumed.skipped, resumed.imported, resumed.refused) == (200, 50, [])
    items = user_items()
    accounts = {i["pk"]["S"].removeprefix("USER#"): i for i in items if i["pk"]["S"].startswith("USER#")}
    claims = {i["pk"]["S"]: i["user_id"]["S"] for i in items if not i["pk"]["S"].startswith("USER#")}
    assert len(accounts) == 250 and len(claims) == 500
    assert set(claims.values()) == set(accounts)  # every claim names an account, every account has both claims
    for user_id, account in accounts.items():
        assert claims[f"EMAIL#{account['email']['S']}"] == claims[f"LEGACY#{account['legacy_id']['S']}"] == user_id


def test_a_row_refused_for_its_email_leaves_no_claim_and_imports_once_fixed(api, tmp_path):
    # Given a native account, and a Django user with the same address
    api.verified_user("twin@example.com")
    h = make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha1"])
    summary = imported(tmp_path, [row(80, "twin@example.com", h)])
    assert summary.refused[0].reason == "an account with this email exists already"
    # When the row is fixed (another address) and imported again
    fixed = imported(tmp_path, [row(80, "twin.legacy@example.com", h)])
    # Then it imports: the refused row had given its pk back
    assert (fixed.imported, fixed.refused) == (1, [])
    assert api.login("twin.legacy@example.com", DJANGO_PASSWORD)["user"]["email"] == "twin.legacy@example.com"


def test_bad_rows_are_refused_with_their_reason_and_the_rest_imported(tmp_path, api):
    good = make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha256"])
    records = [
        row(1, "ok@example.com", good),
        row(2, "not-an-email", good),
        row(3, "md5@example.com", "md5$salt$5f4dcc3b5aa765d61d8327deb882cf99"),
        row(4, "huge@example.com", "pbkdf2_sha256$999999999$salt$" + "A" * 43 + "="),
        row(5, "broken@example.com", "pbkdf2_sha256$1000$salt$not-base64"),
        row(6, "OK@example.com", good),  # the same address as row 1, once canonical
        row(1, "other@example.com", good),  # row 1's pk again
        row(8, "date@example.com", good, date_joined="yesterday"),
        row(9, "flag@example.com", good, isVerified="perhaps"),
        row(10, "phone@example.com", good, phone_number="call me"),
        row(11, "argon@example.com", "argon2$argon2id$v=19$m=9999999,t=2,p=8$c2FsdA$aGFzaA"),
        {"model": "auth.group", "pk": 1, "fields": {"name": "staff"}},
        "not a record",
        row(14, "ok2@example.com", good),
    ]
    # When the file is imported
    summary = imported(tmp_path, records)
    # Then the good rows are in, and each bad one is refused with its reason
    assert summary.imported == 2 and summary.rows == 14
    reasons = {r.row: r.reason for r in summary.refused}
    assert "email" in reasons[2]
    assert "unsupported hash format 'md5'" in reasons[3]
    assert "iteration count 999999999" in reasons[4]
    assert "malformed pbkdf2_sha256" in reasons[5]
    assert "row 1's" in reasons[6] and "email" in reasons[6]
    assert "pk is also row 1's" in reasons[7]
    assert "date_joined" in reasons[8]
    assert "isVerified" in reasons[9]
    assert "phone_number" in reasons[10]
    assert "argon2 parameters" in reasons[11]
    assert "auth.group" in reasons[12] and "no fields" in reasons[13]
    assert len(summary.refused) == 12
    # And no reason repeats a hash or password
    assert not any(good in r.reason or "5f4dcc" in r.reason for r in summary.refused)
    assert api.login("ok2@example.com", DJANGO_PASSWORD)["user"]["email"] == "ok2@example.com"


@pytest.mark.parametrize("plaintext", ["correct-horse-battery-staple", "Tr0ub4dor&3", "hunter2$again", "md5"])
def test_a_password_column_holding_a_plain_password_is_refused_without_echoing_it(tmp_path, plaintext):
    # Given a dump whose password column holds a password in the clear, not a Django hash
    path = dump(tmp_path, [row(1, "plain@example.com", plaintext)])
    # When it is imported with the command
    out, err = io.StringIO(), io.StringIO()
    assert import_users.run_import(path, out, err) == 1
    # Then the row is refused, and neither the report nor the reason repeats any of the password
    report = out.getvalue() + err.getvalue()
    assert "refused: row 1 (pk 1): " in report
    assert plaintext not in report and plaintext.split("$")[0] not in report.replace("plain@example.com", "")
    assert store.user_by_email("plain@example.com") is None


def test_an_email_a_native_account_holds_is_refused(api, tmp_path):
    api.verified_user("native@example.com")
    summary = imported(tmp_path, [row(70, "native@example.com", make_password(DJANGO_PASSWORD, hasher=FAST["bcrypt"]))])
    assert summary.imported == 0 and summary.refused[0].reason == "an account with this email exists already"
    assert api.login("native@example.com")  # the native password still works


def test_an_erased_imported_person_is_not_brought_back_by_importing_again(api, tmp_path):
    from carekey.flows import erasure

    # Given an imported person whose account was erased
    records = [row(95, "gone@example.com", make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha256"]))]
    imported(tmp_path, records)
    assert erasure.erase(store.user_by_email("gone@example.com"), OPERATOR, event="admin.delete_user", detail={})
    # When the same dump is imported again
    again = imported(tmp_path, records)
    # Then the person stays erased: refused with the reason, no account, no email claim
    assert again.imported == 0 and again.refused[0].reason == "this person's imported account was erased; not imported again"
    assert store.user_by_email("gone@example.com") is None
    assert not [i for i in user_items() if i["pk"]["S"].startswith(("USER#", "EMAIL#"))]


def test_a_csv_with_the_same_columns_imports_alike(api, tmp_path):
    django_hash = make_password(DJANGO_PASSWORD, hasher=FAST["bcrypt_sha256"])
    path = tmp_path / "users.csv"
    path.write_text(
        "pk,password,email,first_name,last_name,phone_number,isVerified,is_active,date_joined\n"
        f"5,{django_hash},csv@example.com,Alan,Turing,,True,True,2020-01-02 03:04:05+00:00\n"
        f"6,{django_hash},csv2@example.com,,,,False,1,2020-01-02 03:04:05\n"
        "7,,short\n"
    )
    summary = legacy_import.import_file(path, OPERATOR)
    assert summary.imported == 2 and [r.row for r in summary.refused] == [3]
    body = api.login("csv@example.com", DJANGO_PASSWORD)
    assert body["user"]["first_name"] == "Alan" and body["user"]["date_joined"] == "2020-01-02T03:04:05Z"
    assert store.user_by_email("csv2@example.com").is_verified is False


# ---- races ---------------------------------------------------------------------------------


def test_ten_parallel_first_logins_agree_and_leave_one_valid_native_hash(api, tmp_path, settings_override):
    # Given an imported user whose Django check takes a while
    settings_override(LOGIN_LOCKOUT_THRESHOLD="20")
    imported(tmp_path, [row(90, "race@example.com", PBKDF2PasswordHasher().encode(DJANGO_PASSWORD, "racesalt", iterations=50_000))])
    # When ten first logins arrive at once
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(lambda _: api.post("/login", {"email": "race@example.com", "password": DJANGO_PASSWORD}), range(10)))
    # Then each gets in, or is refused as any contended login is; never anything else
    statuses = [a.status for a in answers]
    assert statuses.count(200) >= 1 and set(statuses) <= {200, 401}, statuses
    assert all(a.json()["error"] == "Invalid credentials" for a in answers if a.status == 401)
    # And the stored hash is one valid native hash of that password, upgraded exactly once
    final = stored_hash("race@example.com")
    assert final.startswith(passwords.CURRENT + "$") and passwords.verify_password(DJANGO_PASSWORD, final)
    assert api.post("/login", {"email": "race@example.com", "password": DJANGO_PASSWORD}).status == 200
    assert stored_hash("race@example.com") == final


# ---- audit, upgrade counter, the command ---------------------------------------------------


def test_each_batch_is_audited_with_every_account_id_and_the_upgrade_is_counted(api, tmp_path, queues, capsys):
    # Given 120 imported users (two batches), one of whom logs in
    h = make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha256"])
    records = [row(21, "a1@example.com", h), row(22, "a2@example.com", make_password(None))]
    records += [row(100 + i, f"bulk{i}@example.com", h) for i in range(118)]
    imported(tmp_path, records)
    api.login("a1@example.com", DJANGO_PASSWORD)
    queues.drain()
    # Then the trail holds one event per batch, naming every account it created, and the run's totals
    trail = [audit_trail.stored_form(i) for i in audit_trail.AuditRecord.query(audit_trail.TRAIL)]
    batches = [r for r in trail if (r["event"], r["outcome"]) == ("import", "accounts_created")]
    assert [b["detail"]["accounts"] for b in batches] == ["100", "20"]
    assert batches[0]["detail"]["legacy_hash.pbkdf2_sha256"] == "99" and batches[0]["detail"]["legacy_hash.unusable"] == "1"
    named = [uid for b in batches for key, ids in b["detail"].items() if key.startswith("user_ids.") for uid in ids.split()]
    accounts = [i["user_id"]["S"] for i in user_items() if i["pk"]["S"].startswith("USER#")]
    assert sorted(named) == sorted(accounts) and len(named) == 120
    assert all(b["user_agent"] == "pytest-import" and b["user_id"] is None for b in batches)
    totals = [r for r in trail if r["outcome"] == "run_finished"]
    assert totals[0]["detail"] == {"rows": "120", "imported": "120", "skipped": "0", "refused": "0"}
    # And the person's own trail records the login that upgraded their hash
    user = store.user_by_email("a1@example.com")
    mine = audit_verify.trail_of(user.user_id)
    assert [(r["event"], r["outcome"], r["detail"]) for r in mine] == [("login", "success", {"legacy_hash_upgraded": "pbkdf2_sha256"})]
    assert audit_verify.verify().intact
    # And the upgrade counter says one of 120 is upgraded
    assert legacy_import.upgrade_status() == {"upgraded": 1, "unusable": 1, "pbkdf2_sha256": 118}
    import_users.status()
    out = capsys.readouterr().out
    assert "120 imported accounts: 1 on the service's own hash (1%); still on a Django hash: pbkdf2_sha256 118, unusable 1." in out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_summarises_and_draws_progress_only_on_a_terminal(tmp_path):
    h = make_password(DJANGO_PASSWORD, hasher=FAST["pbkdf2_sha1"])
    path = dump(tmp_path, [row(i, f"c{i}@example.com", h) for i in range(1, 4)] + [row(4, "bad", h)])
    out, err = io.StringIO(), io.StringIO()
    assert import_users.run_import(path, out, err) == 1
    assert err.getvalue() == ""
    assert "refused: row 4 (pk 4): email: " in out.getvalue()
    assert "4 rows in" in out.getvalue() and "3 imported, 0 skipped (imported before), 1 refused" in out.getvalue()
    assert "bad" not in out.getvalue().split("refused: row 4")[1].split("\n")[0].split(":", 2)[2].replace("email:", "")
    out, tty = io.StringIO(), Terminal()
    assert import_users.run_import(path, out, tty) == 1
    assert "\r[##############################] 4/4" in tty.getvalue() and "skipped 3" in tty.getvalue()
    assert "0 imported, 3 skipped" in out.getvalue()


def test_with_no_dev_server_and_no_stack_the_command_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(audit_tool, "STATE", tmp_path / "emulator.json")
    monkeypatch.delenv("STACK_NAME", raising=False)
    path = dump(tmp_path, [])
    assert import_users.main([str(path)]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("import-users: no running `make dev` found")
    # A stack that cannot be read is one line too
    monkeypatch.setenv("STACK_NAME", "no-such-stack")
    assert import_users.main([str(path)]) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("import-users: cannot read stack no-such-stack")
    assert import_users.main([str(tmp_path / "missing.json")]) == 2
    assert capsys.readouterr().out == f"import-users: no such file: {tmp_path / 'missing.json'}\n"
