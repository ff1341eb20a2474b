#!/usr/bin/env python3
"""A private Sigstore instance for harden's keyless tests, no network: a Fulcio-like CA (root and
intermediate, ECDSA P-384) issuing short-lived certificates with the identity (SAN) and the OIDC
issuer (extensions 1.3.6.1.4.1.57264.1.1 and .1.8), a CT log key embedding SCTs, a Rekor-like log
key signing entry timestamps (SETs) and checkpoints, and the `trusted_root.json` naming them.
Built on Python `cryptography` (not on harden's code), so what harden accepts is judged by an
independent writer — and by @sigstore/verify (integration/keyless/verify.js) on top.

  sigstore_mock.py init DIR                      keys, certificates, DIR/trusted_root.json
  sigstore_mock.py sign DIR DIGEST OUT --format bundle|legacy|att --identity ID --issuer ISS
                   [--variant NAME] [--ref REGISTRY/REPO] [--push]
      writes OUT/bundle.json (a v0.3 bundle, or for legacy a v0.1 bundle of the same material
      for @sigstore/verify), OUT/payload (legacy: the simple-signing payload), OUT/annotations.json
      (legacy) and, with --push, stores it beside REGISTRY/REPO@DIGEST over plain HTTP: a referrer
      (referrers tag schema) or a layer of the `sha256-<hex>.sig` manifest. `att` is cosign 2's
      keyless attestation: OUT/envelope.json (a DSSE envelope, SLSA provenance predicate) as a
      layer of `sha256-<hex>.att`, a Rekor intoto 0.0.2 entry in its annotations.

Variants (negative cases): other-ca (leaf from a CA not in the root), other-digest (the log
entry is for another payload), bad-set (SET altered), no-log (no transparency log entry, the
certificate long expired), tampered-payload (payload changed after signing), malformed-cert,
loop-chain (legacy: a chain annotation of two CAs signing each other, not in the root),
unknown-field (bundle with a field the spec does not have), bad-sct (the SCT's signature
altered), bad-checkpoint (the checkpoint's signature altered).

Timestamps and Rekor v2: the timestamp authority is OpenSSL's (`openssl ts -reply`, an RFC 3161
TSA independent of this script and of harden), its signing certificate (time-stamping EKU) issued
by a TSA root named in `timestampAuthorities`. Variants: tsa (a Rekor v1 entry with its SET and a
timestamp), rekor-v2 (a dsse 0.0.2 entry: inclusion proof and checkpoint, no SET, no timestamp:
nothing proves the time), rekor-v2-tsa (the same with a timestamp), tsa-other-sig (the timestamp
is over other bytes than the signature), tsa-untrusted (by a TSA not in the root), tsa-tampered
(the timestamp's genTime altered after signing), tsa-expired (Rekor v2, timestamped an hour
after the certificate expired).
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OID_ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_SCT = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.4.2")
UTC = datetime.timezone.utc
BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_V01 = "application/vnd.dev.sigstore.bundle+json;version=0.1"
ORIGIN = "rekor.mock.harden - 1193050959916656506"
SIGNER = "rekor.mock.harden"


def b64(b):
    return base64.b64encode(b).decode()


def der_len(n):
    if n < 0x80:
        return bytes([n])
    s = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(s)]) + s


def der(tag, body):
    return bytes([tag]) + der_len(len(body)) + body


def spki(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def save_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), None)


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_cert(key, name, issuer_key, issuer_name, path_len, start, end, eku=True):
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
         .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return b.sign(issuer_key, hashes.SHA384())


def name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "harden-mock"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def init(d):
    os.makedirs(d, exist_ok=True)
    start = datetime.datetime(2020, 1, 1, tzinfo=UTC)
    end = datetime.datetime(2040, 1, 1, tzinfo=UTC)
    keys = {}
    for k, curve in [("root", ec.SECP384R1()), ("inter", ec.SECP384R1()), ("ct", ec.SECP256R1()),
                     ("rekor", ec.SECP256R1()), ("other-root", ec.SECP384R1()), ("other-inter", ec.SECP384R1()),
                     ("tsa-root", ec.SECP384R1()), ("tsa", ec.SECP256R1()),
                     ("other-tsa-root", ec.SECP384R1()), ("other-tsa", ec.SECP256R1())]:
        keys[k] = ec.generate_private_key(curve)
        save_key(os.path.join(d, k + ".key"), keys[k])
    root = ca_cert(keys["root"], name("mock-fulcio-root"), keys["root"], name("mock-fulcio-root"), 1, start, end, eku=False)
    inter = ca_cert(keys["inter"], name("mock-fulcio-intermediate"), keys["root"], root.subject, 0, start, end)
    oroot = ca_cert(keys["other-root"], name("other-root"), keys["other-root"], name("other-root"), 1, start, end, eku=False)
    ointer = ca_cert(keys["other-inter"], name("other-intermediate"), keys["other-root"], oroot.subject, 0, start, end)
    troot = ca_cert(keys["tsa-root"], name("mock-tsa-root"), keys["tsa-root"], name("mock-tsa-root"), 0, start, end,
                    eku=False)
    tsa = tsa_cert(keys["tsa"], keys["tsa-root"], troot, "mock-tsa", start, end)
    otroot = ca_cert(keys["other-tsa-root"], name("other-tsa-root"), keys["other-tsa-root"], name("other-tsa-root"),
                     0, start, end, eku=False)
    otsa = tsa_cert(keys["other-tsa"], keys["other-tsa-root"], otroot, "mock-tsa", start, end)
    for n, c in [("root", root), ("inter", inter), ("other-root", oroot), ("other-inter", ointer),
                 ("tsa-root", troot), ("tsa", tsa), ("other-tsa-root", otroot), ("other-tsa", otsa)]:
        with open(os.path.join(d, n + ".pem"), "wb") as f:
            f.write(pem(c))
    write_root(d, os.path.join(d, "trusted_root.json"))
    # A root whose only CA stopped being valid before any signature made with it.
    write_root(d, os.path.join(d, "trusted_root_expired_ca.json"), ca_end="2021-01-01T00:00:00Z")


def tsa_cert(key, ca_key, ca, cn, start, end):
    return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA384()))


TSA_CONFIG = """[ tsa ]
default_tsa = tsa1
[ tsa1 ]
serial = {dir}/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.57264.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def timestamp(d, data, which="tsa"):
    """An RFC 3161 TimeStampResp over `data`, made now by OpenSSL's TSA with DIR/WHICH.key."""
    with tempfile.TemporaryDirectory() as t:
        with open(os.path.join(t, "data"), "wb") as f:
            f.write(data)
        with open(os.path.join(t, "serial"), "w") as f:
            f.write("01\n")
        with open(os.path.join(t, "tsa.cnf"), "w") as f:
            f.write(TSA_CONFIG.format(dir=t))
        run = lambda *a: subprocess.run(["openssl", "ts", *a], check=True, capture_output=True)
        run("-query", "-data", os.path.join(t, "data"), "-sha256", "-cert", "-no_nonce", "-out", os.path.join(t, "q"))
        run("-reply", "-config", os.path.join(t, "tsa.cnf"), "-queryfile", os.path.join(t, "q"),
            "-inkey", os.path.join(d, which + ".key"), "-signer", os.path.join(d, which + ".pem"),
            "-out", os.path.join(t, "r"))
        with open(os.path.join(t, "r"), "rb") as f:
            return f.read()


