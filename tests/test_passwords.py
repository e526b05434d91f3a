"""The password policy (NIST SP 800-63B) and hashing."""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata

import argon2
import bcrypt
import pytest
from carekey import keys, passwords, store

from tests.client import PASSWORD


def test_minimum_length_is_eight_and_configurable(settings_override):
    assert any("too short" in p for p in passwords.policy_errors("abc-def"))
    assert passwords.policy_errors("abc-defg") == []
    settings_override(PASSWORD_MIN_LENGTH="12")
    assert any("at least 12" in p for p in passwords.policy_errors("abc-defg-hi"))


def test_long_passphrases_are_accepted_without_composition_rules():
    assert passwords.policy_errors("x" + "correct horse battery staple " * 2 + "y" * 6) == []
    assert passwords.policy_errors("all lower case words here") == []
    assert len("z" * 3 + "q" * 61) == 64
    assert passwords.policy_errors("zq" * 32) == []


def test_too_long_is_refused_with_the_limit():
    assert any("at most 256" in p for p in passwords.policy_errors("ab" * 200))


def test_common_and_breached_passwords_are_refused():
    for pw in ("password1", "Password1", "qwertyuiop", "iloveyou", "trustno1"):
        assert any("too common" in p for p in passwords.policy_errors(pw)), pw


def test_context_words_are_refused():
    assert passwords.policy_errors("marguerite-2024", email="marguerite@example.com")
    assert passwords.policy_errors("hello-Lovelace-1", first_name="Ada", last_name="Lovelace")
    assert any("service" in p for p in passwords.policy_errors("my-carekey-pass"))


def test_nfkc_normalisation_makes_equivalent_forms_one_password():
    stored = passwords.hash_password("ﬁsh-and-chips-42")  # U+FB01 ligature
    assert passwords.verify_password("fish-and-chips-42", stored)


def test_no_truncation_past_72_bytes():
    base = "a" * 80
    stored = passwords.hash_password(base + "1")
    assert passwords.verify_password(base + "1", stored)
    assert not passwords.verify_password(base + "2", stored)


def test_hash_format_and_rehash_detection(settings_override):
    # Given a password hashed at the configured Argon2id parameters
    stored = passwords.hash_password("some-long-passphrase")
    # Then it names its format, Argon2id's variant and parameters
    assert stored.startswith("argon2id-hmac-sha256$$argon2id$v=19$m=1024,t=1,p=1$")
    assert not passwords.needs_rehash(stored)
    # When the parameters change, it needs a rehash (either of them)
    settings_override(ARGON2_MEMORY_KIB="2048")
    assert passwords.needs_rehash(stored)
    settings_override(ARGON2_MEMORY_KIB="1024", ARGON2_ITERATIONS="2")
    assert passwords.needs_rehash(stored)
    # And a hash made at the new parameters still verifies the same password, and the old one too
    assert passwords.verify_password("some-long-passphrase", passwords.hash_password("some-long-passphrase"))
    assert passwords.verify_password("some-long-passphrase", stored)


