"""Deploy timings on real test hosts: prints figures, asserts nothing.

    .venv/bin/python -m bench.deploy [--hosts 2]

Fresh host to serving (every step), an unchanged replay, and a release-only change, rolled in
batches of one host, measured with the same replayer the host tests use. Targets (issue 3):
fresh host <= 30 s, release-only change <= 10 s per batch, unchanged replay runs nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from tests.hosts.harness import Testbed
from tests.support.mocks import run_program
from tests.support.replay import Replayer, workdir

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=2)
    args = parser.parse_args()
    app = Path(tempfile.mkdtemp(prefix="bench-app-")) / "app"
    shutil.copytree(ROOT / "app", app, ignore=shutil.ignore_patterns("__pycache__"))
    with Testbed() as testbed:
        booted = time.monotonic()
        hosts = testbed.boot(args.hosts, prefix="b")
        boot_seconds = time.monotonic() - booted
        config = {
            "platform": "existing", "hosts": {"addresses": [h.address for h in hosts]},
            "ssh": {"user": "deploy", "privateKey": testbed.private_key},
            "database": {"url": testbed.postgres()}, "app": {"path": str(app)},
            "deploy": {"batchSize": 1},
        }
        replayer = Replayer(workdir())

        def deploy() -> tuple[float, list[str]]:
            started = time.monotonic()
            outcome = replayer.replay(run_program(config, stack="bench", secret_keys=("ssh", "database")))
            if outcome.failed:
                raise SystemExit(str(outcome.failed))
            return time.monotonic() - started, outcome.ran

        fresh, ran_fresh = deploy()
        unchanged, ran_unchanged = deploy()
        rocket = app / "rocket.py"
        rocket.write_text(rocket.read_text() + "\n# a release-only change\n")
        release_only, ran_release = deploy()
    rows = [
        ("boot test hosts (not the program's)", boot_seconds, f"{args.hosts} hosts"),
        ("fresh hosts to serving", fresh, f"{len(ran_fresh)} steps, {args.hosts} batches"),
        ("  per batch", fresh / args.hosts, "target <= 30 s"),
        ("unchanged replay", unchanged, f"{len(ran_unchanged)} steps ran (target 0)"),
        ("release-only change", release_only, f"{len(ran_release)} steps"),
        ("  per batch", release_only / args.hosts, "target <= 10 s"),
    ]
    print(f"{'what':40} {'seconds':>8}  notes")
    for what, seconds, note in rows:
        print(f"{what:40} {seconds:8.1f}  {note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
