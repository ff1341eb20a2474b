#!/usr/bin/env bash
# make bench: harden against the tools a release engineer would use today, from ONE run on ONE
# machine, reported as ratios (never as timed assertions in tests).
#
#  1. big-layer rebuild: an image with a ~1 GiB (uncompressed) layer of real Debian files,
#     `harden rebuild -p strict` registry A → registry B, vs `skopeo copy` A → B of the same image,
#     and vs `gzip -dc | gzip -c` of the same layer (what any tool that recompresses it pays);
#     harden's peak RSS (target < 100 MiB).
#  2. no-op mirror: `harden rebuild -p passthrough` A → B vs `skopeo copy` A → B (no mount possible).
#  3. strict on the app image vs the do-it-yourself pipeline (skopeo → umoci unpack → rm/chmod →
#     umoci repack → umoci config → skopeo), time and result size.
#  4. a batch of 20 images on one base, and the same batch again.
#  5. fleet (issue #15), both tools cold then warm (skopeo's blob-info cache and harden's cache
#     directories emptied before the cold runs): the warm re-mirror of the big image to a new
#     repository vs skopeo's warm copy; the rerun of a finished 90-job batch (3 sources × 30
#     destinations) vs its cold run, and vs `skopeo copy` of the same 90 pairs again with the
#     same parallelism (xargs -P 2, as --jobs 2), time and requests; two pods (two processes, separate cache directories, one
#     --shared-cache) splitting the 20-image batch: how often the shared base is rewritten; the
#     HTTP requests of each copy (cold, warm to a new repository, warm to the same), counted
#     from the registries' logs, harden vs skopeo.
#  6. pkgdb: the package-database work (read, edit, rewrite in place) against none of it
#     (`[packages] keep_database = true`), alternating runs, the median of 3 of each.
#  7. requests: the HTTP requests each tool makes (from the registry's access log, and the token
#     server's log) for the app image, `-p strict` vs `skopeo copy`: cold, a rerun into the same
#     repository, a re-mirror into a new one; against a registry with token authentication
#     (integration/tokenserver.py) and one with none.
#  8. vendor (issue #24, "64 MiB on any layer"): `-p strict` and `-p passthrough` registry A → C,
#     time, CPU-seconds (the tool and both registries) and peak RSS, on
#     the issue's image shape (integration/vendor-image.py: Debian minbase, then a gzip layer of
#     ~60k entries — library trees, an executable copy of dash in apt's cache, apt's helpers, a
#     setuid copy of sudo, caches) vs `skopeo copy` of it; and on minbase + a layer of
#     $BENCH_ENTRIES (500000) tiny files.
#
# Usage: bench.sh [big] [app] [batch] [fleet] [pkgdb] [requests] [vendor] — the sections to run (default: all).
#
# Output: a Markdown table on stdout (pasted into README.md), details on stderr.
set -euo pipefail
export LC_ALL=C.UTF-8 PATH="$PATH:/usr/sbin:/sbin"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
HARDEN="${HARDEN:-$ROOT/target/release/harden}"
[ -x "$HARDEN" ] || { echo "bench: $HARDEN missing (make bench builds it)" >&2; exit 1; }
for t in skopeo umoci /usr/bin/time gzip python3; do command -v "$t" >/dev/null || { echo "bench: $t missing: run make setup" >&2; exit 1; }; done

SEL=" ${*:-all} "
want() { [[ "$SEL" == *" all "* || "$SEL" == *" $1 "* ]]; }
for s in $SEL; do case "$s" in all|big|app|batch|fleet|pkgdb|requests|vendor) ;; *) echo "bench: unknown section $s (big app batch fleet pkgdb requests vendor)" >&2; exit 2;; esac; done

mapfile -t REFS < <(bash integration/build-image.sh all)
APP_REF=$(printf '%s\n' "${REFS[@]}" | grep ':app$')
CACHE="${XDG_CACHE_HOME:-$ROOT/target}/harden-fixtures"
ROOTFS=$(ls -d "$CACHE"/rootfs/app-* | grep -v '\.done$' | head -1)

