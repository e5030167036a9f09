#!/bin/sh
# The layers of pobj/src (docs/tree.md), bottom up: a file may include the internal headers of
# its own layer and of the layers below it, never of one above. open.cpp, the composition root,
# may include them all. Prints each include that goes up, and fails if there is one.
set -eu
src=${1:?usage: layers_test.sh POBJ_SRC_DIR}
rank() {
  case $1 in
    common) echo 0 ;; media) echo 1 ;; pool) echo 2 ;; heap) echo 3 ;; tx) echo 4 ;;
    object) echo 5 ;; types) echo 6 ;; testing) echo 7 ;; *) echo "" ;;
  esac
}
bad=0
checked=0
for file in "$src"/*/*.cpp "$src"/*/*.hpp; do
  [ -e "$file" ] || continue
  layer=$(basename "$(dirname "$file")")
  from=$(rank "$layer")
  [ -n "$from" ] || { echo "$file: in no layer (add its folder to docs/tree.md and this test)"; bad=1; continue; }
  for inc in $(sed -n 's/^#include "\([a-z_]*\)\/[a-z_]*\.hpp".*/\1/p' "$file"); do
    checked=$((checked + 1))
    to=$(rank "$inc")
    if [ -z "$to" ] || [ "$to" -gt "$from" ]; then
      echo "$file ($layer) includes a header of $inc, a layer above it"
      bad=1
    fi
  done
done
[ "$checked" -gt 0 ] || { echo "no includes checked under $src"; exit 1; }
echo "$checked includes checked"
exit $bad
