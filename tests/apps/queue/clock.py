"""A clock process: a singleton that writes a heartbeat with its host's name every half second."""

import os
import signal
import socket
import threading

from redis import Redis

stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
conn = Redis.from_url(os.environ["REDIS_URL"])
while not stop.is_set():
    conn.hincrby("clock", socket.gethostname(), 1)
    stop.wait(0.5)
