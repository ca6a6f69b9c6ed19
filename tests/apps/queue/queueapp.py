"""A Flask app with background jobs on RQ: /enqueue puts jobs on the queue, /jobs says what the
queue and the workers have done, and `flask --app queueapp beat` (a scheduled job) writes a
line the test finds in the journal."""

import os
import socket

import tasks
from flask import Flask, jsonify, request
from redis import Redis
from rq import Queue
from rq.job import Job
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
    # Jobs a worker took off the queue but never started: RQ's own race when SIGTERM reaches an
    # idle worker just after it dequeued (rq/rq#2175: its signal handler raises StopRequested
    # between BLMOVE and the job's start); they wait in RQ's intermediate queue.
    held_ids = q.intermediate_queue.get_job_ids()
    held = [job.args[0] for job in Job.fetch_many(held_ids, connection=conn) if job is not None]
    return jsonify(runs=runs, ran_on=ran_on, clock=clock, queued=q.count, held=held,
                   started=len(StartedJobRegistry(queue=q)), failed=len(FailedJobRegistry(queue=q)))


@app.cli.command("beat")
def beat():
    print(f"beat from {socket.gethostname()} {tasks.VERSION}")