def tamper_gen_time(resp):
    """Change the last second digit of the TSTInfo's genTime (after the TSA signed it)."""
    i = resp.index(b"\x18\x0f")  # GeneralizedTime, 15 bytes: YYYYMMDDHHMMSSZ
    j = i + 2 + 13
    return resp[:j] + (b"1" if resp[j:j + 1] != b"1" else b"2") + resp[j + 1:]


def log_key(key, start="2020-01-01T00:00:00Z"):
    raw = spki(key)
    return {"baseUrl": "https://rekor.mock.harden", "hashAlgorithm": "SHA2_256",
            "publicKey": {"rawBytes": b64(raw), "keyDetails": "PKIX_ECDSA_P256_SHA_256", "validFor": {"start": start}},
            "logId": {"keyId": b64(hashlib.sha256(raw).digest())}}


def write_root(d, path, ca_end=None):
    inter, root = load_cert(os.path.join(d, "inter.pem")), load_cert(os.path.join(d, "root.pem"))
    valid = {"start": "2020-01-01T00:00:00Z"}
    if ca_end:
        valid["end"] = ca_end
    tr = {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [log_key(load_key(os.path.join(d, "rekor.key")))],
        "certificateAuthorities": [{
            "subject": {"organization": "harden-mock", "commonName": "mock-fulcio"},
            "uri": "https://fulcio.mock.invalid",
            "certChain": {"certificates": [{"rawBytes": b64(c.public_bytes(serialization.Encoding.DER))}
                                           for c in (inter, root)]},
            "validFor": valid}],
        "ctlogs": [log_key(load_key(os.path.join(d, "ct.key")))],
        "timestampAuthorities": [{
            "subject": {"organization": "harden-mock", "commonName": "mock-tsa"},
            "uri": "https://tsa.mock.harden",
            "certChain": {"certificates": [{"rawBytes": b64(load_cert(os.path.join(d, n + ".pem"))
                                                            .public_bytes(serialization.Encoding.DER))}
                                           for n in ("tsa", "tsa-root")]},
            "validFor": {"start": "2020-01-01T00:00:00Z"}}],
    }
    with open(path, "w") as f:
        json.dump(tr, f, indent=2)


