#!/usr/bin/env bash
# The MySQL-family topologies of the test suite and the bench, on loopback, in a directory of
# their own (the shared MariaDB on 3306 is never touched):
#   - a three-node Galera cluster (Debian galera-4, rsync SST, wsrep_OSU_method left at TOI):
#     client ports 33061-33063, group communication 45671-45673, IST 45681-45683, SST 45691-45693;
#   - a MariaDB primary (33071) with an asynchronous GTID replica (33072, read_only).
# Every server runs with --no-defaults (nothing of /etc/mysql applies), its own datadir, socket,
# pid file and log, a 64M buffer pool; root may connect over loopback without a password.
#
#   .ci/topology/mariadb.sh start   # installs galera-4 / rsync when missing, starts the five servers
#   .ci/topology/mariadb.sh env     # export lines for the test suite and the bench
#   .ci/topology/mariadb.sh stop    # stops them (the data stays until the directory is removed)
set -euo pipefail

ROOT="${LLM_PROXY_TOPOLOGY_DIR:-/tmp/llm-proxy-db-topology}/mariadb"
PROVIDER=/usr/lib/galera/libgalera_smm.so
GALERA_PORTS=(33061 33062 33063)
GCOMM_PORTS=(45671 45672 45673)
IST_PORTS=(45681 45682 45683)
SST_PORTS=(45691 45692 45693)
PRIMARY_PORT=33071
REPLICA_PORT=33072
CLUSTER_ADDRESS="gcomm://127.0.0.1:45671,127.0.0.1:45672,127.0.0.1:45673"

log() { echo "topology/mariadb: $*" >&2; }

