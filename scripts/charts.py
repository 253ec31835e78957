#!/usr/bin/env python3
"""SVG charts of KvDB benchmark results, drawn from `kvdb bench --json` summaries.

    scripts/charts.py DATA_DIR OUT_DIR

DATA_DIR holds what `scripts/bench.sh clients` and `scripts/bench.sh shards` saved (one JSON
summary per line): clients.jsonl and shards.jsonl (each summary there also carries `shards`).
OUT_DIR receives, for the files present:

- throughput-vs-clients.svg: requests per second by concurrency, one line per target and op;
- latency-vs-clients.svg: p50 and p99 latency by concurrency, per target and op;
- throughput-vs-shards.svg: smart-client puts per second by shard count.

Python's standard library only: no plotting package to install.
"""

import json
import math
import sys
from pathlib import Path

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 200, 40, 60
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def load(path):
    if not path.exists():
        return []
    with path.open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


def setup(row, key):
    """A field of the run's setup, wherever the summary keeps it."""
    return row.get("setup", {}).get(key, row.get(key))


def escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def nice_max(value):
    if value <= 0:
        return 1
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def number(value):
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def chart(title, x_label, y_label, series, log_x):
    """An SVG line chart of `series`: [(name, [(x, y), ...], dashed, colour index)]."""
    xs = sorted({x for _, points, _, _ in series for x, _ in points})
    y_top = nice_max(max((y for _, points, _, _ in series for _, y in points), default=1))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if log_x:
        lo, hi = math.log(min(xs)), math.log(max(xs))
        position = lambda x: (math.log(x) - lo) / ((hi - lo) or 1)
    else:
        lo, hi = min(xs), max(xs)
        position = lambda x: (x - lo) / ((hi - lo) or 1)
    px = lambda x: LEFT + position(x) * plot_w
    py = lambda y: TOP + plot_h - y / y_top * plot_h
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(6):
        y = y_top * i / 5
        out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 8}" y="{py(y) + 4:.1f}" text-anchor="end">{number(y)}</text>')
    for x in xs:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#f0f0f0"/>')
        out.append(f'<text x="{px(x):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{number(x)}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888"/>')
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 16}" text-anchor="middle">{escape(x_label)}</text>')
    out.append(
        f'<text transform="translate(18 {TOP + plot_h / 2:.1f}) rotate(-90)" text-anchor="middle">{escape(y_label)}</text>'
    )
    for i, (name, points, dashed, colour_index) in enumerate(series):
        colour = COLOURS[colour_index % len(COLOURS)]
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points))
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for x, y in points:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        ly = TOP + 10 + i * 18
        lx = LEFT + plot_w + 14
        out.append(f'<line x1="{lx}" x2="{lx + 22}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{lx + 28}" y="{ly + 4}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def by_run(rows):
    """{(target, op): [(concurrency, row)]}"""
    runs = {}
    for row in rows:
        key = (setup(row, "target"), setup(row, "op"))
        runs.setdefault(key, []).append((setup(row, "concurrency"), row))
    return runs


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    written = []
    clients = load(data / "clients.jsonl")
    if clients:
        runs = sorted(by_run(clients).items())
        series = [
            (f"{target} {op}", [(c, r["throughput"]) for c, r in points], False, i)
            for i, ((target, op), points) in enumerate(runs)
        ]
        (out / "throughput-vs-clients.svg").write_text(
            chart("Throughput by client concurrency", "concurrent clients (log scale)", "requests/s", series, True)
        )
        latency = []
        for i, ((target, op), points) in enumerate(runs):
            for quantile in ("p50", "p99"):
                latency.append(
                    (f"{target} {op} {quantile}", [(c, r["latency_ms"][quantile]) for c, r in points], quantile == "p99", i)
                )
        (out / "latency-vs-clients.svg").write_text(
            chart("Latency by client concurrency (p50 solid, p99 dashed)", "concurrent clients (log scale)", "ms", latency, True)
        )
        written += ["throughput-vs-clients.svg", "latency-vs-clients.svg"]
    shards = load(data / "shards.jsonl")
    if shards:
        curves = {}
        for row in shards:
            curves.setdefault(setup(row, "concurrency"), []).append((row["shards"], row["throughput"]))
        series = [(f"smart put, c={c}", points, False, i) for i, (c, points) in enumerate(sorted(curves.items()))]
        (out / "throughput-vs-shards.svg").write_text(
            chart("Put throughput by shard count", "shards (log scale)", "puts/s", series, True)
        )
        written.append("throughput-vs-shards.svg")
    if not written:
        sys.exit(f"charts: no clients.jsonl or shards.jsonl in {data}")
    for name in written:
        print(out / name)


if __name__ == "__main__":
    main()