def test_defaults_are_owasp_argon2id_and_bcrypt_twelve_for_earlier_hashes(monkeypatch):
    from carekey.config import Settings

    for name in ("BCRYPT_COST", "ARGON2_MEMORY_KIB", "ARGON2_ITERATIONS"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings.model_validate({})
    assert (defaults.argon2_memory_kib, defaults.argon2_iterations, defaults.bcrypt_cost) == (47104, 1, 12)


def test_the_template_keeps_argon2id_at_or_above_owasps_floor():
    from local.template import Stack

    params = Stack().template["Parameters"]
    assert params["Argon2MemoryKiB"]["MinValue"] >= 19456 and params["Argon2MemoryKiB"]["Default"] >= 47104
    assert params["Argon2Iterations"]["Default"] >= 1
    # And the hash fits the password functions with room to spare
    assert params["Argon2MemoryKiB"]["Default"] / 1024 + 100 <= min(params["PasswordFunctionMemorySize"]["AllowedValues"])


def test_bcrypt_era_hashes_verify_and_need_a_rehash(settings_override):
    # Given an account hashed before Argon2id (the keyed pre-hash under bcrypt)
    stored = passwords.bcrypt_hash("some-long-passphrase", cost=4)
    assert stored.startswith("bcrypt-hmac-sha256$$2b$04$")
    # Then it verifies the right password only, and the next login rehashes it
    assert passwords.verify_password("some-long-passphrase", stored)
    assert not passwords.verify_password("some-long-passphrasf", stored)
    assert passwords.needs_rehash(stored)


# ---- length as typed and as normalised -------------------------------------------------


def test_one_character_that_normalises_into_eighteen_is_too_short():
    # U+FDFA is one character; NFKC expands it to 18, which used to pass the minimum of 8
    assert len(unicodedata.normalize("NFKC", "\ufdfa")) == 18
    assert any("too short" in p for p in passwords.policy_errors("\ufdfa"))
    assert any("too short" in p for p in passwords.policy_errors("\ufdfa\ufdfa-x"))
    assert passwords.policy_errors("\ufdfa" + "harbour-x") == []  # nine typed characters are enough


def test_a_password_that_normalises_past_the_maximum_is_too_long():
    assert len("\ufdfa" * 20) == 20
    assert any("too long" in p for p in passwords.policy_errors("\ufdfa" * 20))


def test_sign_up_refuses_a_one_character_password(api):
    r = api.register("ligature@example.com", password="\ufdfa")
    assert r.status == 400 and any("too short" in m for m in r.json()["password"])


# ---- a keyed pre-hash ------------------------------------------------------------------


def _sha256_prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(unicodedata.normalize("NFKC", password).encode()).digest())


def test_a_stolen_hash_cannot_be_checked_with_sha256_alone():
    # Given a stored hash and an attacker who knows the password candidate but not the pepper
    stored = passwords.hash_password("violet-kettle-harbour-42")
    argon2_part = stored.split("$", 1)[1]
    # When they feed Argon2id the password itself, or its unkeyed SHA-256 pre-hash
    # Then neither matches: the pre-hash needs the pepper
    hasher = argon2.PasswordHasher()
    for candidate in (
        b"violet-kettle-harbour-42",
        _sha256_prehash("violet-kettle-harbour-42"),
        hashlib.sha256(b"violet-kettle-harbour-42").hexdigest().encode(),
    ):
        with pytest.raises(argon2.exceptions.VerifyMismatchError):
            hasher.verify(argon2_part, candidate)
    assert passwords.verify_password("violet-kettle-harbour-42", stored)


def test_the_pre_hash_depends_on_the_pepper(monkeypatch):
    stored = passwords.hash_password("violet-kettle-harbour-42")
    monkeypatch.setattr(keys, "_pepper", lambda: b"another pepper")
    assert not passwords.verify_password("violet-kettle-harbour-42", stored)


def _legacy_hash(password: str) -> str:
    return "bcrypt-sha256$" + bcrypt.hashpw(_sha256_prehash(password), bcrypt.gensalt(4)).decode()


def test_earlier_hashes_still_verify_and_need_a_rehash(settings_override):
    settings_override(BCRYPT_COST="4")
    legacy = _legacy_hash("some-long-passphrase")
    assert passwords.verify_password("some-long-passphrase", legacy)
    assert not passwords.verify_password("some-long-passphrasf", legacy)
    assert passwords.needs_rehash(legacy)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "$",
        "$2b$04$" + "A" * 53,
        "bcrypt-sha256$",
        "bcrypt-hmac-sha256$not-bcrypt",
        "pbkdf2_sha256$1$salt$hash",
        "unknown$x",
        "argon2id-hmac-sha256$",
        "argon2id-hmac-sha256$not-argon2",
        "argon2id-hmac-sha256$$argon2id$v=19$m=1024,t=1,p=1$AAAA$AAAA",
    ],
)
def test_unknown_or_malformed_hashes_match_nothing(stored):
    assert passwords.verify_password("some-long-passphrase", stored) is False
    assert passwords.needs_rehash(stored)


