"""SES feedback: bounces and complaints put an address on the suppression list.

The configuration set that every email is sent with publishes bounce and
complaint events to an SNS topic; the feedback function receives them here.
A permanent bounce (the mailbox does not exist) or a complaint (the recipient
marked the email as spam) suppresses the address: the service sends it
nothing more, which keeps the sender's reputation and stops the service being
used to mail-bomb someone who said no.  Transient bounces (a full mailbox)
change nothing.  Each suppression is an audit event, keyed like every other
by the keyed hash of the address.
"""

from __future__ import annotations

import json
from email.utils import parseaddr
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from carekey import audit, otp, store
from carekey.api import Client
from carekey.observability import logger, metrics
from carekey.schemas import normalise_email


def _recipients(message: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(reason, addresses) of a bounce or complaint that suppresses, else None.
    Reads both event publishing (`eventType`) and notifications (`notificationType`)."""
    kind = message.get("eventType") or message.get("notificationType")
    if kind == "Bounce":
        bounce = message.get("bounce") or {}
        if bounce.get("bounceType") != "Permanent":
            return None
        return "bounce", [r.get("emailAddress", "") for r in bounce.get("bouncedRecipients") or []]
    if kind == "Complaint":
        complaint = message.get("complaint") or {}
        return "complaint", [r.get("emailAddress", "") for r in complaint.get("complainedRecipients") or []]
    return None


def handle_notifications(event: dict[str, Any]) -> None:
    """SNS records from the feedback topic.  A record that is not JSON raises,
    so Lambda retries it and then sends it to the dead-letter queue."""
    for record in event.get("Records") or []:
        sns = record.get("Sns") or {}
        found = _recipients(json.loads(sns.get("Message") or "{}"))
        if found is None:
            continue
        reason, addresses = found
        source = Client(ip="ses", user_agent="ses-feedback", request_id=str(sns.get("MessageId") or "")[:128])
        for address in addresses:
            try:
                email = normalise_email(parseaddr(address)[1])
            except ValueError:
                continue  # no canonical form: it cannot be an address the service sends to
            if not email:
                continue
            email_hash = otp.email_key(email)
            newly = store.suppress_address(email_hash, reason)
            audit.record(f"email.{reason}", "suppressed" if newly else "already_suppressed", source, email_hash=email_hash)
            logger.info("address suppressed", extra={"reason": reason, "new": newly})
            metrics.add_metric(name="EmailSuppressions", unit=MetricUnit.Count, value=1)
