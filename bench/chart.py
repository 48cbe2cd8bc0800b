#!/usr/bin/env python3
"""Draws a benchmark run's rates as ratios to pg_recvlogical, one group of
bars per workload, as an SVG:

    python3 bench/chart.py bench/results/bench-<time>.json [OUT.svg]
    python3 bench/chart.py bench/results/latest.json   # -> latest.svg

bench.py runs it after every run (its only non-standard dependency,
matplotlib, is pinned in scripts/install-deps.sh)."""

import json
import sys
import textwrap

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)

# result key, label; pg_recvlogical is the 1.0 line every bar is against.
SERIES = (
    ("pg_recvlogical", "pg_recvlogical (protocol 1)"),
    ("pgspout", "pgspout (streaming, protocol 2)"),
    ("pg_recvlogical_streaming", "pg_recvlogical streaming (server's limit)"),
    ("pgspout_streaming_off", "pgspout --streaming off"),
    ("debezium", "Debezium 3.6.1 embedded"),
)


def ratios(workloads, key):
    return [w[key]["rows_per_s"] / w["pg_recvlogical"]["rows_per_s"]
            if key in w else 0.0 for w in workloads]


def draw(results, out):
    workloads = results["workloads"]
    series = [(key, label) for key, label in SERIES
              if any(key in w for w in workloads)]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(workloads)) + 3, 4.5))
    for i, (key, label) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width
              for j in range(len(workloads))]
        values = ratios(workloads, key)
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, labels=["%.2f" % v if v else "" for v in values],
                     fontsize=7, padding=1)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(["%s\n%s" % (w["workload"],
                                    textwrap.fill(w["size"], 18))
                        for w in workloads], fontsize=7)
    ax.set_ylabel("rows/s relative to pg_recvlogical")
    ax.set_title("Drain rate per workload (%s, PostgreSQL %s)" % (
        results.get("started_utc", "?"),
        results.get("postgresql", "?").split()[0]), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out, format="svg", metadata={"Date": None})
    plt.close(fig)


def main():
    if len(sys.argv) not in (2, 3) or not sys.argv[1].endswith(".json"):
        sys.exit("usage: chart.py RESULTS.json [OUT.svg]")
    src = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else src[:-len(".json")] + ".svg"
    with open(src) as f:
        results = json.load(f)
    if not results.get("workloads"):
        sys.exit("chart.py: %s has no workload figures" % src)
    draw(results, out)


if __name__ == "__main__":
    main()
