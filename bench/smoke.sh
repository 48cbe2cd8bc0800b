#!/usr/bin/env bash
# CI smoke test of the benchmark harness: every workload (the backfill one
# and W5's concurrent transactions included), pgspout with --streaming on
# and off, pg_recvlogical with protocol 1 and with streaming, the Kafka
# sink's drains and latency run (--kafka, a local
# broker from scripts/install-kafka.sh) and the latency run at 1% scale,
# with logical_decoding_work_mem at 64kB so that even these sizes make the
# server stream (protocol 2) and spill (protocol 1) W1's and W5's large
# transactions. No peers: Debezium's drains (JVM start-up, about 10 s each
# even at this size, plus its Maven build and OpenSearch) would cost
# minutes. Fails only when the harness itself broke (a tool
# failed, pgspout wrote the wrong number of rows, no figures came out); it
# asserts no timings, which mean nothing on a shared CI machine.
#
#   bash bench/smoke.sh                  # builds into build/bench-prefix
#   PGSPOUT_BIN=build/prefix/bin/pgspout bash bench/smoke.sh
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(mktemp -d /tmp/pgspout-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT

args=(--scale 0.01 --kafka --pgspout-streaming-off --recvlogical-streaming
    --logical-decoding-work-mem 64kB --results "$out")
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
if names != ["W1", "W2", "W3", "W4", "W5"]:
    problems.append("workloads measured: %s" % names)
for w in r.get("workloads", []):
    for tool in ("pgspout", "pgspout_streaming_off", "pg_recvlogical",
                 "pg_recvlogical_streaming"):
        m = w[tool]
        if m["exit"] != 0 or m["wall_s"] <= 0 or m["peak_rss_kb"] <= 0:
            problems.append("%s %s: %s" % (w["workload"], tool, m))
        if not m.get("slot_stats", {}).get("total_txns"):
            problems.append("%s %s: no slot statistics: %s" % (
                w["workload"], tool, m.get("slot_stats")))
    for tool in ("pgspout", "pgspout_streaming_off"):
        if w[tool]["rows_written"] != w["changes"]:
            problems.append("%s %s: rows written %s, expected %s" % (
                w["workload"], tool, w[tool]["rows_written"], w["changes"]))
    # With 64kB of decoding memory the large transactions must have been
    # streamed to pgspout (protocol 2) and spilled for protocol 1; W5's
    # four (the rolled-back one included) are all streamed.
    if w["workload"] in ("W1", "W5"):
        want = 1 if w["workload"] == "W1" else 4
        for tool in ("pgspout", "pg_recvlogical_streaming"):
            st = w[tool]["slot_stats"]
            if st.get("stream_txns", 0) < want:
                problems.append("%s %s: %s streamed transactions, "
                                "expected %d" % (w["workload"], tool,
                                                 st.get("stream_txns"), want))
        st = w["pg_recvlogical"]["slot_stats"]
        if st.get("spill_txns", 0) < 1 or st.get("stream_txns", 0) != 0:
            problems.append("%s pg_recvlogical: expected spilled, not "
                            "streamed: %s" % (w["workload"], st))
if not glob.glob(sys.argv[1] + "/bench-*.svg"):
    problems.append("no chart (bench-*.svg; matplotlib from "
                    "scripts/install-deps.sh)")
bf = r.get("backfill")
if not bf:
    problems.append("no backfill figures")
else:
    for tool in ("pgspout", "copy", "chunked_read", "pgspout_chunk_readers"):
        m = bf.get(tool)
        if not m or m["exit"] != 0 or m["wall_s"] <= 0 or \
                m["peak_rss_kb"] <= 0:
            problems.append("backfill %s: %s" % (tool, m))
    for tool in ("pgspout", "pgspout_chunk_readers"):
        if bf.get(tool, {}).get("rows_written") != bf["rows"]:
            problems.append("backfill %s: %s read events, expected %s" % (
                tool, bf.get(tool, {}).get("rows_written"), bf["rows"]))
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