WORK=$(mktemp -d /tmp/harden-bench.XXXXXX)
cleanup() { for r in regA regB regC regT; do bash integration/registry.sh stop "$WORK/$r" >/dev/null 2>&1 || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$WORK/regA" "$WORK/regB" "$WORK/regC"
A=$(bash integration/registry.sh start "$WORK/regA")
B=$(bash integration/registry.sh start "$WORK/regB")
# C receives harden's copies, B skopeo's: both start empty, so neither can skip or mount a blob
# the other pushed.
C=$(bash integration/registry.sh start "$WORK/regC")

# The big image: the app rootfs four times over in one layer (~1 GiB of real files), gzip -6.
BIG="$WORK/big"
if want big || want fleet; then
python3 - "$ROOTFS" "$BIG" <<'PY'
import gzip, hashlib, json, os, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out + "/blobs/sha256", exist_ok=True)
tmp = out + "/layer.tmp"
class H:
    def __init__(s, f): s.f, s.h, s.n = f, hashlib.sha256(), 0
    def write(s, b): s.h.update(b); s.n += len(b); return s.f.write(b)
    def flush(s): s.f.flush()
with open(tmp, "wb") as raw:
    hz = H(raw)
    with gzip.GzipFile(fileobj=hz, mode="wb", compresslevel=6, mtime=0) as gz:
        ht = H(gz)
        with tarfile.open(fileobj=ht, mode="w|", format=tarfile.PAX_FORMAT) as t:
            for copy in ("", "copy1/", "copy2/", "copy3/"):
                t.add(src, arcname=copy.rstrip("/") or ".", recursive=True)
digest, size, diff = hz.h.hexdigest(), hz.n, ht.h.hexdigest()
os.rename(tmp, f"{out}/blobs/sha256/{digest}")
cfg = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
    "config": {"Cmd": ["/usr/bin/python3", "-c", "print(1)"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "bench"}]}).encode()
cd = hashlib.sha256(cfg).hexdigest()
open(f"{out}/blobs/sha256/{cd}", "wb").write(cfg)
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cd, "size": len(cfg)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + digest, "size": size}]}).encode()
md = hashlib.sha256(man).hexdigest()
open(f"{out}/blobs/sha256/{md}", "wb").write(man)
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + md, "size": len(man), "annotations": {"org.opencontainers.image.ref.name": "big"}}]}, open(f"{out}/index.json", "w"))
print(f"big layer: {ht.n/2**20:.0f} MiB uncompressed, {size/2**20:.0f} MiB gzip", file=sys.stderr)
open(out + "/layer-digest", "w").write(digest)
PY
LAYER="$BIG/blobs/sha256/$(cat "$BIG/layer-digest")"
skopeo copy -q --dest-tls-verify=false "oci:$BIG:big" "docker://$A/big:1"
fi
skopeo copy -q --dest-tls-verify=false "$APP_REF" "docker://$A/app:1"
# skopeo's blob-info cache (what makes its warm copies HEADs and mounts), emptied before a cold run.
skopeo_cold() { rm -f /var/lib/containers/cache/blob-info-cache-v1.*; }

# Seconds and peak RSS (KiB) of a command, via GNU time.
measure() {
  local out="$WORK/time.$RANDOM"
  /usr/bin/time -f '%e %M' -o "$out" "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; echo "bench: failed: $*" >&2; exit 1; }
  cat "$out"
}
ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
# A warm re-mirror takes tens of milliseconds, the size of /usr/bin/time's steps: the median of 7,
# each into a new repository (the command's '@' replaced by w1..w7), timed to the microsecond.
warm_median() {
  local k t0 t1 times=()
  for k in 1 2 3 4 5 6 7; do
    t0=$(date +%s.%N)
    "${@//@/w$k}" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; echo "bench: failed: $*" >&2; exit 1; }
    t1=$(date +%s.%N)
    times+=("$t1-$t0")
  done
  python3 -c "import statistics,sys; print(f'{statistics.median(eval(x) for x in sys.argv[1:]):.3f}')" "${times[@]}"
}

