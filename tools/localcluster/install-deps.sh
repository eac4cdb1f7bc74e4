#!/usr/bin/env bash
# Installs what the local cluster needs from Debian's packages: openssl
# (certificates), curl (health checks), util-linux (setsid, flock) and
# Prometheus (started on demand by prometheus.sh, never as a service).
# Quick and silent when everything is already there.
set -euo pipefail

log() { echo "[deps] $*"; }

need=()
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v setsid >/dev/null && command -v flock >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
[[ -x /usr/bin/prometheus ]] || need+=(prometheus)

if ((${#need[@]} == 0)); then
  exit 0
fi

command -v apt-get >/dev/null || { echo "[deps] ERROR: missing ${need[*]} and no apt-get to install them" >&2; exit 1; }
sudo=()
if [[ $(id -u) != 0 ]]; then
  command -v sudo >/dev/null || { echo "[deps] ERROR: missing ${need[*]}; install them as root" >&2; exit 1; }
  sudo=(sudo)
fi

# Debian's prometheus package starts a system service on :9090 from its
# maintainer scripts; policy-rc.d answering 101 ("action forbidden") stops
# that, whether init is systemd, sysvinit or absent. An existing policy file
# is left as it is.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod 755 "$policy"
  added_policy=1
fi
cleanup() { ((added_policy)) && "${sudo[@]}" rm -f "$policy"; true; }
trap cleanup EXIT

log "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# Under systemd the unit may still be enabled for the next boot; keep it off.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; then
  "${sudo[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
log "installed ${need[*]}"
