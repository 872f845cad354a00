#!/usr/bin/env bash
# akvsync's distributed topology on one machine, without Docker: a
# three-node NATS cluster (deploy/nats/cluster.conf, one user per service
# from deploy/nats/accounts.conf), the init step, the emulator, the API and
# two workers. Go, curl, jq and openssl are all it needs.
#
#   deploy/local/run.sh start   build, start everything, wait until the API is ready
#   deploy/local/run.sh smoke   start, register the emulator's vaults, run a
#                               sync-all job to completion, check the key count, stop
#   deploy/local/run.sh stop    stop what start started (by the pids it wrote)
#
# State (binaries, generated secrets, NATS stores, logs, pids) lives in
# $AKVSYNC_LOCAL_DIR (default: data/local under the repository root).
# With AKVSYNC_LOCAL_BIN set to a directory of prebuilt binaries
# (nats-server, api, worker, akv-emulator), nothing is built.
# Ports: NATS clients 4222-4224, NATS monitoring 8222-8224, routes
# 6222-6224, API https://127.0.0.1:8443 (self-signed; its certificate is
# $AKVSYNC_LOCAL_DIR/api/tls-cert.pem). Override the base ports with
# AKVSYNC_LOCAL_NATS_PORT, AKVSYNC_LOCAL_HTTP_PORT, AKVSYNC_LOCAL_ROUTE_PORT
# and AKVSYNC_LOCAL_API_PORT. The workers serve /metrics, /healthz and
# /readyz on http://127.0.0.1:9091 and :9092 (AKVSYNC_LOCAL_METRICS_PORT).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=${AKVSYNC_LOCAL_DIR:-$ROOT/data/local}
BIN=${AKVSYNC_LOCAL_BIN:-$DIR/bin}
NATS_PORT=${AKVSYNC_LOCAL_NATS_PORT:-4222}
HTTP_PORT=${AKVSYNC_LOCAL_HTTP_PORT:-8222}
ROUTE_PORT=${AKVSYNC_LOCAL_ROUTE_PORT:-6222}
API_PORT=${AKVSYNC_LOCAL_API_PORT:-8443}
METRICS_PORT=${AKVSYNC_LOCAL_METRICS_PORT:-9091}
VAULTS=${AKVSYNC_LOCAL_VAULTS:-6}
KEYS=${AKVSYNC_LOCAL_KEYS:-100}
API=https://127.0.0.1:$API_PORT
NATS_URL=nats://127.0.0.1:$NATS_PORT,nats://127.0.0.1:$((NATS_PORT + 1)),nats://127.0.0.1:$((NATS_PORT + 2))

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
  local what=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what: not after ${secs}s (logs in $DIR/logs)"
    sleep 0.2
  done
}

build() {
  if [[ -n ${AKVSYNC_LOCAL_BIN:-} ]]; then
    log "using the binaries in $BIN"
    return
  fi
  mkdir -p "$BIN"
  log "building nats-server (the version in go.mod), api, worker, akv-emulator"
  (cd "$ROOT" &&
    go build -o "$BIN/nats-server" github.com/nats-io/nats-server/v2 &&
    go build -o "$BIN/" ./cmd/api ./cmd/worker ./cmd/akv-emulator)
}

# secrets writes the generated secrets once (0600) and loads them.
secrets() {
  local f=$DIR/secrets.env
  if [[ ! -f $f ]]; then
    (
      umask 077
      {
        for role in ADMIN API WORKER MONITOR; do
          echo "AKVSYNC_NATS_${role}_PASSWORD=$(openssl rand -hex 24)"
        done
        echo "AKVSYNC_MASTER_KEYS=m1:$(openssl rand -base64 32)"
        echo "AKVSYNC_JWT_KEYS=k1:$(openssl rand -base64 32)"
        echo "AKVSYNC_ADMIN_PASSWORD=$(openssl rand -hex 16)"
      } >"$f"
    )
  fi
  set -a
  # shellcheck disable=SC1090
  . "$f"
  set +a
}

# spawn NAME ENV... -- COMMAND...: start a process in the background,
# logging to logs/NAME.log, its pid in pids/NAME.
spawn() {
  local name=$1
  shift
  local env=()
  while [[ $1 != -- ]]; do env+=("$1"); shift; done
  shift
  env "${env[@]}" "$@" >"$DIR/logs/$name.log" 2>&1 &
  echo $! >"$DIR/pids/$name"
}

