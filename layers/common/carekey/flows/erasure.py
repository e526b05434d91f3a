"""Erasing a person: the one way an account is deleted, whether an operator
(DELETE /admin/users/{id}) or the person (DELETE /profile) asks.

What goes: the account item (email, names, phone, password hash, the
second-factor secrets and recovery codes kept on it), the claim on the
address (so it can register again, as a new person with a new id), every
session, every passkey, the address's pending codes and sign-up, and a
pending email change (its code and the new address it would move to).  Access
and refresh tokens die with the account: the authorizer finds no account.

What stays: the audit trail, which holds only ids and keyed hashes of
addresses (never an address, a name or a phone number), plus one record of
the erasure itself.  Limit counters keyed by hashes expire on their own.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, otp, store
from carekey.api import Client
from carekey.observability import metrics


def erase(user: store.UserItem, client: Client, *, event: str, detail: dict[str, str]) -> bool:
    """Erase `user`; False when the account was already gone (a parallel erasure won)."""
    email_hash = otp.email_key(user.email)
    if not store.erase_account(user):
        return False
    code_keys = [
        otp.item_key(otp.VERIFY_EMAIL, user.email),
        otp.item_key(otp.PASSWORD_RESET, user.email),
        store.signup_key(email_hash),
        otp.change_email_key(user.user_id),  # holds the new address in the clear
    ]
    store.erase_traces(user.user_id, code_keys)
    audit.record(event, "success", client, user_id=user.user_id, email_hash=email_hash, detail=detail)
    metrics.add_metric(name="AccountsErased", unit=MetricUnit.Count, value=1)
    return True