def _spy_on_argon2(monkeypatch, runs: str) -> list[bytes]:
    """Record every hash Argon2 is asked to verify; run only `runs` (an absurd one must never run here)."""
    asked: list[bytes] = []
    real = argon2._password_hasher.verify_secret

    def verify_secret(encoded: bytes, secret: bytes, kind: argon2.Type) -> bool:
        asked.append(encoded)
        if encoded != runs.encode():
            raise argon2.exceptions.VerifyMismatchError("not run by the test")
        return real(encoded, secret, kind)

    monkeypatch.setattr(argon2._password_hasher, "verify_secret", verify_secret)
    return asked


@pytest.mark.parametrize(
    "asks",
    ["m=4194304,t=1,p=1", "m=1024,t=4294967295,p=1", "m=1024,t=11,p=1", "m=1048577,t=1,p=1", "m=65536,t=1,p=64"],
    ids=["4 GiB", "2^32 passes", "11 passes", "over 1 GiB", "64 lanes"],
)
def test_a_stored_argon2_hash_asking_for_more_than_any_setting_makes_matches_nothing_without_running(monkeypatch, asks):
    # Given the right password's hash as the service makes it, and the same hash in a
    # row (corrupt, or written by hand) that asks Argon2 for more than any setting can
    made = passwords.hash_password(PASSWORD)
    absurd = made.replace("m=1024,t=1,p=1", asks)
    asked = _spy_on_argon2(monkeypatch, runs=made.split("$", 1)[1])
    # When the right password is checked against it
    # Then it matches nothing, and Argon2 is never asked for that memory or time
    assert passwords.verify_password(PASSWORD, absurd) is False
    assert asked == []
    # While the hash as made still runs and matches
    assert passwords.verify_password(PASSWORD, made) and len(asked) == 1


def test_a_stored_argon2_hash_needing_more_memory_than_the_function_has_matches_nothing(monkeypatch):
    # Given a 512 MB password function, and a stored hash asking for 1 GiB (a setting's ceiling)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
    made = passwords.hash_password(PASSWORD)
    big = made.replace("m=1024,", "m=1048576,")
    asked = _spy_on_argon2(monkeypatch, runs=made.split("$", 1)[1])
    # When the right password is checked against it
    # Then it matches nothing rather than exhausting the function's memory; the hash as made runs
    assert passwords.verify_password(PASSWORD, big) is False and asked == []
    assert passwords.verify_password(PASSWORD, made) and len(asked) == 1
    # And in a 2048 MB function, the 1 GiB hash is run (and, here, refused by the spy)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
    assert passwords.verify_password(PASSWORD, big) is False and len(asked) == 2


@pytest.mark.parametrize("fmt", [passwords.BCRYPT, "bcrypt-sha256"])
def test_a_stored_bcrypt_hash_dearer_than_any_setting_makes_matches_nothing_without_running(monkeypatch, fmt):
    # Given a bcrypt-era row whose cost was changed to 31 (2^31 rounds: days of CPU)
    made = passwords.bcrypt_hash(PASSWORD, cost=4)
    absurd = f"{fmt}$" + made.split("$", 1)[1].replace("$2b$04$", "$2b$31$")
    asked: list[bytes] = []
    monkeypatch.setattr(passwords.bcrypt, "checkpw", lambda secret, stored: asked.append(stored) or False)
    # When a password is checked against it
    # Then it matches nothing and bcrypt is never run
    assert passwords.verify_password(PASSWORD, absurd) is False
    assert asked == []
    # While cost 16, the ceiling of BCRYPT_COST, would be run
    assert passwords.verify_password(PASSWORD, absurd.replace("$2b$31$", "$2b$16$")) is False and len(asked) == 1


def test_formats_are_dispatched_by_their_prefix():
    seen = []

    @passwords.hash_format("test_format")
    def _verify(password: str, rest: str) -> bool:
        seen.append(rest)
        return password == "right-answer"

    try:
        assert passwords.verify_password("right-answer", "test_format$1$salt$digest")
        assert seen == ["1$salt$digest"]
        assert passwords.format_of("test_format$1$salt$digest") == "test_format"
    finally:
        passwords._FORMATS.pop("test_format")


