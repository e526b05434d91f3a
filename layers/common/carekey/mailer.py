"""Email through Amazon SES (v2 API): a text and an HTML body for each message.

Messages carry the code, the portal link and nothing about the person: no
name, no health information.  Nothing goes to a suppressed address (one that
bounced or complained).  A send failure is reported to the caller and logged
by its error code only.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from carekey import otp, store
from carekey.aws import client
from carekey.config import settings
from carekey.observability import logger, metrics


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str


def _page(title: str, paragraphs: list[str], code: str | None = None) -> str:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    code_html = (
        f'<p style="font-size:28px;font-weight:bold;letter-spacing:6px;font-family:monospace">{html.escape(code)}</p>'
        if code
        else ""
    )
    portal = html.escape(settings().portal_url, quote=True)
    return (
        "<!doctype html><html><body style=\"font-family:sans-serif;color:#222\">"
        f"<h2>{html.escape(title)}</h2>{code_html}{body}"
        f'<p><a href="{portal}">{portal}</a></p>'
        "</body></html>"
    )


def _code_email(to: str, code: str, action: str, subject: str) -> Email:
    cfg = settings()
    minutes = cfg.otp_ttl_minutes
    lines = [
        f"Your {cfg.service_name} code to {action} is: {code}",
        f"It expires in {minutes} minutes and can be used once.",
        "If you did not ask for it, ignore this email; nothing changes without the code.",
        "Never share this code. We will never ask you for it.",
    ]
    return Email(
        to=to,
        subject=subject,
        text="\n\n".join(lines + [cfg.portal_url]) + "\n",
        html=_page(subject, lines[1:], code=code),
    )


def verification_code(to: str, code: str) -> Email:
    return _code_email(to, code, "verify your email", f"Your {settings().service_name} verification code")


def reset_code(to: str, code: str) -> Email:
    return _code_email(to, code, "reset your password", f"Your {settings().service_name} password reset code")


def email_change_code(to: str, code: str) -> Email:
    return _code_email(to, code, "make this your account's email", f"Your {settings().service_name} email change code")


def _notice(to: str, subject: str, lines: list[str]) -> Email:
    return Email(to=to, subject=subject, text="\n\n".join([*lines, settings().portal_url]) + "\n", html=_page(subject, lines))


def account_exists_notice(to: str) -> Email:
    return _notice(
        to,
        f"Someone tried to register with your {settings().service_name} email",
        [
            "Someone tried to create an account with this email address, which already has one.",
            "If it was you, sign in, or reset your password if you forgot it.",
            "If it was not you, you need do nothing: your account is unchanged.",
        ],
    )


def account_locked_notice(to: str) -> Email:
    return _notice(
        to,
        f"Sign-in to your {settings().service_name} account is paused",
        [
            "Several wrong passwords were entered for your account, so signing in is paused for a few minutes.",
            "If it was you, wait and try again, or reset your password: a completed reset lets you sign in at once.",
            "If it was not you, your account is safe; resetting your password ends any pause straight away.",
        ],
    )


def password_changed_notice(to: str) -> Email:
    return _notice(
        to,
        f"Your {settings().service_name} password was changed",
        [
            "The password of your account was just changed, and every device was signed out.",
            "If you did this, you need do nothing.",
            "If you did not, reset your password now and contact support.",
        ],
    )


def passkey_added_notice(to: str) -> Email:
    return _notice(
        to,
        f"A passkey was added to your {settings().service_name} account",
        [
            "A new passkey was just added to your account; it can now sign you in.",
            "If you did this, you need do nothing.",
            "If you did not, sign in, remove the passkey, change your password and contact support.",
        ],
    )


def passkey_removed_notice(to: str) -> Email:
    return _notice(
        to,
        f"A passkey was removed from your {settings().service_name} account",
        [
            "A passkey was just removed from your account; it can no longer sign you in.",
            "If you did this, you need do nothing.",
            "If you did not, change your password now and contact support.",
        ],
    )


def email_taken_notice(to: str) -> Email:
    return _notice(
        to,
        f"Someone tried to move a {settings().service_name} account to your email",
        [
            "Someone signed in to another account asked to change its email to this address, which already has an account.",
            "Nothing was changed, and no code was sent.",
            "If it was you, you need do nothing. If it was not, you need do nothing either: your account is unchanged.",
        ],
    )


def email_changed_notice(to: str, new_email: str) -> Email:
    masked = mask_email(new_email)
    return _notice(
        to,
        f"The email of your {settings().service_name} account was changed",
        [
            f"The email of your account was just changed from this address to {masked}, and every other device was signed out.",
            "This address can no longer sign in to it.",
            "If you did this, you need do nothing. If you did not, contact support now.",
        ],
    )


def mask_email(email: str) -> str:
    """An address shown in a notice without spelling it out: j***@e***.com."""
    local, _, domain = email.partition("@")
    name, dot, tld = domain.rpartition(".")
    return f"{local[:1]}***@{name[:1]}***{dot}{tld}" if name else f"{local[:1]}***@{domain[:1]}***"


def session_ended_notice(to: str) -> Email:
    return _notice(
        to,
        f"A {settings().service_name} session of yours was ended",
        [
            "A sign-in token of your account that had already been replaced was used again, so we signed that device out.",
            "This can happen when an app is restored from a backup. If you see no reason for it, someone may have copied the token:",
            "change your password, which signs out every device.",
        ],
    )


def account_deleted_notice(to: str) -> Email:
    return _notice(
        to,
        f"Your {settings().service_name} account was deleted",
        [
            "Your account and the personal details it held were just deleted at your request, and every device was signed out.",
            "If you did this, you need do nothing; you may register again with this address at any time.",
            "If you did not, someone had your password: contact support.",
        ],
    )


def send(email: Email) -> bool:
    """Send through SES with the configuration set (whose bounces and complaints
    feed the suppression list).  False when not sent: SES refused it, or the
    address is suppressed."""
    if store.is_suppressed(otp.email_key(email.to)):
        logger.info("email not sent", extra={"ses_error": "suppressed"})
        return False
    cfg = settings()
    kwargs = {
        "FromEmailAddress": cfg.from_address,
        "Destination": {"ToAddresses": [email.to]},
        "Content": {
            "Simple": {
                "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": email.text, "Charset": "UTF-8"},
                    "Html": {"Data": email.html, "Charset": "UTF-8"},
                },
            }
        },
    }
    if cfg.ses_configuration_set:
        kwargs["ConfigurationSetName"] = cfg.ses_configuration_set
    try:
        client("sesv2").send_email(**kwargs)
    except ClientError as exc:
        logger.warning("email not sent", extra={"ses_error": exc.response.get("Error", {}).get("Code", "unknown")})
        metrics.add_metric(name="EmailFailures", unit=MetricUnit.Count, value=1)
        return False
    except BotoCoreError as exc:
        logger.warning("email not sent", extra={"ses_error": type(exc).__name__})
        metrics.add_metric(name="EmailFailures", unit=MetricUnit.Count, value=1)
        return False
    return True


def mfa_enabled_notice(to: str) -> Email:
    return _notice(
        to,
        f"Two-step sign-in is on for your {settings().service_name} account",
        [
            "An authenticator app was just set up for your account: signing in now needs its code after the password.",
            "Keep your recovery codes somewhere safe: each one signs you in once if you lose the app.",
            "If you did not do this, change your password now and contact support.",
        ],
    )


def mfa_disabled_notice(to: str) -> Email:
    return _notice(
        to,
        f"Two-step sign-in was turned off for your {settings().service_name} account",
        [
            "Two-step sign-in was just turned off: your password alone now signs you in.",
            "If you did this, you need do nothing.",
            "If you did not, change your password now, turn two-step sign-in back on and contact support.",
        ],
    )


def recovery_codes_replaced_notice(to: str) -> Email:
    return _notice(
        to,
        f"New recovery codes for your {settings().service_name} account",
        [
            "New recovery codes were just made for your account; the old ones no longer work.",
            "If you did this, keep the new codes somewhere safe.",
            "If you did not, change your password now and contact support.",
        ],
    )


def recovery_code_used_notice(to: str, left: int) -> Email:
    return _notice(
        to,
        f"A recovery code of your {settings().service_name} account was used",
        [
            f"One of your recovery codes was just used; it will not work again. You have {left} left.",
            "If you lost your authenticator app, set up a new one and make new recovery codes.",
            "If this was not you, change your password now and contact support.",
        ],
    )
