"""The jobs the worker runs. Each records that it ran, once per run, in Redis: a counter per job
name, so a job that ran twice (or never) shows. A job takes a while, so a rollout catches some
of them mid-run: the worker must finish them before it stops."""

import os
import socket
import time

from redis import Redis

VERSION = "v1"


def redis() -> Redis:
    return Redis.from_url(os.environ["REDIS_URL"])


def record(name: str, seconds: float) -> str:
    time.sleep(seconds)
    conn = redis()
    conn.hincrby("runs", name, 1)
    conn.hset("ran-on", name, f"{socket.gethostname()} {VERSION} {os.getcwd()}")
    return name
