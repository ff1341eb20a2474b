#!/usr/bin/env bash
# Build the OCI-layout fixtures used by harden's integration tests.
#
# usage: integration/build-image.sh [debian|app|nginx|gosu-service|all]...   (default: all)
#
# Images (real Debian bookworm content, built with debootstrap + umoci):
#   debian        oci:<cache>/debian:debian     minbase rootfs, one layer,
#                                               Cmd ["/bin/sh","-c","echo hello from debian"]
#   app           oci:<cache>/app:app           minbase + sudo, openssh-client,
#                                               iputils-ping, python3-minimal, busybox,
#                                               libcap2-bin, plus an "app" layer;
#                                               Entrypoint ["/usr/bin/python3","/app/server.py"]
#   app-shellcmd  oci:<cache>/app:app-shellcmd  same layers, Cmd ["/bin/sh","-c",
#                                               "python3 /app/server.py"], no Entrypoint
#   app-debs, app-pipdocs, app-hidden            realistic variants of app for the profile
#                                               matrix (integration/matrix.rs): see "matrix
#                                               fixtures" below
#   nginx         oci:<cache>/nginx:nginx       shaped like the official nginx image: minbase +
#                                               nginx-light, Entrypoint ["/docker-entrypoint.sh"]
#                                               (#!/bin/sh: mkdir /var/cache/nginx, exec "$@"),
#                                               Cmd ["nginx","-g","daemon off;"], port 80, root
#   gosu-service  oci:<cache>/gosu-service:gosu-service  like the official postgres/redis
#                                               images: minbase + gosu, python3-minimal; the
#                                               entrypoint (root) takes /var/lib/db (a VOLUME),
#                                               then `exec gosu dbuser` (999) a server on :5432
#
# Cache: ${XDG_CACHE_HOME:-$PWD/target}/harden-fixtures/
#   <hash-of-this-script>/{debian,app}/   the OCI layouts (stale hashes are pruned)
#   rootfs/<key>/                          debootstrap output, keyed by the debootstrap
#                                          parameters only, so editing the packing steps
#                                          below does not re-run debootstrap
#   debs/                                  debootstrap --cache-dir (downloaded .debs)
# A second run with an unchanged script is a no-op that just prints the refs.
#
# stdout: one line per image tag, "oci:<absolute layout dir>:<tag>".
# Progress goes to stderr.
#
# Environment:
#   DEBIAN_MIRROR   override the mirror (default: discovered from apt sources)
#   XDG_CACHE_HOME  cache root (see above)
set -euo pipefail
export LC_ALL=C.UTF-8
export PATH="$PATH:/usr/sbin:/sbin"

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
SELF_HASH="$(sha256sum "$SELF" | cut -c1-16)"
CACHE_ROOT="${XDG_CACHE_HOME:-$PWD/target}/harden-fixtures"
mkdir -p "$CACHE_ROOT"
CACHE_ROOT="$(cd "$CACHE_ROOT" && pwd -P)"
OUT="$CACHE_ROOT/$SELF_HASH"
SUITE=bookworm
# Bump to force re-running debootstrap without changing its parameters.
ROOTFS_REV=1

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- arguments
want=()
for a in "$@"; do
  case "$a" in
    debian|app|app-shellcmd|nginx|gosu-service) want+=("$a") ;;
    app-debs|app-pipdocs|app-hidden) want+=("$a") ;;
    all) want+=(debian app app-debs app-pipdocs app-hidden nginx gosu-service) ;;
    -h|--help) sed -n '2,30p' "$SELF"; exit 0 ;;
    *) die "unknown image '$a' (expected debian, app, app-debs, app-pipdocs, app-hidden, nginx, gosu-service or all)" ;;
  esac
done
[ "${#want[@]}" -eq 0 ] && want=(debian app app-debs app-pipdocs app-hidden nginx gosu-service)

print_refs() {
  local w
  for w in "${want[@]}"; do
    case "$w" in
      debian) echo "oci:$OUT/debian:debian" ;;
      app|app-shellcmd) echo "oci:$OUT/app:app"; echo "oci:$OUT/app:app-shellcmd" ;;
      app-debs|app-pipdocs|app-hidden) echo "oci:$OUT/$w:$w" ;;
      nginx|gosu-service) echo "oci:$OUT/$w:$w" ;;
    esac
  done | awk '!seen[$0]++'
}

