#!/usr/bin/env python3
"""Which statistic of `tailguard demo` is steadiest across repeated runs.

Usage: scripts/compare-statistics.py RUN1.json RUN2.json [...]

Each file is a report written by `tailguard demo --rounds N --json FILE`. For each statistic
the demo computes (pooled, window, intervals) and each mode, it prints the median ratio to the
baseline that every run found, how far apart the runs are (the largest over the smallest
median: 1.00 means they agree exactly), and the mean width of the runs' 95 % intervals (high
over low). The A/A line (the baseline against itself) should sit at 1.00 with a narrow
interval; a statistic is steadier when its medians agree across runs and its intervals are
narrow, for the A/A line and for the modes alike.
"""

import json
import sys

STATISTICS = ("pooled", "window", "intervals")


def ratios(report):
    """{(mode, statistic): (median, low, high)} of one report, the A/A line as mode 'A/A'."""
    out = {}
    noise = report.get("noise") or {}
    for stat in STATISTICS:
        e = noise.get(stat)
        if e:
            out[("A/A", stat)] = (e["median"], e["low"], e["high"])
    for mode in report["modes"]:
        vs = mode.get("p99_vs_baseline") or {}
        for stat in STATISTICS:
            e = vs.get(stat)
            if e and mode["name"] != "baseline":
                out[(mode["name"], stat)] = (e["median"], e["low"], e["high"])
    return out


def main(paths):
    if len(paths) < 2:
        sys.exit(__doc__)
    runs = [ratios(json.load(open(path))) for path in paths]
    modes = []
    for run in runs:
        for mode, _ in run:
            if mode not in modes:
                modes.append(mode)
    print(f"{len(runs)} runs: {', '.join(paths)}")
    print(f"{'mode':<22} {'statistic':<10} {'medians per run':<40} {'max/min':>8} {'mean hi/lo':>10}")
    spread_by_stat = {stat: [] for stat in STATISTICS}
    width_by_stat = {stat: [] for stat in STATISTICS}
    for mode in modes:
        for stat in STATISTICS:
            found = [run[(mode, stat)] for run in runs if (mode, stat) in run]
            if len(found) < 2:
                continue
            medians = [m for m, _, _ in found]
            spread = max(medians) / min(medians) if min(medians) > 0 else float("inf")
            widths = [hi / lo for _, lo, hi in found if lo > 0]
            width = sum(widths) / len(widths) if widths else float("nan")
            spread_by_stat[stat].append(spread)
            width_by_stat[stat].append(width)
            text = " ".join(f"{m:.2f}" for m in medians)
            print(f"{mode:<22} {stat:<10} {text:<40} {spread:>8.2f} {width:>10.2f}")
    print()
    for stat in STATISTICS:
        spreads, widths = spread_by_stat[stat], width_by_stat[stat]
        if spreads:
            print(
                f"{stat:<10} worst max/min across runs {max(spreads):.2f}, mean {sum(spreads) / len(spreads):.2f}; "
                f"mean interval width {sum(widths) / len(widths):.2f}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
