#!/usr/bin/env bash
# Install the host tools the harden integration tests need.
#
# Idempotent: packages whose commands are already present are skipped, and
# apt-get is only invoked when something is missing. Must be run as root
# (or with passwordless sudo) on a Debian/Ubuntu host.
set -euo pipefail

# command -> Debian package providing it
declare -A PKG_OF=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [umoci]=umoci
  [runc]=runc
  [debootstrap]=debootstrap
  [oci-image-tool]=oci-image-tool
  [htpasswd]=apache2-utils
  [zstd]=zstd
  [tar]=tar
  [curl]=curl
  # nsenter: integration/matrix.rs asks a container's server with curl from its network namespace.
  [nsenter]=util-linux
  [python3]=python3
  [bsdtar]=libarchive-tools
  [bzip2]=bzip2
  [xz]=xz-utils
  [containerd]=containerd
  [ctr]=containerd
  [dpkg-query]=dpkg
  # rpm's own tools build and judge the rpm databases of integration/rpmdb.rs.
  [rpm]=rpm
  [rpmbuild]=rpm
  [rpmdb]=rpm
  [db5.3_load]=db5.3-util
  # Peak memory of harden runs on hostile inputs (integration/hostile.rs): GNU time's -v.
  [/usr/bin/time]=time
  # OpenSSL's RFC 3161 TSA (`openssl ts -reply`) timestamps the keyless tests' signatures.
  [openssl]=openssl
  # Go's archive/tar (the reader containerd unpacks with) is the oracle of integration/tarframing.rs.
  [go]=golang-go
  # Not commands: the tar corpora of other projects (integration/corpus.rs), checked as files.
  [/usr/share/go-1.19/src/archive/tar/testdata/gnu.tar]=golang-1.19-src
  [/usr/lib/python3.11/test/testtar.tar]=libpython3.11-testsuite
)
ORDER=(docker-registry skopeo umoci runc debootstrap oci-image-tool htpasswd zstd tar curl nsenter python3 bsdtar bzip2 xz
  containerd ctr dpkg-query rpm rpmbuild rpmdb db5.3_load go /usr/share/go-1.19/src/archive/tar/testdata/gnu.tar /usr/lib/python3.11/test/testtar.tar
  /usr/bin/time openssl)

# PyPI: cyclonedx-python-lib validates the SBOMs (integration/packages.rs) and cryptography
# checks DSSE attestations independently (integration/attest.rs); jsonschema validates sigstore
# bundles against protobuf-specs' schema (integration/bundleschema.py); kubernetes-validate and
# check-jsonschema validate samples/ (integration/ci.rs); in a venv of its own
# (Debian's python is externally managed) at target/it-venv; installed once, checked each run.
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="$ROOT/target/it-venv"
python_libs() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import cyclonedx.validation.json, cryptography, jsonschema' 2>/dev/null &&
    [ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/check-jsonschema" ]; then
    echo "setup.sh: cyclonedx-python-lib, cryptography, jsonschema, kubernetes-validate and check-jsonschema present in $VENV"
    return 0
  fi
  echo "setup.sh: installing cyclonedx-python-lib and cryptography (PyPI) into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" ||
    { echo "setup.sh: ERROR: python3 -m venv failed (Debian package python3-venv)" >&2; exit 1; }
  "$VENV/bin/python" -m pip install -q 'cyclonedx-python-lib[json-validation]' cryptography jsonschema \
    kubernetes-validate check-jsonschema ||
    { echo "setup.sh: ERROR: pip install cyclonedx-python-lib cryptography kubernetes-validate check-jsonschema failed" >&2; exit 1; }
}

# npm: @sigstore/verify (sigstore-js) checks cosign v3 bundles independently
# (integration/attest.rs; with @sigstore/protobuf-specs, its dependency, keyless bundles against a
# trusted root: integration/keyless) and @microsoft/sarif-multitool (a self-contained native binary, no
# dotnet) validates check's SARIF (integration/ci.rs), installed into target/npm; node 20 and
# npm come from the machine.
NPM_DIR="$ROOT/target/npm"
node_libs() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "setup.sh: ERROR: node and npm are needed for @sigstore/verify (Debian packages nodejs, npm)" >&2
    exit 1
  fi
  if (cd "$NPM_DIR" 2>/dev/null && node -e 'require("@sigstore/verify"); require("@sigstore/bundle"); require("@sigstore/protobuf-specs")' 2>/dev/null) &&
    [ -x "$NPM_DIR/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool" ]; then
    echo "setup.sh: @sigstore/verify and @microsoft/sarif-multitool present in $NPM_DIR"
    return 0
  fi
  echo "setup.sh: installing @sigstore/verify (npm) into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  [ -f "$NPM_DIR/package.json" ] || echo '{"name":"harden-it","private":true}' > "$NPM_DIR/package.json"
  npm install --prefix "$NPM_DIR" --no-audit --no-fund -q '@sigstore/verify@3.1.1' '@sigstore/bundle@4' \
    '@microsoft/sarif-multitool@5' ||
    { echo "setup.sh: ERROR: npm install @sigstore/verify @microsoft/sarif-multitool failed" >&2; exit 1; }
  # Its postinstall (chmod u+x) may be skipped by npm's install-script policy.
  chmod u+x "$NPM_DIR/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool" 2>/dev/null || true
}

have() {
  case "$1" in /*) [ -f "$1" ]; return ;; esac
  command -v "$1" >/dev/null 2>&1 && return 0
  # root's PATH may lack /usr/sbin when run via some CI wrappers
  [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]
}

missing_cmds() {
  local c
  for c in "${ORDER[@]}"; do have "$c" || printf '%s\n' "$c"; done
}

mapfile -t missing < <(missing_cmds)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup.sh: all integration tools present"
  python_libs
  node_libs
  exit 0
fi

declare -A seen=()
pkgs=()
for c in "${missing[@]}"; do
  p=${PKG_OF[$c]}
  if [ -z "${seen[$p]:-}" ]; then seen[$p]=1; pkgs+=("$p"); fi
done
echo "setup.sh: missing commands: ${missing[*]}"
echo "setup.sh: installing Debian packages: ${pkgs[*]}"

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "setup.sh: ERROR: not root and no sudo; cannot install: ${pkgs[*]}" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup.sh: ERROR: apt-get not found; install these packages manually: ${pkgs[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait (bounded) for another dpkg/apt process to release its lock.
apt_opts=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
if ! $SUDO apt-get "${apt_opts[@]}" update -qq; then
  echo "setup.sh: WARNING: apt-get update failed; trying install with existing lists" >&2
fi
if ! $SUDO apt-get "${apt_opts[@]}" install -y -qq --no-install-recommends "${pkgs[@]}"; then
  echo "setup.sh: ERROR: apt-get install failed for: ${pkgs[*]}" >&2
fi

mapfile -t still < <(missing_cmds)
if [ "${#still[@]}" -ne 0 ]; then
  echo "setup.sh: ERROR: still missing after install: ${still[*]}" >&2
  for c in "${still[@]}"; do echo "  - '$c' (Debian package ${PKG_OF[$c]})" >&2; done
  exit 1
fi
echo "setup.sh: all integration tools present"
python_libs
node_libs
