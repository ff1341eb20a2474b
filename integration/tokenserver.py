#!/usr/bin/env python3
"""A Docker distribution token server for harden's integration tests (distribution's token
authentication spec, and its OAuth2 flow), on 127.0.0.1 only.

    tokenserver.py DIR --refresh-token TOKEN [--owner-pid PID]

Writes DIR/cert.pem (a self-signed RSA certificate: the registry's `auth.token.rootcertbundle`)
and DIR/port, then serves `/token`:
  - GET with Basic auth harden:secret-pw (docker, skopeo, oci-client with a password);
  - POST form `grant_type=refresh_token` with `refresh_token` == TOKEN (docker and containers/image
    with an `identitytoken`), or `grant_type=password` with username/password.
Either way the answer is a JWT (RS256, `kid` in libtrust's form, as distribution looks keys up)
granting every scope asked for, `iss` harden-test-issuer, `aud` the `service` asked for, 300 s.
A refused request gets 401. Each request is one JSON line in DIR/token.log: method, grant_type,
client_id, service, scopes and whether it was granted (never a secret).
Exits when PID is gone (so a killed test leaves no server behind), or on SIGTERM.
Needs `cryptography` (integration/setup.sh installs it into target/it-venv).
"""
import argparse
import base64
import datetime
import hashlib
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

USER, PASSWORD = "harden", "secret-pw"
ISSUER = "harden-test-issuer"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def libtrust_kid(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--refresh-token", required=True)
    ap.add_argument("--owner-pid", type=int)
    a = ap.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "harden-test-token")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    with open(os.path.join(a.dir, "cert.pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    kid = libtrust_kid(key.public_key())
    log_lock = threading.Lock()

    def token_for(service, scopes, subject):
        access = []
        for s in scopes:
            parts = s.split(":")
            if len(parts) >= 3:
                access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
        t = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "kid": kid}
        claims = {"iss": ISSUER, "sub": subject, "aud": service, "exp": t + 300, "nbf": t - 10, "iat": t,
                  "jti": b64url(os.urandom(12)), "access": access}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(sig)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def record(self, **kw):
            with log_lock, open(os.path.join(a.dir, "token.log"), "a") as f:
                f.write(json.dumps(kw) + "\n")

        def answer(self, code, doc):
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def basic_ok(self):
            h = self.headers.get("Authorization", "")
            if not h.lower().startswith("basic "):
                return None
            try:
                u, _, p = base64.b64decode(h[6:]).decode().partition(":")
            except Exception:
                return False
            return u == USER and p == PASSWORD

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(url.query)
            service, scopes = q.get("service", [""])[0], q.get("scope", [])
            ok = url.path == "/token" and self.basic_ok()
            self.record(method="GET", grant_type=None, client_id=None, service=service, scopes=scopes, granted=bool(ok))
            if not ok:
                return self.answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
            t = token_for(service, scopes, USER)
            self.answer(200, {"token": t, "access_token": t, "expires_in": 300})

        def read_body(self, limit=65536):
            """The request body, by Content-Length or chunked (Go's client sends a form whose
            length it was not told as chunks: containers/image does); None past `limit`."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return body
                    if len(body) + size > limit:
                        return None
                    body += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return None if n > limit else self.rfile.read(n)

        def do_POST(self):
            body = self.read_body()
            if body is None:
                return self.answer(413, {"error": "too large"})
            form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
            one = lambda k: form.get(k, [""])[0]
            grant, service, scopes = one("grant_type"), one("service"), form.get("scope", [])
            ok = self.path.split("?")[0] == "/token" and (
                (grant == "refresh_token" and one("refresh_token") == a.refresh_token)
                or (grant == "password" and one("username") == USER and one("password") == PASSWORD))
            self.record(method="POST", grant_type=grant, client_id=one("client_id"), service=service,
                        scopes=scopes, granted=ok)
            if not ok:
                return self.answer(401, {"error": "invalid_grant"})
            self.answer(200, {"access_token": token_for(service, scopes, USER), "expires_in": 300,
                              "scope": " ".join(scopes)})

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(os.path.join(a.dir, "port"), "w") as f:
        f.write(str(srv.server_address[1]))
    if a.owner_pid:
        def watch():
            while True:
                try:
                    os.kill(a.owner_pid, 0)
                except OSError:
                    os._exit(0)
                time.sleep(1)
        threading.Thread(target=watch, daemon=True).start()
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
