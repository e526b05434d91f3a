"""The password policy (NIST SP 800-63B) and hashing."""

from __future__ import annotations

from carekey import passwords


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
    stored = passwords.hash_password("ﬁsh-and-chips-42", cost=4)  # U+FB01 ligature
    assert passwords.verify_password("fish-and-chips-42", stored)


def test_no_truncation_past_72_bytes():
    base = "a" * 80
    stored = passwords.hash_password(base + "1", cost=4)
    assert passwords.verify_password(base + "1", stored)
    assert not passwords.verify_password(base + "2", stored)


def test_hash_format_and_rehash_detection(settings_override):
    stored = passwords.hash_password("some-long-passphrase", cost=4)
    assert stored.startswith("bcrypt-sha256$$2b$04$")
    settings_override(BCRYPT_COST="4")
    assert not passwords.needs_rehash(stored)
    settings_override(BCRYPT_COST="12")
    assert passwords.needs_rehash(stored)


def test_default_cost_is_twelve(monkeypatch):
    from carekey.config import Settings

    monkeypatch.delenv("BCRYPT_COST", raising=False)
    assert Settings.model_validate({}).bcrypt_cost == 12
