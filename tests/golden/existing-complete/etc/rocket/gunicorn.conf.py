# Rendered by flask-stack for rocket. Do not edit here: the next deploy replaces it.
# Gunicorn for rocket. systemd hands it the listening socket (rocket.socket), so
# the address below is only what Gunicorn would bind if started by hand; it is never public.
import os
import sys

wsgi_app = "flaskstack_wsgi:application"
# The `current` symlink, not a release path: a HUP after a release switch loads the new code.
chdir = "/srv/rocket/current"
# The WSGI entry lives beside this file (/etc/rocket); a staged copy checked with
# `gunicorn --check-config` before it goes live thus loads the staged entry. That check imports
# the app before Gunicorn applies pythonpath, so the config puts the directory there itself.
pythonpath = os.path.dirname(os.path.abspath(__file__))
if pythonpath not in sys.path:
    sys.path.insert(0, pythonpath)
bind = ["unix:/run/rocket/gunicorn.sock"]
workers = 3
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 30
keepalive = 20
max_requests = 10000
max_requests_jitter = 1000
# New workers import the app afresh, so a HUP picks up a new release.
preload_app = False
worker_tmp_dir = "/dev/shm"
proc_name = "rocket"

# Only the front talks to Gunicorn, and it always sets X-Forwarded-Proto itself: trust that
# header alone, and only from this host.
forwarded_allow_ips = "127.0.0.1,::1"
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# No control socket: Gunicorn's default one (~/.gunicorn/gunicorn.ctl) is shared by every
# instance run by the same user. systemd's HUP and TERM are the controls.
control_socket_disable = True

# Errors to stderr, which systemd sends to the journal. No access log: the front logs every
# request already, and logging each one again through the journal cost as much CPU as serving it.
accesslog = None
errorlog = "-"
loglevel = "info"