# ---------------------------------------------------------------- fast path
all_done() {
  local w
  for w in "${want[@]}"; do
    case "$w" in
      debian) [ -f "$OUT/debian/.done" ] || return 1 ;;
      app|app-shellcmd) [ -f "$OUT/app/.done" ] || return 1 ;;
      app-debs|app-pipdocs|app-hidden) [ -f "$OUT/$w/.done" ] || return 1 ;;
      nginx|gosu-service) [ -f "$OUT/$w/.done" ] || return 1 ;;
    esac
  done
}
if all_done; then print_refs; exit 0; fi

# ---------------------------------------------------------------- preflight
[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, umoci unpack/repack of a real rootfs)"
missing=()
for t in debootstrap umoci chroot sha256sum flock tar dpkg-deb; do
  command -v "$t" >/dev/null 2>&1 || missing+=("$t")
done
[ "${#missing[@]}" -eq 0 ] || die "missing tools: ${missing[*]} (run integration/setup.sh)"

exec 9>"$CACHE_ROOT/.lock"
flock 9
# Someone else may have finished the build while we waited for the lock.
if all_done; then print_refs; exit 0; fi

mkdir -p "$OUT" "$CACHE_ROOT/rootfs" "$CACHE_ROOT/debs"
WORK="$(mktemp -d "$CACHE_ROOT/work.XXXXXX")"
cleanup() { rm -rf --one-file-system "$WORK"; }
trap cleanup EXIT

# ---------------------------------------------------------------- mirror
# Find the Debian archive URL apt already uses (deb822 *.sources and one-line
# *.list files), ignoring security/updates/backports and third-party suites.
discover_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local f url
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    url="$(awk -v suite="$SUITE" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && uris != "") {
          split(uris, u, " "); print u[1]; found = 1; exit
        }
        types = ""; suites = ""; uris = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      tolower($1) == "types:"  { $1 = ""; types = $0 }
      tolower($1) == "suites:" { $1 = ""; suites = $0 }
      tolower($1) == "uris:"   { $1 = ""; uris = $0 }
      END { if (!found) flush() }
    ' "$f" | sed 's/^ *//')"
    if [ -n "$url" ]; then echo "$url"; return; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    url="$(awk -v suite="$SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f")"
    if [ -n "$url" ]; then echo "$url"; return; fi
  done
  echo "http://deb.debian.org/debian"
}

# ---------------------------------------------------------------- rootfs
# debootstrap_cached NAME INCLUDES -> prints the cached rootfs dir
debootstrap_cached() {
  local name="$1" include="$2"
  local key dir mirror
  key="$(printf '%s|%s|minbase|%s|%s' "$ROOTFS_REV" "$SUITE" "$include" "$(uname -m)" | sha256sum | cut -c1-16)"
  dir="$CACHE_ROOT/rootfs/$name-$key"
  if [ -f "$dir.done" ] && [ -d "$dir" ]; then
    log "rootfs $name: cached ($dir)"
    echo "$dir"; return
  fi
  rm -rf --one-file-system "$dir" "$dir.tmp"
  mirror="$(discover_mirror)"
  log "rootfs $name: debootstrap --variant=minbase ${include:+--include=$include} $SUITE ($mirror)"
  local t0=$SECONDS args=(--variant=minbase "--cache-dir=$CACHE_ROOT/debs")
  [ -n "$include" ] && args+=("--include=$include")
  if ! debootstrap "${args[@]}" "$SUITE" "$dir.tmp" "$mirror" >"$WORK/debootstrap-$name.log" 2>&1; then
    tail -n 30 "$WORK/debootstrap-$name.log" >&2
    [ -f "$dir.tmp/debootstrap/debootstrap.log" ] && tail -n 30 "$dir.tmp/debootstrap/debootstrap.log" >&2
    die "debootstrap failed for $name (mirror $mirror; set DEBIAN_MIRROR to override)"
  fi
  mv "$dir.tmp" "$dir"
  touch "$dir.done"
  log "rootfs $name: done in $((SECONDS - t0))s ($(du -sh "$dir" | cut -f1))"
  echo "$dir"
}

