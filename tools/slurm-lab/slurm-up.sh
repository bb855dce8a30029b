#!/usr/bin/env bash
# slurm-up.sh - start a real single-node Slurm cluster (munged, slurmctld, slurmd,
# slurmrestd; optionally MariaDB + slurmdbd) on loopback only, as root, without systemd.
# Debian 12 / slurm-wlm 22.05. The farm-slurm adapter's real-Slurm tests run against it
# (tools/ci/slurm.sh). Two partitions share the node: `debug` (default) and `render`.
#
# Needs (Debian 12):
#   apt-get install -y --no-install-recommends slurm-wlm munge slurmrestd slurm-wlm-jwt-plugin curl
# (slurm-wlm-jwt-plugin is only a *Recommends* of slurm-wlm; without it auth/jwt,
#  `scontrol token` and slurmrestd's rest_auth/jwt do not work.)
# and for SLURM_LAB_ACCOUNTING=slurmdbd (sacct, /slurmdb/ REST paths) also:
#   apt-get install -y --no-install-recommends slurmdbd mariadb-server
#
# Idempotent: daemons still running from an earlier run (recorded PIDs, checked against
# /proc/PID/comm) are left alone; if the generated slurm.conf/slurmdbd.conf changed, the
# slurm daemons are restarted.  Stop everything with slurm-down.sh.
#
# Knobs (environment):
#   SLURM_LAB_DIR      state/spool/logs/pids/keys/db          (default /tmp/farm-slurm-lab/run)
#   SLURM_CONF         slurm.conf written and used            (default /etc/slurm/slurm.conf)
#   SLURM_LAB_ACCOUNTING
#                      none (default): no slurmdbd; sacct is unusable, finished jobs are
#                      appended to $SLURM_LAB_DIR/log/jobcomp.log only.
#                      slurmdbd: also run a private MariaDB (unix socket only, datadir
#                      under SLURM_LAB_DIR) and slurmdbd, so that sacct works.
#   SLURM_LAB_CPUS     CPUs to advertise (default: detected; other value => config_overrides;
#                      the tests use 8 so that many one-CPU probe jobs run at once)
#   SLURM_LAB_FRESH    1 (default) = start slurmctld/slurmd/slurmdbd with empty state, spool
#                      and accounting DB (job ids restart at 1); 0 = recover the last run's
#   SLURM_LAB_MINJOBAGE  seconds finished jobs stay visible in squeue/scontrol (default 300)
#   SLURM_LAB_REST     0 = do not start slurmrestd            (default 1)
#   SLURMRESTD_ADDR    slurmrestd listen address              (default 127.0.0.1:6820)
#   SLURM_LAB_TIMEOUT  seconds to wait for each daemon / the idle node (default 60)
set -euo pipefail
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

LAB="${SLURM_LAB_DIR:-/tmp/farm-slurm-lab/run}"
export SLURM_CONF="${SLURM_CONF:-/etc/slurm/slurm.conf}"
REST_ADDR="${SLURMRESTD_ADDR:-127.0.0.1:6820}"
REST_HOST="${REST_ADDR%:*}"; REST_PORT="${REST_ADDR##*:}"
TIMEOUT="${SLURM_LAB_TIMEOUT:-60}"
FRESH="${SLURM_LAB_FRESH:-1}"
ACCT="${SLURM_LAB_ACCOUNTING:-none}"
SLURM_USER=slurm          # created by the slurm-wlm packages
REST_USER=slurmrestd      # created below; slurmrestd refuses root and SlurmUser
NODE="$(hostname -s)"
PIDS="$LAB/pids"
DBD_CONF="$(dirname "$SLURM_CONF")/slurmdbd.conf"   # slurmdbd reads it from beside slurm.conf
DB_DIR="$LAB/mysql"; DB_SOCK="$DB_DIR/mysqld.sock"