def sct_list(ct_key, tbs, issuer_key_hash, ts_ms, bad=False):
    log_id = hashlib.sha256(spki(ct_key)).digest()
    signed = (b"\x00\x00" + ts_ms.to_bytes(8, "big") + b"\x00\x01" + issuer_key_hash
              + len(tbs).to_bytes(3, "big") + tbs + b"\x00\x00")
    sig = ct_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    if bad:
        sig = ct_key.sign(signed + b"x", ec.ECDSA(hashes.SHA256()))
    sct = b"\x00" + log_id + ts_ms.to_bytes(8, "big") + b"\x00\x00" + b"\x04\x03" + len(sig).to_bytes(2, "big") + sig
    one = len(sct).to_bytes(2, "big") + sct
    return len(one).to_bytes(2, "big") + one


def leaf(d, signing_key, identity, issuer, t, variant):
    ca = "other-inter" if variant in ("other-ca", "loop-chain") else "inter"
    ca_key, ca_cert_ = load_key(os.path.join(d, ca + ".key")), load_cert(os.path.join(d, ca + ".pem"))
    san = x509.RFC822Name(identity) if "@" in identity and "://" not in identity else \
        x509.UniformResourceIdentifier(identity)
    b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert_.subject)
         .public_key(signing_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(t).not_valid_after(t + datetime.timedelta(minutes=10))
         .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(signing_key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
         .add_extension(x509.SubjectAlternativeName([san]), critical=True)
         .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode()), critical=False)
         .add_extension(x509.UnrecognizedExtension(OID_ISSUER_V2, der(0x0C, issuer.encode())), critical=False))
    pre = b.sign(ca_key, hashes.SHA384())
    ikh = hashlib.sha256(spki(ca_key)).digest()
    lst = sct_list(load_key(os.path.join(d, "ct.key")), pre.tbs_certificate_bytes, ikh,
                   int(t.timestamp() * 1000), bad=variant == "bad-sct")
    cert = b.add_extension(x509.UnrecognizedExtension(OID_SCT, der(0x04, lst)), critical=False).sign(ca_key, hashes.SHA384())
    return cert


