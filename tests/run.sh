#!/usr/bin/env bash
# Runs the whole test suite (unit + integration) and ends with a plain "N passed, N failed"
# line parsed from Deno's summary. Extra arguments go to `deno test` (e.g. a file or --filter).
# Exit code: deno's, or 1 if its summary cannot be parsed.
#
# Integration tests spawn a node process, ffmpeg and ffprobe each, so test files run two at a
# time (DENO_JOBS, default 2; the reference machine has 2 cores).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.tools/bin:$PATH"
export DENO_JOBS="${DENO_JOBS:-2}"
export NO_COLOR=1

ARTIFACTS="$ROOT/test-artifacts"
mkdir -p "$ARTIFACTS"
# Node logs and configs of the previous run.
find "$ARTIFACTS" -maxdepth 1 -type f \( -name '*.log' -o -name '*.yaml' \) -delete 2>/dev/null || true
OUT="$ARTIFACTS/test-output.txt"

start=$(date +%s)
deno test --allow-all --parallel "$@" 2>&1 | tee "$OUT"
code=${PIPESTATUS[0]}
elapsed=$(( $(date +%s) - start ))

# Deno's last summary line looks like:
#   ok | 12 passed (3 steps) | 0 failed (41s)
#   FAILED | 10 passed (2 steps) | 2 failed (1 step) | 1 ignored (40s)
# "(N steps)" counts steps; only the numbers before "passed"/"failed" count test cases.
summary=$(sed 's/\x1b\[[0-9;]*m//g' "$OUT" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -n 1)
if [[ -z "$summary" ]]; then
  echo "could not find deno's test summary (deno exited with $code)"
  echo "0 passed, 1 failed"
  [[ $code -ne 0 ]] && exit "$code"
  exit 1
fi
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -nE 's/.*\| ([0-9]+) failed.*/\1/p' <<<"$summary")
failed=${failed:-0}
echo "wall time ${elapsed}s; node logs in test-artifacts/"
echo "${passed} passed, ${failed} failed"
exit "$code"
