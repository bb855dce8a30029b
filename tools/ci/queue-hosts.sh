#!/usr/bin/env bash
# Remote agents on real other hosts, for CI (needs root: network namespaces).
#
# What it installs (apt-get, when missing): iproute2, openssh-server, openssh-client, curl,
# jq. Installing openssh-server starts no system sshd: the install runs under a
# policy-rc.d that forbids starting services. `farm` is built with cargo
# (`cargo build -p farm`, in $CARGO_TARGET_DIR or target/).
#
# The three hosts: network namespaces joined by veth pairs to a fourth namespace holding a
# bridge (the switch), on 10.77.0.0/24, used nowhere but inside these namespaces: A is
# 10.77.0.1, B .2, C .3. No namespace has a default route and nothing is added to the
# machine's own network: no traffic leaves them. Each host also has its own UTS and PID
# namespaces (hostnames host-a, host-b, host-c; each sees only its own processes). They
# share the machine's file system, which stands for the NFS share of a real setup: the
# scratch directory's share/ holds the queue's data root and the jobs' output, and home/
# is the home directory all hosts mount.
#
# What it proves:
#   1. The queue on A listens on 10.77.0.1 only; a call from B without the token is refused.
#   2. `farm agents start --ssh root@10.77.0.2` (and .3), run on A, goes through a real
#      OpenSSH server on B and on C (Debian's sshd with its own config, port 2222, host and
#      user keys made here, known_hosts checked) and starts one agent there; B and C use
#      the same agents directory (a shared home), so they must not share a pid list.
#   3. A job of 9 one-frame tasks runs on all three hosts (its output names host-a, host-b
#      and host-c; the agents list has one live agent per host).
#   4. A job of 3 tasks, one per host, each waiting for a go file of its host: B's link to
#      the switch is cut mid-task (ip link set down). B's agent is lost after the
#      agent timeout, its task is requeued and finishes on C (try 2); nothing is lost (every
#      frame's output exists, written by A or C, never by the cut-off B).
#   5. The link comes back: B's agent hears it was lost, stops its stale copy of the task and
#      registers again; a later job runs on B again.
#   6. `farm agents stop --ssh` stops B's and C's agents (they deregister); A's remain.
# Everything it made (namespaces, sshd and agents, the queue, the scratch directory) is
# removed on exit, on failure too.
#
# Usage: tools/ci/queue-hosts.sh   (as root)
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { echo "queue-hosts: $(( SECONDS - ${started:-0} ))s: $*"; }
die() {
  echo "queue-hosts: FAILED: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, sshd)"
started=$SECONDS

# ----- what it needs -----
missing=()
command -v ip >/dev/null || missing+=(iproute2)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || missing+=(openssh-client)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]}"
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # No service may start during the install: no sshd on the machine's own network.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi
command -v unshare >/dev/null || die "unshare (util-linux) is missing"

say "building farm"
cargo build --locked -p farm --bin farm
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
farm="$target_dir/debug/farm"
[ -x "$farm" ] || die "$farm was not built"

