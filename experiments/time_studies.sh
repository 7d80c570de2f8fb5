#!/usr/bin/env bash
# Wall time of studies at their default configuration, one after another, each a fresh
# Python process (imports and compiles included), as BENCHMARKS.md reports them.
#
#   experiments/time_studies.sh OUT BUDGET_S mnist_cnn wine_mlp \
#     'nab_anomaly --runs_per_vmap=0' ...
#
# OUT receives one run directory per study (under OUT/NAME[-k]), each study's log
# (OUT/NAME[-k].log) and times.tsv (study, flags, exit status, wall seconds). A study
# gets at most what is left of BUDGET_S (less 20 s) and is stopped there (exit status
# 124), so the whole script ends within its budget; the studies not reached are listed
# as skipped. After each study the hook in $AFTER_EACH, if set, runs (e.g. to copy OUT
# somewhere that survives a time limit).
set -uo pipefail

if (( $# < 2 )); then
  echo "usage: $0 OUT BUDGET_S 'STUDY [FLAGS]'..." >&2
  exit 2
fi
out=$1 budget=$2
shift 2
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."  # the studies run as modules from the repository root
deadline=$(( $(date +%s) + budget - 20 ))
printf 'study\tflags\texit\twall_s\n' > "$out/times.tsv"
index=0
for spec in "$@"; do
  index=$((index + 1))
  read -r name flags <<< "$spec"
  tag="$name-$index"
  left=$(( deadline - $(date +%s) ))
  if (( left < 10 )); then
    printf '%s\t%s\tskipped\t-\n' "$name" "$flags" >> "$out/times.tsv"
    continue
  fi
  echo "== $name $flags (at most ${left} s)"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086  # flags are words
  timeout -k 5 "$left" python3 -m "experiments.$name" --out="$out/$tag" $flags \
    > "$out/$tag.log" 2>&1
  status=$?
  wall=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" \
    "$start" "$(date +%s.%N)")
  printf '%s\t%s\t%s\t%s\n' "$name" "$flags" "$status" "$wall" >> "$out/times.tsv"
  echo "   exit $status, $wall s"
  tail -n 3 "$out/$tag.log"
  if [[ -n "${AFTER_EACH:-}" ]]; then eval "$AFTER_EACH"; fi
done
column -t -s $'\t' "$out/times.tsv" 2>/dev/null || cat "$out/times.tsv"