running() { [[ -f $DIR/pids/$1 ]] && kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null; }

start() {
  for p in "$DIR"/pids/*; do
    [[ -e $p ]] || continue
    running "$(basename "$p")" && die "already running ($DIR/pids); run '$0 stop' first"
  done
  mkdir -p "$DIR/logs" "$DIR/pids"
  build
  secrets

  # Three NATS nodes from one configuration file (deploy/nats/cluster.conf).
  local routes=()
  for i in 0 1 2; do routes+=("nats-route://127.0.0.1:$((ROUTE_PORT + i))"); done
  for i in 0 1 2; do
    local n=$((i + 1))
    mkdir -p "$DIR/nats-$n"
    spawn "nats-$n" \
      AKVSYNC_NATS_NAME="nats-$n" AKVSYNC_NATS_HOST=127.0.0.1 \
      AKVSYNC_NATS_PORT=$((NATS_PORT + i)) AKVSYNC_NATS_HTTP_PORT=$((HTTP_PORT + i)) \
      AKVSYNC_NATS_CLUSTER_PORT=$((ROUTE_PORT + i)) AKVSYNC_NATS_STORE_DIR="$DIR/nats-$n" \
      AKVSYNC_NATS_ROUTE_1="${routes[0]}" AKVSYNC_NATS_ROUTE_2="${routes[1]}" AKVSYNC_NATS_ROUTE_3="${routes[2]}" \
      -- "$BIN/nats-server" -c "$ROOT/deploy/nats/cluster.conf"
  done
  for i in 0 1 2; do
    wait_for "nats-$((i + 1)) JetStream" 60 curl -sf "http://127.0.0.1:$((HTTP_PORT + i))/healthz?js-enabled-only=true"
  done
  log "NATS cluster up: $NATS_URL"

  # The init step: the only use of the admin credential.
  log "init step: streams, buckets and consumers (R3) as akvsync-admin"
  env AKVSYNC_NATS_PASSWORD="$AKVSYNC_NATS_ADMIN_PASSWORD" \
    "$BIN/worker" --init-topology --replicas 3 --nats-url "$NATS_URL" --nats-user akvsync-admin \
    >"$DIR/logs/init.log" 2>&1 || die "init step failed: $(tail -5 "$DIR/logs/init.log")"

  # The emulator: vaults on loopback HTTPS ports, described by the manifest.
  rm -f "$DIR/manifest.json"
  spawn emulator -- "$BIN/akv-emulator" --vaults "$VAULTS" --keys-per-vault "$KEYS" --seed 1 \
    --data-dir "$DIR/emu" --manifest "$DIR/manifest.json"
  wait_for "emulator manifest" 60 test -s "$DIR/manifest.json"

  # The API (least-privilege user akvsync-api) imports the emulator's
  # connection into the registry, its secret sealed with the master key.
  spawn api AKVSYNC_NATS_PASSWORD="$AKVSYNC_NATS_API_PASSWORD" -- \
    "$BIN/api" --nats-url "$NATS_URL" --nats-user akvsync-api --replicas 3 \
    --listen "127.0.0.1:$API_PORT" --tls-self-signed --data-dir "$DIR/api" \
    --emulator-manifest "$DIR/manifest.json"
  # Two workers (akvsync-worker), connections from the registry.
  for w in 1 2; do
    spawn "worker-$w" AKVSYNC_NATS_PASSWORD="$AKVSYNC_NATS_WORKER_PASSWORD" -- \
      "$BIN/worker" --nats-url "$NATS_URL" --nats-user akvsync-worker --replicas 3 \
      --store "$DIR/worker-$w.db" --metrics-listen "127.0.0.1:$((METRICS_PORT + w - 1))"
  done
  wait_for "API ready" 120 curl -sf --cacert "$DIR/api/tls-cert.pem" "$API/readyz"
  for w in 1 2; do
    wait_for "worker-$w ready" 120 curl -sf "http://127.0.0.1:$((METRICS_PORT + w - 1))/readyz"
  done
  log "API ready: $API (certificate $DIR/api/tls-cert.pem, admin password in $DIR/secrets.env)"
}

stop() {
  local p name
  for p in "$DIR"/pids/*; do
    [[ -e $p ]] || continue
    name=$(basename "$p")
    if running "$name"; then
      kill "$(cat "$p")" 2>/dev/null || true
    fi
  done
  # Wait for them to exit (each stops within 30 s on SIGTERM).
  for p in "$DIR"/pids/*; do
    [[ -e $p ]] || continue
    name=$(basename "$p")
    local deadline=$((SECONDS + 30))
    while running "$name" && ((SECONDS < deadline)); do sleep 0.2; done
    running "$name" && log "$name did not stop" || rm -f "$p"
  done
  log "stopped"
}

# call METHOD PATH [BODY]: the API with the token, the answer on stdout.
call() {
  curl -sf --cacert "$DIR/api/tls-cert.pem" -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -X "$1" "$API$2" ${3:+-d "$3"}
}

# metric PORT SERIES: the value of one series of a worker's /metrics, as
# an integer (0 when absent).
metric() {
  curl -sf "http://127.0.0.1:$1/metrics" | awk -v s="$2" '$1 == s { printf "%d", $2; found = 1 } END { if (!found) print 0 }'
}

smoke() {
  start
  trap stop EXIT
  TOKEN=$(curl -sf --cacert "$DIR/api/tls-cert.pem" -H 'Content-Type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$AKVSYNC_ADMIN_PASSWORD\"}" "$API/api/v1/auth/tokens" | jq -r .jwt)
  [[ -n $TOKEN && $TOKEN != null ]] || die "no token"
  # Register the emulator's vaults, one request per subscription.
  local sub body
  for sub in $(jq -r '[.vaults[].subscription_id] | unique | .[]' "$DIR/manifest.json"); do
    body=$(jq -c --arg s "$sub" '{connection: "emulator", subscription_id: $s,
      vaults: [.vaults[] | select(.subscription_id == $s) | {name, properties: {vaultUri: .url}}]}' "$DIR/manifest.json")
    call POST /api/v1/cckm/azure/add-vaults "$body" >/dev/null || die "add-vaults refused"
  done
  local job status
  job=$(call POST /api/v1/cckm/azure/synchronization-jobs '{"synchronize_all":true}' | jq -r .id)
  log "sync-all job $job"
  local deadline=$((SECONDS + 300))
  while :; do
    status=$(call GET "/api/v1/cckm/azure/synchronization-jobs/$job" | jq -r .overall_status)
    [[ $status != in_progress ]] && break
    ((SECONDS < deadline)) || die "job still in progress after 300s"
    sleep 0.5
  done
  [[ $status == completed ]] || die "job ended $status"
  local total
  total=$(call GET '/api/v1/cckm/azure/keys?limit=1' | jq -r .total)
  log "job $status; the API lists $total keys (want $((VAULTS * KEYS)))"
  [[ $total == $((VAULTS * KEYS)) ]] || die "wrong key count"
  # The workers' own accounting, scraped as Prometheus would: together
  # they synced every key once and completed every vault.
  local synced=0 completed=0 n
  for w in 1 2; do
    n=$(metric "$((METRICS_PORT + w - 1))" 'akvsync_keys_synced_total{outcome="new"}')
    synced=$((synced + n))
    n=$(metric "$((METRICS_PORT + w - 1))" 'akvsync_vault_syncs_total{status="completed"}')
    completed=$((completed + n))
  done
  log "worker metrics: $synced new keys synced, $completed vault syncs completed"
  [[ $synced == $((VAULTS * KEYS)) ]] || die "the workers' metrics count $synced new keys, want $((VAULTS * KEYS))"
  [[ $completed == "$VAULTS" ]] || die "the workers' metrics count $completed completed vault syncs, want $VAULTS"
  if grep -l "Violation" "$DIR"/logs/nats-*.log >/dev/null 2>&1; then
    die "nats-server refused a service request: $(grep -h Violation "$DIR"/logs/nats-*.log | head -3)"
  fi
  log "smoke test passed"
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  smoke) smoke ;;
  *) die "usage: $0 start|smoke|stop" ;;
esac
