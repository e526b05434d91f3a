"""The hosted sign-in page, driven through Debian's Chromium by Playwright: the
whole journey a person makes, codes read from the outbox, passkeys made and
used by a CDP virtual authenticator, and axe-core checking every view.

Nothing here downloads a browser: Playwright launches /usr/bin/chromium.
Screenshots of each step go to UI_SCREENSHOTS (docs/ui with `make screenshots`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from carekey.catalog import ENDPOINTS

from local.template import ROOT

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "violet-kettle-harbour-42"
NEW_PASSWORD = "amber-lantern-meadow-97"
LATEST_PASSWORD = "copper-willow-ferry-63"
NEW_EMAIL = "grace.hopper@example.org"
PHONE_AGENT = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"

HAS_TWO_STEP_SIGN_IN = any(ep.path == "/login/mfa" for ep in ENDPOINTS)
missing = [what for what, ok in (("Debian's chromium", CHROMIUM), ("axe-core (npm ci)", AXE.exists())) if not ok]
skip_without_browser = pytest.mark.skipif(
    bool(missing) and os.environ.get("CI") != "true", reason=f"{', '.join(missing)} not installed (CI installs them)"
)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


class Journey:
    """One person's browser tab on the page, with the checks every step makes."""

    def __init__(self, page, local_api, shots: Path) -> None:
        self.page = page
        self.api = local_api
        self.shots = shots
        self.step = 0
        self.csp_violations: list[str] = []
        page.on("console", lambda m: self.csp_violations.append(m.text) if "Content Security Policy" in m.text else None)
        self.axe_source = AXE.read_text()

    def view(self, name: str):
        from playwright.sync_api import expect

        section = self.page.locator(f"#view-{name}")
        expect(section).to_be_visible()
        return section

    def shoot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=str(self.shots / f"{self.step:02d}-{name}.png"), full_page=True)

    def accessible(self) -> None:
        # axe-core evaluated through DevTools (the page's CSP rightly refuses injected scripts).
        self.page.evaluate(self.axe_source + "\n;0")
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        serious = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert serious == [], serious

    def nothing_stored(self) -> None:
        stored = self.page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
        assert stored == [0, 0, ""], stored

    def notice(self) -> str:
        return self.page.locator("#notice").inner_text()

    def error(self) -> str:
        from playwright.sync_api import expect

        expect(self.page.locator("#error")).to_be_visible()
        return self.page.locator("#error").inner_text()


