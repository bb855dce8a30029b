#!/usr/bin/env bash
# The local queue when its disk fills up, for CI (needs root: it mounts a tmpfs).
#
# What it installs: sqlite3 (apt-get, to check the store), when missing. `farm` is built
# with cargo (`cargo build -p farm`, in $CARGO_TARGET_DIR or target/).
#
# What it does: the whole check runs in a private mount namespace (unshare --mount), where a
# small tmpfs (size=QUEUE_DISK_SIZE, default 16m) is the queue's data root: the database,
# the render logs and the local agent's output spool are all on it. A `farm queue serve`
# with one local agent runs there on loopback. Then:
#   1. a job completes (the "earlier job" that must stay intact);
#   2. a job that prints a line every 0.2 s until told to stop is running, and another job
#      waits behind it;
#   3. the disk is filled to the last block (dd into a filler file);
#   4. `farm submit` fails within seconds, exit code 6 (unavailable), with a message that
#      says the data root is full and names it; the raw protocol answer is a 507 problem
#      document, not a 500; nothing of the refused job is stored (no job, no task, no
#      idempotency key: the same request is accepted once space is back);
#   5. meanwhile the running job's own writes fail (its output is lost while the disk is
#      full, as on any full disk) but nothing else: the agent keeps it running, the queue
#      keeps answering reads (list, status, log);
#   6. the running job is told to stop while the disk is still full: its agent's result
#      report cannot be stored, so the agent waits and retries;
#   7. space is freed: the report lands, the job is Completed, the waiting job runs, the
#      refused request is accepted and completes, the first job and its log are intact, no
#      line of any render log is written twice, and SQLite's integrity_check says ok.
# The queue is stopped and the tmpfs disappears with the namespace, even on failure.
#
# Usage: tools/ci/queue-full-disk.sh   (as root)
#   QUEUE_DISK_SIZE   tmpfs size (default 16m)
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "queue-full-disk: $*"; }
die() {
  echo "queue-full-disk: FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (it mounts a tmpfs in a private mount namespace)"

if [ -z "${FARM_FULL_DISK_INNER:-}" ]; then
  if ! command -v sqlite3 >/dev/null; then
    say "installing sqlite3"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
  fi
  command -v unshare >/dev/null || die "unshare (util-linux) is missing"
  say "building farm"
  cargo build --locked -p farm --bin farm
  # The rest runs in a private mount namespace: the tmpfs is gone when it ends, whatever
  # happens.
  exec env FARM_FULL_DISK_INNER=1 unshare --mount --propagation private bash "$0" "$@"
fi

started=$SECONDS
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
farm="$target_dir/debug/farm"
[ -x "$farm" ] || die "$farm was not built"

work="$(mktemp -d)"
disk="$work/disk"
root="$disk/queue"
server_pid=
cleanup() {
  local status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  # Whatever is left in this private mount namespace was started here (the local agent keeps
  # retrying its report when the queue is gone): kill it, then the tmpfs can go.
  local ns pid
  ns="$(readlink /proc/$$/ns/mnt)"
  if [ "$ns" != "$(readlink /proc/1/ns/mnt)" ]; then
    for pid in $(ls /proc | grep -E '^[0-9]+$'); do
      [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ] && continue
      [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] && kill -KILL "$pid" 2>/dev/null
    done
    sleep 0.2
  fi
  if [ "$status" != 0 ] && [ -f "$work/server.err" ]; then
    echo "--- the queue's log (last 40 lines)" >&2
    tail -n 40 "$work/server.err" >&2
  fi
  umount "$disk" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$disk"
mount -t tmpfs -o "size=${QUEUE_DISK_SIZE:-16m},mode=0700" farm-full-disk "$disk"
say "data root $root on a ${QUEUE_DISK_SIZE:-16m} tmpfs"

RUST_LOG=info "$farm" queue serve --port 0 --data-root "$root" --agents 1 \
  --heartbeat 200ms --agent-timeout 5s --kill-grace 1s >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/server.out" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || die "the queue did not start: $(cat "$work/server.err")"
  sleep 0.1
done
url="$(awk '/listening on/ {print $NF; exit}' "$work/server.out")"
[ -n "$url" ] || die "the queue did not print its URL"
printf 'Authorization: Bearer %s\n' "$(cat "$root/api.token")" >"$work/auth.header"
chmod 600 "$work/auth.header"

export FARM_DATA_ROOT="$root" FARM_QUEUE_URL="$url" FARM_LOCAL_AUTOSTART=false
fcli() { "$farm" --farm local "$@"; }

# request NAME SHELL: a request file running one shell command.
request() {
  cat >"$work/$1.yaml" <<EOF
name: $1
render_context: $(cat /proc/sys/kernel/random/uuid)
commands:
  - shell: '$2'
EOF
  echo "$work/$1.yaml"
}

submit() {
  local id
  id="$(fcli submit --quiet "$1")" || die "submit of $1 failed"
  echo "$id"
}

state_of() { fcli status "$1" --output json | sed -n 's/.*"state": *"\([A-Za-z]*\)".*/\1/p' | head -1; }

# wait_state ID STATE SECONDS
wait_state() {
  local s=
  for _ in $(seq 1 $(( $3 * 10 ))); do
    s="$(state_of "$1")"
    [ "$s" = "$2" ] && return 0
    sleep 0.1
  done
  die "job $1 is $s after $3 s, expected $2"
}

say "1. an earlier job completes"
first="$(submit "$(request earlier 'echo earlier job output')")"
wait_state "$first" Completed 30

say "2. a running job (prints until told to stop) and a job waiting behind it"
ticker="$(submit "$(request ticker "i=0; while [ ! -e $work/release ]; do echo tick \$i; i=\$((i+1)); sleep 0.2; done; echo ticker done")")"
waiting="$(submit "$(request waiting 'echo waited for space')")"
wait_state "$ticker" Running 30
for _ in $(seq 1 50); do fcli log "$ticker" 2>/dev/null | grep -q "tick 3" && break; sleep 0.1; done
fcli log "$ticker" | grep -q "tick 3" || die "the ticker's output does not reach its render log"
[ "$(state_of "$waiting")" = Waiting ] || die "the second job should wait behind the ticker"

say "3. filling the disk"
dd if=/dev/zero of="$disk/filler" bs=1M status=none 2>/dev/null || true
dd if=/dev/zero of="$disk/filler-tail" bs=4k status=none 2>/dev/null || true
df -h "$disk" | tail -1
[ "$(df --output=avail "$disk" | tail -1 | tr -d ' ')" -lt 8 ] || die "the disk is not full"
sleep 1 # let the ticker's writes and uploads meet the full disk

say "4. submit while the disk is full"
refused="$(request refused 'echo accepted once space was back')"
t0=$SECONDS
if fcli submit "$refused" >"$work/refused.out" 2>"$work/refused.err"; then
  die "submit succeeded on a full disk: $(cat "$work/refused.out")"
else
  code=$?
fi
took=$(( SECONDS - t0 ))
message="$(cat "$work/refused.err")"
echo "   farm submit: exit $code after ${took}s: $message"
[ "$took" -le 15 ] || die "submit took ${took}s to fail"
[ "$code" = 6 ] || die "submit should exit 6 (unavailable), not $code"
grep -q "full" <<<"$message" || die "the message does not say the disk is full"
grep -qF "$root" <<<"$message" || die "the message does not name the data root"
grep -qiE "internal|HTTP 500|database:" <<<"$message" && die "the message is a raw internal error"
status="$(curl -s -o "$work/problem.json" -w '%{http_code}' -H @"$work/auth.header" \
  -H 'Content-Type: application/json' --data-binary '{"name":"raw","commands":[["true"]]}' "$url/v1/jobs")"
echo "   POST /v1/jobs: $status $(cat "$work/problem.json")"
[ "$status" = 507 ] || die "POST /v1/jobs answered $status on a full disk, not 507"
grep -q '"title":"Insufficient storage"' "$work/problem.json" || die "the 507 is not a problem document"

say "5. the queue still answers reads; the running job keeps running"
fcli list --output json >"$work/list.json" || die "farm list failed on a full disk"
jobs="$(grep -oE '"id": *"[0-9]+"' "$work/list.json" | sort -u | wc -l)"
[ "$jobs" = 3 ] || die "expected 3 jobs while the disk is full, listed $jobs"
[ "$(state_of "$ticker")" = Running ] || die "the ticker is no longer running"
fcli log "$first" | grep -q "earlier job output" || die "the earlier job's log is unreadable"

say "6. the running job ends while the disk is still full"
touch "$work/release"
sleep 2
s="$(state_of "$ticker")"
echo "   ticker is $s while its agent cannot report"
[ "$s" = Running ] || die "the ticker's end should wait for space, it is $s"
grep -q "panicked" "$work/server.err" && die "the queue panicked"

say "7. space is back"
rm -f "$disk/filler" "$disk/filler-tail"
wait_state "$ticker" Completed 30
wait_state "$waiting" Completed 30
again="$(submit "$refused")"
wait_state "$again" Completed 30
fcli log "$again" | grep -q "accepted once space was back" || die "the resubmitted job's log"
[ "$(state_of "$first")" = Completed ] || die "the earlier job changed state"
fcli log "$first" | grep -q "earlier job output" || die "the earlier job's log was damaged"
fcli log "$ticker" | grep -q "ticker done" || die "the ticker's last line is missing"
for id in "$first" "$ticker" "$waiting" "$again"; do
  dup="$(fcli log "$id" | sort | uniq -d)"
  [ -z "$dup" ] || die "job $id's render log has lines written twice: $dup"
done
lost="$(fcli log "$ticker" | grep -c '^tick' || true)"
echo "   the ticker's log kept $lost tick lines (those printed while the disk was full are lost)"
check="$(sqlite3 -readonly "$root/queue.db" 'PRAGMA integrity_check;')"
[ "$check" = ok ] || die "integrity_check: $check"
orphans="$(sqlite3 -readonly "$root/queue.db" \
  "SELECT (SELECT count(*) FROM jobs) || ' ' || (SELECT count(*) FROM tasks WHERE job_id NOT IN (SELECT id FROM jobs)) || ' ' || (SELECT count(*) FROM jobs WHERE name IN ('raw'));")"
[ "$orphans" = "4 0 0" ] || die "store: jobs, orphan tasks, refused jobs = $orphans (expected 4 0 0)"
grep -q "panicked" "$work/server.err" && die "the queue panicked"

say "passed in $(( SECONDS - started ))s: a full data root refuses submits with 507 and a clear message, stores nothing half-written, and the queue carries on once space is back"