# A copy between registries: seconds, peak RSS (KiB), and the CPU-seconds of the whole copy —
# the command's plus both registries' (from /proc): the machine's cores are shared by all three.
cpu_of() { awk '{print ($14+$15)/100}' "/proc/$(cat "$1/pid")/stat"; }
measure_copy() {
  local dst="$1"; shift
  local out="$WORK/time.$RANDOM" a0 d0
  a0=$(cpu_of "$WORK/regA"); d0=$(cpu_of "$dst")
  /usr/bin/time -f '%e %M %U %S' -o "$out" "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; echo "bench: failed: $*" >&2; exit 1; }
  read -r w m u s < "$out"
  python3 -c "print($w, $m, round($u + $s + $(cpu_of "$WORK/regA") - $a0 + $(cpu_of "$dst") - $d0, 2))"
}

if want big; then
skopeo_cold
read -r t_skopeo_big _ c_skopeo < <(measure_copy "$WORK/regB" skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/big:1" "docker://$B/big:1")
t_skopeo_mirror=$t_skopeo_big
read -r t_harden_mirror rss_mirror c_harden < <(measure_copy "$WORK/regC" "$HARDEN" rebuild -q --no-cache -p passthrough "$A/big:1" "$C/big:1")
read -r t_harden_big rss_big c_harden_big < <(measure_copy "$WORK/regC" "$HARDEN" rebuild -q --no-cache -p strict "$A/big:1" "$C/big-hard:1")
read -r t_gzip _ < <(measure sh -c "gzip -dc '$LAYER' | gzip -6 -c > /dev/null")

fi

if want app; then
# Do-it-yourself: what a release engineer scripts today for the strict result.
diy() {
  local d="$WORK/diy"
  rm -rf "$d"; mkdir -p "$d"
  skopeo copy -q --src-tls-verify=false "docker://$A/app:1" "oci:$d/img:app"
  umoci unpack --image "$d/img:app" "$d/bundle" >/dev/null
  local r="$d/bundle/rootfs"
  rm -rf "$r"/usr/bin/{sh,dash,bash,rbash,busybox,apt,apt-get,apt-cache,apt-config,apt-mark,dpkg,dpkg-*,su,sudo,passwd,chsh,chfn,ssh,scp,sftp,ping} \
         "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/archives/*.deb "$r"/root/.cache/pip "$r"/usr/share/doc "$r"/usr/share/man "$r"/app/.env "$r"/root/.ssh
  find "$r" -xdev -perm /6000 -type f -exec chmod a-s {} +
  umoci repack --image "$d/img:app" "$d/bundle" >/dev/null
  umoci config --image "$d/img:app" --config.user 65532:65532 >/dev/null
  skopeo copy -q --dest-tls-verify=false "oci:$d/img:app" "docker://$B/app-diy:1"
}
read -r t_diy _ < <(measure bash -c "$(declare -f diy); A=$A B=$B WORK=$WORK diy")
read -r t_harden_app rss_app < <(measure "$HARDEN" rebuild -q --no-cache -p strict "$A/app:1" "$C/app-hard:1")
size_of() { skopeo inspect --tls-verify=false --raw "docker://$1" | python3 -c "import json,sys; print(sum(l['size'] for l in json.load(sys.stdin)['layers']))"; }
s_src=$(size_of "$A/app:1"); s_diy=$(size_of "$B/app-diy:1"); s_hard=$(size_of "$C/app-hard:1")
fi

# 4. A fleet: 20 images on the app image's base layer, each with its own small app layer; a batch
#    vs one image, in a fresh cache. Ideal: base once + 20 small layers.
FLEET="$WORK/fleet"
if want batch || want fleet; then
python3 - "$APP_REF" "$FLEET" <<'PY'
import hashlib, io, json, os, shutil, sys, tarfile, gzip
ref, out = sys.argv[1], sys.argv[2]
src, tag = ref[len("oci:"):].rsplit(":", 1)
idx = json.load(open(f"{src}/index.json"))
m = [e for e in idx["manifests"] if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag][0]
blob = lambda d: f"{src}/blobs/sha256/{d.split(':')[1]}"
man = json.load(open(blob(m["digest"]))); cfg = json.load(open(blob(man["config"]["digest"])))
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def put(b):
    d = hashlib.sha256(b).hexdigest(); open(f"{out}/blobs/sha256/{d}", "wb").write(b); return "sha256:" + d
base = man["layers"][0]
shutil.copy(blob(base["digest"]), f"{out}/blobs/sha256/{base['digest'].split(':')[1]}")
entries = []
for i in range(20):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in ((f"app/service-{i}.py", (f"print('service {i}')\n" * 2000).encode()), ("root/.cache/pip/x", b"cache" * 1000)):
            ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1700000000; t.addfile(ti, io.BytesIO(data))
    tarb = raw.getvalue(); gz = gzip.compress(tarb, 6, mtime=0)
    c = dict(cfg); c["rootfs"] = {"type": "layers", "diff_ids": [cfg["rootfs"]["diff_ids"][0], "sha256:" + hashlib.sha256(tarb).hexdigest()]}
    c["history"] = cfg.get("history", [])[:1] + [{"created_by": f"service {i}"}]
    cb = json.dumps(c).encode()
    mm = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
          "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cb), "size": len(cb)},
          "layers": [base, {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)}]}
    mb = json.dumps(mm).encode()
    entries.append({"mediaType": mm["mediaType"], "digest": put(mb), "size": len(mb), "annotations": {"org.opencontainers.image.ref.name": f"s{i}"}})
