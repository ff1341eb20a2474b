#!/usr/bin/env bash
# `make image`: harden's own image, built and hardened by harden — no Dockerfile.
#
# usage: image/build.sh [IMAGE]     (env: HARDEN, OUT, SIGN_KEY, SOURCE_DATE_EPOCH)
#
# 1. image/base.py writes a plain base layout (OUT/base) of the release binary, its libraries,
#    the CA certificates and /etc/passwd with nonroot (65532); no shell, no package manager.
# 2. harden rebuild -p strict --sbom hardens it into OUT/harden-oci:VERSION (OUT/harden.cdx.json,
#    OUT/harden.digest); with SIGN_KEY, signed with a provenance attestation (--attest).
# 3. harden check of the result must show no fatal or warn finding.
# 4. With IMAGE (registry/harden:TAG) the same rebuild pushes it there: the same digest.
# Reproducible: SOURCE_DATE_EPOCH defaults to the last commit's time, so two runs of one
# checkout (and one binary) give one digest. Prints the result's digest on stdout.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARDEN="${HARDEN:-$ROOT/target/release/harden}"
OUT="${OUT:-$ROOT/target/image}"
IMAGE="${1:-${IMAGE:-}}"
[ -x "$HARDEN" ] || { echo "image/build.sh: $HARDEN: no release binary (make release)" >&2; exit 1; }
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)"
fi
export SOURCE_DATE_EPOCH
VERSION="$("$HARDEN" --version | awk '{print $2}')"
[ -n "$VERSION" ] || { echo "image/build.sh: $HARDEN --version printed no version" >&2; exit 1; }

rm -rf "$OUT/base" "$OUT/harden-oci"
mkdir -p "$OUT"
python3 "$ROOT/image/base.py" "$HARDEN" "$OUT/base" base "$VERSION" >&2

args=(-p strict --sbom "$OUT/harden.cdx.json" --report "$OUT/harden-report.json" -q)
if [ -n "${SIGN_KEY:-}" ]; then
  args+=(--sign-key "$SIGN_KEY" --attest)
fi
"$HARDEN" rebuild "oci:$OUT/base:base" "oci:$OUT/harden-oci:$VERSION" --digest-file "$OUT/harden.digest" "${args[@]}" >&2
digest="$(cat "$OUT/harden.digest")"
# The result must pass its own audit at warn (signature and health check findings are info).
"$HARDEN" check "oci:$OUT/harden-oci:$VERSION" --fail-on warn --format json > "$OUT/harden-check.json" || {
  echo "image/build.sh: harden check of the image found warn or fatal findings: $OUT/harden-check.json" >&2
  exit 1
}
if [ -n "$IMAGE" ]; then
  pushed="$("$HARDEN" rebuild "oci:$OUT/base:base" "$IMAGE" "${args[@]}")"
  [ "${pushed##*@}" = "$digest" ] || {
    echo "image/build.sh: $IMAGE got ${pushed##*@}, the layout $digest: not reproducible" >&2
    exit 1
  }
  echo "image/build.sh: pushed $pushed" >&2
fi
echo "image/build.sh: oci:$OUT/harden-oci:$VERSION $digest" >&2
echo "$digest"