# Make a debootstrap tree look like an image rootfs (what debuerreotype and
# the official images do): no downloaded .debs, no apt lists, no logs.
tidy_rootfs() {
  local r="$1"
  rm -rf "$r/debootstrap"
  find "$r/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -delete 2>/dev/null || true
  rm -f "$r"/var/cache/apt/*.bin
  find "$r/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial ! -name lock -exec rm -rf {} + 2>/dev/null || true
  find "$r/var/log" -type f \( -name '*.log' -o -name 'alternatives.log' \) -delete 2>/dev/null || true
  : >"$r/etc/machine-id" 2>/dev/null || true
  rm -f "$r/etc/hostname" "$r/var/cache/ldconfig/aux-cache"
  rm -rf "$r"/tmp/* "$r"/var/tmp/*
  # Same sources the host uses, so the image can apt-get if a test wants it.
  printf 'deb %s %s main\n' "$(discover_mirror)" "$SUITE" >"$r/etc/apt/sources.list"
}

# ---------------------------------------------------------------- umoci
UMOCI_ENV=(--config.env "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")

# new_layout LAYOUT TAG ROOTFS CREATED_BY [HOOK]
# Creates LAYOUT with TAG holding ROOTFS as its single layer; HOOK, if given, is called as
# `HOOK BUNDLE_ROOTFS ROOTFS` after tidy_rootfs (to put back what a fixture wants left).
new_layout() {
  local layout="$1" tag="$2" rootfs="$3" created_by="$4" hook="${5:-}"
  local bundle="$WORK/bundle-$tag"
  umoci init --layout "$layout"
  umoci new --image "$layout:$tag"
  umoci unpack --image "$layout:$tag" "$bundle"
  # cp -a keeps owners, modes, hardlinks, xattrs (security.capability) and devices.
  rmdir "$bundle/rootfs" 2>/dev/null || rm -rf --one-file-system "$bundle/rootfs"
  cp -a "$rootfs" "$bundle/rootfs"
  tidy_rootfs "$bundle/rootfs"
  [ -z "$hook" ] || "$hook" "$bundle/rootfs" "$rootfs"
  # iputils-ping's postinst only uses setcap if libcap2-bin was configured
  # first; make sure the capability (not setuid) is really there.
  if [ -e "$bundle/rootfs/usr/bin/ping" ] && [ -x "$bundle/rootfs/usr/sbin/setcap" ]; then
    if ! getfattr_cap "$bundle/rootfs/usr/bin/ping"; then
      chroot "$bundle/rootfs" /usr/sbin/setcap cap_net_raw+ep /usr/bin/ping
      chmod u-s "$bundle/rootfs/usr/bin/ping"
    fi
    getfattr_cap "$bundle/rootfs/usr/bin/ping" || die "could not set security.capability on /usr/bin/ping"
  fi
  umoci repack --image "$layout:$tag" \
    --history.created_by "$created_by" --history.comment "harden test fixture" "$bundle"
  rm -rf --one-file-system "$bundle"
}

# True if FILE carries a security.capability xattr.
getfattr_cap() {
  python3 - "$1" <<'PY'
import os, sys
try:
    os.getxattr(sys.argv[1], "security.capability", follow_symlinks=False)
except OSError:
    sys.exit(1)
PY
}

# ---------------------------------------------------------------- debian
build_debian() {
  local layout="$OUT/debian"
  [ -f "$layout/.done" ] && return
  local t0=$SECONDS rootfs
  rootfs="$(debootstrap_cached debian "")"
  rm -rf --one-file-system "$layout"
  log "debian: packing layout"
  new_layout "$layout" debian "$rootfs" "debootstrap --variant=minbase $SUITE"
  umoci config --image "$layout:debian" "${UMOCI_ENV[@]}" \
    --clear=config.entrypoint \
    --config.cmd /bin/sh --config.cmd -c --config.cmd "echo hello from debian" \
    --config.label org.opencontainers.image.title=harden-fixture-debian \
    --history.created_by 'CMD ["/bin/sh","-c","echo hello from debian"]'
  umoci gc --layout "$layout"
  touch "$layout/.done"
  log "debian: done in $((SECONDS - t0))s ($(du -sh "$layout" | cut -f1))"
}

# ---------------------------------------------------------------- app
APP_INCLUDE=sudo,openssh-client,iputils-ping,python3-minimal,busybox,libcap2-bin

write_app_layer() {
  local r="$1" stage
  # /app/server.py: tiny HTTP server on :8080 with /healthz. Uses only
  # modules shipped by python3-minimal (no http.server there), falls back
  # gracefully if the full stdlib is present. "--selftest" prints and exits,
  # for runc-based tests.
  mkdir -p "$r/app/data"
  cat >"$r/app/server.py" <<'PY'
#!/usr/bin/env python3
"""Tiny HTTP server for the harden acceptance image (port 8080, /healthz)."""
import os
import socket
import sys

PORT = int(os.environ.get("PORT", "8080"))


def respond(path):
    if path == "/healthz":
        return "200 OK", b"ok\n"
    if path == "/":
        return "200 OK", b"hello from harden app\n"
    return "404 Not Found", b"not found\n"


def serve():
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", PORT))
    srv.listen(16)
    print("listening on :%d" % PORT, flush=True)
    while True:
        conn, _ = srv.accept()
        try:
            conn.settimeout(5)
            req = b""
            while b"\r\n\r\n" not in req and len(req) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                req += chunk
            line = req.split(b"\r\n", 1)[0].decode("latin-1").split()
            path = line[1] if len(line) >= 2 else "/"
            status, body = respond(path.split("?", 1)[0])
            conn.sendall(
                ("HTTP/1.0 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                 "Connection: close\r\n\r\n" % (status, len(body))).encode() + body)
        except OSError:
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    if "--selftest" in sys.argv[1:]:
        status, body = respond("/healthz")
        sys.stdout.write("selftest %s %s" % (status, body.decode()))
        sys.stdout.write("uid=%d cwd=%s\n" % (os.getuid(), os.getcwd()))
        sys.exit(0)
    serve()
PY
  chmod 0755 "$r/app/server.py"

  # Hardlink pair (same inode).
  printf 'shared payload for the hardlink pair\n' >"$r/app/data/a"
  ln "$r/app/data/a" "$r/app/data/b"

  # Secrets a hardening profile should find/strip.
  printf 'APP_ENV=production\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n' >"$r/app/.env"
  chmod 0600 "$r/app/.env"
  install -d -m 0700 "$r/root/.ssh"
  cat >"$r/root/.ssh/id_rsa" <<'KEY'
-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACBGQUtFLUtFWS1GT1ItSEFSREVOLVRFU1RTLU5PVC1SRUFMAAAAmEZBS0VG
QUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRk
FLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZBS0VGQUtFRkFLRUZB
-----END OPENSSH PRIVATE KEY-----
KEY
  chmod 0600 "$r/root/.ssh/id_rsa"

  # pip http cache (a few KiB of pseudo-random bytes, deterministic).
  mkdir -p "$r/root/.cache/pip/http/a/b/c"
  head -c 8192 /dev/zero | tr '\0' 'p' >"$r/root/.cache/pip/http/somefile"
  printf 'cached wheel metadata\n' >"$r/root/.cache/pip/http/a/b/c/0123456789abcdef"

  # A real (tiny) .deb in apt's archive cache.
  stage="$WORK/fakedeb"
  rm -rf "$stage"; mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/fake"
  printf 'Package: fake\nVersion: 1.0\nArchitecture: amd64\nMaintainer: harden tests <tests@example.invalid>\nDescription: fake package for harden fixtures\n' >"$stage/DEBIAN/control"
  printf 'fake\n' >"$stage/usr/share/doc/fake/README"
  mkdir -p "$r/var/cache/apt/archives"
  SOURCE_DATE_EPOCH=1700000000 dpkg-deb --root-owner-group -Zgzip --build "$stage" "$r/var/cache/apt/archives/fake_1.0_amd64.deb" >/dev/null

  # setuid copy of id(1).
  install -m 4755 "$r/usr/bin/id" "$r/usr/local/bin/setuid-copy"
  chmod 4755 "$r/usr/local/bin/setuid-copy"
}

build_app() {
  local layout="$OUT/app"
  [ -f "$layout/.done" ] && return
  local t0=$SECONDS rootfs include=$APP_INCLUDE
  rootfs="$(debootstrap_cached app "$include")"
  rm -rf --one-file-system "$layout"
  log "app: packing base layer"
  new_layout "$layout" app "$rootfs" "debootstrap --variant=minbase --include=$include $SUITE"

  log "app: adding app layer"
  local bundle="$WORK/bundle-app-layer"
  umoci unpack --image "$layout:app" "$bundle"
  write_app_layer "$bundle/rootfs"
  umoci repack --image "$layout:app" \
    --history.created_by "COPY app/ secrets, caches, setuid-copy" --history.comment "harden test fixture: app layer" \
    "$bundle"
  rm -rf --one-file-system "$bundle"

  umoci config --image "$layout:app" "${UMOCI_ENV[@]}" \
    --clear=config.cmd \
    --config.entrypoint /usr/bin/python3 --config.entrypoint /app/server.py \
    --config.exposedports 8080/tcp \
    --config.workingdir /app \
    --config.label org.opencontainers.image.title=harden-fixture-app \
    --history.created_by 'ENTRYPOINT ["/usr/bin/python3","/app/server.py"]'
  umoci config --image "$layout:app" --tag app-shellcmd \
    --clear=config.entrypoint \
    --config.cmd /bin/sh --config.cmd -c --config.cmd "python3 /app/server.py" \
    --history.created_by 'CMD ["/bin/sh","-c","python3 /app/server.py"]'
  umoci gc --layout "$layout"
  touch "$layout/.done"
  log "app: done in $((SECONDS - t0))s ($(du -sh "$layout" | cut -f1))"
}

# ---------------------------------------------------------------- matrix fixtures
# Realistic variants of the app image, each rebuilt with every built-in profile by
# integration/matrix.rs (issue 20: copies follow programs and secrets only):
#   app-debs     the app with debootstrap's downloaded .debs left in /var/cache/apt/archives
#                (in the base layer, as many real images have them), one of them an
#                executable byte-identical to /usr/bin/python3.11
#   app-pipdocs  the app started by an installed script, /usr/local/bin/app-serve, with a pip
#                cache and documentation examples byte-identical to installed scripts: a doc
#                example and a pip cache file equal to app-serve, a doc example hardlinked to
#                /app/server.py (which app-serve runs), a doc example equal to python3.11
#   app-hidden   the app with tools hidden under other names: copies of dash, dpkg, apt-get,
#                ssh and busybox, and bash hardlinked as /usr/local/sbin/rescue (strict must
#                remove every one; baseline and debian keep them, as they keep the originals)

# new_layout hook: debootstrap's downloaded .debs back in place, plus the issue's fake one.
keep_debs() {
  local r="$1" rootfs="$2"
  cp -a "$rootfs"/var/cache/apt/archives/*.deb "$r/var/cache/apt/archives/"
  install -m 0755 "$r/usr/bin/python3.11" "$r/var/cache/apt/archives/python3.11-minimal_fake_amd64.deb"
}

# matrix_app_config LAYOUT TAG TITLE ENTRYPOINT...: the app's config (port, workdir, labels).
matrix_app_config() {
  local layout="$1" tag="$2" title="$3"
  shift 3
  local ep=() a
  for a in "$@"; do ep+=(--config.entrypoint "$a"); done
  umoci config --image "$layout:$tag" "${UMOCI_ENV[@]}" \
    --clear=config.cmd --clear=config.entrypoint "${ep[@]}" \
    --config.exposedports 8080/tcp --config.workingdir /app \
    --config.label "org.opencontainers.image.title=$title" \
    --history.created_by "ENTRYPOINT $*"
}

# matrix_layer LAYOUT TAG WRITER CREATED_BY: one more layer on LAYOUT:TAG, written by WRITER ROOTFS.
matrix_layer() {
  local layout="$1" tag="$2" writer="$3" created_by="$4" bundle="$WORK/bundle-$2-layer"
  umoci unpack --image "$layout:$tag" "$bundle"
  "$writer" "$bundle/rootfs"
  umoci repack --image "$layout:$tag" --history.created_by "$created_by" \
    --history.comment "harden test fixture: matrix" "$bundle"
  rm -rf --one-file-system "$bundle"
}

build_app_debs() {
  local layout="$OUT/app-debs"
  [ -f "$layout/.done" ] && return
  local t0=$SECONDS rootfs
  rootfs="$(debootstrap_cached app "$APP_INCLUDE")"
  rm -rf --one-file-system "$layout"
  log "app-debs: packing base layer with the downloaded .debs"
  new_layout "$layout" app-debs "$rootfs" \
    "debootstrap --variant=minbase --include=$APP_INCLUDE $SUITE (downloaded .debs kept)" keep_debs
  matrix_layer "$layout" app-debs write_app_layer "COPY app/ secrets, caches, setuid-copy"
  matrix_app_config "$layout" app-debs harden-fixture-app-debs /usr/bin/python3 /app/server.py
  umoci gc --layout "$layout"
  touch "$layout/.done"
  log "app-debs: done in $((SECONDS - t0))s ($(du -sh "$layout" | cut -f1))"
}

# matrix_from_app LAYOUT TAG: LAYOUT starts as a copy of app:app under TAG (blobs hardlinked:
# umoci only ever adds or deletes blob files, never edits one).
matrix_from_app() {
  local layout="$1" tag="$2"
  build_app
  rm -rf --one-file-system "$layout"
  mkdir -p "$layout"
  cp -al "$OUT/app/blobs" "$layout/blobs"
  cp "$OUT/app/oci-layout" "$OUT/app/index.json" "$layout/"
  umoci tag --image "$layout:app" "$tag"
  umoci rm --image "$layout:app"
  umoci rm --image "$layout:app-shellcmd"
}

write_pipdocs_layer() {
  local r="$1"
  # The app's console script, as pip installs one; it runs /app/server.py.
  cat >"$r/usr/local/bin/app-serve" <<'PY'
#!/usr/bin/python3
"""app-serve: the harden test app's console script (runs /app/server.py)."""
import sys

sys.argv[0] = "/app/server.py"
with open("/app/server.py") as f:
    code = compile(f.read(), "/app/server.py", "exec")
exec(code, {"__name__": "__main__", "__file__": "/app/server.py"})
PY
  chmod 0755 "$r/usr/local/bin/app-serve"
  mkdir -p "$r/usr/share/doc/app-serve/examples" "$r/root/.cache/pip/http/7/a/f" "$r/root/.cache/pip/wheels/3c/9e"
  # Documentation examples: byte-identical to the installed script and to python3.11, and the
  # app's code under another name (a hardlink: both names in this layer, /app/server.py first).
  install -m 0755 "$r/usr/local/bin/app-serve" "$r/usr/share/doc/app-serve/examples/app-serve"
  install -m 0755 "$r/usr/bin/python3.11" "$r/usr/share/doc/app-serve/examples/python3.11"
  touch "$r/app/server.py"
  ln "$r/app/server.py" "$r/usr/share/doc/app-serve/examples/server.py"
  printf 'app-serve: run the harden test app (see examples/)\n' >"$r/usr/share/doc/app-serve/README"
  # A pip cache: http responses, a built wheel, and a cache file byte-identical to the script.
  head -c 4096 /dev/zero | tr '\0' 'w' >"$r/root/.cache/pip/http/7/a/f/5d8e2c"
  printf 'PK fake wheel\n' >"$r/root/.cache/pip/wheels/3c/9e/app_serve-1.0-py3-none-any.whl"
  install -m 0755 "$r/usr/local/bin/app-serve" "$r/root/.cache/pip/wheels/3c/9e/app-serve"
}

write_hidden_layer() {
  local r="$1"
  mkdir -p "$r/opt/tools" "$r/usr/local/sbin"
  install -m 0755 "$r/usr/bin/dash" "$r/usr/local/bin/healthcheck-runner"
  install -m 0755 "$r/usr/bin/dpkg" "$r/opt/tools/pkgtool"
  install -m 0755 "$r/usr/bin/apt-get" "$r/opt/tools/fetch-deps"
  install -m 0755 "$r/usr/bin/ssh" "$r/usr/local/bin/remote"
  install -m 0755 "$r/usr/bin/busybox" "$r/usr/local/bin/toolbox"
  # bash under another name: a hardlink (both names in this layer).
  touch "$r/usr/bin/bash"
  ln "$r/usr/bin/bash" "$r/usr/local/sbin/rescue"
}

# build_from_app NAME WRITER CREATED_BY ENTRYPOINT...: app:app plus a layer written by WRITER,
# as NAME:NAME with the app's config and ENTRYPOINT.
build_from_app() {
  local name="$1" writer="$2" created_by="$3" layout="$OUT/$1"
  shift 3
  [ -f "$layout/.done" ] && return
  local t0=$SECONDS
  matrix_from_app "$layout" "$name"
  log "$name: adding its layer"
  matrix_layer "$layout" "$name" "$writer" "$created_by"
  matrix_app_config "$layout" "$name" "harden-fixture-$name" "$@"
  finish_layout "$layout" "$name" "$t0"
}

# finish_layout LAYOUT NAME T0: drop unreferenced blobs, mark it built, say so.
finish_layout() {
  umoci gc --layout "$1"
  touch "$1/.done"
  log "$2: done in $((SECONDS - $3))s ($(du -sh "$1" | cut -f1))"
}

# ---------------------------------------------------------------- nginx
# Shaped like the official nginx image (and most official images): starts as root, a shell
# entrypoint prepares root-owned directories, then execs the command; Debian's nginx writes
# /var/lib/nginx/* (temp paths), /var/log/nginx/*.log and /run/nginx.pid; port 80.
build_nginx() {
  local layout="$OUT/nginx"
  [ -f "$layout/.done" ] && return
  local t0=$SECONDS rootfs
  rootfs="$(debootstrap_cached nginx nginx-light)"
  rm -rf --one-file-system "$layout"
  log "nginx: packing layout"
  new_layout "$layout" nginx "$rootfs" "debootstrap --variant=minbase --include=nginx-light $SUITE"
  local bundle="$WORK/bundle-nginx-layer" r
  umoci unpack --image "$layout:nginx" "$bundle"
  r="$bundle/rootfs"
  cat >"$r/docker-entrypoint.sh" <<'SH'
#!/bin/sh
# As the official nginx image's entrypoint: prepare what nginx writes, then run the command.
set -e
mkdir -p /var/cache/nginx /var/lib/nginx /var/log/nginx
exec "$@"
SH
  chmod 0755 "$r/docker-entrypoint.sh"
  rm -f "$r/etc/nginx/sites-enabled/default"
  cat >"$r/etc/nginx/conf.d/default.conf" <<'CONF'
server {
    listen 80 default_server;
    root /var/www/html;
    index index.html;
    location / { try_files $uri $uri/ =404; }
}
CONF
  mkdir -p "$r/var/www/html"
  printf 'hello from harden nginx fixture\n' >"$r/var/www/html/index.html"
  rm -rf "$r/var/cache/nginx" "$r/var/lib/nginx"/* "$r/run/nginx.pid" "$r/var/log/nginx"/*
  umoci repack --image "$layout:nginx" --history.created_by "COPY docker-entrypoint.sh default.conf" \
    --history.comment "harden test fixture: nginx layer" "$bundle"
  rm -rf --one-file-system "$bundle"
  umoci config --image "$layout:nginx" "${UMOCI_ENV[@]}" \
    --config.entrypoint /docker-entrypoint.sh \
    --config.cmd nginx --config.cmd -g --config.cmd "daemon off;" \
    --config.exposedports 80/tcp \
    --config.stopsignal SIGQUIT \
    --config.label org.opencontainers.image.title=harden-fixture-nginx \
    --history.created_by 'ENTRYPOINT ["/docker-entrypoint.sh"] CMD ["nginx","-g","daemon off;"] EXPOSE 80'
  finish_layout "$layout" nginx "$t0"
}

# ---------------------------------------------------------------- gosu-service
# Shaped like the official postgres and redis images: the entrypoint starts as root, takes the
# data directory (a VOLUME) for the service user and `exec gosu`s the server as that user
# (uid 999); the server writes its pid and data there and listens on 5432.
build_gosu_service() {
  local layout="$OUT/gosu-service"
  [ -f "$layout/.done" ] && return
  local t0=$SECONDS rootfs include=gosu,python3-minimal
  rootfs="$(debootstrap_cached gosu-service "$include")"
  rm -rf --one-file-system "$layout"
  log "gosu-service: packing layout"
  new_layout "$layout" gosu-service "$rootfs" "debootstrap --variant=minbase --include=$include $SUITE"
  local bundle="$WORK/bundle-gosu-layer" r
  umoci unpack --image "$layout:gosu-service" "$bundle"
  r="$bundle/rootfs"
  echo 'dbuser:x:999:999:db server:/var/lib/db:/usr/sbin/nologin' >>"$r/etc/passwd"
  echo 'dbuser:x:999:' >>"$r/etc/group"
  echo 'dbuser:*:19000:0:99999:7:::' >>"$r/etc/shadow"
  install -d -m 0755 "$r/var/lib/db"
  cat >"$r/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
# As the official postgres/redis entrypoints: as root, take the data directory, then drop to
# the service user with gosu and run the command again.
set -e
if [ "$(id -u)" = 0 ]; then
  mkdir -p /var/lib/db
  chown -R dbuser:dbuser /var/lib/db
  chmod 0700 /var/lib/db
  exec gosu dbuser "$0" "$@"
fi
exec "$@"
SH
  chmod 0755 "$r/usr/local/bin/docker-entrypoint.sh"
  cat >"$r/usr/local/bin/db-server.py" <<'PY'
#!/usr/bin/python3
# A tiny stand-in database: pid and data in /var/lib/db, a line protocol on :5432.
import os
import socket

DATA = "/var/lib/db"
with open(os.path.join(DATA, "db.pid"), "w") as f:
    f.write("%d\n" % os.getpid())
with open(os.path.join(DATA, "data"), "a") as f:
    f.write("started\n")
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5432))
srv.listen(16)
print("db listening on :5432 as uid %d" % os.getuid(), flush=True)
while True:
    conn, _ = srv.accept()
    try:
        conn.sendall(b"db ready\n")
    except OSError:
        pass
    conn.close()
PY
  chmod 0755 "$r/usr/local/bin/db-server.py"
  umoci repack --image "$layout:gosu-service" --history.created_by "COPY docker-entrypoint.sh db-server.py; dbuser" \
    --history.comment "harden test fixture: gosu-service layer" "$bundle"
  rm -rf --one-file-system "$bundle"
  umoci config --image "$layout:gosu-service" "${UMOCI_ENV[@]}" \
    --config.entrypoint /usr/local/bin/docker-entrypoint.sh \
    --config.cmd /usr/local/bin/db-server.py \
    --config.exposedports 5432/tcp \
    --config.volume /var/lib/db \
    --config.label org.opencontainers.image.title=harden-fixture-gosu-service \
    --history.created_by 'ENTRYPOINT ["docker-entrypoint.sh"] CMD ["db-server.py"] VOLUME /var/lib/db EXPOSE 5432'
  finish_layout "$layout" gosu-service "$t0"
}

for w in "${want[@]}"; do
  case "$w" in
    debian) build_debian ;;
    app|app-shellcmd) build_app ;;
    app-debs) build_app_debs ;;
    app-pipdocs) build_from_app app-pipdocs write_pipdocs_layer "pip install app-serve (cache and docs kept)" \
      /usr/local/bin/app-serve ;;
    app-hidden) build_from_app app-hidden write_hidden_layer "COPY tools under other names" \
      /usr/bin/python3 /app/server.py ;;
    nginx) build_nginx ;;
    gosu-service) build_gosu_service ;;
  esac
done

# Drop layouts built by older versions of this script (and leftovers of
# interrupted runs); we hold the lock, so nobody else is using them.
for d in "$CACHE_ROOT"/*/; do
  d="${d%/}"
  b="$(basename "$d")"
  [ "$d" = "$WORK" ] && continue
  if [[ "$b" =~ ^[0-9a-f]{16}$ && "$b" != "$SELF_HASH" ]] || [[ "$b" == work.* ]]; then
    log "pruning stale $d"
    rm -rf --one-file-system "$d"
  fi
done

print_refs
