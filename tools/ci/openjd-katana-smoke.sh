#!/usr/bin/env bash
# The OpenJD issue's "done when", through the `farm` command line: `farm render --farm
# <openjd farm> fixtures/requests/katana-disk-render.yaml --out DIR` writes a bundle that
# `openjd check` accepts and `openjd run` renders, and `farm submit --wait` completes a job
# on the local transport.
#
# The Katana request names /opt/Katana7.0v1/bin/renderboot and renders into /mnt/show. The
# run happens in a private mount namespace (unshare, root) where /opt and /mnt are empty
# tmpfs mounts holding a stand-in renderboot that writes each frame's file, so nothing on
# the machine is touched and every frame's output is checked.
#
# Usage (root): tools/ci/openjd-katana-smoke.sh FARM_BIN OPENJD_BIN
set -euo pipefail
FARM="$1"
OPENJD="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
log() { echo "[ci/openjd-katana] $*" >&2; }

cat > "$WORK/farms.yaml" <<YAML
farms:
  cloud-trial:
    adapter: openjd
    settings: {transport: local, data_root: $WORK/data, openjd_bin: $OPENJD}
YAML

log "farm render --out"
"$FARM" --config "$WORK/farms.yaml" render --farm cloud-trial \
  "$ROOT/fixtures/requests/katana-disk-render.yaml" --out "$WORK/bundle"
test -f "$WORK/bundle/template.yaml" && test -f "$WORK/bundle/parameter_values.yaml"
if ls -a "$WORK" | grep -q '^\.farm-render-'; then
  log "a staging directory was left behind"; exit 1
fi

log "openjd check"
"$OPENJD" check "$WORK/bundle/template.yaml"

log "openjd run (private /opt and /mnt with a stand-in renderboot)"
unshare --mount --propagation private bash -euo pipefail -c '
  mount -t tmpfs farm-opt /opt
  mount -t tmpfs farm-mnt /mnt
  mkdir -p /opt/Katana7.0v1/bin /mnt/show/shot010/beauty/v003 /mnt/render/logs
  cat > /opt/Katana7.0v1/bin/renderboot <<"SH"
#!/bin/sh
# Stand-in renderboot: writes the frame named by --output, holding its argv and cwd.
for a in "$@"; do case "$a" in --output=*) out="${a#--output=}";; esac; done
{ printf "%s\n" "$@"; pwd; printf "KATANA_ROOT=%s\n" "$KATANA_ROOT"; } > "$out"
SH
  chmod +x /opt/Katana7.0v1/bin/renderboot
  "$1" run "$2/template.yaml"
  for f in $(seq 1001 1010); do
    out=/mnt/show/shot010/beauty/v003/beauty.$f.exr
    grep -qx -- "--frame=$f" "$out"
    grep -qx /mnt/show/shot010 "$out"
    grep -qx KATANA_ROOT=/opt/Katana7.0v1 "$out"
  done
  echo "10 of 10 frames rendered"
' farm-openjd-run "$OPENJD" "$WORK/bundle"

log "farm submit --wait on the local transport"
"$FARM" --config "$WORK/farms.yaml" submit --farm cloud-trial --wait \
  "$ROOT/fixtures/requests/render-demo.yaml"
log "ok"
