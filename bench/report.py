"""The results tables of docs/benchmarks.md, from the JSON the benchmarks write.

    .venv/bin/python -m bench.report bench/results [--readme docs/benchmarks.md]

Prints Markdown; with --readme, replaces what lies between that page's `<!-- bench:begin -->`
and `<!-- bench:end -->` markers with it (nothing else in the file changes).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
COLUMNS = [("stack", "stack (defaults)"), ("haproxy", "stack, HAProxy front"), ("naive", "naive recipe"),
           ("gunicorn", "Gunicorn alone"),
           ("nginx", "Nginx alone"), ("io-gevent", "gevent"), ("io-threads", "threads 64"),
           ("gunicorn-log", "Gunicorn alone + access log")]
ROUTES = [("hello", "`/`"), ("static", "50 KB static"), ("io", "`/io` (20 ms wait)")]


def load(directory: Path, name: str) -> dict | None:
    path = directory / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _wakeup(w: dict | None) -> str:
    if not w:
        return ""
    return (f" One process waking another and being woken back (a pipe) took {w['same_cpu_us']:.1f} µs "
            f"on one CPU and {w['across_cpus_us']:.1f} µs across two.")


def serving(serve: dict) -> list[str]:
    m = serve["machine"]
    cells = serve["serving"]["cells"]
    others = sorted(c["others"] for c in cells.values())
    hosts = _median([c["hosts"] for c in cells.values()])
    wrk = _median([c["wrk"] for c in cells.values()])
    lines = [
        f"**Serving** ({serve['date']}; {m['nproc']} CPUs, {m['cpu']}, {m['ram']} RAM; Linux "
        f"{m['kernel']}). Requests per second and p99 latency in ms, medians of {serve['rounds']} "
        f"interleaved {serve['seconds']:g} s wrk runs per cell. wrk (2 threads) runs on the same "
        f"two cores as the test host, unpinned: the host used {hosts:.2f} cores and wrk {wrk:.2f} "
        f"(medians over cells); other "
        f"processes on the machine took {_median(others):.2f} (median, at most {others[-1]:.2f})."
        + _wakeup(serve.get("wakeup")),
        "",
        "| route | clients | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for route, title in ROUTES:
        for conns in (64, 256):
            row = [title, str(conns)]
            for setup, _ in COLUMNS:
                cell = cells.get(f"{route}/{conns}/{setup}")
                row.append("–" if cell is None else f"{cell['rps']:.0f} / {cell['p99']:.0f}"
                           + (f" ({cell['failed']} failed)" if cell["failed"] else ""))
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| target | measured | |", "|---|---:|---|"]
    for name, r in serve["serving"]["ratios"].items():
        what, conns = name.rsplit(" @", 1)
        if r["target"] is None:
            lines.append(f"| {what}, {conns} clients (no target) | {r['ratio']:.2f} | |")
        else:
            lines.append(f"| {what}, {conns} clients, ≥ {r['target']:.2f} | {r['ratio']:.2f} | "
                         f"{'met' if r['met'] else '**not met**'} |")
    lines += cpu_split(cells)
    lines += ["", "| during | keep-alive clients: failed / requests | closing clients: failed / requests |",
              "|---|---:|---:|"]
    reloads = serve["reloads"]
    for what in dict.fromkeys(key.split(" / ")[0] for key in reloads):
        ka, close = reloads[f"{what} / keep-alive"], reloads[f"{what} / Connection: close"]
        count = f" ×{ka['reloads']}" if ka["reloads"] else ""
        lines.append(f"| {what}{count} | {ka['failed']} / {ka['requests']} | "
                     f"{close['failed']} / {close['requests']} |")
    return lines


UNITS = [("nginx.service", "Nginx"), ("haproxy.service", "HAProxy"), ("app.service", "Gunicorn (the app's)"),
         ("bench-gunicorn.service", "Gunicorn alone"), ("wrk", "wrk")]


def cpu_split(cells: dict) -> list[str]:
    """CPU per request on `/` by process (µs), for the setups the hello target compares; empty
    for results written before bench/serve measured it."""
    wanted = [(conns, setup) for conns in (64, 256) for setup in ("stack", "haproxy", "gunicorn")
              if f"hello/{conns}/{setup}" in cells]
    if not all("us_per_request" in cells[f"hello/{c}/{s}"] for c, s in wanted):
        return []
    lines = ["", "CPU per request on `/`, µs (medians; by process, read from /proc on this machine):", "",
             "| clients | setup | total | " + " | ".join(title for _, title in UNITS) + " | other |",
             "|---:|---|---:|" + "---:|" * (len(UNITS) + 1)]
    for conns, setup in wanted:
        used: dict[str, float] = {}  # per unit, summed over the test hosts
        for unit, us in cells[f"hello/{conns}/{setup}"]["us_per_request"].items():
            name = unit.rsplit("/", 1)[-1]
            used[name] = used.get(name, 0.0) + us
        shown = [used.pop(unit, 0.0) for unit, _ in UNITS]
        other = sum(used.values())
        lines.append(f"| {conns} | {dict(COLUMNS)[setup]} | {sum(shown) + other:.0f} | "
                     + " | ".join(f"{us:.0f}" if us >= 0.5 else "–" for us in shown) + f" | {other:.0f} |")
    return lines


def deploy(data: dict) -> list[str]:
    lines = [f"**Deploys** ({data['date']}, the replayer over SSH onto booted test hosts)", "",
             "| | seconds | steps that ran |", "|---|---:|---|"]
    for row in data["rows"]:
        what = row["what"].strip()
        lines.append(f"| {'↳ ' if row['what'].startswith('  ') else ''}{what} | {row['seconds']:.1f} | "
                     f"{row['note']} |")
    return lines


def program(data: dict) -> list[str]:
    lines = [f"**Program evaluation under the mocks** (median of {data['repeat']} fresh processes)", "",
             "| platform | hosts | resources | per extra host | evaluate s | process s | peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in data["rows"]:
        per = "–" if r["per_host"] is None else f"{r['per_host']:.1f}"
        lines.append(f"| {r['platform']} | {r['hosts']} | {r['resources']} | {per} | "
                     f"{r['evaluate_s']:.2f} | {r['process_s']:.2f} | {r['peak_mb']:.0f} |")
    return lines


def reloads(data: dict) -> list[str]:
    s = data["stand_in"]
    lines = [
        f"**Reloads** ({data['date']}; bench/reloads: {data['reloads_per_load']} reloads per load; "
        f"64 keep-alive clients, or 32 closing clients 100 ms apart). Failed / requests; the "
        f"stand-in balancer checks every {s['interval']} s (out after {s['unhealthy']} failures, "
        f"back after {s['healthy']} passes), and a drained reload waits {s['drain']} s before and "
        f"{s['undrain']} s after.",
        "", "| setup | during | keep-alive clients | closing clients |", "|---|---|---:|---:|"]
    for section in ("direct", "balancer"):
        rows = data[section]
        for key in dict.fromkeys(k.rsplit(" / ", 1)[0] for k in rows):
            setup, what = key.split(" / ", 1)
            ka, close = rows[f"{key} / keep-alive"], rows[f"{key} / Connection: close"]
            count = f" ×{ka['reloads']}" if ka["reloads"] else ""
            lines.append(f"| {setup} | {what}{count} | {ka['failed']} / {ka['requests']} | "
                         f"{close['failed']} / {close['requests']} |")
    return lines


def _median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def markdown(directory: Path) -> str:
    parts = []
    for name, render in (("serve", serving), ("reloads", reloads), ("deploy", deploy),
                         ("program", program)):
        data = load(directory, name)
        missing = f"*(no {name} results yet: `sudo bench/run {name}`)*"
        parts.append("\n".join(render(data)) if data else missing)
    return "\n\n".join(parts) + "\n"


def replace_between_markers(text: str, body: str) -> str:
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"the page has no {BEGIN} ... {END} section to replace")
    return pattern.sub(lambda _: f"{BEGIN}\n{body}{END}", text, count=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--readme", type=Path)
    args = parser.parse_args()
    body = markdown(args.results)
    if args.readme:
        args.readme.write_text(replace_between_markers(args.readme.read_text(), body))
    print(body, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
