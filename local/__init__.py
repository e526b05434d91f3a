"""Local tooling: the template reader, the AWS emulator set-up, the outbox and the local API."""
