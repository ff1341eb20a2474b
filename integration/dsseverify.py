#!/usr/bin/env python3
"""Independent check of a DSSE attestation envelope with Python's `cryptography` (harden did
not write it): dsseverify.py ENVELOPE.json PUBLIC.pem sha256:<hex> PREDICATE_TYPE

The envelope's payload type must be in-toto's, some signature must verify (ECDSA P-256,
SHA-256, DER) over the DSSE v1 pre-authentication encoding, the statement's predicate type must
be PREDICATE_TYPE and some subject's sha256 must be the digest. Prints the statement (JSON) and
exits 0, or prints why not and exits 1.
"""
import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


def pae(payload_type: bytes, payload: bytes) -> bytes:
    return b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type, len(payload), payload)


def main() -> int:
    env_path, key_path, digest, predicate_type = sys.argv[1:5]
    env = json.load(open(env_path, encoding="utf-8"))
    key = serialization.load_pem_public_key(open(key_path, "rb").read())
    if not isinstance(key, ec.EllipticCurvePublicKey):
        print("not an EC public key")
        return 1
    if env.get("payloadType") != "application/vnd.in-toto+json":
        print(f"payload type {env.get('payloadType')!r}")
        return 1
    payload = base64.b64decode(env["payload"], validate=True)
    message = pae(env["payloadType"].encode(), payload)
    ok = False
    for s in env.get("signatures", []):
        try:
            key.verify(base64.b64decode(s["sig"]), message, ec.ECDSA(hashes.SHA256()))
            ok = True
        except (InvalidSignature, ValueError, KeyError):
            pass
    if not ok:
        print("no signature verifies")
        return 1
    st = json.loads(payload)
    if st.get("predicateType") != predicate_type:
        print(f"predicate type {st.get('predicateType')!r}, not {predicate_type!r}")
        return 1
    want = digest.split(":", 1)[1]
    if want not in [s.get("digest", {}).get("sha256") for s in st.get("subject", [])]:
        print(f"subject {st.get('subject')!r} does not name {digest}")
        return 1
    print(json.dumps(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
