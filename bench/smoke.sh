#!/usr/bin/env bash
# CI smoke test of the benchmark harness: every workload (the backfill one
# included), the Kafka sink's drains and latency run (--kafka, a local
# broker from scripts/install-kafka.sh) and the latency run at 1% scale, no
# peers. Fails only when the harness itself broke (a tool
# failed, pgspout wrote the wrong number of rows, no figures came out); it
# asserts no timings, which mean nothing on a shared CI machine.
#
#   bash bench/smoke.sh                  # builds into build/bench-prefix
#   PGSPOUT_BIN=build/prefix/bin/pgspout bash bench/smoke.sh
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mktemp -d /tmp/pgspout-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT

args=(--scale 0.01 --kafka --results "$out")
[ -n "${PGSPOUT_BIN:-}" ] && args+=(--pgspout "$PGSPOUT_BIN")

timeout 300 bash "$REPO/bench/run.sh" "${args[@]}"
status=$?
if [ $status -ne 0 ]; then
    echo "bench smoke: harness exited $status" >&2
    exit 1
fi

python3 - "$out" <<'PY'
import glob, json, sys
paths = glob.glob(sys.argv[1] + "/bench-*.json")
if len(paths) != 1:
    sys.exit("bench smoke: expected one results file, found %d" % len(paths))
r = json.load(open(paths[0]))
problems = []
if r.get("error"):
    problems.append("error: " + r["error"])
names = [w["workload"] for w in r.get("workloads", [])]
if names != ["W1", "W2", "W3", "W4"]:
    problems.append("workloads measured: %s" % names)
for w in r.get("workloads", []):
    for tool in ("pgspout", "pg_recvlogical"):
        m = w[tool]
        if m["exit"] != 0 or m["wall_s"] <= 0 or m["peak_rss_kb"] <= 0:
            problems.append("%s %s: %s" % (w["workload"], tool, m))
    if w["pgspout"]["rows_written"] != w["changes"]:
        problems.append("%s: rows written %s, expected %s" % (
            w["workload"], w["pgspout"]["rows_written"], w["changes"]))
bf = r.get("backfill")
if not bf:
    problems.append("no backfill figures")
else:
    for tool in ("pgspout", "copy"):
        m = bf[tool]
        if m["exit"] != 0 or m["wall_s"] <= 0 or m["peak_rss_kb"] <= 0:
            problems.append("backfill %s: %s" % (tool, m))
    if bf["pgspout"]["rows_written"] != bf["rows"]:
        problems.append("backfill: %s read events, expected %s" % (
            bf["pgspout"]["rows_written"], bf["rows"]))
    if bf["pgspout"]["samples"] == 0:
        problems.append("backfill: no xmin sample taken")
for w in r.get("workloads", []):
    if w["workload"] in ("W1", "W2"):
        k = w.get("pgspout_kafka")
        if not k or k["exit"] != 0 or any(
                run["rows_written"] != w["changes"] for run in k["runs"]):
            problems.append("%s kafka sink: %s" % (w["workload"], k))
klat = r.get("kafka_latency") or {}
if not klat.get("events") or klat.get("p99_ms") is None:
    problems.append("kafka latency run produced no figures: %s" % klat)
lat = r.get("latency") or {}
if not lat.get("events") or lat.get("p99_ms") is None:
    problems.append("latency run produced no figures: %s" % lat)
if problems:
    sys.exit("bench smoke: " + "; ".join(problems))
print("bench smoke: harness ok (%s)" % paths[0].rsplit("/", 1)[-1])
PY
