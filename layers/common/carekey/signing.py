"""Token signing keys, derived from the signing secret.

Each version of the secret holds a random seed from which an ES256 (P-256)
private key is derived deterministically (HKDF-SHA256).  AWSCURRENT signs;
AWSPREVIOUS still verifies, so a rotation keeps issued tokens valid until they
expire.  Only the functions that sign tokens may read the secret and import
this module; before signing with a key, they make sure its public half is
published (carekey.public_keys), which is all that verifying functions read.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from carekey.aws import client
from carekey.config import settings
from carekey.keys import cached, secret_string
from carekey.public_keys import forget_published

_P256_ORDER = int("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551", 16)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: ec.EllipticCurvePrivateKey

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, str]:
        numbers = self.public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
            "kid": self.kid,
            "use": "sig",
            "alg": "ES256",
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def derive_signing_key(seed: str) -> SigningKey:
    material = HKDF(algorithm=hashes.SHA256(), length=48, salt=None, info=b"carekey-es256-v1").derive(seed.encode())
    scalar = int.from_bytes(material, "big") % (_P256_ORDER - 1) + 1
    private = ec.derive_private_key(scalar, ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    # RFC 7638 thumbprint as the key id.
    canonical = json.dumps(
        {"crv": "P-256", "kty": "EC", "x": _b64(numbers.x.to_bytes(32, "big")), "y": _b64(numbers.y.to_bytes(32, "big"))},
        separators=(",", ":"),
        sort_keys=True,
    )
    return SigningKey(kid=_b64(hashlib.sha256(canonical.encode()).digest()), private=private)


def _seed_of(secret_string: str) -> str:
    # The template generates {"seed": "..."}; a plain string also works.
    try:
        parsed = json.loads(secret_string)
    except ValueError:
        return secret_string
    return parsed.get("seed", secret_string) if isinstance(parsed, dict) else secret_string


def signing_keys() -> tuple[SigningKey, list[SigningKey]]:
    """The current signing key and every key that still verifies (current first)."""

    def load() -> tuple[SigningKey, list[SigningKey]]:
        secret_id = settings().signing_secret_id
        current = secret_string(secret_id, "AWSCURRENT")
        assert current is not None
        keys = [derive_signing_key(_seed_of(current[1]))]
        previous = secret_string(secret_id, "AWSPREVIOUS")
        if previous is not None and previous[0] != current[0]:
            keys.append(derive_signing_key(_seed_of(previous[1])))
        publish(keys)
        return keys[0], keys

    return cached("signing", load)


def publish(keys: list[SigningKey]) -> bool:
    """Publish the public JWK set of `keys` (current first) unless the current
    key is already in it; True when written.  A signer with an older view (its
    current key still published) never overwrites a newer set."""
    from carekey.public_keys import read_published

    try:
        published = read_published()
    except client("ssm").exceptions.ParameterNotFound:
        published = {"keys": []}
    if any(isinstance(k, dict) and k.get("kid") == keys[0].kid for k in published["keys"]):
        return False
    client("ssm").put_parameter(
        Name=settings().public_keys_parameter,
        Value=json.dumps({"keys": [k.jwk() for k in keys]}, separators=(",", ":")),
        Type="String",
        Overwrite=True,
    )
    forget_published()  # this container's verifying side reads the new set at once
    return True
