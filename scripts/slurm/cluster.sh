#!/usr/bin/env bash
# A real one-node SLURM cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) for tests and CI,
# started and stopped without systemd (each daemon run in the foreground of its own process).
#
#   cluster.sh install          apt-get the packages (skips what is installed; needs root)
#   cluster.sh start  [BASE]    start everything under BASE (default /tmp/sl); prints
#                               `export SLURM_CONF=...` for the caller:  eval "$(cluster.sh start)"
#   cluster.sh stop   [BASE]    cancel jobs, then stop the daemons by PID
#   cluster.sh status [BASE]    what is running (exit 0: all five daemons, 3: otherwise)
#
# Everything (keys, database, state, logs, PIDs) lives under BASE, so a stop followed by a start
# keeps accounting and job ids; `rm -rf BASE` after a stop gives a clean cluster. Ports can be
# moved with SL_DB_PORT, SL_DBD_PORT, SL_CTLD_PORT, SL_SLURMD_PORT; waits are bounded by
# SL_TIMEOUT seconds. Only stdout carries the export line; progress and errors go to stderr.
set -euo pipefail

readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly DEFAULT_BASE=/tmp/sl
readonly PACKAGES=(munge slurm-client slurmctld slurmd slurmdbd mariadb-server)
# Start order; stop goes in reverse (slurmd, slurmctld, slurmdbd, mariadbd, munged).
readonly DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
readonly DB_PORT="${SL_DB_PORT:-3306}"
readonly DBD_PORT="${SL_DBD_PORT:-6819}"
readonly CTLD_PORT="${SL_CTLD_PORT:-6817}"
readonly SLURMD_PORT="${SL_SLURMD_PORT:-6818}"
readonly TIMEOUT="${SL_TIMEOUT:-60}"
readonly MAX_ARRAY_SIZE=1001
# A unix socket path holds at most 107 bytes. The longest ones under BASE: munge's
# /munge/munge.socket.2 (21) and slurmd's per-step /spool/<node>_<job>.<step> (7 + node + 22).
readonly SUN_PATH_MAX=107

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: cluster.sh {install|start [BASE]|stop [BASE]|status [BASE]}" >&2
    exit 2
}