@skip_without_browser
def test_the_whole_journey_through_the_sign_in_page(browser, local_api, tmp_path):
    from playwright.sync_api import expect

    shots = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    # Passkeys need a domain, not an IP: the page is opened on localhost.
    base = local_api.url.replace("127.0.0.1", "localhost")
    email = "grace@example.com"

    context = browser.new_context(viewport={"width": 480, "height": 900}, device_scale_factor=1)
    page = context.new_page()
    j = Journey(page, local_api, shots)

    # --- the page and its headers
    response = page.goto(f"{base}/ui")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    j.view("signin")
    j.accessible()
    j.shoot("sign-in")

    # --- sign up: the API's field errors show beside their fields
    page.get_by_role("link", name="Create an account").click()
    signup = j.view("signup")
    signup.get_by_label("First name").fill("Grace")
    signup.get_by_label("Last name").fill("Hopper")
    signup.get_by_label("Email").fill(email)
    signup.get_by_label("Password", exact=True).fill(PASSWORD)
    signup.get_by_label("Password again").fill("something-else-entirely")
    signup.get_by_role("button", name="Create account").click()
    mismatch = page.locator("#signup-password2-error")
    expect(mismatch).to_be_visible()
    assert page.locator("#signup-password2").get_attribute("aria-invalid") == "true"
    assert "match" in mismatch.inner_text().lower()
    j.accessible()
    j.shoot("sign-up-field-errors")
    signup.get_by_label("Password again").fill(PASSWORD)
    signup.get_by_role("button", name="Create account").click()

    # --- the emailed code, read from the outbox
    verify = j.view("verify")
    expect(verify).to_contain_text(email)
    j.accessible()
    j.shoot("check-your-email")
    verify.get_by_label("Code").fill("000000" if local_api.code_for(email) != "000000" else "111111")
    verify.get_by_role("button", name="Verify email").click()
    assert "code" in j.error().lower()
    verify.get_by_label("Code").fill(local_api.code_for(email))
    verify.get_by_role("button", name="Verify email").click()
    signin = j.view("signin")
    expect(page.locator("#notice")).to_contain_text("verified")
    assert signin.get_by_label("Email").input_value() == email
    j.shoot("email-verified")

    # --- sign in: a wrong password shows the API's message; then with the keyboard alone
    signin.get_by_label("Password").fill("not-the-password-at-all")
    signin.get_by_role("button", name="Sign in", exact=True).click()
    assert "incorrect" in j.error().lower()
    j.shoot("sign-in-refused")
    signin.get_by_label("Password").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    account = j.view("account")
    expect(account.locator('[data-user="email"]')).to_have_text(email)
    expect(account.locator('[data-user="name"]')).to_have_text("Grace Hopper")
    expect(page.locator("#passkey-none")).to_be_visible()
    j.nothing_stored()
    j.accessible()
    j.shoot("account")

    # --- profile edit
    account.get_by_text("Edit your profile").click()
    account.get_by_label("First name").fill("Amazing Grace")
    account.get_by_label("Phone").fill("12")
    account.get_by_role("button", name="Save").click()
    expect(page.locator("#profile-phone-error")).to_be_visible()
    account.get_by_label("Phone").fill("+15551234567")
    account.get_by_role("button", name="Save").click()
    expect(page.locator("#notice")).to_contain_text("saved")
    expect(account.locator('[data-user="name"]')).to_have_text("Amazing Grace Hopper")
    expect(account.locator('[data-user="phone_number"]')).to_have_text("+15551234567")
    j.shoot("profile-saved")

    # --- a passkey, made by Chromium's virtual authenticator (internal, resident keys, user verification)
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    authenticator = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "ctap2Version": "ctap2_1",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )["authenticatorId"]
    account.get_by_text("Add a passkey").click()
    account.get_by_label("Name it").fill("Work laptop")
    account.get_by_label("Your password").fill("wrong-password-here")
    account.get_by_role("button", name="Create the passkey").click()
    expect(page.locator("#passkey-password-error")).to_contain_text("incorrect")
    account.get_by_label("Your password").fill(PASSWORD)
    account.get_by_role("button", name="Create the passkey").click()
    expect(page.locator("#notice")).to_contain_text("Work laptop")
    expect(page.locator("#passkey-list li")).to_have_count(1)
    expect(page.locator("#passkey-list")).to_contain_text("Work laptop")
    held = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(held) == 1 and held[0]["isResidentCredential"] is True
    assert local_api.emails_to(email)[-1]["subject"].startswith("A passkey was added")
    j.accessible()
    j.shoot("passkey-added")

    # --- change password
    account.get_by_text("Change your password").click()
    account.get_by_label("Current password").fill(PASSWORD)
    account.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    account.get_by_label("New password again").fill(NEW_PASSWORD)
    account.get_by_role("button", name="Change password").click()
    expect(page.locator("#notice")).to_contain_text("Password changed")
    assert local_api.emails_to(email)[-1]["subject"].endswith("password was changed")
    j.shoot("password-changed")

    # --- sign out, then back in with the passkey alone (no email, no password)
    page.get_by_role("button", name="Sign out", exact=True).click()
    j.view("signin")
    expect(page.locator("#notice")).to_contain_text("signed out")
    j.nothing_stored()
    j.shoot("signed-out")
    page.get_by_role("button", name="Sign in with a passkey").click()
    account = j.view("account")
    expect(account.locator('[data-user="email"]')).to_have_text(email)
    expect(page.locator("#passkey-list")).not_to_contain_text("last used never")
    assert cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"][0]["signCount"] >= 1
    j.nothing_stored()
    j.shoot("signed-in-with-passkey")

    # --- remove the passkey: it no longer signs in
    page.get_by_role("button", name="Remove the passkey Work laptop").click()
    expect(page.locator("#passkey-list li")).to_have_count(0)
    expect(page.locator("#passkey-none")).to_be_visible()
    assert local_api.emails_to(email)[-1]["subject"].startswith("A passkey was removed")
    j.shoot("passkey-removed")
    page.get_by_role("button", name="Sign out", exact=True).click()
    j.view("signin")
    page.get_by_role("button", name="Sign in with a passkey").click()
    assert "could not sign you in" in j.error()

    # --- forgot password -> code -> new password
    page.get_by_role("link", name="Forgot your password?").click()
    forgot = j.view("forgot")
    forgot.get_by_label("Email").fill(email)
    j.accessible()
    j.shoot("forgot-password")
    forgot.get_by_role("button", name="Send the code").click()
    reset = j.view("reset")
    reset.get_by_label("Code").fill(local_api.code_for(email))
    reset.get_by_label("New password", exact=True).fill(LATEST_PASSWORD)
    reset.get_by_label("New password again").fill(LATEST_PASSWORD)
    j.accessible()
    j.shoot("choose-a-new-password")
    reset.get_by_role("button", name="Set the new password").click()
    signin = j.view("signin")
    expect(page.locator("#notice")).to_contain_text("password is changed")
    signin.get_by_label("Password").fill(LATEST_PASSWORD)
    signin.get_by_role("button", name="Sign in", exact=True).click()
    j.view("account")
    j.shoot("signed-in-after-reset")

    # --- the same page on a phone
    page.set_viewport_size({"width": 390, "height": 844})
    j.accessible()
    j.shoot("account-on-a-phone")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"

    # --- a second sign-in on another device: the list shows both, and this one ends the other
    page.set_viewport_size({"width": 480, "height": 900})
    other_device = browser.new_context(viewport={"width": 390, "height": 844}, user_agent=PHONE_AGENT)
    phone = other_device.new_page()
    p = Journey(phone, local_api, tmp_path)
    phone.goto(f"{base}/ui")
    phone_signin = p.view("signin")
    phone_signin.get_by_label("Email").fill(email)
    phone_signin.get_by_label("Password").fill(LATEST_PASSWORD)
    phone_signin.get_by_role("button", name="Sign in", exact=True).click()
    p.view("account")
    expect(phone.locator("#session-list li")).to_have_count(2)
    page.get_by_role("button", name="Refresh the list").click()
    sessions = page.locator("#session-list li")
    expect(sessions).to_have_count(2)
    expect(sessions.filter(has_text="this device")).to_have_count(1)
    expect(sessions.filter(has_text="this device")).not_to_contain_text("Firefox on Android")
    expect(sessions.filter(has_text="Firefox on Android")).to_have_count(1)
    expect(page.get_by_role("button", name=re.compile(r"^End the session on "))).to_have_count(1)
    j.accessible()
    j.shoot("sessions")
    page.get_by_role("button", name=re.compile(r"^End the session on Firefox on Android")).click()
    expect(page.locator("#notice")).to_contain_text("is ended")
    expect(sessions).to_have_count(1)
    expect(sessions).to_contain_text("this device")
    j.shoot("session-ended")
    # the other device is signed out at its next request
    phone.get_by_text("Edit your profile").click()
    phone.get_by_role("button", name="Save").click()
    p.view("signin")
    assert "session has ended" in p.error()
    other_device.close()

    # --- change the email: password and new address, then the code sent to the new address
    account = j.view("account")
    account.get_by_text("Change your email").click()
    step_one = page.locator("#form-email")
    step_one.get_by_label("New email").fill(" Grace.Hopper@Example.org ")
    step_one.get_by_label("Account password").fill("not-the-password-at-all")
    step_one.get_by_role("button", name="Send a code to the new email").click()
    expect(page.locator("#email-password-error")).to_contain_text("incorrect")
    step_one.get_by_label("Account password").fill(LATEST_PASSWORD)
    step_one.get_by_role("button", name="Send a code to the new email").click()
    step_two = page.locator("#form-email-code")
    expect(step_two).to_be_visible()
    expect(step_two).to_contain_text(NEW_EMAIL)
    j.accessible()
    j.shoot("change-email-code")
    step_two.get_by_label("Code from the new email").fill(local_api.code_for(NEW_EMAIL))
    step_two.get_by_role("button", name="Change my email").click()
    expect(page.locator("#notice")).to_contain_text(f"now {NEW_EMAIL}")
    expect(account.locator('[data-user="email"]')).to_have_text(NEW_EMAIL)
    expect(page.locator("#who")).to_have_text(NEW_EMAIL)
    assert local_api.emails_to(email)[-1]["subject"].endswith("account was changed")
    j.accessible()
    j.shoot("email-changed")

    # --- sign out everywhere; no CSP violation along the way
    page.get_by_role("button", name="Sign out everywhere").click()
    j.view("signin")
    assert j.csp_violations == []
    context.close()


