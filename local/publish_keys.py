"""`make deploy`'s last step: publish the token signing keys' public half.

The functions that only verify tokens (the authorizer, JWKS) cannot read the
signing secret; they read the public JWK set in the stack's
PublicKeysParameter.  The signing functions publish it before they sign with a
key it lacks; this step publishes it when the stack is created, so JWKS
serves the keys before the first sign-in.  It runs with the deployer's
credentials (secretsmanager:GetSecretValue on the signing secret,
ssm:GetParameter and ssm:PutParameter on the parameter) and does nothing when
the current key is already published.

    STACK_NAME=carekey-dev python -m local.publish_keys
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    sys.path[:0] = [str(Path(__file__).resolve().parent.parent), str(Path(__file__).resolve().parent.parent / "layers" / "common")]
    import boto3

    from local.emulator import publish_public_keys
    from local.server import DeployedStack, _deployed_stack

    name = os.environ.get("STACK_NAME")
    if not name:
        print("publish-keys: set STACK_NAME to the deployed stack")
        return 2
    region = os.environ.get("AWS_REGION", os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    DeployedStack.physical = _deployed_stack(name, region)
    stack = DeployedStack(name=name, region=region)
    session = boto3.Session(region_name=region)
    written = publish_public_keys(stack, session.client("secretsmanager"), session.client("ssm"))
    print(f"publish-keys: {'published' if written else 'already published'} in {stack.physical_name('PublicKeysParameter')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
