"""The release step's check of a new release before it switches (templates/scripts/preflight.sh.j2
carries this file to the host): load the app the way a Gunicorn worker of the release will, then
ask it, in this process, the health path as the deploy's gate asks it through the front. Exit 0
when that answers 200; otherwise print why (the traceback, or the status and the start of the
body) and exit 1.

It runs on the host with the new release's own Python, as the app's user, inside the app unit's
sandbox and with its environment files, so it must not import anything of flask-stack and must
run on any Python the release's venv may have: standard library and Gunicorn only.

    python preflight.py GUNICORN_CONF RELEASE_DIR HEALTH_PATH

GUNICORN_CONF is a copy of the host's Gunicorn config beside the new release's WSGI entry (the
config puts its own directory on sys.path); RELEASE_DIR replaces the config's `chdir`, which
names the `current` link that has not switched yet (and Gunicorn checks that it exists).
"""

import io
import os
import sys
import traceback


def load(conf, release):
    """The release's WSGI callable, loaded as Gunicorn loads it: the config file (its `chdir`
    replaced by the release's directory), then chdir there (the directory first on sys.path),
    then the config's wsgi_app. A gevent worker patches the standard library before it loads the
    app, so this does too."""
    from gunicorn.app.wsgiapp import WSGIApplication

    class Release(WSGIApplication):
        def get_config_from_filename(self, filename):
            settings = super().get_config_from_filename(filename)
            settings["chdir"] = release
            return settings

    sys.argv = ["gunicorn", "--config", conf]
    application = Release("%(prog)s [OPTIONS] [APP_MODULE]", prog="gunicorn")
    if application.cfg.worker_class_str == "gevent":
        from gevent import monkey

        monkey.patch_all()
    return application.wsgi()


def ask(app, path):
    """(status line, start of the body) of GET `path` with the headers the gate's request carries
    when the front passes it on: Host localhost from 127.0.0.1, over plain HTTP."""
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "localhost", "HTTP_X_FORWARDED_FOR": "127.0.0.1",
               "HTTP_X_FORWARDED_PROTO": "http", "REMOTE_ADDR": "127.0.0.1",
               "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
               "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
               "wsgi.run_once": False}
    answer = []

    def start_response(status, headers, exc_info=None):
        answer.append(status)
        return lambda data: None

    body = app(environ, start_response)
    chunks = []
    try:
        for chunk in body:
            if sum(map(len, chunks)) < 300:
                chunks.append(chunk)
    finally:
        if hasattr(body, "close"):
            body.close()
    text = b"".join(chunks)[:300].decode("utf-8", "replace")
    return (answer[0] if answer else "no status"), text


def main(argv):
    conf, release, path = argv
    try:
        app = load(conf, release)
    except SystemExit:  # Gunicorn printed its own "Error: ..." for a config it could not read
        print("Gunicorn could not read its config with the new release (above)", file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        print("the new release's app did not load (the traceback above)", file=sys.stderr)
        return 1
    try:
        status, text = ask(app, path)
    except BaseException:
        traceback.print_exc()
        print(f"GET {path} raised in the new release (the traceback above)", file=sys.stderr)
        return 1
    if status.split(" ", 1)[0] != "200":
        print(f"GET {path} answered {status} in the new release: {text.strip()[:200]!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Not sys.exit: a thread the app started at import (a scheduler, a client's pool) would keep
    # an ordinary exit waiting for it.
    os._exit(code)