@skip_without_browser
def test_the_page_runs_no_injected_script_and_refuses_to_be_framed(browser, local_api):
    # Given the sign-in page
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    base = local_api.url.replace("127.0.0.1", "localhost")
    page.goto(f"{base}/ui")
    # When a script is injected into it as inline code
    page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.injected = 1'; document.body.append(s); }")
    # Then the CSP refuses it
    assert page.evaluate("() => window.injected === undefined")
    assert any("Content Security Policy" in m for m in messages)

    # And a page elsewhere cannot frame it
    page.set_content(f'<iframe title="framed" src="{base}/ui"></iframe>')
    page.wait_for_timeout(1500)
    assert all(frame.query_selector("#app") is None for frame in page.frames)
    assert any("frame-ancestors" in m for m in messages), messages
    context.close()


@skip_without_browser
@pytest.mark.skipif(not HAS_TWO_STEP_SIGN_IN, reason="two-step sign-in (/login/mfa) is not in this build")
def test_two_step_sign_in_through_the_page(browser, local_api, tmp_path):
    import pyotp
    from playwright.sync_api import expect

    # Given an account with an authenticator app and its recovery codes (set up over the API)
    email = "two.step@example.com"
    tokens = local_api.signed_in_user(email, PASSWORD)
    setup = local_api.post("/mfa/totp/setup", {"password": PASSWORD}, token=tokens["access"])
    assert setup.status_code == 200, setup.text
    confirmed = local_api.post("/mfa/totp/confirm", {"code": pyotp.TOTP(setup.json()["secret"]).now()}, token=tokens["access"])
    assert confirmed.status_code == 200, confirmed.text
    recovery = confirmed.json()["recovery_codes"]

    shots = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 480, "height": 900})
    page = context.new_page()
    j = Journey(page, local_api, shots)
    j.step = 50
    base = local_api.url.replace("127.0.0.1", "localhost")
    page.goto(f"{base}/ui")

    # When they sign in with their password, the page asks for the second step
    signin = j.view("signin")
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(PASSWORD)
    signin.get_by_role("button", name="Sign in", exact=True).click()
    second = j.view("mfa")
    j.accessible()
    j.shoot("second-step")
    # a wrong code shows the API's message; a recovery code signs them in
    second.get_by_label("Code").fill("12345678")
    second.get_by_role("button", name="Continue").click()
    j.error()
    j.shoot("second-step-refused")
    second.get_by_label("Code").fill(recovery[0])
    second.get_by_role("button", name="Continue").click()
    account = j.view("account")
    expect(account.locator('[data-user="email"]')).to_have_text(email)
    j.nothing_stored()
    assert j.csp_violations == []
    context.close()