# ---------------------------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------------------------
set_paths() {
    local base="${1:-$DEFAULT_BASE}"
    [[ "$base" == /* ]] || die "BASE must be an absolute path, got '$base'"
    base="${base%/}"
    local host max
    host="$(hostname -s)"
    max=$((SUN_PATH_MAX - 29 - ${#host}))
    ((max <= SUN_PATH_MAX - 21)) || max=$((SUN_PATH_MAX - 21))
    ((${#base} <= max)) \
        || die "BASE '$base' is ${#base} characters; unix socket paths under it need <= $max"
    BASE="$base"
    ETC="$BASE/etc"
    LOGS="$BASE/log"
    RUN="$BASE/run"
    PIDS="$BASE/pids"
    MUNGE_DIR="$BASE/munge"
    MUNGE_SOCKET="$MUNGE_DIR/munge.socket.2"
    DB_DIR="$BASE/db"
    DB_SOCKET="$DB_DIR/mysqld.sock"
    export SLURM_CONF="$ETC/slurm.conf"
}

# ---------------------------------------------------------------------------------------------
# Processes: liveness through /proc only (no systemd, no pgrep by name)
# ---------------------------------------------------------------------------------------------

# running PID: PID exists and is not a zombie (daemons may briefly linger as zombies).
running() {
    local stat
    [[ "$1" =~ ^[0-9]+$ ]] || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    # /proc/PID/stat is "pid (comm) state ..."; comm may contain spaces, so cut after ") ".
    [[ "${stat##*) }" != Z* ]]
}

# alive PID NAME: running, and its command is NAME (guards against a reused PID).
alive() {
    running "$1" && [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]]
}

# recorded_pid NAME: the PID that start wrote for NAME (empty if none).
recorded_pid() {
    [[ -f "$PIDS" ]] || return 0
    awk -v n="$1" '$1 == n { p = $2 } END { if (p) print p }' "$PIDS"
}

# launch NAME CMD...: start a foreground daemon detached from the caller (own session, no
# inherited stdio, so `$(cluster.sh start)` returns) and record its PID.
launch() {
    local name="$1"
    shift
    setsid "$@" </dev/null >"$LOGS/$name.out" 2>&1 &
    local pid=$!
    echo "$name $pid" >>"$PIDS"
    log "started $name (pid $pid)"
}

# wait_for NAME DESCRIPTION CMD...: poll CMD until it succeeds; fail with the logs of NAME if the
# daemon dies or TIMEOUT passes.
wait_for() {
    local name="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + TIMEOUT)) pid
    pid="$(recorded_pid "$name")"
    until "$@" >/dev/null 2>&1; do
        # Not `alive`: until setsid/setpriv have exec'd, the command name is still theirs.
        if ! running "$pid"; then
            fail_with_logs "$name" "$name exited while waiting for $what"
        fi
        if ((SECONDS >= deadline)); then
            fail_with_logs "$name" "timed out after ${TIMEOUT}s waiting for $what"
        fi
        sleep 0.2
    done
}

fail_with_logs() {
    local name="$1" message="$2" f
    log "error: $message; last log lines:"
    for f in "$LOGS/$name.out" "$LOGS/$name.log" "$DB_DIR/$name.err"; do
        [[ -s "$f" ]] || continue
        echo "----- $f" >&2
        tail -n 25 "$f" >&2
    done
    log "stopping the daemons started so far; logs stay in $LOGS"
    stop_daemons
    exit 1
}

# ---------------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------------
cmd_install() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        log "all packages present: ${PACKAGES[*]}"
        return 0
    fi
    ((EUID == 0)) || die "install needs root (missing: ${missing[*]})"
    # Package scripts must not start munge/mariadb services that would hold our ports; Debian
    # asks /usr/sbin/policy-rc.d, so provide a "deny" one for the duration if there is none.
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    log "installing: ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# ---------------------------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------------------------
render() {  # render TEMPLATE OUTPUT: replace @KEY@ placeholders
    sed -e "s|@BASE@|$BASE|g" -e "s|@HOST@|$HOST|g" -e "s|@MUNGE_SOCKET@|$MUNGE_SOCKET|g" \
        -e "s|@DB_PORT@|$DB_PORT|g" -e "s|@DBD_PORT@|$DBD_PORT|g" \
        -e "s|@CTLD_PORT@|$CTLD_PORT|g" -e "s|@SLURMD_PORT@|$SLURMD_PORT|g" \
        -e "s|@MAX_ARRAY_SIZE@|$MAX_ARRAY_SIZE|g" -e "s|@NODE_LINE@|$NODE_LINE|g" \
        -e "s|@DB_PASS@|$DB_PASS|g" "$1" >"$2"
}

# node_line: `slurmd -C`'s NodeName line with RealMemory lowered by 5%.
node_line() {
    slurmd -C | awk '/^NodeName=/ {
        for (i = 1; i <= NF; i++)
            if ($i ~ /^RealMemory=/) { split($i, kv, "="); $i = "RealMemory=" int(kv[2] * 0.95) }
        print; exit }'
}

write_configs() {
    mkdir -p "$ETC" "$LOGS" "$RUN" "$BASE/state" "$BASE/spool"
    HOST="$(hostname -s)"
    NODE_LINE="$(node_line)"
    [[ "$NODE_LINE" == NodeName=* ]] || die "could not read the node from 'slurmd -C'"
    if [[ ! -s "$ETC/dbpass" ]]; then
        (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$ETC/dbpass")
    fi
    DB_PASS="$(cat "$ETC/dbpass")"
    render "$HERE/slurm.conf.in" "$ETC/slurm.conf"
    (umask 077 && render "$HERE/slurmdbd.conf.in" "$ETC/slurmdbd.conf")
    chmod 600 "$ETC/slurmdbd.conf"  # slurmdbd refuses a readable one
}

start_munged() {
    # munged runs as `munge`, wants its folder owned by it and searchable by clients (0755).
    install -d -o munge -g munge -m 0755 "$MUNGE_DIR"
    if [[ ! -s "$MUNGE_DIR/munge.key" ]]; then
        (umask 277 && dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none)
        chown munge:munge "$MUNGE_DIR/munge.key"
    fi
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged setpriv --reuid=munge --regid=munge --init-groups \
        munged --foreground --socket="$MUNGE_SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --seed-file="$MUNGE_DIR/munged.seed"
    wait_for munged "a munge credential" \
        bash -c "munge -n --socket='$MUNGE_SOCKET' | unmunge --socket='$MUNGE_SOCKET'"
}

start_mariadbd() {
    # mariadbd runs as `mysql` and silently writes no log unless the folder is its own.
    install -d -o mysql -g mysql -m 0750 "$DB_DIR"
    if [[ ! -d "$DB_DIR/data/mysql" ]]; then
        log "creating the accounting database in $DB_DIR/data"
        mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR/data" \
            --auth-root-authentication-method=socket --skip-test-db \
            >"$LOGS/mariadb-install-db.out" 2>&1 \
            || fail_with_logs mariadb-install-db "mariadb-install-db failed"
    fi
    launch mariadbd mariadbd --no-defaults --user=mysql --datadir="$DB_DIR/data" \
        --socket="$DB_SOCKET" --pid-file="$DB_DIR/mariadbd.pid" \
        --log-error="$DB_DIR/mariadbd.err" --bind-address=127.0.0.1 --port="$DB_PORT" \
        --skip-name-resolve --innodb-lock-wait-timeout=900
    wait_for mariadbd "MariaDB on $DB_SOCKET" \
        mariadb --no-defaults --socket="$DB_SOCKET" -uroot -e 'SELECT 1'
    # Unix root may log in through the socket; slurmdbd comes over TCP as `slurm`.
    if ! mariadb --no-defaults --socket="$DB_SOCKET" -uroot <<SQL
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
    then
        fail_with_logs mariadbd "could not create the database user 'slurm'"
    fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Another daemon on one of our ports would answer our readiness checks; refuse to start instead.
check_ports_free() {
    local port
    for port in "$DB_PORT" "$DBD_PORT" "$CTLD_PORT" "$SLURMD_PORT"; do
        if port_open "$port"; then
            die "port $port on 127.0.0.1 is in use; free it or move ours" \
                "(SL_DB_PORT, SL_DBD_PORT, SL_CTLD_PORT, SL_SLURMD_PORT)"
        fi
    done
}

# slurmdbd answers a client over munge (a bare open port could be someone else's).
dbd_answers() { timeout 10 sacctmgr -n -P list cluster; }

node_idle() { [[ "$(sinfo -h -N -o '%t' 2>/dev/null)" == idle ]]; }

cmd_start() {
    set_paths "${1:-}"
    local name pid running=0
    for name in "${DAEMONS[@]}"; do
        pid="$(recorded_pid "$name")"
        if alive "$pid" "$name"; then running=$((running + 1)); fi
    done
    if ((running == ${#DAEMONS[@]})); then
        log "already running under $BASE"
        echo "export SLURM_CONF=$SLURM_CONF"
        return 0
    fi
    ((running == 0)) \
        || die "only $running of ${#DAEMONS[@]} daemons run under $BASE; run: $0 stop $BASE"
    ((EUID == 0)) || die "start needs root (the daemons run as root, munge and mysql)"
    for name in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q 'ok installed' \
            || die "package $name is missing; run: $0 install"
    done

    check_ports_free
    local t0=$SECONDS
    mkdir -p "$BASE"
    chmod 0755 "$BASE"
    write_configs
    rm -f "$PIDS"
    start_munged
    start_mariadbd
    launch slurmdbd slurmdbd -D
    wait_for slurmdbd "slurmdbd to answer sacctmgr on port $DBD_PORT" dbd_answers
    launch slurmctld slurmctld -D -f "$SLURM_CONF"
    wait_for slurmctld "slurmctld to answer" scontrol ping
    launch slurmd slurmd -D -f "$SLURM_CONF"
    wait_for slurmd "node $HOST idle in sinfo" node_idle
    for name in "${DAEMONS[@]}"; do
        alive "$(recorded_pid "$name")" "$name" || fail_with_logs "$name" "$name is not running"
    done
    log "cluster up in $((SECONDS - t0)) s under $BASE (partition debug, node $HOST)"
    echo "export SLURM_CONF=$SLURM_CONF"
}

# ---------------------------------------------------------------------------------------------
# stop
# ---------------------------------------------------------------------------------------------

# terminate NAME: SIGTERM the recorded PID, SIGKILL after TIMEOUT/4 seconds.
terminate() {
    local name="$1" pid deadline
    pid="$(recorded_pid "$name")"
    alive "$pid" "$name" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + TIMEOUT / 4))
    while alive "$pid" "$name"; do
        if ((SECONDS >= deadline)); then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
            break
        fi
        sleep 0.2
    done
    log "stopped $name (pid $pid)"
}

# stop_daemons: SIGTERM (then SIGKILL) in reverse start order, then forget the PIDs.
stop_daemons() {
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        terminate "${DAEMONS[i]}"
    done
    rm -f "$PIDS"
}

cmd_stop() {
    set_paths "${1:-}"
    if [[ ! -f "$PIDS" ]]; then
        log "nothing recorded in $PIDS; nothing to stop"
        return 0
    fi
    local pid jobs deadline
    pid="$(recorded_pid slurmctld)"
    if alive "$pid" slurmctld; then
        jobs="$(squeue -h -o '%A' 2>/dev/null | tr '\n' ' ')" || jobs=""
        if [[ -n "${jobs// /}" ]]; then
            log "cancelling jobs: $jobs"
            # shellcheck disable=SC2086  # one argument per job id
            scancel $jobs 2>/dev/null || true
            deadline=$((SECONDS + 15))
            while [[ -n "$(squeue -h -o '%A' 2>/dev/null)" ]] && ((SECONDS < deadline)); do
                sleep 0.5
            done
        fi
    fi
    stop_daemons
    log "stopped; state and logs stay in $BASE"
}

# ---------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------
cmd_status() {
    set_paths "${1:-}"
    local name pid running=0
    for name in "${DAEMONS[@]}"; do
        pid="$(recorded_pid "$name")"
        if alive "$pid" "$name"; then
            printf '%-10s running (pid %s)\n' "$name" "$pid"
            running=$((running + 1))
        else
            printf '%-10s not running\n' "$name"
        fi
    done
    if alive "$(recorded_pid slurmctld)" slurmctld; then
        echo "SLURM_CONF=$SLURM_CONF"
        sinfo 2>&1 || true
        squeue 2>&1 || true
    fi
    ((running == ${#DAEMONS[@]})) || return 3
}

case "${1:-}" in
    install) (($# == 1)) || usage; cmd_install ;;
    start) (($# <= 2)) || usage; cmd_start "${2:-}" ;;
    stop) (($# <= 2)) || usage; cmd_stop "${2:-}" ;;
    status) (($# <= 2)) || usage; cmd_status "${2:-}" ;;
    *) usage ;;
esac