@pytest.mark.parametrize("earlier", ["unkeyed bcrypt", "keyed bcrypt", "argon2id at other parameters"])
def test_login_rehashes_an_earlier_hash_into_the_current_format(api, settings_override, earlier):
    # Given an account whose password was stored in an earlier format
    api.verified_user("legacy@example.com")
    user = store.user_by_email("legacy@example.com")
    if earlier == "argon2id at other parameters":
        settings_override(ARGON2_MEMORY_KIB="2048")
        old = passwords.hash_password(PASSWORD)
        settings_override(ARGON2_MEMORY_KIB="1024")
    else:
        old = _legacy_hash(PASSWORD) if earlier == "unkeyed bcrypt" else passwords.bcrypt_hash(PASSWORD, cost=4)
    store.UserItem(user.pk).update(actions=[store.UserItem.password_hash.set(old)])
    # When its owner logs in
    api.login("legacy@example.com")
    # Then the stored hash is Argon2id at the configured parameters and still opens the account
    stored = store.user_by_email("legacy@example.com").password_hash
    assert stored != old and stored.startswith("argon2id-hmac-sha256$$argon2id$v=19$m=1024,t=1,p=1$")
    assert passwords.verify_password(PASSWORD, stored) and not passwords.needs_rehash(stored)
    api.login("legacy@example.com")


# ---- a new password must be new --------------------------------------------------------


def test_change_password_refuses_the_current_password(api):
    api.verified_user("same@example.com")
    access = api.login("same@example.com")["access"]
    body = {"current_password": PASSWORD, "new_password": PASSWORD, "confirm_password": PASSWORD}
    r = api.post("/change-password", body, token=access)
    assert r.status == 400 and r.json() == {"new_password": [passwords.SAME_AS_CURRENT]}
    # An NFKC-equivalent spelling is the same password
    ligature = PASSWORD.replace("fi", "\ufb01") if "fi" in PASSWORD else "\uff56" + PASSWORD[1:]
    body = {"current_password": PASSWORD, "new_password": ligature, "confirm_password": ligature}
    assert api.post("/change-password", body, token=access).json() == {"new_password": [passwords.SAME_AS_CURRENT]}


def test_reset_password_refuses_the_current_password_and_keeps_the_code(api, settings_override):
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user("same-reset@example.com")
    api.post("/forgot-password", {"email": "same-reset@example.com"})
    code = api.latest_code("same-reset@example.com")
    same = {"email": "same-reset@example.com", "otp": code, "new_password": PASSWORD, "confirm_password": PASSWORD}
    r = api.post("/reset-password", same)
    assert r.status == 400 and r.json() == {"new_password": [passwords.SAME_AS_CURRENT]}
    fresh = {**same, "new_password": "bright-harbour-compass-31", "confirm_password": "bright-harbour-compass-31"}
    assert api.post("/reset-password", fresh).status == 200
    api.login("same-reset@example.com", "bright-harbour-compass-31")


def test_a_secret_anywhere_in_a_log_line_is_redacted(service_logs):
    # Given each format's hash, a JWT and a refresh token, and the service's logger
    from carekey.observability import logger

    argon2_hash = passwords.hash_password("violet-kettle-harbour-42").split("$", 1)[1]
    bcrypt_hash = passwords.bcrypt_hash("violet-kettle-harbour-42", cost=4).split("$", 1)[1]
    jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    refresh = "0b1e6f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b~6c7d8e9f-0a1b-4c2d-8e3f-4a5b6c7d8e9f~3~" + "ab" * 32
    secrets_ = (argon2_hash, bcrypt_hash, jwt, refresh)
    # When they slip into a message, its arguments, an extra key, an appended key and an exception
    logger.info(f"hashes {argon2_hash} and %s", bcrypt_hash, extra={"detail": {"token": jwt}})
    logger.append_keys(session=refresh)
    try:
        try:
            raise ValueError(f"bad token {jwt}")
        except ValueError:
            logger.exception("refused")
    finally:
        logger.remove_keys(["session"])
    # Then no line holds any of them, each is marked where it was, and the lines are still JSON
    text = service_logs.getvalue()
    lines = {line["level"]: line for line in map(json.loads, text.splitlines())}
    for secret in secrets_:
        assert secret not in text
    assert lines["INFO"]["message"] == "hashes [redacted] and [redacted]"
    assert lines["INFO"]["detail"] == {"token": "[redacted]"}
    assert lines["ERROR"]["session"] == "[redacted]" and lines["ERROR"]["exception"].endswith("bad token [redacted]")
