#!/usr/bin/env python3
"""The vendor-shaped fixtures of issue #24 (make bench BENCH=vendor), as OCI layouts.

    vendor-image.py vendor MINBASE APPROOT OUT   two layers: MINBASE's tree (Debian minbase), then a
        gzip layer of ~60k entries: library trees (APPROOT's usr/lib and usr/share copied under
        several prefixes), an executable copy of a system binary in apt's cache, copies of apt's
        helpers, a setuid copy of sudo, cache files.
    vendor-image.py many MINBASE N OUT           two layers: MINBASE's tree, then N tiny files (plus
        their directories, 500 files a directory), written as tar directly (no tree on disk).

MINBASE is a rootfs directory (tarred as the first layer) or `oci:DIR:TAG`, an image whose layers
are taken as they are (the integration tests pass the debian fixture). Both write
OUT/{oci-layout,index.json,blobs/}, tagged `vendor`, and print what they wrote on stderr. Every tar
is gzip -6 with mtime 0, so the same inputs give the same digests.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile


class Hashing:
    """A file object that hashes and counts what passes through it."""

    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, b):
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)

    def flush(self):
        self.f.flush()


def layer(out, fill):
    """Write one gzip layer with fill(tarfile); returns (descriptor, diff_id, entries, plain bytes)."""
    tmp = out + "/layer.tmp"
    with open(tmp, "wb") as raw:
        hz = Hashing(raw)
        with gzip.GzipFile(fileobj=hz, mode="wb", compresslevel=6, mtime=0) as gz:
            ht = Hashing(gz)
            with tarfile.open(fileobj=ht, mode="w|", format=tarfile.PAX_FORMAT) as t:
                n = fill(t)
    digest = hz.h.hexdigest()
    os.rename(tmp, f"{out}/blobs/sha256/{digest}")
    desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + digest, "size": hz.n}
    print(f"layer: {n} entries, {ht.n / 2**20:.0f} MiB uncompressed, {hz.n / 2**20:.0f} MiB gzip", file=sys.stderr)
    return desc, "sha256:" + ht.h.hexdigest(), n


def add_tree(t, src, arcname):
    """Add src under arcname, sorted; returns the number of entries."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src)
        base = arcname if rel == "." else f"{arcname}/{rel}"
        t.add(dirpath, arcname=base, recursive=False)
        n += 1
        for f in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            t.add(os.path.join(dirpath, f), arcname=f"{base}/{f}", recursive=False)
            n += 1
    return n


def add_file(t, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size, ti.mode, ti.mtime = len(data), mode, 1700000000
    t.addfile(ti, io.BytesIO(data))
    return 1


def add_dir(t, name):
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, 1700000000
    t.addfile(ti)
    return 1


def vendor_layer(app):
    def fill(t):
        n = add_dir(t, "opt") + add_dir(t, "opt/vendor")
        # Library trees: usr/lib and usr/share under eight prefixes, usr/share alone under two more.
        for i in range(10):
            p = f"opt/vendor/sdk-{i}"
            n += add_dir(t, p)
            if i < 8:
                n += add_tree(t, f"{app}/usr/lib", f"{p}/lib")
            n += add_tree(t, f"{app}/usr/share", f"{p}/share")
        # An executable copy of a system binary where apt downloads (what the copy check finds).
        n += add_dir(t, "var") + add_dir(t, "var/cache") + add_dir(t, "var/cache/apt")
        n += add_dir(t, "var/cache/apt/archives") + add_dir(t, "var/cache/apt/archives/partial")
        with open(f"{app}/usr/bin/dash", "rb") as f:
            n += add_file(t, "var/cache/apt/archives/partial/vendor-tool", f.read(), 0o755)
        # Copies of apt's helpers, and a setuid copy of sudo.
        n += add_tree(t, f"{app}/usr/lib/apt", "opt/vendor/libexec/apt")
        n += add_dir(t, "opt/vendor/bin")
        with open(f"{app}/usr/bin/sudo", "rb") as f:
            n += add_file(t, "opt/vendor/bin/vendor-sudo", f.read(), 0o4755)
        # Cache files.
        for d in ("root", "root/.cache", "root/.cache/pip", "root/.cache/pip/http"):
            n += add_dir(t, d)
        for i in range(200):
            n += add_file(t, f"root/.cache/pip/http/{i:03d}.body", hashlib.sha256(str(i).encode()).digest() * 64)
        n += add_file(t, "var/cache/apt/pkgcache.bin", b"\0" * (1 << 20))
        return n

    return fill


def many_layer(count):
    def fill(t):
        n = add_dir(t, "opt") + add_dir(t, "opt/many")
        for i in range(count):
            if i % 500 == 0:
                n += add_dir(t, f"opt/many/d{i // 500:05d}")
            n += add_file(t, f"opt/many/d{i // 500:05d}/file-{i:07d}.txt", b"%d\n" % i)
        return n

    return fill


def base_layers(minbase, out):
    """The first layers: MINBASE's tree as one layer, or an OCI image's layers as they are."""
    if not minbase.startswith("oci:"):
        base, diff, _ = layer(out, lambda t: add_tree(t, minbase, "."))
        return [base], [diff]
    src, tag = minbase[len("oci:"):].rsplit(":", 1)
    blob = lambda d: f"{src}/blobs/sha256/{d.split(':')[1]}"
    with open(f"{src}/index.json") as f:
        m = [e for e in json.load(f)["manifests"] if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
    with open(blob(m["digest"])) as f:
        man = json.load(f)
    with open(blob(man["config"]["digest"])) as f:
        diffs = json.load(f)["rootfs"]["diff_ids"]
    for l in man["layers"]:
        shutil.copyfile(blob(l["digest"]), blob(l["digest"]).replace(src, out, 1))
    return man["layers"], diffs


def main():
    kind, minbase, arg, out = sys.argv[1:5]
    os.makedirs(out + "/blobs/sha256", exist_ok=True)
    bases, base_diffs = base_layers(minbase, out)
    top, top_diff, _ = layer(out, vendor_layer(arg) if kind == "vendor" else many_layer(int(arg)))

    def put(b):
        d = hashlib.sha256(b).hexdigest()
        with open(f"{out}/blobs/sha256/{d}", "wb") as f:
            f.write(b)
        return "sha256:" + d

    cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                      "config": {"Entrypoint": ["/usr/bin/sleep"], "Cmd": ["infinity"]},
                      "rootfs": {"type": "layers", "diff_ids": base_diffs + [top_diff]},
                      "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "minbase"} for _ in bases]
                      + [{"created": "2024-01-01T00:00:00Z", "created_by": f"vendor-image.py {kind}"}]}).encode()
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                      "layers": bases + [top]}).encode()
    with open(f"{out}/oci-layout", "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    with open(f"{out}/index.json", "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "digest": put(man), "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "vendor"}}]}, f)


if __name__ == "__main__":
    main()
