#!/usr/bin/env python3
"""Write the plain base OCI layout of harden's own image (image/build.sh hardens it with harden).

usage: image/base.py BINARY LAYOUT TAG VERSION

One layer, written so the same inputs give the same bytes: entries sorted, mtime
SOURCE_DATE_EPOCH (default 0), owners 0:0 (but the cache directory, 65532's), no user or group
names, gzip with no name and no time; the config's `created` is SOURCE_DATE_EPOCH too. It holds:
BINARY as /usr/local/bin/harden; its program interpreter and shared libraries as the host's
loader finds them (ldd), with the symlinks on the way (/lib64, usr-merge); the CA certificates;
/etc/passwd and /etc/group with root and nonroot (65532); /tmp (1777); /var/cache/harden (0700,
65532: harden's default cache directory, XDG_CACHE_HOME=/var/cache). No shell, no package manager.

umoci (as integration/build-image.sh uses it) stamps layers and configs with the time of the
run, so this writes the layout itself, as the tests' oci_layout_of_layers does.
"""
import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

NONROOT = 65532
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def die(msg):
    print(f"image/base.py: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 5:
        die("usage: image/base.py BINARY LAYOUT TAG VERSION")
    binary, layout, tag, version = sys.argv[1:]
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0") or "0")
    entries = {}  # path (no leading /) -> (kind, data)

    def add_dir(p, mode=0o755, owner=0):
        p = p.strip("/")
        if not p:
            return
        parent = os.path.dirname(p)
        if parent and parent not in entries:
            add_dir(parent)
        entries.setdefault(p, ("dir", None, mode, owner))

    def add_file(p, data, mode):
        p = p.strip("/")
        add_dir(os.path.dirname(p))
        entries[p] = ("file", data, mode, 0)

    def add_host_path(p):
        """Add host path p as the container sees it: each symlink on the way, then the file."""
        parts = [x for x in p.split("/") if x]
        cur = ""
        i = 0
        hops = 0
        while i < len(parts):
            nxt = cur + "/" + parts[i]
            if os.path.islink(nxt):
                hops += 1
                if hops > 40:
                    die(f"{p}: too many symlinks")
                target = os.readlink(nxt)
                add_dir(os.path.dirname(nxt))
                entries[nxt.strip("/")] = ("link", target, 0o777, 0)
                base = target if target.startswith("/") else os.path.join(cur or "/", target)
                rest = parts[i + 1:]
                parts = [x for x in os.path.normpath(base).split("/") if x] + rest
                cur, i = "", 0
                continue
            if i == len(parts) - 1:
                if not os.path.isfile(nxt):
                    die(f"{nxt}: not a regular file")
                with open(nxt, "rb") as f:
                    add_file(nxt, f.read(), 0o755 if os.access(nxt, os.X_OK) else 0o644)
            cur = nxt
            i += 1

    with open(binary, "rb") as f:
        add_file("usr/local/bin/harden", f.read(), 0o755)
    # The libraries and the interpreter, as the host's loader resolves them.
    out = subprocess.run(["ldd", binary], capture_output=True, text=True)
    if out.returncode != 0:
        die(f"ldd {binary}: {out.stderr.strip() or out.stdout.strip()}")
    libs = []
    for line in out.stdout.splitlines():
        m = re.search(r"=>\s*(/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if m:
            libs.append(m.group(1))
    if not libs:
        die(f"ldd {binary}: no libraries found (a static binary needs none: drop this check)")
    for lib in libs:
        add_host_path(lib)
    if not os.path.isfile(CA_BUNDLE):
        die(f"{CA_BUNDLE}: missing (Debian package ca-certificates)")
    add_host_path(CA_BUNDLE)
    add_file("etc/passwd", (
        "root:x:0:0:root:/root:/sbin/nologin\n"
        f"nonroot:x:{NONROOT}:{NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n").encode(), 0o644)
    add_file("etc/group", f"root:x:0:\nnonroot:x:{NONROOT}:\n".encode(), 0o644)
    add_dir("tmp", 0o1777)
    add_dir("root", 0o700)
    add_dir("home/nonroot", 0o700, NONROOT)
    add_dir("var/cache/harden", 0o700, NONROOT)

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for p in sorted(entries):
            kind, data, mode, owner = entries[p]
            ti = tarfile.TarInfo(p + ("/" if kind == "dir" else ""))
            ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = epoch, mode, owner, owner, "", ""
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
            elif kind == "link":
                ti.type, ti.linkname = tarfile.SYMTYPE, data
                t.addfile(ti)
            else:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as g:
        g.write(tar_bytes)
    layer = gz.getvalue()

    created = __import__("datetime").datetime.fromtimestamp(epoch, __import__("datetime").timezone.utc)
    created = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    sha = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()
    config = {
        "created": created,
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine),
        "os": "linux",
        "config": {
            "User": f"{NONROOT}:{NONROOT}",
            "Entrypoint": ["/usr/local/bin/harden"],
            "Cmd": ["--help"],
            "Env": [
                "PATH=/usr/local/bin",
                f"SSL_CERT_FILE={CA_BUNDLE}",
                "XDG_CACHE_HOME=/var/cache",
                "HOME=/home/nonroot",
            ],
            "WorkingDir": "/home/nonroot",
            "Labels": {
                "org.opencontainers.image.title": "harden",
                "org.opencontainers.image.version": version,
                "org.opencontainers.image.licenses": "Apache-2.0",
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [sha(tar_bytes)]},
        "history": [{"created": created, "created_by": "image/base.py (harden binary, its libraries, CA certificates)"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config_bytes), "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(layer), "size": len(layer)}],
    }
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    for b in (layer, config_bytes, manifest_bytes):
        with open(os.path.join(blobs, sha(b)[7:]), "wb") as f:
            f.write(b)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [{
        "mediaType": manifest["mediaType"], "digest": sha(manifest_bytes), "size": len(manifest_bytes),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f, separators=(",", ":"))
    print(f"oci:{layout}:{tag} {sha(manifest_bytes)}")


if __name__ == "__main__":
    main()
