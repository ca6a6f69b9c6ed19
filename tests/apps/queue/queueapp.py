"""A Flask app with background jobs on RQ: /enqueue puts jobs on the queue, /jobs says what the
queue and the workers have done, and `flask --app queueapp beat` (a scheduled job) writes a
line the test finds in the journal."""

import os
import socket

import tasks
from flask import Flask, jsonify, request
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry, StartedJobRegistry

app = Flask(__name__)


def queue() -> Queue:
    return Queue("default", connection=Redis.from_url(os.environ["REDIS_URL"]))


@app.route("/")
def index():
    return f"queue app {tasks.VERSION}"


@app.post("/enqueue")
def enqueue():
    first, count = int(request.args["first"]), int(request.args["count"])
    seconds = float(request.args.get("seconds", "0.5"))
    q = queue()
    for i in range(first, first + count):
        q.enqueue("tasks.record", f"job-{i}", seconds, job_timeout=120, result_ttl=600)
    return jsonify(enqueued=count)


@app.route("/jobs")
def jobs():
    q = queue()
    conn = q.connection
    runs = {k.decode(): int(v) for k, v in conn.hgetall("runs").items()}
    ran_on = {k.decode(): v.decode() for k, v in conn.hgetall("ran-on").items()}
    clock = {k.decode(): int(v) for k, v in conn.hgetall("clock").items()}
    return jsonify(runs=runs, ran_on=ran_on, clock=clock, queued=q.count,
                   started=len(StartedJobRegistry(queue=q)), failed=len(FailedJobRegistry(queue=q)))


@app.cli.command("beat")
def beat():
    print(f"beat from {socket.gethostname()} {tasks.VERSION}")