# ----- cleanup, on every exit -----
prefix="farmci$$"
sw="$prefix-sw" ns_a="$prefix-a" ns_b="$prefix-b" ns_c="$prefix-c"
work="$(mktemp -d)"
chmod 755 "$work"
pids=()
cleanup() {
  local status=$? pid ns
  set +e
  if [ "$status" != 0 ]; then
    for f in "$work"/queue.err "$work"/sshd-*.log "$work"/home/agents/*.log; do
      [ -f "$f" ] || continue
      echo "--- $f (last 25 lines)" >&2
      tail -n 25 "$f" >&2
    done
  fi
  # Each host's processes are in its own PID namespace, whose first process is killed when
  # the `unshare --kill-child` recorded here dies, taking everything else in it along.
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  for ns in "$ns_a" "$ns_b" "$ns_c" "$sw"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$work"
  [ "$status" = 0 ] || echo "queue-hosts: cleaned up after the failure" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Namespaces of earlier runs that were killed before their trap ran.
for ns in $(ip netns list | awk '{print $1}' | grep -E '^farmci[0-9]+-' || true); do
  owner="${ns#farmci}"
  owner="${owner%%-*}"
  kill -0 "$owner" 2>/dev/null || ip netns del "$ns" 2>/dev/null || true
done

# ----- the network -----
say "three hosts on 10.77.0.0/24 (network namespaces, a bridge, veth pairs)"
for ns in "$sw" "$ns_a" "$ns_b" "$ns_c"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up
n=1
for host in a b c; do
  ns="$prefix-$host"
  ip -n "$sw" link add "p$host" type veth peer name eth0 netns "$ns"
  ip -n "$sw" link set "p$host" master br0 up
  ip -n "$ns" addr add "10.77.0.$n/24" dev eth0
  ip -n "$ns" link set eth0 up
  n=$((n + 1))
done
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# run_host NS NAME LOG COMMAND...: runs COMMAND as host NAME (own network, UTS and PID
# namespaces) in the background and records the process to stop.
run_host() {
  local ns=$1 name=$2 log=$3
  shift 3
  ip netns exec "$ns" unshare --uts --pid --fork --kill-child --mount-proc \
    sh -c 'hostname "$0" && exec "$@"' "$name" "$@" >"$log" 2>&1 &
  pids+=($!)
}

# ----- ssh: keys made here, sshd on B and C -----
say "OpenSSH servers on host-b and host-c (port 2222, keys made for this run)"
ssh_dir="$work/ssh"
mkdir -m 700 "$ssh_dir"
ssh-keygen -q -t ed25519 -N '' -C farm-ci-user -f "$ssh_dir/id_ed25519"
cp "$ssh_dir/id_ed25519.pub" "$ssh_dir/authorized_keys"
: >"$ssh_dir/known_hosts"
mkdir -p /run/sshd # sshd's privilege separation directory, as its service makes it
for host in b c; do
  ip_addr="10.77.0.$([ "$host" = b ] && echo 2 || echo 3)"
  ssh-keygen -q -t ed25519 -N '' -C "host-$host" -f "$ssh_dir/host-$host"
  echo "[$ip_addr]:2222 $(cut -d' ' -f1,2 "$ssh_dir/host-$host.pub")" >>"$ssh_dir/known_hosts"
  cat >"$ssh_dir/sshd-$host.conf" <<EOF
ListenAddress $ip_addr
Port 2222
HostKey $ssh_dir/host-$host
AuthorizedKeysFile $ssh_dir/authorized_keys
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
LogLevel VERBOSE
EOF
  /usr/sbin/sshd -t -f "$ssh_dir/sshd-$host.conf" || die "sshd refuses its configuration"
  run_host "$prefix-$host" "host-$host" "$work/sshd-$host.log" /usr/sbin/sshd -D -e -f "$ssh_dir/sshd-$host.conf"
done
ssh_opts=(
  "-F/dev/null" "-p2222" "-i$ssh_dir/id_ed25519" "-oIdentitiesOnly=yes" "-oBatchMode=yes"
  "-oStrictHostKeyChecking=yes" "-oUserKnownHostsFile=$ssh_dir/known_hosts" "-oConnectTimeout=5"
)
for ip_addr in 10.77.0.2 10.77.0.3; do
  for _ in $(seq 1 50); do
    got="$(in_ns "$ns_a" ssh "${ssh_opts[@]}" "root@$ip_addr" uname -n 2>/dev/null)" && break
    sleep 0.2
  done
  [ -n "${got:-}" ] || die "no ssh from host-a to $ip_addr: $(in_ns "$ns_a" ssh "${ssh_opts[@]}" "root@$ip_addr" true 2>&1)"
  echo "   ssh root@$ip_addr from host-a reaches $got"
  got=
done

# ----- the queue on A -----
share="$work/share"
root="$share/queue"
mkdir -p "$share/out" "$work/home"
chmod 1777 "$share/out"
url=http://10.77.0.1:7575
say "the queue on host-a at $url, data root $root"
run_host "$ns_a" host-a "$work/queue.err" env RUST_LOG=info "$farm" queue serve --bind 10.77.0.1 \
  --port 7575 --data-root "$root" --agents 1 --heartbeat 300ms --agent-timeout 3s --kill-grace 1s
for _ in $(seq 1 100); do
  in_ns "$ns_a" curl -sf "$url/v1/health" >/dev/null 2>&1 && break
  sleep 0.1
done
in_ns "$ns_b" curl -sf "$url/v1/health" >/dev/null || die "host-b cannot reach the queue: $(tail -5 "$work/queue.err")"
printf 'Authorization: Bearer %s\n' "$(cat "$root/api.token")" >"$work/auth.header"
chmod 600 "$work/auth.header"
code="$(in_ns "$ns_b" curl -s -o /dev/null -w '%{http_code}' "$url/v1/jobs")"
[ "$code" = 401 ] || die "a call from host-b without the token answered $code, not 401"
code="$(in_ns "$ns_b" curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
  -d '{"name":"x","hostname":"x","pid":1,"local":false,"version":"0"}' "$url/agent/v1/agents")"
[ "$code" = 401 ] || die "an agent without the token was answered $code, not 401"
echo "   the queue answers host-b, and refuses it without a token"

api() { in_ns "$ns_a" curl -sf -H @"$work/auth.header" "$url$1"; }
agents_json() { api /v1/agents; }
export FARM_DATA_ROOT="$root" FARM_QUEUE_URL="$url" FARM_LOCAL_AUTOSTART=false
fcli() { in_ns "$ns_a" "$farm" --farm local "$@"; }
state_of() { fcli status "$1" --output json | jq -r ".jobs[0].state"; }
wait_state() {
  local s=
  for _ in $(seq 1 $(( $3 * 5 ))); do
    s="$(state_of "$1")"
    [ "$s" = "$2" ] && return 0
    sleep 0.2
  done
  die "job $1 is $s after $3 s, expected $2"
}
# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds.
wait_for() {
  local limit=$1 what=$2
  shift 2
  for _ in $(seq 1 $(( limit * 5 ))); do
    "$@" && return 0
    sleep 0.2
  done
  die "$what (waited ${limit}s)"
}
request() { # NAME FRAMES SHELL
  cat >"$work/$1.yaml" <<EOF
name: $1
render_context: $(cat /proc/sys/kernel/random/uuid)
frames: $2
chunk_size: 1
commands:
  - shell: '$3'
EOF
  echo "$work/$1.yaml"
}

# ----- remote agents over ssh -----
say "farm agents start --ssh, from host-a to host-b and host-c"
remote_dir="$work/home/agents" # the same on both: a home directory every host mounts
ssh_args=()
for o in "${ssh_opts[@]}"; do ssh_args+=("--ssh-option=$o"); done
for ip_addr in 10.77.0.2 10.77.0.3; do
  in_ns "$ns_a" "$farm" agents start --ssh "root@$ip_addr" "${ssh_args[@]}" --count 1 \
    --server "$url" --remote-farm "$farm" --remote-dir "$remote_dir" --data-root "$root" \
    | sed 's/^/   /'
done
live_hosts() { agents_json | jq -r '[.agents[] | select(.alive) | .hostname] | sort | join(" ")'; }
all_live() { [ "$(live_hosts)" = "host-a host-b host-c" ]; }
wait_for 20 "expected one live agent on each of host-a, host-b, host-c" all_live
echo "   live agents: $(agents_json | jq -r '[.agents[] | select(.alive) | "\(.name)@\(.hostname)"] | join(", ")')"
[ -f "$remote_dir/agents-host-b.pid" ] && [ -f "$remote_dir/agents-host-c.pid" ] \
  || die "each host should list its agents in its own pid file: $(ls "$remote_dir")"

# ----- 3. jobs run on all three hosts -----
say "a job of 9 frames runs on all three hosts"
spread="$(fcli submit --quiet "$(request spread 1-9 "echo task \$FARM_CHUNK_INDEX on \$(uname -n); uname -n >$share/out/spread.\$FARM_CHUNK_INDEX; sleep 0.5")")"
wait_state "$spread" Completed 60
ran_on="$(cat "$share"/out/spread.* | sort -u | tr '\n' ' ')"
echo "   frames ran on: $ran_on"
[ "$ran_on" = "host-a host-b host-c " ] || { fcli log "$spread" >&2; die "the frames should have run on all three hosts, ran on: $ran_on"; }
[ "$(ls "$share"/out/spread.* | wc -l)" = 9 ] || die "frames are missing"
fcli log "$spread" | grep -q "started on agent host-b-" || die "the render log does not name host-b's agent"

# ----- 4. B's link is cut mid-task -----
say "a job of 3 frames, one per host; then host-b's link is cut"
cut="$(fcli submit --quiet "$(request cut 1-3 "h=\$(uname -n); echo task \$FARM_CHUNK_INDEX started on \$h; while [ ! -e $share/go.\$h ]; do sleep 0.1; done; echo \$h >$share/out/cut.\$FARM_CHUNK_INDEX; echo task \$FARM_CHUNK_INDEX done on \$h")")"
busy_hosts() { agents_json | jq -r --arg job "$cut" '[.agents[] | select(.alive and .job_id == $job) | .hostname] | sort | join(" ")'; }
all_busy() { [ "$(busy_hosts)" = "host-a host-b host-c" ]; }
wait_for 20 "the 3 tasks should run one per host" all_busy
b_task="$(agents_json | jq -r --arg job "$cut" '.agents[] | select(.alive and .hostname == "host-b") | .task')"
b_agent="$(agents_json | jq -r '.agents[] | select(.alive and .hostname == "host-b") | .id')"
b_frame=$((b_task + 1))
echo "   host-b runs task $b_task (frame $b_frame); cutting its link"
ip -n "$sw" link set pb down
cut_at=$SECONDS
touch "$share/go.host-c"
b_lost() { agents_json | jq -e --argjson id "$b_agent" '.agents[] | select(.id == $id) | .alive == false' >/dev/null; }
wait_for 30 "host-b's agent is not declared lost" b_lost
echo "   host-b's agent lost after $(( SECONDS - cut_at ))s"
wait_for 30 "frame $b_frame did not finish elsewhere" test -s "$share/out/cut.$b_task"
[ "$(cat "$share/out/cut.$b_task")" = host-c ] || die "frame $b_frame finished on $(cat "$share/out/cut.$b_task"), expected host-c"
fcli log "$cut" | grep -q "task $b_task requeued" || die "the render log does not say the task was requeued"
fcli log "$cut" | grep -qE "task $b_task \(frame $b_frame\) started on agent host-c-[^,]*, attempt 1, try 2" \
  || die "the render log does not show the task's second try on host-c"
echo "   frame $b_frame requeued and finished on host-c, $(( SECONDS - cut_at ))s after the cut"
touch "$share/go.host-a"
wait_state "$cut" Completed 30
for f in 0 1 2; do
  [ -s "$share/out/cut.$f" ] || die "task $f of the cut job is lost"
done
grep -l host-b "$share"/out/cut.* && die "host-b finished a frame while it was cut off"
echo "   the job completed, every frame once: $(cat "$share"/out/cut.* | tr '\n' ' ')"

# ----- 5. the link comes back -----
say "host-b's link comes back"
ip -n "$sw" link set pb up
back_at=$SECONDS
b_live() { agents_json | jq -e '[.agents[] | select(.alive and .hostname == "host-b")] | length == 1' >/dev/null; }
wait_for 45 "host-b's agent did not rejoin" b_live
new_b="$(agents_json | jq -r '.agents[] | select(.alive and .hostname == "host-b") | .id')"
[ "$new_b" != "$b_agent" ] || die "host-b's agent kept its old registration"
echo "   host-b's agent registered again (agent $b_agent -> $new_b) $(( SECONDS - back_at ))s after the link came back"
grep -q "declared lost\|registering again" "$remote_dir"/host-b-*.log || die "host-b's agent log does not say it was lost"
[ -e "$share/out/cut.$b_task" ] && [ "$(cat "$share/out/cut.$b_task")" = host-c ] || die "frame $b_frame was overwritten"
rm -f "$share"/out/spread.*
again="$(fcli submit --quiet "$(request again 1-9 "uname -n >$share/out/spread.\$FARM_CHUNK_INDEX; sleep 0.5")")"
wait_state "$again" Completed 60
grep -qx host-b "$share"/out/spread.* >/dev/null || die "host-b ran nothing after it rejoined: $(cat "$share"/out/spread.* | sort | uniq -c)"
echo "   a later job ran on: $(cat "$share"/out/spread.* | sort -u | tr '\n' ' ')"

# ----- 6. stop -----
say "farm agents stop --ssh"
for ip_addr in 10.77.0.2 10.77.0.3; do
  in_ns "$ns_a" "$farm" agents stop --ssh "root@$ip_addr" "${ssh_args[@]}" --remote-dir "$remote_dir" | sed 's/^/   /'
done
only_a() { [ "$(live_hosts)" = host-a ]; }
wait_for 15 "the remote agents are still alive" only_a
[ ! -e "$remote_dir/agents-host-b.pid" ] && [ ! -e "$remote_dir/agents-host-c.pid" ] || die "pid files left behind"
grep -q "panicked" "$work/queue.err" "$remote_dir"/*.log && die "a panic was logged"

say "passed: agents on three hosts over real ssh, a cut link requeued onto another host, the agent rejoined, and stopped over ssh"
