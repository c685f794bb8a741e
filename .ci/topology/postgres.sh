#!/usr/bin/env bash
# PostgreSQL beyond one server, for the tests and the bench: a primary of its own with a
# streaming replica, and PgBouncer (transaction and session pools) in front of the shared
# server.  Everything lives under one state directory and listens on loopback only; the shared
# server (127.0.0.1:5432) is only connected to, never reconfigured.
#
#   .ci/topology/postgres.sh start   # idempotent: starts what is not running yet
#   .ci/topology/postgres.sh env     # `export` lines for the tests (eval them)
#   .ci/topology/postgres.sh stop    # stops what start started
#
# Ports: primary 55432, replica 55433, PgBouncer transaction pool 56432, session pool 56433.
# The state directory is ${LLM_PROXY_TOPOLOGY_DIR:-/tmp/llm-proxy-db-topology}/pg.
set -euo pipefail

TOP="${LLM_PROXY_TOPOLOGY_DIR:-/tmp/llm-proxy-db-topology}"
DIR="$TOP/pg"
PG_BIN="${LLM_PROXY_PG_BIN:-/usr/lib/postgresql/15/bin}"
PRIMARY_PORT=55432
REPLICA_PORT=55433
TX_PORT=56432
SESSION_PORT=56433
SHARED_HOST=127.0.0.1
SHARED_PORT=5432
RUN_AS=postgres

as_owner() {
  if [ "$(id -un)" = "$RUN_AS" ]; then "$@"; else runuser -u "$RUN_AS" -- "$@"; fi
}

ensure_pgbouncer() {
  command -v pgbouncer >/dev/null 2>&1 && return 0
  [ -x /usr/sbin/pgbouncer ] && return 0
  echo "topology: installing pgbouncer" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
}

pgbouncer_exe() { command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer; }

running() { # pg_ctl status for a data directory
  [ -f "$1/PG_VERSION" ] && as_owner "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1
}

start_primary() {
  local data="$DIR/primary"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$PG_BIN/initdb" -D "$data" --auth=trust --username=postgres -E UTF8 >"$DIR/initdb.log" 2>&1
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PRIMARY_PORT
unix_socket_directories = '$DIR'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 2GB
hot_standby = on
shared_buffers = 128MB
max_wal_size = 4GB
fsync = on
EOF
  fi
  running "$data" || as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$DIR/primary.log" -w -t 60 start >/dev/null
}

start_replica() {
  local data="$DIR/replica"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_owner "$PG_BIN/pg_basebackup" -h 127.0.0.1 -p "$PRIMARY_PORT" -U postgres -D "$data" -R -X stream \
      --checkpoint=fast >"$DIR/basebackup.log" 2>&1
    cat >>"$data/postgresql.conf" <<EOF
port = $REPLICA_PORT
hot_standby_feedback = off
max_standby_streaming_delay = 30s
EOF
  fi
  running "$data" || as_owner "$PG_BIN/pg_ctl" -D "$data" -l "$DIR/replica.log" -w -t 60 start >/dev/null
}

write_pgbouncer_config() { # name mode port
  local name="$1" mode="$2" port="$3"
  cat >"$DIR/pgbouncer-$name.ini" <<EOF
[databases]
* = host=$SHARED_HOST port=$SHARED_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
pool_mode = $mode
default_pool_size = 5
max_client_conn = 500
ignore_startup_parameters = extra_float_digits,options
admin_users = postgres
stats_users = postgres
logfile = $DIR/pgbouncer-$name.log
pidfile = $DIR/pgbouncer-$name.pid
EOF
}

start_pgbouncer() { # name mode port
  local name="$1" mode="$2" port="$3" pidfile="$DIR/pgbouncer-$1.pid"
  if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return 0; fi
  write_pgbouncer_config "$name" "$mode" "$port"
  as_owner "$(pgbouncer_exe)" -d "$DIR/pgbouncer-$name.ini"
  for _ in $(seq 1 50); do
    "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -q 2>/dev/null && return 0
    sleep 0.1
  done
  echo "topology: pgbouncer ($mode) did not come up on $port; see $DIR/pgbouncer-$name.log" >&2
  return 1
}

start() {
  ensure_pgbouncer
  mkdir -p "$DIR"
  chown "$RUN_AS" "$TOP" "$DIR" 2>/dev/null || true
  chmod 0755 "$TOP" 2>/dev/null || true
  chmod 0700 "$DIR"
  printf '"postgres" ""\n' >"$DIR/userlist.txt"
  chown "$RUN_AS" "$DIR/userlist.txt" 2>/dev/null || true
  start_primary
  start_replica
  start_pgbouncer tx transaction "$TX_PORT"
  start_pgbouncer session session "$SESSION_PORT"
  echo "topology: primary :$PRIMARY_PORT, replica :$REPLICA_PORT, pgbouncer tx :$TX_PORT session :$SESSION_PORT ($DIR)" >&2
}

stop() {
  local name pidfile data
  for name in tx session; do
    pidfile="$DIR/pgbouncer-$name.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      kill -INT "$(cat "$pidfile")" 2>/dev/null || true
    fi
  done
  for data in "$DIR/replica" "$DIR/primary"; do
    if running "$data"; then
      as_owner "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
    fi
  done
}

env_lines() {
  echo "export LLM_PROXY_TEST_PGBOUNCER_TX_URL=postgresql://postgres@127.0.0.1:$TX_PORT/test"
  echo "export LLM_PROXY_TEST_PGBOUNCER_SESSION_URL=postgresql://postgres@127.0.0.1:$SESSION_PORT/test"
  echo "export LLM_PROXY_TEST_PG_PRIMARY_URL=postgresql://postgres@127.0.0.1:$PRIMARY_PORT/postgres"
  echo "export LLM_PROXY_TEST_PG_REPLICA_URL=postgresql://postgres@127.0.0.1:$REPLICA_PORT/postgres"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) env_lines ;;
  clean) stop; rm -rf "$DIR" ;;
  *) echo "usage: $0 start|stop|env|clean" >&2; exit 2 ;;
esac
