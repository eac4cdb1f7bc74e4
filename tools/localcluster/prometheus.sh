#!/usr/bin/env bash
# Runs Debian's Prometheus on loopback for the local cluster.
#
# Usage: prometheus.sh start CONFIG_FILE [WEB_CONFIG_FILE] | stop | status | url
#
#   start   (re)start with CONFIG_FILE on 127.0.0.1:$GPUPOOL_PROMETHEUS_PORT
#           (default 19090), data under <cluster dir>/prometheus; waits ready.
#           WEB_CONFIG_FILE is Prometheus' --web.config.file (basic_auth_users,
#           tls_server_config): the API then asks for credentials, and with
#           tls_server_config it serves https.
#   stop    stop it (also done by cluster.sh down).
#   url     print its base URL.
#
# The lifecycle API is on, so a test can reload a changed config with
# `curl -X POST $(prometheus.sh url)/-/reload`.
set -euo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

URL="http://127.0.0.1:$PROMETHEUS_PORT"

cmd_start() {
  local config="${1:-}" web_config="${2:-}" url="$URL"
  [[ -n "$config" && -f "$config" ]] || { warn "usage: prometheus.sh start CONFIG_FILE [WEB_CONFIG_FILE]"; exit 2; }
  config="$(cd "$(dirname "$config")" && pwd)/$(basename "$config")"
  [[ -x /usr/bin/prometheus ]] || "$LC_HERE/install-deps.sh"
  /usr/bin/promtool check config "$config" >/dev/null || { warn "invalid Prometheus config $config"; exit 1; }
  local web=()
  if [[ -n "$web_config" ]]; then
    [[ -f "$web_config" ]] || { warn "no web config file $web_config"; exit 2; }
    web_config="$(cd "$(dirname "$web_config")" && pwd)/$(basename "$web_config")"
    /usr/bin/promtool check web-config "$web_config" >/dev/null || { warn "invalid web config $web_config"; exit 1; }
    web=(--web.config.file="$web_config")
    grep -q '^tls_server_config:' "$web_config" && url="https://127.0.0.1:$PROMETHEUS_PORT"
  fi
  stop_process prometheus
  if port_in_use "$PROMETHEUS_PORT"; then
    warn "port 127.0.0.1:$PROMETHEUS_PORT is in use; set GPUPOOL_PROMETHEUS_PORT"
    exit 1
  fi
  mkdir -p "$D/prometheus"
  start_process prometheus /usr/bin/prometheus \
    --config.file="$config" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --storage.tsdb.path="$D/prometheus" \
    --storage.tsdb.retention.time=1d \
    --web.enable-lifecycle \
    "${web[@]}"
  # Ready once it answers at all: with basic_auth_users every path, /-/ready included, answers 401
  # without credentials.
  local deadline=$((SECONDS + 60))
  until [[ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "$url/-/ready" 2>/dev/null)" =~ ^(200|401)$ ]]; do
    if ! is_running prometheus || ((SECONDS >= deadline)); then
      warn "Prometheus did not become ready"
      log_tail prometheus
      stop_process prometheus
      exit 1
    fi
    sleep 0.5
  done
  log "Prometheus ready at $url with $config${web_config:+ and $web_config}"
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) stop_process prometheus ;;
  status)
    if is_running prometheus; then echo "prometheus running (pid $(pid_of prometheus)) at $URL"; else echo "prometheus stopped"; exit 1; fi ;;
  url) echo "$URL" ;;
  *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
