"""One mailbox, one spelling: emails are stored and keyed in their canonical
form (NFKC, the IDNA form of the domain, lower-case), so that full-width and
Unicode-domain spellings of one address are one account and one limit key."""

from __future__ import annotations

import pytest
from carekey import otp, store
from carekey.schemas import normalise_email

from tests.client import PASSWORD

ATTACKER = "mallory-chose-this-42"

# One mailbox, five spellings.
ASCII = "ada@example.com"
FULL_WIDTH = "ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ"
SHOUTED = "  ADA@Example.COM "
# One mailbox at a Unicode domain, three spellings.
IDN = "ada@xn--bcher-kva.de"
IDN_UNICODE = "ada@bücher.de"
IDN_UPPER = "Ada@BÜCHER.DE"


def test_spellings_of_one_mailbox_have_one_canonical_form():
    assert {normalise_email(e) for e in (ASCII, FULL_WIDTH, SHOUTED)} == {ASCII}
    assert {normalise_email(e) for e in (IDN, IDN_UNICODE, IDN_UPPER)} == {IDN}
    # what is stored today (lower-case ASCII) is already canonical
    assert normalise_email("someone.else+tag@sub.example.org") == "someone.else+tag@sub.example.org"


def test_a_full_width_sign_up_is_the_existing_account_not_a_second_one(api, outbox):
    # Given an account
    api.verified_user(ASCII)
    outbox.clear()
    # When someone registers its full-width spelling with a password of their choice
    r = api.register(FULL_WIDTH, password=ATTACKER)
    # Then the answer shows the canonical address, the owner is told, and no second account exists
    assert r.status == 201 and r.json()["user"]["email"] == ASCII
    assert [m["subject"] for m in outbox.to(ASCII)] == ["Someone tried to register with your CareKey email"]
    assert store.user_by_email(FULL_WIDTH) is None
    # And the full-width spelling signs in to the one account with the owner's password only
    assert api.post("/login", {"email": FULL_WIDTH, "password": PASSWORD}).status == 200
    assert api.post("/login", {"email": FULL_WIDTH, "password": ATTACKER}).status == 403  # the sign-up proves nothing


def test_a_unicode_domain_is_stored_in_its_idna_form(api, outbox):
    # Given a sign-up with the Unicode spelling of the domain
    r = api.register(IDN_UNICODE)
    # Then the account is the IDNA spelling, and its code went there
    assert r.status == 201 and r.json()["user"]["email"] == IDN
    code = api.latest_code(IDN)
    # When it is verified and used through the other spellings
    assert api.post("/verify-otp", {"email": IDN_UPPER, "otp": code}).status == 200
    assert store.user_by_email(IDN).email == IDN
    assert api.login(IDN_UNICODE)["user"]["email"] == IDN
    assert api.login(IDN)["user"]["email"] == IDN


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/forgot-password", {}),
        ("/resend-password-reset-otp", {}),
        ("/resend-otp", {"context": "password_reset"}),
    ],
)
def test_code_requests_by_any_spelling_reach_the_one_mailbox(api, outbox, settings_override, path, body):
    # Given an account at a Unicode domain
    settings_override(OTP_RESEND_COOLDOWN_SECONDS="0")
    api.verified_user(IDN)
    outbox.clear()
    # When a code is asked for with the Unicode and the full-width-free upper-case spellings
    for spelling in (IDN_UNICODE, IDN_UPPER):
        r = api.post(path, {"email": spelling, **body})
        assert r.status == 200
        if "email" in r.json():
            assert r.json()["email"] == IDN
    # Then both codes went to the canonical address, and one of them resets the password
    assert len(outbox.to(IDN)) == 2
    new = "copper-orchard-window-58"
    reset = {"email": IDN_UNICODE, "otp": api.latest_code(IDN), "new_password": new, "confirm_password": new}
    assert api.post("/reset-password", reset).status == 200


def test_spellings_share_one_login_lock(api):
    # Given an account, and five wrong passwords under its full-width spelling
    api.verified_user(ASCII)
    for _ in range(5):
        assert api.post("/login", {"email": FULL_WIDTH, "password": "wrong-password-x"}).status == 401
    # Then the plain spelling is locked too: a respelling is not a fresh set of tries
    assert api.post("/login", {"email": SHOUTED, "password": PASSWORD}).status == 401
    assert store.lock_state(f"login#{otp.email_key(ASCII)}").attempts == 5


def test_spellings_share_one_code_budget(api):
    # Given a sign-up's code, and four wrong guesses under four spellings
    api.register(ASCII)
    code = api.latest_code(ASCII)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    for spelling in (FULL_WIDTH, SHOUTED, "ADA@EXAMPLE.COM", "Ａda@example.com"):
        assert api.post("/verify-otp", {"email": spelling, "otp": wrong}).status == 400
    # Then one more wrong guess under the plain spelling uses the code up
    assert api.post("/verify-otp", {"email": ASCII, "otp": wrong}).status == 400
    assert api.post("/verify-otp", {"email": FULL_WIDTH, "otp": code}).status == 400


def test_passkey_login_options_key_the_canonical_address(api):
    # When sign-in options are asked for with two spellings of one mailbox
    for spelling in (FULL_WIDTH, ASCII):
        assert api.post("/webauthn/login/options", {"email": spelling}).status == 200
    # Then both challenges are bound to the one canonical address
    hashes = {c.email_hash for c in store.ChallengeItem.scan() if c.purpose == "webauthn.login"}
    assert hashes == {otp.email_key(ASCII)}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/register", {"password": "ordinary-lantern-31", "password2": "ordinary-lantern-31"}),
        ("/login", {"password": "ordinary-lantern-31"}),
        ("/forgot-password", {}),
        ("/resend-otp", {"context": "registration"}),
        ("/resend-password-reset-otp", {}),
        ("/webauthn/login/options", {}),
    ],
)
@pytest.mark.parametrize("email", ["ada@☃.com", "ada@\u00ad.com", "ada@bü-.de", "ada@bü\u200d.de"])
def test_an_address_without_a_canonical_form_is_a_field_error(api, path, body, email):
    # When an address whose domain has no IDNA form is sent
    r = api.post(path, {"email": email, **body})
    # Then the answer is the documented 400 on the email field, never a 500
    assert r.status == 400, r.body
    assert list(r.json()) == ["email"] and r.json()["email"]
