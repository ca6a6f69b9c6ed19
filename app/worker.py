"""The default app's background worker (processes.worker: python -m worker).

A stand-in for an RQ or Celery worker: every HEARTBEAT_SECONDS it writes a heartbeat row (see
/heartbeats). On SIGTERM, which systemd sends when a deploy restarts it, it finishes what it is
doing and exits 0, the way a real worker finishes its job first.
"""

import os
import signal
import threading

import heartbeats

stopping = threading.Event()


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    every = float(os.environ.get("HEARTBEAT_SECONDS", "10"))
    print(f"worker: writing a heartbeat every {every:g} s", flush=True)
    while not stopping.is_set():
        heartbeats.beat("worker")
        stopping.wait(every)
    print("worker: stopped on SIGTERM", flush=True)


if __name__ == "__main__":
    main()
