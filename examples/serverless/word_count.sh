#!/usr/bin/env bash
# The serverless-shell pattern: fan out one redis-cli call per file, in parallel, to compute an
# aggregate in pobj-kv. Each job counts one file's words and adds them to a shared counter under
# a request id of its own (ONCE: a job run twice adds once), then counts a latch down; the script
# waits on the latch (no polling) and reads the total.
#
#   scripts/run.sh &
#   examples/serverless/word_count.sh [FILES...]      (default: the project's docs)
set -euo pipefail
port=${POBJ_KV_PORT:-7379}
cli() { redis-cli -p "$port" "$@"; }
cd "$(dirname "$0")/../.."
if [ $# -eq 0 ]; then set -- docs/*.md; fi
run=wc-$$-$RANDOM
cli LATCH.CREATE "$run:left" $# >/dev/null
export port run
printf '%s\0' "$@" | xargs -0 -P 8 -I{} sh -c '
  n=$(wc -w < "$1")
  redis-cli -p "$port" ONCE "$run:$1" INCRBY "$run:words" "$n" >/dev/null
  redis-cli -p "$port" ONCE "$run:$1:done" LATCH.COUNTDOWN "$run:left" >/dev/null' _ {}
cli LATCH.AWAIT "$run:left" TIMEOUT 60000 >/dev/null
total=$(cli GET "$run:words")
echo "$total words in $# files (wc over them all: $(cat "$@" | wc -w))"