json.dump({"schemaVersion": 2, "manifests": entries}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
for i in $(seq 0 19); do skopeo copy -q --dest-tls-verify=false "oci:$FLEET:s$i" "docker://$A/fleet:s$i"; done
fi
{ echo '[defaults]'; echo 'profiles = ["strict"]'; for i in $(seq 0 19); do printf '[[job]]\nsource = "%s/fleet:s%s"\ndestination = "%s/fleet-hard:s%s"\n' "$A" "$i" "$C" "$i"; done; } > "$WORK/fleet.toml"
{ echo '[defaults]'; echo 'profiles = ["strict"]'; printf '[[job]]\nsource = "%s/fleet:s0"\ndestination = "%s/fleet-one:s0"\n' "$A" "$C"; } > "$WORK/one.toml"
if want batch; then
read -r t_one _ < <(measure "$HARDEN" batch -q --cache-dir "$WORK/cache-one" "$WORK/one.toml")
read -r t_fleet rss_fleet < <(measure "$HARDEN" batch -q --jobs 2 --cache-dir "$WORK/cache-fleet" "$WORK/fleet.toml")
read -r t_rerun _ < <(measure "$HARDEN" batch -q --jobs 2 --cache-dir "$WORK/cache-fleet" "$WORK/fleet.toml")
fi

# 5. Fleet: both tools cold, then warm.
if want fleet; then
  skopeo_cold
  # Requests each copy makes (issue #24): the source's and the destination's registry logs.
  served() { grep -c 'msg="response completed' "$WORK/$1/registry.log" || true; }
  asked() { local a0=$1 d0=$2 dst=$3; echo "$(( $(served regA) - a0 ))+$(( $(served "$dst") - d0 ))"; }
  a0=$(served regA); d0=$(served regB)
  read -r t_sk_cold _ < <(measure skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/big:1" "docker://$B/remirror:1")
  n_sk_cold=$(asked "$a0" "$d0" regB); a0=$(served regA); d0=$(served regB)
  read -r t_sk_warm _ < <(measure skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/big:1" "docker://$B/remirror-again:1")
  n_sk_new=$(asked "$a0" "$d0" regB)
  t_sk_warm=$(warm_median skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/big:1" "docker://$B/remirror-@:1")
  a0=$(served regA); d0=$(served regB)
  skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/big:1" "docker://$B/remirror-again:1"
  n_sk_same=$(asked "$a0" "$d0" regB)
  rm -rf "$WORK/hc-mirror"
  a0=$(served regA); d0=$(served regC)
  read -r t_h_cold _ < <(measure "$HARDEN" rebuild -q --cache-dir "$WORK/hc-mirror" -p passthrough "$A/big:1" "$C/remirror:1")
  n_h_cold=$(asked "$a0" "$d0" regC); a0=$(served regA); d0=$(served regC)
  read -r t_h_warm _ < <(measure "$HARDEN" rebuild -q --cache-dir "$WORK/hc-mirror" -p passthrough "$A/big:1" "$C/remirror-again:1")
  n_h_new=$(asked "$a0" "$d0" regC)
  t_h_warm=$(warm_median "$HARDEN" rebuild -q --cache-dir "$WORK/hc-mirror" -p passthrough "$A/big:1" "$C/remirror-@:1")
  a0=$(served regA); d0=$(served regC)
  "$HARDEN" rebuild -q --cache-dir "$WORK/hc-mirror" -p passthrough "$A/big:1" "$C/remirror-again:1" >/dev/null 2>&1
  n_h_same=$(asked "$a0" "$d0" regC)
  { echo '[defaults]'; echo 'profiles = ["strict"]'
    for j in $(seq 0 29); do for i in 0 1 2; do printf '[[job]]\nsource = "%s/fleet:s%s"\ndestination = "%s/m%s/fleet:s%s"\n' "$A" "$i" "$C" "$j" "$i"; done; done; } > "$WORK/ninety.toml"
  rm -rf "$WORK/hc-90"
  read -r t_90 rss_90 < <(measure "$HARDEN" batch -q --jobs 2 --cache-dir "$WORK/hc-90" "$WORK/ninety.toml")
  a0=$(served regA); d0=$(served regC)
  read -r t_90r _ < <(measure "$HARDEN" batch -q --jobs 2 --cache-dir "$WORK/hc-90" "$WORK/ninety.toml")
  n_90r=$(asked "$a0" "$d0" regC)
  # The same 90 (source, destination) pairs with skopeo, 2 copies at a time (as --jobs 2), into
  # registry B: a first run, then the rerun the harden rerun is compared with.
  for j in $(seq 0 29); do for i in 0 1 2; do echo "docker://$A/fleet:s$i docker://$B/m$j/fleet:s$i"; done; done > "$WORK/ninety.pairs"
  sk90() { xargs -P 2 -L 1 skopeo copy -q --src-tls-verify=false --dest-tls-verify=false < "$WORK/ninety.pairs"; }
  read -r t_sk90 _ < <(measure bash -c "$(declare -f sk90); WORK=$WORK sk90")
  a0=$(served regA); d0=$(served regB)
  read -r t_sk90r _ < <(measure bash -c "$(declare -f sk90); WORK=$WORK sk90")
  n_sk90r=$(asked "$a0" "$d0" regB)
  # Two pods of an indexed Job: each its own disk (cache directory), the registry shared.
  { echo '[defaults]'; echo 'profiles = ["strict"]'; for i in $(seq 0 19); do printf '[[job]]\nsource = "%s/fleet:s%s"\ndestination = "%s/pods:s%s"\n' "$A" "$i" "$C" "$i"; done; } > "$WORK/pods.toml"
  pods() {
    local p0 p1
    "$HARDEN" batch -q --jobs 1 --shard 0/2 --cache-dir "$WORK/pod0" --shared-cache "$C/harden-cache" --report "$WORK/pod0.json" "$WORK/pods.toml" & p0=$!
    "$HARDEN" batch -q --jobs 1 --shard 1/2 --cache-dir "$WORK/pod1" --shared-cache "$C/harden-cache" --report "$WORK/pod1.json" "$WORK/pods.toml" & p1=$!
    wait "$p0" && wait "$p1"
  }
  read -r t_pods _ < <(measure bash -c "$(declare -f pods); HARDEN=$HARDEN WORK=$WORK C=$C pods")
  base_rewrites=$(python3 -c "
import json, sys
n = 0
for f in sys.argv[1:]:
    for j in json.load(open(f))['jobs']:
        n += j['report']['layers'][0]['action'] == 'rewritten'
print(n)" "$WORK/pod0.json" "$WORK/pod1.json")
fi

# 6. The package-database work against none of it.
if want pkgdb; then
  printf 'extends = "strict"\n[packages]\nkeep_database = true\n' > "$WORK/keepdb.toml"
  median() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
  db=(); keep=()
  for i in 1 2 3; do
    read -r t _ < <(measure "$HARDEN" rebuild -q --no-cache -p strict "$A/app:1" "$C/app-db:$i"); db+=("$t")
    read -r t _ < <(measure "$HARDEN" rebuild -q --no-cache -p "$WORK/keepdb.toml" "$A/app:1" "$C/app-keepdb:$i"); keep+=("$t")
  done
  t_db=$(median "${db[@]}"); t_keepdb=$(median "${keep[@]}")
  echo "pkgdb: database follows ${db[*]} s; keep_database ${keep[*]} s" >&2
fi

# 7. Requests: harden vs skopeo, each from its own empty state (harden's cache directory, skopeo
# has none for this), on a token-auth registry and on an anonymous one.
if want requests; then
  answered() { grep -c 'response completed' "$1" 2>/dev/null || echo 0; }
  tokens() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
  req_case() { # LOG TOKLOG -- command...: "registry requests + token requests"
    local log=$1 tok=$2; shift 3
    local a b; a=$(answered "$log"); b=$(tokens "$tok")
    "$@" >/dev/null
    echo "$(( $(answered "$log") - a ))+$(( $(tokens "$tok") - b ))"
  }
  mkdir -p "$WORK/tok" "$WORK/regT" "$WORK/reqcache"
  target/it-venv/bin/python integration/tokenserver.py "$WORK/tok" --refresh-token unused --owner-pid $$ > "$WORK/tok.port" &
  for _ in $(seq 50); do [ -s "$WORK/tok.port" ] && break; sleep 0.1; done
  T=$(bash integration/registry.sh start --token "http://127.0.0.1:$(head -1 "$WORK/tok.port")/token" "$WORK/tok/cert.pem" "$WORK/regT")
  printf '{"auths":{"%s":{"auth":"%s"}}}' "$T" "$(printf 'harden:secret-pw' | base64)" > "$WORK/auth.json"
  req_rows=""
  for kind in token none; do
    if [ $kind = token ]; then R=$T; LOG="$WORK/regT/registry.log"; TOK="$WORK/tok/token.log"; AUTH=(--authfile "$WORK/auth.json")
    else R=$C; LOG="$WORK/regC/registry.log"; TOK=/dev/null; AUTH=(); fi
    skopeo copy -q "${AUTH[@]}" --dest-tls-verify=false "$APP_REF" "docker://$R/rq/src:1"
    h() { req_case "$LOG" "$TOK" -- "$HARDEN" rebuild -q -p strict "${AUTH[@]}" --cache-dir "$WORK/reqcache/$kind" "$R/rq/src:1" "$R/rq/$1:1"; }
    s() { req_case "$LOG" "$TOK" -- skopeo copy -q "${AUTH[@]}" --src-tls-verify=false --dest-tls-verify=false "docker://$R/rq/src:1" "docker://$R/rq/$1:1"; }
    mkdir -p "$WORK/reqcache/$kind" && chmod 700 "$WORK/reqcache/$kind"
    hc=$(h h1); hs=$(h h1); hn=$(h h2); sc=$(s s1); ss=$(s s1); sn=$(s s2)
    echo "requests ($kind auth): harden cold $hc, same repo $hs, new repo $hn; skopeo $sc, $ss, $sn (registry+token server)" >&2
    req_rows+="| requests, \`-p strict\` on the app image, registry with $kind auth: cold / rerun, same repository / re-mirror, new repository (registry + token server) | $hc / $hs / $hn | \`skopeo copy\` $sc / $ss / $sn | — |"$'\n'
  done
  bash integration/registry.sh stop "$WORK/regT" >/dev/null 2>&1 || true
fi

# 8. The issue's vendor-shaped image and a 500k-entry layer: peak RSS of -p strict.
if want vendor; then
  MINBASE=$(ls -d "$CACHE"/rootfs/debian-* | grep -v '\.done$' | head -1)
  n_many=${BENCH_ENTRIES:-500000}
  python3 integration/vendor-image.py vendor "$MINBASE" "$ROOTFS" "$WORK/vendor" 2> "$WORK/vendor.log"
  python3 integration/vendor-image.py many "$MINBASE" "$n_many" "$WORK/many" 2>> "$WORK/vendor.log"
  cat "$WORK/vendor.log" >&2
  v_shape=$(sed -n 2p "$WORK/vendor.log" | sed 's/^layer: //')
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/vendor:vendor" "docker://$A/vendor:1"
  skopeo copy -q --dest-tls-verify=false "oci:$WORK/many:vendor" "docker://$A/many:1"
  rm -rf "$WORK/vendor" "$WORK/many"
  # Each copy cold (skopeo's blob-info cache emptied, harden with --no-cache), into a repository
  # the destination registry does not hold yet: nothing can be skipped or mounted.
  skopeo_cold
  read -r t_sk_vendor _ c_sk_vendor < <(measure_copy "$WORK/regB" skopeo copy -q --src-tls-verify=false --dest-tls-verify=false "docker://$A/vendor:1" "docker://$B/vendor:1")
  read -r t_hp_vendor rss_hp_vendor c_hp_vendor < <(measure_copy "$WORK/regC" "$HARDEN" rebuild -q --no-cache -p passthrough "$A/vendor:1" "$C/vendor-mirror:1")
  read -r t_h_vendor rss_vendor c_h_vendor < <(measure_copy "$WORK/regC" "$HARDEN" rebuild -q --no-cache -p strict "$A/vendor:1" "$C/vendor-hard:1")
  read -r t_h_many rss_many c_h_many < <(measure_copy "$WORK/regC" "$HARDEN" rebuild -q --no-cache -p strict "$A/many:1" "$C/many-hard:1")
fi

mib() { python3 -c "print(f'{$1/1024:.0f} MiB')"; }
mb() { python3 -c "print(f'{$1/2**20:.1f} MiB')"; }
echo '| measurement | harden | reference | ratio (harden / reference) |'
echo '|---|---|---|---|'
if want big; then cat <<MD
| 1 GiB layer, \`-p strict\`, registry → registry | ${t_harden_big} s, ${c_harden_big} CPU-s, peak RSS $(mib "$rss_big") | \`skopeo copy\` ${t_skopeo_big} s, ${c_skopeo} CPU-s | $(ratio "$t_harden_big" "$t_skopeo_big") (CPU $(ratio "$c_harden_big" "$c_skopeo")) |
| same layer, vs recompressing it | ${t_harden_big} s | \`gzip -dc \| gzip -6 -c\` ${t_gzip} s | $(ratio "$t_harden_big" "$t_gzip") |
| no-op mirror (\`-p passthrough\`), registry A → B | ${t_harden_mirror} s, peak RSS $(mib "$rss_mirror") | \`skopeo copy\` ${t_skopeo_mirror} s | $(ratio "$t_harden_mirror" "$t_skopeo_mirror") |
| the same two copies in CPU-seconds (the tool + both registries, $(nproc) cores) | ${c_harden} CPU-s | ${c_skopeo} CPU-s | $(ratio "$c_harden" "$c_skopeo") |
MD
fi
if want app; then cat <<MD
| \`-p strict\` on the app image | ${t_harden_app} s, $(mb "$s_hard") | DIY skopeo+umoci ${t_diy} s, $(mb "$s_diy") (source $(mb "$s_src")) | $(ratio "$t_harden_app" "$t_diy") |
MD
fi
if want batch; then cat <<MD
| batch of 20 images on one base, \`-p strict\` | ${t_fleet} s, peak RSS $(mib "$rss_fleet") | one image of them ${t_one} s (×20 = $(python3 -c "print(f'{20*$t_one:.1f}')") s) | $(ratio "$t_fleet" "$t_one") × one image |
| the same batch again (cache warm, all pushed) | ${t_rerun} s | the first run ${t_fleet} s | $(ratio "$t_rerun" "$t_fleet") |
MD
fi
if want fleet; then cat <<MD
| re-mirror of the 1 GiB image (\`-p passthrough\`) to a new repository, warm (median of 7) | ${t_h_warm} s (cold ${t_h_cold} s) | \`skopeo copy\` warm ${t_sk_warm} s (cold ${t_sk_cold} s) | $(ratio "$t_h_warm" "$t_sk_warm") |
| requests (source + destination registry), cold copy of the 1 GiB image | ${n_h_cold} | \`skopeo copy\` ${n_sk_cold} | — |
| requests, warm re-mirror to a new repository | ${n_h_new} | \`skopeo copy\` ${n_sk_new} | — |
| requests, warm re-mirror to the same repository | ${n_h_same} | \`skopeo copy\` ${n_sk_same} | — |
| rerun of a finished 90-job batch (3 sources × 30 destinations, \`-p strict\`, \`--jobs 2\`) | ${t_90r} s | its cold run ${t_90} s (peak RSS $(mib "$rss_90")) | $(ratio "$t_90r" "$t_90") |
| the same rerun vs \`skopeo copy\` of the same 90 pairs again, 2 at a time (its first run ${t_sk90} s) | ${t_90r} s, ${n_90r} requests | ${t_sk90r} s, ${n_sk90r} requests | $(ratio "$t_90r" "$t_sk90r") |
| two pods (\`--shard 0/2\`, \`1/2\`, own cache directories, one \`--shared-cache\`) splitting the 20-image batch | ${t_pods} s, shared base rewritten ${base_rewrites}× in total | — | — |
MD
fi
if want requests; then printf '%s' "$req_rows"; fi
if want vendor; then cat <<MD
| vendor-shaped image (minbase + a layer of ${v_shape}), \`-p strict\`, registry → registry | ${t_h_vendor} s, ${c_h_vendor} CPU-s, peak RSS $(mib "$rss_vendor") | \`skopeo copy\` ${t_sk_vendor} s, ${c_sk_vendor} CPU-s | $(ratio "$t_h_vendor" "$t_sk_vendor") (CPU $(ratio "$c_h_vendor" "$c_sk_vendor")) |
| the same image, no-op mirror (\`-p passthrough\`) | ${t_hp_vendor} s, ${c_hp_vendor} CPU-s, peak RSS $(mib "$rss_hp_vendor") | \`skopeo copy\` ${t_sk_vendor} s, ${c_sk_vendor} CPU-s | $(ratio "$t_hp_vendor" "$t_sk_vendor") (CPU $(ratio "$c_hp_vendor" "$c_sk_vendor")) |
| minbase + a layer of ${n_many} tiny files, \`-p strict\`, registry → registry | ${t_h_many} s, ${c_h_many} CPU-s, peak RSS $(mib "$rss_many") | — | — |
MD
fi
if want pkgdb; then cat <<MD
| package databases follow the files (\`-p strict\`, app image, median of 3) | ${t_db} s | \`keep_database = true\` ${t_keepdb} s | $(ratio "$t_db" "$t_keepdb") |
MD
fi