def canonical(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


def tlog_entry(d, body, t, variant):
    rekor = load_key(os.path.join(d, "rekor.key"))
    log_id = hashlib.sha256(spki(rekor)).digest()
    integrated, index = int(t.timestamp()) + 1, 1
    body_b64 = b64(body)
    set_ = rekor.sign(canonical({"body": body_b64, "integratedTime": integrated, "logID": log_id.hex(),
                                 "logIndex": index}), ec.ECDSA(hashes.SHA256()))
    if variant == "bad-set":
        set_ = rekor.sign(canonical({"body": body_b64, "integratedTime": integrated + 7, "logID": log_id.hex(),
                                     "logIndex": index}), ec.ECDSA(hashes.SHA256()))
    # A tree of two leaves: an unrelated first entry, ours second.
    h0 = hashlib.sha256(b"\x00" + b"another entry").digest()
    h1 = hashlib.sha256(b"\x00" + body).digest()
    root = hashlib.sha256(b"\x01" + h0 + h1).digest()
    text = f"{ORIGIN}\n2\n{b64(root)}\n".encode()
    csig = rekor.sign(text + (b"x" if variant == "bad-checkpoint" else b""), ec.ECDSA(hashes.SHA256()))
    checkpoint = text.decode() + "\n" + f"\u2014 {SIGNER} {b64(log_id[:4] + csig)}\n"
    return {
        "log_id": log_id, "integrated": integrated, "index": index, "body_b64": body_b64, "set": set_,
        "proof": {"logIndex": str(index), "rootHash": b64(root), "treeSize": "2", "hashes": [b64(h0)],
                  "checkpoint": {"envelope": checkpoint}},
    }


# Variants with a timestamp, and with a Rekor v2 entry instead of a v1 one.
TSA = {"tsa", "rekor-v2-tsa", "tsa-other-sig", "tsa-untrusted", "tsa-tampered", "tsa-expired"}
REKOR_V2 = {"rekor-v2", "rekor-v2-tsa", "tsa-untrusted", "tsa-tampered", "tsa-expired"}


def stamps(d, sig, variant):
    """The RFC 3161 timestamps of `variant` over the signature `sig` (DER each)."""
    if variant not in TSA:
        return []
    data = sig + b"x" if variant == "tsa-other-sig" else sig
    r = timestamp(d, data, "other-tsa" if variant == "tsa-untrusted" else "tsa")
    return [tamper_gen_time(r) if variant == "tsa-tampered" else r]


def verifier_v2(cert_der):
    return {"x509Certificate": {"rawBytes": b64(cert_der)}, "keyDetails": "PKIX_ECDSA_P256_SHA_256"}


ATT_PREDICATE = "https://slsa.dev/provenance/v1"


def legacy_chain(d, variant):
    inter = "other-inter" if variant in ("other-ca", "loop-chain") else "inter"
    if variant == "loop-chain":
        return loop_chain(d)
    return pem(load_cert(os.path.join(d, inter + ".pem"))) + pem(load_cert(os.path.join(
        d, ("other-root" if inter == "other-inter" else "root") + ".pem")))


def rekor_annotation(e):
    return json.dumps({"SignedEntryTimestamp": b64(e["set"]), "Payload": {
        "body": e["body_b64"], "integratedTime": e["integrated"], "logIndex": e["index"],
        "logID": e["log_id"].hex()}}, separators=(",", ":"))


def legacy_annotations(d, variant, cert_pem, e, ts, first):
    """cosign 2's annotations of a `.sig`/`.att` layer: FIRST, the certificate, its chain, the
    timestamp and the Rekor bundle (unless no-log)."""
    ann = {**first, "dev.sigstore.cosign/certificate": cert_pem.decode(),
           "dev.sigstore.cosign/chain": legacy_chain(d, variant).decode()}
    if ts:
        ann["dev.sigstore.cosign/rfc3161timestamp"] = json.dumps({"SignedRFC3161Timestamp": b64(ts[0])})
    if variant != "no-log":
        ann["dev.sigstore.cosign/bundle"] = rekor_annotation(e)
    return ann


def bundle_v01(cert_der, e, variant, kind, ts, content):
    """The same material as a v0.1 bundle (SET only), for @sigstore/verify; CONTENT is its
    messageSignature or dsseEnvelope."""
    return {"mediaType": BUNDLE_V01, "verificationMaterial": {
        "x509CertificateChain": {"certificates": [{"rawBytes": b64(cert_der)}]},
        "tlogEntries": [] if variant == "no-log" else [{
            "logIndex": str(e["index"]), "logId": {"keyId": b64(e["log_id"])},
            "kindVersion": kind, "integratedTime": str(e["integrated"]),
            "inclusionPromise": {"signedEntryTimestamp": b64(e["set"])}, "canonicalizedBody": e["body_b64"]}],
        "timestampVerificationData": {"rfc3161Timestamps": [{"signedTimestamp": b64(r)} for r in ts]}},
        **content}


def sign_att(args, key, cert_der, cert_pem, t):
    """cosign 2's keyless `attest`: a DSSE envelope as a `.att` layer, the certificate and a Rekor
    intoto 0.0.2 entry (signature as base64 of base64, key as base64 PEM) in its annotations."""
    d, variant, digest = args.dir, args.variant or "", args.digest
    hexd = digest.split(":", 1)[1]
    statement = canonical({"_type": "https://in-toto.io/Statement/v1",
                           "subject": [{"name": args.ref or "mock/app", "digest": {"sha256": hexd}}],
                           "predicateType": ATT_PREDICATE, "predicate": {"buildType": "https://mock.harden/build"}})
    ptype = "application/vnd.in-toto+json"
    pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    logged = statement.replace(hexd.encode(), b"0" * 64) if variant == "other-digest" else statement
    if variant == "tampered-payload":
        statement = statement.replace(b'"buildType"', b'"buildTypE"')
    env = {"payloadType": ptype, "payload": b64(statement), "signatures": [{"keyid": "", "sig": b64(sig)}]}
    env_bytes = json.dumps(env, separators=(",", ":")).encode()
    body = canonical({"apiVersion": "0.0.2", "kind": "intoto", "spec": {"content": {
        "envelope": {"payloadType": ptype,
                     "signatures": [{"publicKey": b64(cert_pem), "sig": b64(b64(sig).encode())}]},
        "hash": {"algorithm": "sha256", "value": hashlib.sha256(env_bytes).hexdigest()},
        "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(logged).hexdigest()}}}})
    e = tlog_entry(d, body, t, variant)
    ts = stamps(d, env_bytes, variant)
    ann = legacy_annotations(d, variant, cert_pem, e, ts, {"predicateType": ATT_PREDICATE})
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "envelope.json"), "wb") as f:
        f.write(env_bytes)
    with open(os.path.join(args.out, "annotations.json"), "w") as f:
        json.dump(ann, f)
    # sigstore-js reads intoto entries; the timestamp is over the envelope, which it cannot check.
    b01 = bundle_v01(cert_der, e, variant, {"kind": "intoto", "version": "0.0.2"}, [], {"dsseEnvelope": env})
    with open(os.path.join(args.out, "bundle.json"), "w") as f:
        json.dump(b01, f)
    if args.push:
        push_legacy(args.ref, digest, env_bytes, ann, "att", "application/vnd.dsse.envelope.v1+json")


def sign(args):
    d = args.dir
    variant = args.variant or ""
    digest = args.digest
    hexd = digest.split(":", 1)[1]
    t = datetime.datetime.now(UTC).replace(microsecond=0) - datetime.timedelta(hours=2)
    if variant == "no-log":
        t = datetime.datetime(2024, 5, 1, tzinfo=UTC)
    if variant in TSA and variant != "tsa-expired":
        # The TSA stamps now: the certificate must be valid now.
        t = datetime.datetime.now(UTC).replace(microsecond=0) - datetime.timedelta(minutes=1)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = leaf(d, key, args.identity, args.issuer, t, variant)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    if variant == "malformed-cert":
        cert_der = cert_der[:40] + b"\xff\xff" + cert_der[42:]
    cert_pem = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(cert_der) + b"-----END CERTIFICATE-----\n"
    os.makedirs(args.out, exist_ok=True)
    signed_digest = "0" * 64 if variant == "other-digest" else hexd
    repo = args.ref.split("/", 1)[1] if args.ref else "mock/app"
    if args.format == "att":
        return sign_att(args, key, cert_der, cert_pem, t)
    if args.format == "bundle":
        statement = canonical({"_type": "https://in-toto.io/Statement/v1",
                               "subject": [{"digest": {"sha256": hexd}}],
                               "predicateType": "https://sigstore.dev/cosign/sign/v1", "predicate": {}})
        ptype = "application/vnd.in-toto+json"
        pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype.encode(), len(statement), statement)
        sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
        logged_payload = statement
        if variant == "other-digest":
            logged_payload = statement.replace(hexd.encode(), signed_digest.encode())
        if variant == "tampered-payload":
            statement = statement.replace(b'"predicate":{}', b'"predicate":{"x":1}')
        env = {"payload": b64(statement), "payloadType": ptype, "signatures": [{"sig": b64(sig)}]}
        body = canonical({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hashlib.sha256(canonical(env)).hexdigest()},
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(logged_payload).hexdigest()},
            "signatures": [{"signature": b64(sig), "verifier": b64(cert_pem)}]}})
        if variant in REKOR_V2:
            body = canonical({"apiVersion": "0.0.2", "kind": "dsse", "spec": {"dsseV002": {
                "payloadHash": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(logged_payload).digest())},
                "signatures": [{"content": b64(sig), "verifier": verifier_v2(cert_der)}]}}})
        e = tlog_entry(d, body, t, variant)
        ts = [{"signedTimestamp": b64(r)} for r in stamps(d, sig, variant)]
        vm = {"certificate": {"rawBytes": b64(cert_der)}, "tlogEntries": [],
              "timestampVerificationData": {"rfc3161Timestamps": ts} if ts else {}}
        if variant in REKOR_V2:
            vm["tlogEntries"] = [{
                "logIndex": str(e["index"]), "logId": {"keyId": b64(e["log_id"])},
                "kindVersion": {"kind": "dsse", "version": "0.0.2"}, "integratedTime": "0",
                "inclusionProof": e["proof"], "canonicalizedBody": e["body_b64"]}]
        elif variant != "no-log":
            vm["tlogEntries"] = [{
                "logIndex": str(e["index"]), "logId": {"keyId": b64(e["log_id"])},
                "kindVersion": {"kind": "dsse", "version": "0.0.1"}, "integratedTime": str(e["integrated"]),
                "inclusionPromise": {"signedEntryTimestamp": b64(e["set"])}, "inclusionProof": e["proof"],
                "canonicalizedBody": e["body_b64"]}]
        bundle = {"mediaType": BUNDLE_V03, "verificationMaterial": vm, "dsseEnvelope": env}
        if variant == "unknown-field":
            bundle["verificationMaterial"]["extraTrust"] = {"anything": True}
        blob = json.dumps(bundle).encode()
        with open(os.path.join(args.out, "bundle.json"), "wb") as f:
            f.write(blob)
        if args.push:
            push_referrer(args.ref, digest, blob)
        return
    # Legacy: a simple-signing payload, the Rekor bundle in annotations.
    payload = canonical({"critical": {"identity": {"docker-reference": args.ref or "mock/app"},
                                      "image": {"docker-manifest-digest": digest},
                                      "type": "cosign container image signature"}, "optional": None})
    payload = json.dumps(json.loads(payload), separators=(",", ":")).encode()
    sig = key.sign(payload, ec.ECDSA(hashes.SHA256()))
    logged = payload.replace(hexd.encode(), signed_digest.encode()) if variant == "other-digest" else payload
    if variant == "tampered-payload":
        payload = payload.replace(b"cosign container image signature", b"cosign container image signaturE")
    body = canonical({"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
        "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(logged).hexdigest()}},
        "signature": {"content": b64(sig), "publicKey": {"content": b64(cert_pem)}}}})
    e = tlog_entry(d, body, t, variant)
    ts = stamps(d, sig, variant)
    ann = legacy_annotations(d, variant, cert_pem, e, ts, {"dev.cosignproject.cosign/signature": b64(sig)})
    with open(os.path.join(args.out, "payload"), "wb") as f:
        f.write(payload)
    with open(os.path.join(args.out, "annotations.json"), "w") as f:
        json.dump(ann, f)
    b01 = bundle_v01(cert_der, e, variant, {"kind": "hashedrekord", "version": "0.0.1"}, ts, {"messageSignature": {
        "messageDigest": {"algorithm": "SHA2_256", "digest": b64(hashlib.sha256(payload).digest())},
        "signature": b64(sig)}})
    with open(os.path.join(args.out, "bundle.json"), "w") as f:
        json.dump(b01, f)
    if args.push:
        push_legacy(args.ref, digest, payload, ann)


