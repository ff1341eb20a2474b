#!/usr/bin/env python3
"""Write cosign-compat.key/.pub and payload.json.cosign-compat.sig with an implementation
independent of harden's Rust code: Python's cryptography (OpenSSL) for the P-256 key, PKCS#8
and ECDSA, hashlib.scrypt, and PyNaCl (libsodium) for nacl/secretbox, laid out as cosign's Go
code does (sigstore/sigstore pkg/cryptoutils + go-tuf encrypted: json.Marshal of the struct,
[]byte as padded base64, secretbox.Seal output = 16-byte tag || ciphertext, pem.Encode at 64
columns). Uses N=65536 (what current cosign writes) and the older
"ENCRYPTED COSIGN PRIVATE KEY" label, to cover what harden's own writer does not produce.

    python3 -m venv /tmp/pyfix && /tmp/pyfix/bin/pip install pynacl cryptography
    /tmp/pyfix/bin/python make_cosign_compat.py   # in src/sign/testdata
"""
import base64, hashlib, json, os, textwrap

import nacl.secret
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

PASSWORD = b"harden-test"
N, R, P = 65536, 8, 1

key = ec.generate_private_key(ec.SECP256R1())
pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
salt, nonce = os.urandom(32), os.urandom(24)
box_key = hashlib.scrypt(PASSWORD, salt=salt, n=N, r=R, p=P, dklen=32, maxmem=256 * 1024 * 1024)
sealed = nacl.secret.SecretBox(box_key).encrypt(pkcs8, nonce).ciphertext  # tag || ct
b64 = lambda b: base64.b64encode(b).decode()
body = json.dumps({
    "kdf": {"name": "scrypt", "params": {"N": N, "r": R, "p": P}, "salt": b64(salt)},
    "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
    "ciphertext": b64(sealed),
}, separators=(",", ":")).encode()


def pem(label, der):
    lines = textwrap.wrap(b64(der), 64)
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


open("cosign-compat.key", "w").write(pem("ENCRYPTED COSIGN PRIVATE KEY", body))
open("cosign-compat.pub", "wb").write(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
payload = open("payload.json", "rb").read()
sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
open("payload.json.cosign-compat.sig", "w").write(b64(sig) + "\n")
print("wrote cosign-compat.key cosign-compat.pub payload.json.cosign-compat.sig")
