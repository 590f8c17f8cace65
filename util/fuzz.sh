#!/usr/bin/env bash
# `make fuzz`: runs libFuzzer targets one after the other (build/fuzz/
# NAME_fuzz, see the Makefile), each for SECONDS, on its corpus: the
# seeds and regression inputs of t/fuzz/corpus/NAME (each run first) and
# what earlier runs found, kept in build/fuzz/corpus/NAME. A dictionary
# t/fuzz/NAME.dict is used when there is one. A crash, a sanitizer report
# or a failed check stops it: the input is build/fuzz/crash-NAME-*
# (add it to t/fuzz/corpus/NAME, and a test to the suites).
#
#   util/fuzz.sh SECONDS NAME...
#
# `make fuzz-accepted`: a sample of N inputs that a validator target
# (body, query) accepted, from its whole corpus, replaces
# t/fuzz/accepted/NAME/ (t/fuzz_sql.t sends them through PostgreSQL):
#
#   util/fuzz.sh accepted N NAME...
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
fuzz=$top/build/fuzz

if [ "$1" = accepted ]; then
    n=$2
    shift 2
    for t in "$@"; do
        rm -rf "$fuzz/accepted/$t" "$top/t/fuzz/accepted/$t"
        mkdir -p "$fuzz/accepted/$t" "$top/t/fuzz/accepted/$t" \
                 "$fuzz/corpus/$t"
        WORKSIBLE_FUZZ_ACCEPTED=$fuzz/accepted/$t "$fuzz/${t}_fuzz" \
            -runs=0 "$fuzz/corpus/$t" "$top/t/fuzz/corpus/$t" \
            >"$fuzz/$t-accepted.log" 2>&1
        find "$fuzz/accepted/$t" -type f | sort | shuf -n "$n" \
            --random-source=<(yes) | xargs -r cp -t "$top/t/fuzz/accepted/$t"
        echo "fuzz: $t: $(find "$fuzz/accepted/$t" -type f | wc -l)" \
             "inputs accepted, $(ls "$top/t/fuzz/accepted/$t" | wc -l)" \
             "in t/fuzz/accepted/$t"
    done
    exit 0
fi

seconds=$1
shift

for t in "$@"; do
    mkdir -p "$fuzz/corpus/$t" "$top/t/fuzz/corpus/$t"
    opts=(-max_total_time="$seconds" -max_len=4096 -timeout=10
          -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$fuzz/crash-$t-")
    [ -f "$top/t/fuzz/$t.dict" ] && opts+=(-dict="$top/t/fuzz/$t.dict")
    start=$(date +%s)
    if ! "$fuzz/${t}_fuzz" "${opts[@]}" "$fuzz/corpus/$t" \
            "$top/t/fuzz/corpus/$t" >"$fuzz/$t.log" 2>&1; then
        tail -n 60 "$fuzz/$t.log" >&2
        echo "fuzz: $t: FINDING after $(( $(date +%s) - start )) s" \
             "(build/fuzz/crash-$t-*, log build/fuzz/$t.log)" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$fuzz/$t.log")
    echo "fuzz: $t: $(( $(date +%s) - start )) s, ${runs:-?} runs," \
         "no finding"
done
