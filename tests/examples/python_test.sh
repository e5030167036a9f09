#!/bin/sh
# Point 10 of the newcomer issue: the project's Python runs on Debian's python3, which has
# python3-redis, not on the first python3 on PATH (a pyenv one lacks it). Every Python file with
# a #! line names /usr/bin/python3; and the client, under a python3 without redis, says in one line
# what is missing instead of a traceback deep in an import.
set -eu
root=${1:?usage: python_test.sh SOURCE_ROOT}
bad=0
n=0
for f in $(find "$root/examples" "$root/scripts" "$root/tests" "$root/kvstore" "$root/bench" -name '*.py'); do
  first=$(head -n 1 "$f")
  case $first in
    '#!'*) n=$((n + 1)); [ "$first" = '#!/usr/bin/python3' ] || { echo "$f: '$first' is not #!/usr/bin/python3"; bad=1; } ;;
  esac
done
[ "$n" -gt 0 ] || { echo "no Python scripts found under $root"; exit 1; }
echo "$n scripts name /usr/bin/python3"
# -S: no site packages, so no redis: as a python3 without Debian's python3-redis.
out=$(/usr/bin/python3 -S -c "import sys; sys.path.insert(0, '$root/kvstore/client/python'); import pobjkv" 2>&1) && {
  echo "pobjkv imported without redis"; exit 1; }
echo "$out" | tail -n 1 | grep -q "^ImportError: pobjkv needs Debian's python3-redis: apt-get install python3-redis" || {
  echo "unexpected message: $out"; exit 1; }
exit $bad
