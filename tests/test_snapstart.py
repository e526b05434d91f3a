"""SnapStart: nothing unique to an execution environment survives into, or out of, a snapshot."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import snapshot_restore_py
from carekey import aws, keys
from carekey.snapstart import after_restore, forget_environment_state

ROOT = Path(__file__).resolve().parent.parent


def _registered(registry) -> list:
    return [entry[0] for entry in registry]


def test_every_function_registers_both_hooks():
    # Given the layer imported as a handler imports it
    import carekey.api  # noqa: F401

    # Then Lambda will find both hooks
    assert forget_environment_state in _registered(snapshot_restore_py.get_before_snapshot())
    assert after_restore in _registered(snapshot_restore_py.get_after_restore())


def test_before_the_snapshot_no_secret_or_client_is_kept():
    # Given a warm environment: the pepper read and a DynamoDB client built
    keys.keyed_hash("otp", "123456")
    aws.client("dynamodb")
    assert keys._cache and aws.client.cache_info().currsize

    # When Lambda is about to take the snapshot
    for hook, args, kwargs in snapshot_restore_py.get_before_snapshot():
        hook(*args, **kwargs)

    # Then neither key material nor a client (credentials, connections) is in memory
    assert keys._cache == {}
    assert aws.client.cache_info().currsize == 0


def test_a_restored_environment_builds_its_own_state_and_still_serves(api):
    # Given an environment restored from a snapshot taken after some use
    api.verified_user("restored@example.com")
    api.login("restored@example.com")
    random.seed(7)
    before = random.random()
    random.seed(7)

    # When the after-restore hooks run
    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)

    # Then caches are empty, random is reseeded, and the service works as before
    assert keys._cache == {} and aws.client.cache_info().currsize == 0
    assert random.random() != before
    assert api.login("restored@example.com")["access"]


def test_models_are_built_lazily_and_all_before_the_snapshot():
    # Given a fresh interpreter that imported the layer as a handler does (its own process,
    # so no other test has built a model yet)
    script = """
import snapshot_restore_py
from pydantic import BaseModel
import carekey.api
from carekey import schemas
models = [v for v in vars(schemas).values() if isinstance(v, type) and issubclass(v, BaseModel) and v.__module__ == schemas.__name__]
print(sum(not m.__pydantic_complete__ for m in models), len(models))
for hook, args, kwargs in snapshot_restore_py.get_before_snapshot():
    hook(*args, **kwargs)
print(sum(not m.__pydantic_complete__ for m in models))
"""
    # When the models are counted before and after Lambda's before-snapshot hooks
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": "layers/common"}, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    (unbuilt, total), (unbuilt_after,) = (list(map(int, line.split())) for line in done.stdout.split("\n")[:2])

    # Then most models were not built at import, and none is missing from the snapshot
    assert unbuilt > total // 2
    assert unbuilt_after == 0
