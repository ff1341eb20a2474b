#!/usr/bin/env bash
# Regenerate src/sign/keyless/testdata (the keyless verifier's unit-test fixtures) from a fresh
# private Sigstore instance (sigstore_mock.py): every variant in both formats, over the digest
# sha256("x"). All fixtures come from one instance, so they are regenerated together.
#   bash integration/keyless/make-testdata.sh [PYTHON]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../../src/sign/keyless/testdata"
py=${1:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
digest=sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881
id=https://github.com/vendor/app/.github/workflows/release.yml@refs/heads/main
iss=https://token.actions.githubusercontent.com
"$py" "$here/sigstore_mock.py" init "$tmp/i"
rm -f "$out"/bundle-*.json "$out"/legacy-* "$out"/att-*
cp "$tmp/i/trusted_root.json" "$tmp/i/trusted_root_expired_ca.json" "$out/"
sign() { # FORMAT VARIANT [ID ISS]
    local o="$tmp/$1-${2:-good}"
    "$py" "$here/sigstore_mock.py" sign "$tmp/i" "$digest" "$o" --format "$1" --identity "${3:-$id}" \
        --issuer "${4:-$iss}" ${2:+--variant "$2"}
    if [ "$1" = bundle ]; then
        cp "$o/bundle.json" "$out/bundle-${2:-good}.json"
    elif [ "$1" = att ]; then
        cp "$o/envelope.json" "$out/att-${2:-good}.envelope"
        cp "$o/annotations.json" "$out/att-${2:-good}.json"
    else
        cp "$o/annotations.json" "$out/legacy-${2:-good}.json"
        cp "$o/payload" "$out/legacy-${2:-good}.payload"
    fi
}
for v in "" other-ca loop-chain other-digest bad-set no-log tampered-payload malformed-cert bad-sct \
    bad-checkpoint unknown-field tsa tsa-other-sig; do
    sign bundle "$v"
    sign legacy "$v"
done
for v in rekor-v2 rekor-v2-tsa tsa-untrusted tsa-tampered tsa-expired; do
    sign bundle "$v"
done
for v in "" tsa other-digest tampered-payload bad-set; do
    sign att "$v"
done
sign bundle email dev@vendor.example https://accounts.google.com
