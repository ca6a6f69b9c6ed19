"""Prints the words it was started with, as JSON, then waits for SIGTERM: what a process's
command reaches the program as, after the unit file's quoting and the environment."""

import json
import signal
import sys

print("argv " + json.dumps(sys.argv[1:], ensure_ascii=False), flush=True)
signal.sigwait({signal.SIGTERM})
