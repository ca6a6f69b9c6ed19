"""Program evaluation under Pulumi's mocks at 1, 10 and 100 hosts on each platform: prints figures,
asserts nothing.

    .venv/bin/python -m bench.program [--hosts 1,10,100] [--repeat 3]

Each run is a fresh Python process (imports included, as `pulumi preview` starts one) evaluating
the real program with the same mock clouds the tests use; its wall time, its peak resident memory
(from the kernel, `wait4`) and the resources it declared are printed, with resources per host.
The release archive is built once beforehand (it is cached in .cache/, as on a user's machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = ("digitalocean", "aws", "existing")


def config_for(platform: str, hosts: int) -> tuple[dict, tuple[str, ...]]:
    from tests.support.cloud import example_config, with_changes

    if platform == "existing":
        config, keys = example_config("existing-minimal")
        addresses = [f"10.{i // 250}.{i % 250}.10" for i in range(hosts)]
        from tests.support.mocks import mock_host_key

        pinned = {a: mock_host_key(a) for a in addresses}
        return with_changes(config, hosts={"addresses": addresses, "hostKeys": pinned}), keys
    config, keys = example_config(f"{platform}-minimal")
    return with_changes(config, hosts={"count": hosts}), keys


def one(platform: str, hosts: int) -> None:
    """Runs in the child: evaluate once, print what was declared and how long it took."""
    started = time.perf_counter()
    from tests.support.mocks import run_program

    config, keys = config_for(platform, hosts)
    if platform == "aws":
        from tests.test_aws import AwsMocks

        mocks = AwsMocks()
    elif platform == "digitalocean":
        from tests.test_digitalocean import do_mocks

        mocks = do_mocks()
    else:
        mocks = None
    run = run_program(config, stack="bench", secret_keys=keys, mocks=mocks)
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "resources": len(run.monitor.registered)}))


def measure(platform: str, hosts: int) -> dict:
    proc = subprocess.Popen([sys.executable, "-m", "bench.program", "--one", platform, str(hosts)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{platform} x {hosts}: failed\n{err.decode()[-3000:]}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return {**result, "wall": wall, "peak_mb": usage.ru_maxrss / 1024}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1,10,100")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--one", nargs=2, metavar=("PLATFORM", "HOSTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]))
        return 0
    counts = [int(n) for n in args.hosts.split(",")]
    measure("existing", 1)  # builds the release archive into .cache/ once
    print(f"{'platform':<13}{'hosts':>6}{'resources':>11}{'per host':>10}{'evaluate s':>12}"
          f"{'process s':>11}{'peak MB':>9}")
    rows = []
    for platform in PLATFORMS:
        base = None
        for hosts in counts:
            runs = [measure(platform, hosts) for _ in range(args.repeat)]
            resources = runs[0]["resources"]
            if base is None:
                base = (hosts, resources)
            per_host = (resources - base[1]) / (hosts - base[0]) if hosts != base[0] else float("nan")
            row = {"platform": platform, "hosts": hosts, "resources": resources,
                   "per_host": None if hosts == base[0] else per_host,
                   "evaluate_s": statistics.median(r["seconds"] for r in runs),
                   "process_s": statistics.median(r["wall"] for r in runs),
                   "peak_mb": max(r["peak_mb"] for r in runs)}
            rows.append(row)
            print(f"{platform:<13}{hosts:>6}{resources:>11}{per_host:>10.1f}{row['evaluate_s']:>12.2f}"
                  f"{row['process_s']:>11.2f}{row['peak_mb']:>9.0f}")
    print("evaluate s: the program under the mocks (median); process s: the whole process with its "
          "imports; per host: resources each further host adds")
    if args.json:
        args.json.write_text(json.dumps({"repeat": args.repeat, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