def loop_chain(d):
    """Two CAs, each certifying the other's key: a chain with no end, neither in the root."""
    a, b = load_key(os.path.join(d, "other-inter.key")), load_key(os.path.join(d, "other-root.key"))
    start, end = datetime.datetime(2020, 1, 1, tzinfo=UTC), datetime.datetime(2040, 1, 1, tzinfo=UTC)
    ab = ca_cert(a, name("other-intermediate"), b, name("loop-b"), 1, start, end)
    ba = ca_cert(b, name("loop-b"), a, name("other-intermediate"), 1, start, end)
    return pem(ab) + pem(ba)


# -- A registry over plain HTTP, as distribution 2.8 speaks it (no referrers API). --------------

def http(method, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers


def put_blob(host, repo, blob):
    dg = "sha256:" + hashlib.sha256(blob).hexdigest()
    st, _, h = http("POST", f"http://{host}/v2/{repo}/blobs/uploads/")
    assert st == 202, f"blob upload start: {st}"
    loc = h["Location"]
    if loc.startswith("/"):
        loc = f"http://{host}{loc}"
    sep = "&" if "?" in loc else "?"
    st, body, _ = http("PUT", f"{loc}{sep}digest={dg}", blob, {"Content-Type": "application/octet-stream"})
    assert st == 201, f"blob upload: {st} {body!r}"
    return {"digest": dg, "size": len(blob)}


def put_manifest(host, repo, ref, manifest, media_type):
    data = json.dumps(manifest, separators=(",", ":")).encode()
    st, body, _ = http("PUT", f"http://{host}/v2/{repo}/manifests/{ref}", data, {"Content-Type": media_type})
    assert st == 201, f"manifest put {ref}: {st} {body!r}"
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


def get_manifest(host, repo, ref, accept):
    st, body, _ = http("GET", f"http://{host}/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
    return json.loads(body) if st == 200 else None


def split_ref(ref):
    host, repo = ref.split("/", 1)
    return host, repo


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def subject_descriptor(host, repo, digest):
    st, body, h = http("GET", f"http://{host}/v2/{repo}/manifests/{digest}",
                       headers={"Accept": ",".join([OCI_MANIFEST, OCI_INDEX,
                                                    "application/vnd.docker.distribution.manifest.v2+json",
                                                    "application/vnd.docker.distribution.manifest.list.v2+json"])})
    assert st == 200, f"subject {digest}: {st}"
    return {"mediaType": h["Content-Type"], "digest": digest, "size": len(body)}


def push_referrer(ref, digest, blob):
    host, repo = split_ref(ref)
    empty = put_blob(host, repo, b"{}")
    layer = put_blob(host, repo, blob)
    m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": BUNDLE_V03,
         "config": {"mediaType": "application/vnd.oci.empty.v1+json", **empty},
         "layers": [{"mediaType": BUNDLE_V03, **layer}],
         "subject": subject_descriptor(host, repo, digest),
         "annotations": {"dev.sigstore.bundle.content": "dsse-envelope",
                         "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1"}}
    d = put_manifest(host, repo, "sha256:" + hashlib.sha256(json.dumps(m, separators=(",", ":")).encode()).hexdigest(),
                     m, OCI_MANIFEST)
    tag = "sha256-" + digest.split(":", 1)[1]
    idx = get_manifest(host, repo, tag, OCI_INDEX) or {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    idx["manifests"].append({**d, "artifactType": BUNDLE_V03, "annotations": m["annotations"]})
    put_manifest(host, repo, tag, idx, OCI_INDEX)


def push_legacy(ref, digest, payload, ann, suffix="sig",
                media_type="application/vnd.dev.cosign.simplesigning.v1+json"):
    host, repo = split_ref(ref)
    tag = "sha256-" + digest.split(":", 1)[1] + "." + suffix
    layer = put_blob(host, repo, payload)
    m = get_manifest(host, repo, tag, OCI_MANIFEST)
    layers = (m or {}).get("layers", []) + [{"mediaType": media_type, **layer, "annotations": ann}]
    config = canonical({"architecture": "", "os": "", "config": {},
                        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}})
    cfg = put_blob(host, repo, config)
    put_manifest(host, repo, tag, {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cfg},
                                   "layers": layers}, OCI_MANIFEST)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("init")
    i.add_argument("dir")
    s = sub.add_parser("sign")
    s.add_argument("dir")
    s.add_argument("digest")
    s.add_argument("out")
    s.add_argument("--format", choices=["bundle", "legacy", "att"], required=True)
    s.add_argument("--identity", required=True)
    s.add_argument("--issuer", required=True)
    s.add_argument("--variant")
    s.add_argument("--ref")
    s.add_argument("--push", action="store_true")
    a = p.parse_args()
    if a.cmd == "init":
        init(a.dir)
    else:
        sign(a)


if __name__ == "__main__":
    sys.exit(main())
