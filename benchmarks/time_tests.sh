#!/usr/bin/env bash
# Wall time of test files, without running the whole suite in one go on a shared machine.
#   benchmarks/time_tests.sh per-file tests/test_*.py   # each file in its own pytest process, slowest parts
#   benchmarks/time_tests.sh together tests/test_a.py tests/test_b.py   # one pytest process (shares session fixtures)
# Logs go to runs/tests-<file>.log; prints "<file> <seconds> rc=<code> load <1 5 15 min>" per run.
set -u
cd "$(dirname "$0")/.."
mkdir -p runs
mode=${1:?per-file or together}; shift
stamp() { cut -d' ' -f1-3 /proc/loadavg; }
run() {  # name, files...
    local name=$1; shift
    local s e rc
    s=$(date +%s.%N)
    python -m pytest -q -p no:cacheprovider --durations=12 "$@" > "runs/tests-$name.log" 2>&1
    rc=$?
    e=$(date +%s.%N)
    echo "$name $(echo "$e - $s" | bc) rc=$rc load $(stamp)"
}
if [ "$mode" = per-file ]; then
    for f in "$@"; do run "$(basename "$f" .py)" "$f"; done
else
    run together "$@"
fi