log() { echo "[slurm-up] $*" >&2; }
die() { echo "[slurm-up] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
case "$ACCT" in none|slurmdbd) ;; *) die "SLURM_LAB_ACCOUNTING must be none or slurmdbd" ;; esac
for b in munged munge unmunge setpriv slurmctld slurmd slurmrestd sinfo scontrol; do
  command -v "$b" >/dev/null ||
    die "$b not found (apt-get install slurm-wlm munge slurmrestd slurm-wlm-jwt-plugin)"
done
if [ "$ACCT" = slurmdbd ]; then
  for b in slurmdbd sacctmgr mariadbd mariadb mariadb-install-db; do
    command -v "$b" >/dev/null || die "$b not found (apt-get install slurmdbd mariadb-server)"
  done
fi

# alive NAME COMM -> 0 if $PIDS/NAME.pid names a live (non-zombie) process whose comm is COMM
alive() {
  local f="$PIDS/$1.pid" pid
  [ -s "$f" ] || return 1
  pid="$(cat "$f")"
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] &&
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}
# port_open PORT [HOST] -> 0 if something accepts TCP connections on HOST(127.0.0.1):PORT
port_open() { (exec 3<>"/dev/tcp/${2:-127.0.0.1}/$1") 2>/dev/null; }
# start_bg NAME LOGFILE CMD... : run CMD detached (own session, stdin /dev/null), record PID.
# (No job control in this non-interactive shell, so setsid execs in place and so do
#  setpriv and env: $! is the daemon's own PID.)
start_bg() {
  local name="$1" out="$2"; shift 2
  echo "=== $(date -Is) slurm-up.sh starting $name: $*" >>"$out"
  setsid "$@" </dev/null >>"$out" 2>&1 &
  echo $! >"$PIDS/$name.pid"
}

mkdir -p "$LAB" "$PIDS"
install -d -m 0755 "$LAB/run" "$LAB/etc" "$LAB/spool"
install -d -m 0700 "$LAB/etc/private"
# slurmctld drops root for SlurmUser before it opens jobcomp.log and writes state
install -d -m 0755 -o "$SLURM_USER" -g "$SLURM_USER" "$LAB/log" "$LAB/state"
# The daemons inherit this cwd: a REST job submitted without current_working_directory
# runs (and writes slurm-N.out) in slurmrestd's cwd.
cd "$LAB"

# ---------------------------------------------------------------- slurm.conf
HW="$(slurmd -C | head -n1)"   # NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105
hw() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$HW"; }
DET_CPUS="$(hw CPUs)"; MEM="$(hw RealMemory)"
CPUS="${SLURM_LAB_CPUS:-$DET_CPUS}"
if [ "$CPUS" = "$DET_CPUS" ]; then
  NODE_HW="CPUs=$CPUS Boards=$(hw Boards) SocketsPerBoard=$(hw SocketsPerBoard)"
  NODE_HW+=" CoresPerSocket=$(hw CoresPerSocket) ThreadsPerCore=$(hw ThreadsPerCore)"
  SLURMD_PARAMS="#SlurmdParameters="
else
  NODE_HW="CPUs=$CPUS"                              # advertise more (or fewer) CPUs
  SLURMD_PARAMS="SlurmdParameters=config_overrides"  # slurmd reports the config, not the hw
fi
DEFMEM=$(( MEM / CPUS )); [ "$DEFMEM" -gt 1024 ] && DEFMEM=1024

JWT_KEY="$LAB/etc/jwt_hs256.key"                 # HS256 key for auth/jwt
[ -s "$JWT_KEY" ] || dd if=/dev/urandom of="$JWT_KEY" bs=32 count=1 status=none
chown "$SLURM_USER:$SLURM_USER" "$JWT_KEY"; chmod 0600 "$JWT_KEY"

if [ "$ACCT" = slurmdbd ]; then
  ACCT_CONF="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6819
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30"
else
  ACCT_CONF="# no slurmdbd: sacct only says 'Slurm accounting storage is disabled'
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
fi

