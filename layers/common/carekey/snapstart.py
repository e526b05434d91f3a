"""Lambda SnapStart runtime hooks.

With SnapStart (the `EnableSnapStart` parameter, on by default), Lambda runs
each function's init once when a version is published, snapshots the
initialised memory, and starts new execution environments from that snapshot.
Imports are therefore paid once, at publish time (and every pydantic model,
built lazily otherwise, is built then too); what must be unique to an
environment must not be in the snapshot:

- before the snapshot, every cached secret (the hashing pepper, the signing
  keys) and every boto3 client (its credentials and open connections) is
  dropped, so no key material or connection is frozen into the snapshot;
- after a restore, the same caches are cleared again (a restored environment
  builds fresh clients with its own credentials and reads secrets anew), and
  the `random` module is reseeded.  Every token, code and id the service
  makes comes from `secrets` (the kernel's CSPRNG), which a restore does not
  repeat.

`snapshot_restore_py` ships with Lambda's managed Python runtimes; elsewhere
(tests, the local API) the PyPI package of the same name provides it, and
without either the hooks are simply not registered.
"""

from __future__ import annotations

import random

from carekey import aws, keys

try:
    from snapshot_restore_py import register_after_restore, register_before_snapshot
except ImportError:  # pragma: no cover - neither Lambda's runtime nor the package
    register_after_restore = register_before_snapshot = None  # type: ignore[assignment]


def build_every_model() -> None:
    """Build every request and response model now, so a restored environment
    never builds one (without SnapStart each is built when first used)."""
    from pydantic import BaseModel

    from carekey import schemas

    for value in vars(schemas).values():
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == schemas.__name__:
            value.model_rebuild()


def forget_environment_state() -> None:
    """Drop what belongs to one execution environment: secrets and clients."""
    keys.forget_cached_keys()
    aws.reset_clients()


def after_restore() -> None:
    forget_environment_state()
    random.seed()


if register_before_snapshot is not None and register_after_restore is not None:
    register_before_snapshot(forget_environment_state)
    register_before_snapshot(build_every_model)  # runs first: hooks run in reverse order
    register_after_restore(after_restore)