@skip_without_browser
@pytest.mark.skipif(not HAS_TWO_STEP_SIGN_IN, reason="two-step sign-in (/login/mfa) is not in this build")
def test_setting_up_an_authenticator_app_in_the_account_view(browser, local_api, tmp_path):
    import base64

    import pyotp
    from playwright.sync_api import expect

    # Given a signed-in person on their account view
    email = "enrol.app@example.com"
    local_api.signed_in_user(email, PASSWORD)
    shots = Path(os.environ.get("UI_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 480, "height": 1400})
    page = context.new_page()
    j = Journey(page, local_api, shots)
    j.step = 60
    page.goto(local_api.url.replace("127.0.0.1", "localhost") + "/ui")
    signin = j.view("signin")
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(PASSWORD)
    signin.get_by_role("button", name="Sign in", exact=True).click()
    account = j.view("account")
    expect(page.locator("#twostep-state")).to_contain_text("Off")

    # When they open the set-up, give their password, and see the QR code and the key
    account.get_by_text("Set up an authenticator app").click()
    page.locator("#twostep-password").fill(PASSWORD)
    account.get_by_role("button", name="Show the QR code").click()
    expect(page.locator("#twostep-enrol")).to_be_visible()
    secret = page.locator("#twostep-secret").inner_text()
    assert len(base64.b32decode(secret)) == 20
    qr = page.locator("#twostep-qr")
    assert qr.get_attribute("src").startswith("data:image/svg+xml;base64,")
    assert page.evaluate("() => document.getElementById('twostep-qr').naturalWidth") > 0  # the SVG renders under the CSP
    j.accessible()
    j.shoot("authenticator-qr")

    # And confirm with the app's code (pyotp stands in for the phone)
    page.locator("#twostep-code").fill(pyotp.TOTP(secret).now())
    account.get_by_role("button", name="Turn on two-step sign-in").click()

    # Then two-step sign-in is on, the ten recovery codes are shown once, and nothing is stored
    codes = page.locator("#twostep-recovery-list li")
    expect(codes).to_have_count(10)
    expect(page.locator("#twostep-state")).to_contain_text("On")
    expect(page.locator("#twostep-enrol")).to_be_hidden()
    assert page.locator("#twostep-secret").inner_text() == ""
    j.accessible()
    j.shoot("authenticator-recovery-codes")
    recovery = codes.first.inner_text()
    j.nothing_stored()

    # And the next sign-in asks for the second step, which a recovery code passes
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("#twostep-recovery-list li")).to_have_count(0)
    signin = j.view("signin")
    signin.get_by_label("Email").fill(email)
    signin.get_by_label("Password").fill(PASSWORD)
    signin.get_by_role("button", name="Sign in", exact=True).click()
    second = j.view("mfa")
    second.get_by_label("Code").fill(recovery)
    second.get_by_role("button", name="Continue").click()
    j.view("account")
    assert j.csp_violations == []
    context.close()


@skip_without_browser
@pytest.mark.skipif(not HAS_TWO_STEP_SIGN_IN, reason="two-step sign-in (/login/mfa) is not in this build")
def test_a_required_policy_makes_the_page_set_up_an_app_before_the_account(browser, tmp_path_factory, tmp_path):
    import pyotp
    from playwright.sync_api import expect

    from local import runner

    # Given a deployment that requires two-step sign-in, and an account without it
    required = runner.start(tmp_path_factory.mktemp("required-api"), BCRYPT_COST="4", MFA_POLICY="required")
    try:
        email = "must.enrol@example.com"
        assert required.post("/register", {"email": email, "password": PASSWORD, "password2": PASSWORD}).status_code == 201
        assert required.post("/verify-otp", {"email": email, "otp": required.code_for(email)}).status_code == 200
        context = browser.new_context(viewport={"width": 480, "height": 1400})
        page = context.new_page()
        j = Journey(page, required, Path(os.environ.get("UI_SCREENSHOTS") or tmp_path))
        j.step = 70
        page.goto(required.url.replace("127.0.0.1", "localhost") + "/ui")

        # When they sign in with their password
        signin = j.view("signin")
        signin.get_by_label("Email").fill(email)
        signin.get_by_label("Password").fill(PASSWORD)
        signin.get_by_role("button", name="Sign in", exact=True).click()

        # Then the page sets up an authenticator app first: a QR code and the key
        enrol = j.view("enrol")
        assert page.evaluate("() => document.getElementById('enrol-qr').naturalWidth") > 0
        secret = page.locator("#enrol-secret").inner_text()
        j.accessible()
        j.shoot("required-enrolment")
        # a wrong code is refused with the API's message
        enrol.get_by_label("Code from the app").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
        enrol.get_by_role("button", name="Turn on and sign in").click()
        j.error()
        # And the app's code turns it on and signs them in, showing the recovery codes once
        enrol.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
        enrol.get_by_role("button", name="Turn on and sign in").click()
        account = j.view("account")
        expect(account.locator('[data-user="email"]')).to_have_text(email)
        expect(page.locator("#twostep-recovery-list li")).to_have_count(10)
        expect(page.locator("#twostep-state")).to_contain_text("On")
        assert page.locator("#enrol-secret").inner_text() == ""
        j.nothing_stored()
        assert j.csp_violations == []
        context.close()
    finally:
        required.stop()