NEW_CONF="$(mktemp)"; NEW_DBD_CONF="$(mktemp)"
trap 'rm -f "$NEW_CONF" "$NEW_DBD_CONF"' EXIT
cat >"$NEW_CONF" <<EOF
# generated by slurm-up.sh - single node, loopback only
ClusterName=lab
SlurmctldHost=${NODE}(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=${SLURM_USER}
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=${JWT_KEY}
StateSaveLocation=${LAB}/state
SlurmdSpoolDir=${LAB}/spool
SlurmctldPidFile=${LAB}/run/slurmctld.pid
SlurmdPidFile=${LAB}/run/slurmd.pid
SlurmctldLogFile=${LAB}/log/slurmctld.log
SlurmdLogFile=${LAB}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups here: plain /proc based process tracking, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${DEFMEM}
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=${SLURM_LAB_MINJOBAGE:-300}
${ACCT_CONF}
# finished jobs are also appended to a text file (works without slurmdbd)
JobCompType=jobcomp/filetxt
JobCompLoc=${LAB}/log/jobcomp.log
${SLURMD_PARAMS}
NodeName=${NODE} NodeAddr=127.0.0.1 NodeHostname=${NODE} ${NODE_HW} RealMemory=${MEM} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=render Nodes=${NODE} MaxTime=INFINITE State=UP
EOF

if [ "$ACCT" = slurmdbd ]; then
  [ -s "$LAB/etc/private/db.pass" ] ||
    od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$LAB/etc/private/db.pass"
  cat >"$NEW_DBD_CONF" <<EOF
# generated by slurm-up.sh
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=${JWT_KEY}
DbdHost=${NODE}
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=${SLURM_USER}
DebugLevel=info
LogFile=${LAB}/log/slurmdbd.log
PidFile=${LAB}/run/slurmdbd.pid
StorageType=accounting_storage/mysql
# "localhost" = unix socket; its path comes from MYSQL_UNIX_PORT in slurmdbd's environment
StorageHost=localhost
StorageUser=slurm
StoragePass=$(cat "$LAB/etc/private/db.pass")
StorageLoc=slurm_acct_db
EOF
fi

mkdir -p "$(dirname "$SLURM_CONF")"
changed=0
cmp -s "$NEW_CONF" "$SLURM_CONF" || changed=1
if [ "$ACCT" = slurmdbd ] && ! cmp -s "$NEW_DBD_CONF" "$DBD_CONF"; then changed=1; fi
if [ "$changed" = 1 ]; then
  if alive slurmctld slurmctld || alive slurmd slurmd || alive slurmrestd slurmrestd ||
     alive slurmdbd slurmdbd; then
    log "slurm.conf/slurmdbd.conf changed while the daemons run: restarting them"
    "$SCRIPT_DIR/slurm-down.sh" --keep-munge
  fi
  install -m 0644 "$NEW_CONF" "$SLURM_CONF"
  if [ "$ACCT" = slurmdbd ]; then   # slurmdbd insists on SlurmUser's ownership and 0600
    install -m 0600 -o "$SLURM_USER" -g "$SLURM_USER" "$NEW_DBD_CONF" "$DBD_CONF"
  fi
fi

# ---------------------------------------------------------------- munged
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  install -d -m 0700 -o munge -g munge /etc/munge
  mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key; chmod 0600 /etc/munge/munge.key
install -d -m 0755 -o munge -g munge /run/munge
install -d -m 0711 -o munge -g munge /var/lib/munge
install -d -m 0700 -o munge -g munge /var/log/munge

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if alive munged munged; then
  log "munged already running (pid $(cat "$PIDS/munged.pid"))"
elif munge_ok; then
  log "a munged not started by this script answers on /run/munge/munge.socket.2: using it"
else
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  # -F: no fork, so the recorded PID is munged's
  start_bg munged "$LAB/log/munged.log" \
    setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
  for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
  munge_ok || die "munged did not come up; see $LAB/log/munged.log"
  log "munged started (pid $(cat "$PIDS/munged.pid"))"
fi

# ---------------------------------------------------------------- MariaDB + slurmdbd
db() { mariadb --no-defaults --socket="$DB_SOCK" -u root "$@"; }   # root: unix_socket auth
if [ "$ACCT" = slurmdbd ]; then
  if alive mariadbd mariadbd; then
    log "mariadbd already running (pid $(cat "$PIDS/mariadbd.pid"))"
  else
    install -d -m 0755 -o mysql -g mysql "$DB_DIR"
    if [ ! -d "$DB_DIR/data/mysql" ]; then
      log "initialising the MariaDB datadir $DB_DIR/data"
      mariadb-install-db --no-defaults --user=mysql --datadir="$DB_DIR/data" \
        --auth-root-authentication-method=socket --skip-test-db >"$DB_DIR/install.log" 2>&1 ||
        die "mariadb-install-db failed; see $DB_DIR/install.log"
    fi
    # --no-defaults: ignore /etc/mysql; --skip-networking: unix socket only
    start_bg mariadbd "$DB_DIR/mariadbd.out" \
      setpriv --reuid=mysql --regid=mysql --init-groups /usr/sbin/mariadbd --no-defaults \
        --datadir="$DB_DIR/data" --socket="$DB_SOCK" --pid-file="$DB_DIR/mariadbd.pid" \
        --skip-networking --log-error="$DB_DIR/mariadbd.err" \
        --innodb-log-file-size=64M --innodb-lock-wait-timeout=900
    for _ in $(seq $((TIMEOUT * 5))); do
      db -e 'select 1' >/dev/null 2>&1 && break
      alive mariadbd mariadbd || die "mariadbd exited; see $DB_DIR/mariadbd.err"
      sleep 0.2
    done
    db -e 'select 1' >/dev/null 2>&1 || die "mariadbd not answering; see $DB_DIR/mariadbd.err"
    log "mariadbd started (pid $(cat "$PIDS/mariadbd.pid"))"
  fi
  if alive slurmdbd slurmdbd; then
    log "slurmdbd already running (pid $(cat "$PIDS/slurmdbd.pid"))"
  else
    port_open 6819 && die "port 6819 is taken by a slurmdbd not started by this script"
    [ "$FRESH" = 1 ] && db -e 'DROP DATABASE IF EXISTS slurm_acct_db'
    pass="$(cat "$LAB/etc/private/db.pass")"
    db -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
           CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
           ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
           GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';" ||
      die "creating the accounting DB user failed"
    start_bg slurmdbd "$LAB/log/slurmdbd.out" env MYSQL_UNIX_PORT="$DB_SOCK" /usr/sbin/slurmdbd -D
    for _ in $(seq $((TIMEOUT * 5))); do
      port_open 6819 && sacctmgr -n show cluster >/dev/null 2>&1 && break
      alive slurmdbd slurmdbd || die "slurmdbd exited; see $LAB/log/slurmdbd.out"
      sleep 0.2
    done
    sacctmgr -n show cluster >/dev/null 2>&1 || die "slurmdbd not answering; see $LAB/log/slurmdbd.out"
    log "slurmdbd started (pid $(cat "$PIDS/slurmdbd.pid"))"
  fi
fi

# ---------------------------------------------------------------- slurmctld
ctld_up() { [[ "$(scontrol ping 2>/dev/null)" == *"is UP"* ]]; }   # (no grep -q: pipefail+SIGPIPE)
if alive slurmctld slurmctld; then
  log "slurmctld already running (pid $(cat "$PIDS/slurmctld.pid"))"
else
  port_open 6817 && die "port 6817 is taken by a slurmctld not started by this script"
  if [ "$FRESH" = 1 ]; then
    find "$LAB/state" -mindepth 1 -delete
    : >"$LAB/log/jobcomp.log"; chown "$SLURM_USER:$SLURM_USER" "$LAB/log/jobcomp.log"
  fi
  # (with slurmdbd, slurmctld registers ClusterName in the accounting DB by itself)
  start_bg slurmctld "$LAB/log/slurmctld.out" /usr/sbin/slurmctld -D
  log "slurmctld started (pid $(cat "$PIDS/slurmctld.pid"))"
fi
for _ in $(seq $((TIMEOUT * 5))); do
  ctld_up && break
  alive slurmctld slurmctld || die "slurmctld exited; see $LAB/log/slurmctld.out"
  sleep 0.2
done
ctld_up || die "slurmctld not answering; see $LAB/log/slurmctld.out"

# ---------------------------------------------------------------- slurmd
if alive slurmd slurmd; then
  log "slurmd already running (pid $(cat "$PIDS/slurmd.pid"))"
else
  port_open 6818 && die "port 6818 is taken by a slurmd not started by this script"
  [ "$FRESH" = 1 ] && find "$LAB/spool" -mindepth 1 -delete
  start_bg slurmd "$LAB/log/slurmd.out" /usr/sbin/slurmd -D -N "$NODE"
  log "slurmd started (pid $(cat "$PIDS/slurmd.pid"))"
fi

# ---------------------------------------------------------------- slurmrestd
if [ "${SLURM_LAB_REST:-1}" = 1 ]; then
  id "$REST_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$REST_USER"
  if alive slurmrestd slurmrestd; then
    log "slurmrestd already running (pid $(cat "$PIDS/slurmrestd.pid"))"
  else
    port_open "$REST_PORT" "$REST_HOST" && die "$REST_ADDR is already taken"
    # Started as root (to open the socket), then setuid/setgid to an unprivileged user:
    # it refuses to run as root or SlurmUser.  SLURM_JWT=daemon makes it talk to
    # slurmctld with each client's JWT instead of munge.  Without slurmdbd only the
    # openapi/v0.0.3x plugins: openapi/dbv0.0.3x are fatal without it.
    plugins="openapi/v0.0.38,openapi/v0.0.37,openapi/v0.0.36"
    [ "$ACCT" = slurmdbd ] && plugins+=",openapi/dbv0.0.38,openapi/dbv0.0.37,openapi/dbv0.0.36"
    start_bg slurmrestd "$LAB/log/slurmrestd.log" \
      env SLURM_JWT=daemon /usr/sbin/slurmrestd -a rest_auth/jwt \
        -s "${SLURMRESTD_PLUGINS:-$plugins}" -u "$REST_USER" -g "$REST_USER" "$REST_ADDR"
    log "slurmrestd started (pid $(cat "$PIDS/slurmrestd.pid")) on http://$REST_ADDR"
  fi
fi

# ---------------------------------------------------------------- wait until usable
state=""
for _ in $(seq $((TIMEOUT * 5))); do
  state="$(sinfo -h -n "$NODE" -o '%t' 2>/dev/null || true)"
  case "$state" in
    idle|mix|alloc) break ;;
    drain*|down*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
  esac
  alive slurmd slurmd || die "slurmd exited; see $LAB/log/slurmd.out"
  sleep 0.2
done
case "$state" in
  idle|mix|alloc) ;;
  *) die "node $NODE is '$state' after ${TIMEOUT}s; see $LAB/log/slurmd.out, slurmctld.out" ;;
esac
if [ "${SLURM_LAB_REST:-1}" = 1 ]; then
  for _ in $(seq $((TIMEOUT * 10))); do
    port_open "$REST_PORT" "$REST_HOST" && break
    alive slurmrestd slurmrestd || die "slurmrestd exited; see $LAB/log/slurmrestd.log"
    sleep 0.1
  done
  port_open "$REST_PORT" "$REST_HOST" || die "slurmrestd not listening on $REST_ADDR"
fi
log "cluster up: node $NODE is $state; accounting=$ACCT; SLURM_CONF=$SLURM_CONF; logs in $LAB/log"
