"""The worker process: an RQ worker that imports the app's jobs before it starts (so a job module
that does not import stops it at once), on the queue named on the command line."""

import sys

import tasks  # noqa: F401 - imported first, as apps preload their job modules
from redis import Redis
from rq import Queue, Worker


def main() -> None:
    queues = sys.argv[1:] or ["default"]
    conn = tasks.redis()
    assert isinstance(conn, Redis)
    Worker([Queue(name, connection=conn) for name in queues], connection=conn).work(with_scheduler=False)


if __name__ == "__main__":
    main()
