#!/usr/bin/env bash
# make bench: install what the benchmark needs, run bench/main.ts, clean up every process.
#   - Deno, ffmpeg, ffprobe: .tools/ (the Makefile's `tools` target)
#   - nginx + the RTMP module: Debian packages (apt-get), without starting the nginx service
#   - node-media-server 2.x: npm, into .tools/bench/ (git-ignored)
# BENCH_QUICK=1 runs a tiny version for smoke tests (bench/results/quick.json, BENCHMARKS.quick.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.tools/bin:$PATH"
NMS_VERSION=2.7.4
RESULTS="$ROOT/bench/results"
mkdir -p "$RESULTS"
started=$(date +%s)

log() { echo "[run.sh] $*"; }

# Ends whatever bench/main.ts left behind (it records its children in bench/results/.pids).
cleanup() {
  local code=$?
  if [[ -n "${BENCH_PID:-}" ]] && kill -0 "$BENCH_PID" 2>/dev/null; then
    kill -TERM "$BENCH_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$BENCH_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BENCH_PID" 2>/dev/null || true
  fi
  if [[ -f "$RESULTS/.pids" ]]; then
    while read -r pid; do
      [[ -n "$pid" ]] && kill -KILL "$pid" 2>/dev/null || true
    done <"$RESULTS/.pids"
    rm -f "$RESULTS/.pids"
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -x "$ROOT/.tools/bin/deno" ]]; then
  log "installing deno/ffmpeg into .tools/"
  make -C "$ROOT" tools
fi

if ! command -v nginx >/dev/null 2>&1 || ! ls /usr/lib/nginx/modules/ngx_rtmp_module.so >/dev/null 2>&1; then
  log "installing nginx + libnginx-mod-rtmp (apt-get)"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  # Keep the package's postinst from starting a system nginx on port 80 (no policy-rc.d of our
  # own if one already exists).
  own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  $SUDO apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx libnginx-mod-rtmp >/dev/null
  [[ -n "$own_policy" ]] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

NMS_PKG="$ROOT/.tools/bench/node_modules/node-media-server/package.json"
if [[ ! -f "$NMS_PKG" ]] || ! grep -q "\"version\": \"$NMS_VERSION\"" "$NMS_PKG"; then
  log "installing node-media-server@$NMS_VERSION into .tools/bench/"
  mkdir -p "$ROOT/.tools/bench"
  (cd "$ROOT/.tools/bench" && npm install --no-save --no-package-lock --no-audit --no-fund --prefix . \
    "node-media-server@$NMS_VERSION" >/dev/null)
fi

log "tools: $(deno --version | head -1); $(nginx -v 2>&1); node $(node --version); nms $NMS_VERSION"
deno run -A "$ROOT/bench/main.ts" &
BENCH_PID=$!
wait "$BENCH_PID"
BENCH_PID=""
log "done in $(($(date +%s) - started)) s"