ensure_packages() {
  local missing=()
  [ -e "$PROVIDER" ] || missing+=(galera-4)
  command -v rsync >/dev/null 2>&1 || missing+=(rsync)
  command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The servers run as user mysql when this script runs as root (rsync's SST daemon would
# otherwise drop to nobody, who cannot write the joiner's datadir), else as the caller.
server_user() { if [ "$(id -u)" = 0 ] && id mysql >/dev/null 2>&1; then echo mysql; else id -un; fi; }

mariadbd_bin() { command -v mariadbd 2>/dev/null || echo /usr/sbin/mariadbd; }

# The options every server gets: its own files, loopback, a small memory footprint.
common_options() {
  local name=$1 port=$2 dir="$ROOT/$1"
  echo --no-defaults --user="$(server_user)" --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --port="$port" --bind-address=127.0.0.1 \
    --innodb-buffer-pool-size=64M --innodb-log-file-size=48M --performance-schema=OFF \
    --max-connections=200 --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
    --skip-log-bin-trust-function-creators --log-bin-trust-function-creators=1 --tmpdir="$dir" \
    --innodb-flush-log-at-trx-commit=2 --sync-binlog=0
}

install_datadir() {
  local dir="$ROOT/$1"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown "$(server_user)" "$dir"
  if [ ! -d "$dir/data/mysql" ]; then
    mariadb-install-db --no-defaults --user="$(server_user)" --datadir="$dir/data" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
      || { cat "$dir/install.log" >&2; return 1; }
  fi
}

running() { local pid; pid=$(cat "$ROOT/$1/mysqld.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }

client() { mariadb --no-defaults --host=127.0.0.1 --user=root --port="$1" --batch --skip-column-names "${@:2}"; }

# Waits until the server on $2 answers; $3 is the pid of the launched mariadbd (gone: failed).
wait_ready() {
  local name=$1 port=$2 pid=$3
  for _ in $(seq 1 240); do
    if client "$port" -e 'SELECT 1' >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  log "$name (port $port) did not come up; its log:"
  tail -n 15 "$ROOT/$name/error.log" >&2 || true
  return 1
}

wait_synced() {
  local port=$1
  for _ in $(seq 1 120); do
    [ "$(client "$port" -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = "Synced" ] && return 0
    sleep 0.5
  done
  log "node on $port never reached Synced"
  return 1
}

start_galera_node() {
  local i=$1 name="galera$(( $1 + 1 ))" attempt
  running "$name" && return 0
  install_datadir "$name"
  # A joiner can lose a race for its ports with the previous run's SST helpers: tried again.
  for attempt in 1 2 3; do
    launch_galera_node "$i" && wait_synced "${GALERA_PORTS[$i]}" && return 0
    log "$name: attempt $attempt failed, trying again"
    stop_one "$name"
    sleep 2
  done
  return 1
}

launch_galera_node() {
  local i=$1 name="galera$(( $1 + 1 ))" extra=()
  local port=${GALERA_PORTS[$i]}
  if [ "$i" -eq 0 ]; then
    extra+=(--wsrep-new-cluster)
    # A cluster stopped cleanly leaves safe_to_bootstrap: 1 on its last node; this one bootstraps.
    sed -i 's/^safe_to_bootstrap: 0/safe_to_bootstrap: 1/' "$ROOT/$name/data/grastate.dat" 2>/dev/null || true
  fi
  # shellcheck disable=SC2046
  setsid "$(mariadbd_bin)" $(common_options "$name" "$port") \
    --wsrep-on=ON --wsrep-provider="$PROVIDER" --wsrep-cluster-name=llm_proxy_test \
    --wsrep-cluster-address="$CLUSTER_ADDRESS" --wsrep-node-name="$name" \
    --wsrep-node-address="127.0.0.1:${GCOMM_PORTS[$i]}" \
    --wsrep-node-incoming-address="127.0.0.1:$port" \
    --wsrep-sst-receive-address="127.0.0.1:${SST_PORTS[$i]}" \
    --wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:${GCOMM_PORTS[$i]};ist.recv_addr=127.0.0.1:${IST_PORTS[$i]};gcache.size=64M" \
    --wsrep-sst-method=rsync --binlog-format=ROW --innodb-autoinc-lock-mode=2 \
    --default-storage-engine=InnoDB --wsrep-slave-threads=2 "${extra[@]}" \
    </dev/null >>"$ROOT/$name/stdout.log" 2>&1 &
  wait_ready "$name" "$port" $!
}

start_replication_pair() {
  local name
  for name in primary replica; do
    running "$name" && continue
    install_datadir "$name"
    local port=$PRIMARY_PORT id=71 extra=(--log-bin=mariadb-bin --log-slave-updates=ON)
    if [ "$name" = replica ]; then
      port=$REPLICA_PORT id=72
      extra+=(--read-only=ON --report-host=127.0.0.1 --report-port="$REPLICA_PORT" --relay-log=relay-bin)
    fi
    # shellcheck disable=SC2046
    setsid "$(mariadbd_bin)" $(common_options "$name" "$port") --server-id="$id" \
      --binlog-format=ROW --gtid-strict-mode=ON "${extra[@]}" </dev/null >>"$ROOT/$name/stdout.log" 2>&1 &
    wait_ready "$name" "$port" $!
  done
  if [ -z "$(client "$REPLICA_PORT" -e "SHOW SLAVE STATUS")" ]; then
    client "$REPLICA_PORT" -e "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$PRIMARY_PORT, \
      MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
  fi
  client "$REPLICA_PORT" -e "START SLAVE"
  client "$PRIMARY_PORT" -e "CREATE DATABASE IF NOT EXISTS test"
}

start() {
  ensure_packages
  mkdir -p "$ROOT"
  local i
  for i in 0 1 2; do start_galera_node "$i"; done
  client "${GALERA_PORTS[0]}" -e "CREATE DATABASE IF NOT EXISTS test"
  start_replication_pair
  log "Galera on ${GALERA_PORTS[*]}, primary $PRIMARY_PORT, replica $REPLICA_PORT (files in $ROOT)"
}

stop_one() {
  local name=$1 pid
  pid=$(cat "$ROOT/$name/mysqld.pid" 2>/dev/null) || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid"
  for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  log "$name did not stop in 60 s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
}

stop() {
  # Joiners first, the bootstrap node last (it then stays safe to bootstrap).
  local name
  for name in replica primary galera3 galera2 galera1; do stop_one "$name"; done
}

print_env() {
  local urls=() port
  for port in "${GALERA_PORTS[@]}"; do urls+=("mysql://root@127.0.0.1:$port/test"); done
  echo "export LLM_PROXY_TEST_GALERA_URLS=$(IFS=,; echo "${urls[*]}")"
  echo "export LLM_PROXY_TEST_MYSQL_PRIMARY_URL=mysql://root@127.0.0.1:$PRIMARY_PORT/test"
  echo "export LLM_PROXY_TEST_MYSQL_REPLICA_URL=mysql://root@127.0.0.1:$REPLICA_PORT/test"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
