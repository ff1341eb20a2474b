#!/usr/bin/env bash
# make demo: the main job on a local default. Builds (or reuses) the sample image — real Debian
# bookworm content plus a small Python app — starts a local registry, pushes the sample, and
# hardens it with samples/app-profile.toml (strict + health check), showing the plan, the guard
# refusing a shell-form CMD, and the result.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
H="$ROOT/target/release/harden"
mapfile -t REFS < <(bash integration/build-image.sh all)
APP=$(printf '%s\n' "${REFS[@]}" | grep ':app$')
SHELLCMD=$(printf '%s\n' "${REFS[@]}" | grep ':app-shellcmd$')
DIR="$ROOT/target/demo"
rm -rf "$DIR"; mkdir -p "$DIR/registry"
trap 'bash integration/registry.sh stop "$DIR/registry" >/dev/null 2>&1 || true' EXIT
REG=$(bash integration/registry.sh start "$DIR/registry")
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say "sample image pushed to the local registry $REG/sample/app:1"
skopeo copy -q --dest-tls-verify=false "$APP" "docker://$REG/sample/app:1"
skopeo copy -q --dest-tls-verify=false "$SHELLCMD" "docker://$REG/sample/app:shell"
say "plan only (--dry-run), first lines"
"$H" rebuild --dry-run -q -p samples/app-profile.toml "$REG/sample/app:1" "$REG/sample/app:hardened" > "$DIR/plan.txt"
head -15 "$DIR/plan.txt"; echo "… ($(wc -l < "$DIR/plan.txt") lines in $DIR/plan.txt)"
say "the guard refuses a shell-form CMD under strict (exit 3 expected)"
set +e; "$H" rebuild -q -p strict "$REG/sample/app:shell" "$REG/sample/app:shell-hardened"; echo "exit code: $?"; set -e
say "rebuild"
OUT=$("$H" rebuild -p samples/app-profile.toml --report "$DIR/report.json" --sbom "$DIR/sbom.json" --contract "$DIR/contract.json" "$REG/sample/app:1" "$REG/sample/app:hardened")
echo "$OUT"
say "result, as skopeo sees it"
skopeo inspect --tls-verify=false "docker://$OUT" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("user:", d.get("User") or "(see config)"); [print(" ", k, "=", v) for k, v in sorted(d["Labels"].items())]'
skopeo inspect --tls-verify=false --raw --config "docker://$OUT" | python3 -c 'import json,sys; c=json.load(sys.stdin)["config"]; print("User:", c.get("User")); print("Healthcheck:", c.get("Healthcheck", {}).get("Test"))'
python3 - "$DIR/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
i = sum(l["bytes_in"] for l in r["layers"]); o = sum(l["bytes_out"] for l in r["layers"])
print(f"layers: {i/2**20:.1f} MiB -> {o/2**20:.1f} MiB;", r["plan"]["summary"])
f = r.get("findings")
if f: print(f"findings: {len(f['before'])} -> {len(f['after'])}")
p = r["plan"].get("packages")
if p: print(f"packages: {p['before']} -> {p['after']} ({len(p['removed'])} removed, {len(p['trimmed'])} trimmed)")
PY
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); print("sbom:", b["bomFormat"], b["specVersion"], len(b["components"]), "packages, e.g.", b["components"][0]["purl"])' "$DIR/sbom.json"
python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("runtime contract:", " ".join(c["dockerRunArgs"]))' "$DIR/contract.json"
echo "report: $DIR/report.json"
