#!/usr/bin/env bash
# Start/stop a throwaway Docker distribution registry (Debian's docker-registry)
# on a free 127.0.0.1 port, for harden's integration tests.
#
#   integration/registry.sh start [--auth | --token REALM CERT] [--owner-pid PID] [--port PORT] DIR
#   integration/registry.sh stop DIR
#
# start: writes DIR/config.yml (storage in DIR/data), optionally DIR/htpasswd
#        (user "harden", password "secret-pw", bcrypt) and enables basic auth,
#        starts the registry in the background, waits until /v2/ answers
#        (200, or 401 with --auth), writes DIR/port, DIR/pid, DIR/registry.log,
#        and prints "127.0.0.1:PORT" on stdout. With --owner-pid, a small
#        watchdog stops the registry once process PID is gone (so a killed
#        test run does not leak registries). With --port, that port (a restart on
#        the same port and storage: the reliability tests stop a registry mid-push).
#        With --token, token authentication instead: service "harden-test", issuer
#        "harden-test-issuer", tokens from REALM signed by CERT's key (integration/tokenserver.py).
# stop:  kills the registry whose pid is in DIR/pid (if it is still that
#        registry) and waits for it to exit. DIR itself is left for the caller.
#
# Plain HTTP, no TLS: clients must use --tls-verify=false (skopeo) / treat
# 127.0.0.1 as insecure. distribution 2.8 allows htpasswd over plain HTTP
# (it only logs a warning).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

AUTH_USER=harden
AUTH_PASS=secret-pw
REGISTRY_BIN="${REGISTRY_BIN:-/usr/bin/docker-registry}"

die() { printf 'registry.sh: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: $0 start [--auth | --token REALM CERT] [--owner-pid PID] [--port PORT] DIR | stop DIR" >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# True if PID is alive and is a docker-registry process.
is_registry_pid() {
  local pid="$1"
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$(basename "$REGISTRY_BIN") serve"
}

http_code() {
  curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$1/v2/" 2>/dev/null || true
}

cmd_stop() {
  local dir="$1" pid i
  if [ -f "$dir/watch.pid" ]; then
    pid="$(cat "$dir/watch.pid")"
    # only if it is still our watchdog (a bash running this script)
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'registry.sh'; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/watch.pid"
  fi
  [ -f "$dir/pid" ] || { echo "registry.sh: no pid file in $dir (not running)" >&2; return 0; }
  pid="$(cat "$dir/pid")"
  if is_registry_pid "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      is_registry_pid "$pid" || break
      sleep 0.1
    done
    if is_registry_pid "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/pid"
}

write_config() {
  local dir="$1" port="$2" auth="$3" token_realm="${4:-}" token_cert="${5:-}"
  {
    cat <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
  fields:
    service: harden-test-registry
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$port
  secret: harden-test-secret-$RANDOM$RANDOM
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: false
EOF
    if [ "$auth" = 1 ]; then
      cat <<EOF
auth:
  htpasswd:
    realm: harden-test
    path: $dir/htpasswd
EOF
    fi
    if [ -n "$token_realm" ]; then
      cat <<EOF
auth:
  token:
    realm: $token_realm
    service: harden-test
    issuer: harden-test-issuer
    rootcertbundle: $token_cert
EOF
    fi
  } >"$dir/config.yml"
}

cmd_start() {
  local auth=0 dir="" owner="" fixed_port="" token_realm="" token_cert=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --auth) auth=1 ;;
      --token) shift; token_realm="${1:-}"; shift; token_cert="${1:-}"; [ -n "$token_realm" ] && [ -f "$token_cert" ] || usage ;;
      --owner-pid) shift; owner="${1:-}"; [[ "$owner" =~ ^[0-9]+$ ]] || usage ;;
      --port) shift; fixed_port="${1:-}"; [[ "$fixed_port" =~ ^[0-9]+$ ]] || usage ;;
      -*) usage ;;
      *) [ -z "$dir" ] || usage; dir="$1" ;;
    esac
    shift
  done
  [ -n "$dir" ] || usage
  [ -x "$REGISTRY_BIN" ] || die "$REGISTRY_BIN not found (apt-get install docker-registry; see integration/setup.sh)"
  command -v curl >/dev/null || die "curl not found (see integration/setup.sh)"
  command -v python3 >/dev/null || die "python3 not found (see integration/setup.sh)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd -P)"
  if [ -f "$dir/pid" ] && is_registry_pid "$(cat "$dir/pid")"; then
    die "a registry is already running for $dir (pid $(cat "$dir/pid")); stop it first"
  fi
  mkdir -p "$dir/data"
  if [ "$auth" = 1 ]; then
    command -v htpasswd >/dev/null || die "htpasswd not found (apt-get install apache2-utils)"
    htpasswd -Bbn "$AUTH_USER" "$AUTH_PASS" >"$dir/htpasswd"
  else
    rm -f "$dir/htpasswd"
  fi

  local attempt port pid code i
  for attempt in 1 2 3 4 5; do
    port="${fixed_port:-$(free_port)}"
    write_config "$dir" "$port" "$auth" "$token_realm" "$token_cert"
    # stdin/stdout/stderr fully redirected so callers capturing our output
    # (e.g. Rust's Command::output) don't wait for the daemon.
    setsid "$REGISTRY_BIN" serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 &
    pid=$!
    for i in $(seq 1 100); do
      code="$(http_code "$port")"
      if [ "$code" = 200 ] || { { [ "$auth" = 1 ] || [ -n "$token_realm" ]; } && [ "$code" = 401 ]; }; then
        echo "$port" >"$dir/port"
        echo "$pid" >"$dir/pid"
        if [ -n "$owner" ]; then
          setsid bash "$(readlink -f "$0")" watch "$owner" "$pid" </dev/null >/dev/null 2>&1 &
          echo "$!" >"$dir/watch.pid"
        fi
        echo "127.0.0.1:$port"
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if grep -q 'address already in use' "$dir/registry.log"; then
      echo "registry.sh: port $port taken, retrying" >&2
      [ -z "$fixed_port" ] || sleep 1
      continue
    fi
    tail -n 20 "$dir/registry.log" >&2
    die "registry did not answer on 127.0.0.1:$port/v2/ (last HTTP code '${code:-none}')"
  done
  die "could not find a free port after 5 attempts"
}

[ $# -ge 1 ] || usage
sub="$1"; shift
case "$sub" in
  start) cmd_start "$@" ;;
  stop) [ $# -eq 1 ] || usage; cmd_stop "$1" ;;
  watch) # internal: watch OWNER_PID REGISTRY_PID
    [ $# -eq 2 ] || usage
    while kill -0 "$1" 2>/dev/null && is_registry_pid "$2"; do sleep 1; done
    is_registry_pid "$2" && kill -TERM "$2" 2>/dev/null
    exit 0 ;;
  *) usage ;;
esac
