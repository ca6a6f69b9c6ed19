"""Deploy timings on real test hosts: prints figures, asserts nothing.

    .venv/bin/python -m bench.deploy [--json out.json]

Measured with the same replayer the host tests use (the exact remote steps the program declares):

1. two hosts in batches of one: fresh hosts to serving (every step), an unchanged replay, a
   release-only change (the app's code) and a config-only change (a Gunicorn setting);
2. four hosts in batches of two: fresh hosts to serving, then a rolling release-only change;
3. an app with 55 dependencies (bench/app50) on two hosts: its first release, then a code-only
   release, with the upload and release steps of each host.

Targets (issue 3): fresh host <= 30 s, release-only change <= 10 s per batch, unchanged replay
runs nothing; (issue 14) the release step of the 55-package app's code-only change <= 10 s per
host.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import tempfile
import time
from pathlib import Path

from tests.hosts.harness import Testbed
from tests.support.mocks import run_program
from tests.support.replay import Replayer, workdir

ROOT = Path(__file__).resolve().parent.parent


class Stack:
    """One stack on test hosts, deployed again and again by the replayer."""

    def __init__(self, testbed, hosts, app: Path, batch_size: int, database: str | None):
        self.testbed, self.hosts, self.app = testbed, hosts, app
        self.config = {
            "platform": "existing", "hosts": {"addresses": [h.address for h in hosts],
                                              "hostKeys": {h.address: testbed.host_key(h) for h in hosts}},
            "ssh": {"user": "deploy", "privateKey": testbed.private_key},
            "app": {"path": str(app)}, "deploy": {"batchSize": batch_size},
        }
        if database:
            self.config["database"] = {"url": database}
        self.replayer = Replayer(workdir())
        self.batches = -(-len(hosts) // batch_size)

    def deploy(self) -> tuple[float, list[str]]:
        started = time.monotonic()
        run = run_program(self.config, stack=f"bench{len(self.hosts)}", secret_keys=("ssh", "database"))
        outcome = self.replayer.replay(run)
        if outcome.failed:
            raise SystemExit(str(outcome.failed))
        self.last = outcome.seconds
        return time.monotonic() - started, outcome.ran

    def change_release(self, note: str, module: str = "rocket.py") -> None:
        code = self.app / module
        code.write_text(code.read_text() + f"\n# {note}\n")

    def steps(self, kind: str) -> dict[str, float]:
        """The seconds of the last deploy's steps of one kind, by host ("web-0": 3.1)."""
        return {"-".join(name.split("-")[1:3]): took for name, took in self.last.items()
                if name.endswith(f"-{kind}")}


def copy_app(into: Path, source: Path = ROOT / "app") -> Path:
    app = into / "app"
    shutil.copytree(source, app, ignore=shutil.ignore_patterns("__pycache__"))
    return app


def per_host(rows: list, what: str, seconds: dict[str, float], note: str = "") -> None:
    for host, took in sorted(seconds.items()):
        rows.append((f"  {what}, {host}", took, note))


def kinds(ran: list[str]) -> str:
    """The steps that ran, by kind: "configure x2, gate x2"."""
    counts: dict[str, int] = {}
    for name in ran:
        kind = name.rsplit("-", 1)[-1]
        counts[kind] = counts.get(kind, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in counts.items()) or "nothing"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    rows: list[tuple[str, float, str]] = []
    with Testbed() as testbed:
        database = testbed.postgres()
        booted = time.monotonic()
        hosts = testbed.boot(2, prefix="b")
        rows.append(("boot 2 test hosts (not the program's)", time.monotonic() - booted, ""))
        two = Stack(testbed, hosts, copy_app(scratch / "two"), batch_size=1, database=database)
        seconds, ran = two.deploy()
        rows.append(("2 fresh hosts to serving, batches of 1", seconds, f"{len(ran)} steps"))
        rows.append(("  per batch (target <= 30 s)", seconds / two.batches, ""))
        seconds, ran = two.deploy()
        rows.append(("unchanged replay", seconds, f"{len(ran)} steps ran (target 0)"))
        two.change_release("a release-only change")
        seconds, ran = two.deploy()
        rows.append(("release-only change, 2 batches of 1", seconds, kinds(ran)))
        rows.append(("  per batch (target <= 10 s)", seconds / two.batches, ""))
        two.config["app"] = {**two.config["app"], "timeout": 40}
        seconds, ran = two.deploy()
        rows.append(("config-only change, 2 batches of 1", seconds, kinds(ran)))
        rows.append(("  per batch", seconds / two.batches, ""))
        testbed.destroy(*hosts)

        hosts = testbed.boot(4, prefix="r")
        four = Stack(testbed, hosts, copy_app(scratch / "four"), batch_size=2, database=database)
        seconds, ran = four.deploy()
        rows.append(("4 fresh hosts to serving, batches of 2", seconds, f"{len(ran)} steps"))
        rows.append(("  per batch", seconds / four.batches, ""))
        four.change_release("a rolling release")
        seconds, ran = four.deploy()
        rows.append(("rolling release, 4 hosts in batches of 2", seconds, kinds(ran)))
        rows.append(("  per batch", seconds / four.batches, ""))
        testbed.destroy(*hosts)

        hosts = testbed.boot(2, prefix="p")
        big = Stack(testbed, hosts, copy_app(scratch / "fifty", ROOT / "bench" / "app50"),
                    batch_size=1, database=database)
        big.config["app"] = {**big.config["app"], "entry": "shop50:app"}
        seconds, ran = big.deploy()
        rows.append(("55-package app: 2 fresh hosts to serving", seconds, f"{len(ran)} steps"))
        per_host(rows, "upload", big.steps("upload"))
        per_host(rows, "release", big.steps("release"), "a new venv, 55 wheels installed")
        big.change_release("a code-only release", "shop50.py")
        seconds, ran = big.deploy()
        rows.append(("55-package app: code-only release, 2 batches", seconds, kinds(ran)))
        per_host(rows, "upload", big.steps("upload"))
        per_host(rows, "release", big.steps("release"), "target <= 10 s: the venv reused")
    print(f"{'what':44} {'seconds':>8}  notes")
    for what, seconds, note in rows:
        print(f"{what:44} {seconds:8.1f}  {note}")
    if args.json:
        args.json.write_text(json.dumps({
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            "rows": [{"what": w, "seconds": round(s, 1), "note": n} for w, s, n in rows]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
