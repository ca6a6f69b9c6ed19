"""Rendered host files, relocated under a scratch directory so real tools can check and run them
on this machine without touching /etc: `nginx -t`, a real Nginx on a loopback port, etc.

Only paths are rewritten (and, for a live Nginx, the listen lines); every other line is exactly
what a host receives.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from stack import render, scripts
from stack.paths import WSGI_MODULE, Paths

NGINX_SYSTEM = Path("/etc/nginx")


def relocate(text: str, root: Path, prefixes: tuple[str, ...]) -> str:
    for prefix in prefixes:
        text = re.sub(rf"(?<![\w/.]){re.escape(prefix)}", str(root) + prefix, text)
    return text


def app_paths(files: dict[str, str]) -> Paths:
    """The app's paths, from where its rendered Gunicorn config goes (/etc/<app>/...)."""
    conf = next(p for p in files if p.endswith("/gunicorn.conf.py"))
    return Paths(PurePosixPath(conf).parts[2])


def write_tree(files: dict[str, str], root: Path) -> None:
    for path, content in files.items():
        target = render.local_path(root, path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def nginx_prefix(
    files: dict[str, str],
    root: Path,
    *,
    port: int | None = None,
    socket: str | None = None,
    workers: int | None = None,
) -> Path:
    """Lay the rendered Nginx files out under `root`; returns the nginx.conf to pass to -c.

    port: serve on 127.0.0.1:port instead of 80/443 (a live test); socket: the upstream
    address to use instead of the rendered one (a Gunicorn started by the test); workers: the
    stack's frontWorkers."""
    nginx_files = {p: c for p, c in files.items() if p.startswith("/etc/nginx/")}
    prefixes = ("/etc/nginx", "/var/log/nginx", "/run/nginx.pid", "/srv/", "/var/www/", "/etc/letsencrypt",
                app_paths(files).tls_dir)
    out = {}
    for path, content in nginx_files.items():
        content = relocate(content, root, prefixes)
        if port is not None:
            content = re.sub(r"listen \[::\]:(80|443)[^;]*;\n", "", content)
            content = re.sub(r"listen (80|443)\b", f"listen 127.0.0.1:{port}", content)
        if socket is not None:
            content = re.sub(r"server unix:\S+ ", f"server {socket} ", content)
        content = re.sub(r"^user \S+;\n", "", content, flags=re.M)
        out[path] = content
    write_tree(out, root)
    etc = render.local_path(root, "/etc/nginx")
    # The worker count nginx.conf includes, written as the configure step writes it on a host.
    subprocess.run(["bash", "-c", scripts.nginx_workers(str(etc), workers)], check=True)
    shutil.copy(NGINX_SYSTEM / "mime.types", etc / "mime.types")
    (etc / "sites-enabled").mkdir(exist_ok=True)
    (etc / "conf.d").mkdir(exist_ok=True)
    for site in (etc / "sites-available").glob("*.conf"):
        link = etc / "sites-enabled" / site.name
        if not link.exists():
            link.symlink_to(site)
    render.local_path(root, "/var/log/nginx").mkdir(parents=True, exist_ok=True)
    render.local_path(root, "/run").mkdir(parents=True, exist_ok=True)
    return etc / "nginx.conf"


def gunicorn_prefix(
    files: dict[str, str],
    root: Path,
    *,
    app_dir: Path | None = None,
    socket: str | None = None,
) -> Path:
    """Lay the rendered Gunicorn config and WSGI entry out under `root`; returns the
    gunicorn.conf.py to pass to -c.

    Its chdir (the release's `current` link) and unix
    bind address move under `root`. app_dir: copied in as a release that `current` points to,
    as a deploy leaves it (the same place the relocated Nginx serves static files from);
    socket: the bind address to use instead of the relocated one."""
    conf_path = next(p for p in files if p.endswith("/gunicorn.conf.py"))
    wsgi_path = next(p for p in files if p.endswith(f"/{WSGI_MODULE}.py"))
    prefixes = ("/srv/", "/etc/", "/run/")
    conf = relocate(files[conf_path], root, prefixes)
    if socket is not None:
        conf = re.sub(r"^bind = .*$", lambda _: f'bind = ["{socket}"]', conf, count=1, flags=re.M)
    write_tree({conf_path: conf, wsgi_path: files[wsgi_path]}, root)
    bind = re.search(r'^bind = \["unix:([^"]+)"\]', conf, flags=re.M)
    if bind:
        Path(bind.group(1)).parent.mkdir(parents=True, exist_ok=True)
    if app_dir is not None:
        chdir = Path(re.search(r'^chdir = "([^"]+)"$', conf, flags=re.M).group(1))
        release = chdir.parent / "releases" / "test"
        shutil.copytree(app_dir, release, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        chdir.parent.mkdir(parents=True, exist_ok=True)
        chdir.symlink_to(release)
    return render.local_path(root, conf_path)


def haproxy_prefix(files: dict[str, str], root: Path) -> Path:
    """Lay the rendered haproxy.cfg out under `root`; returns the file to pass to `haproxy -c -f`.

    Its certificate (/etc/<app>/tls) and the stats socket's directory (/run/haproxy) move
    under `root`; /dev/log stays (nothing is logged by a check)."""
    path = Paths("").haproxy_cfg
    content = relocate(files[path], root, ("/etc/haproxy", "/run/haproxy", app_paths(files).tls_dir))
    write_tree({path: content}, root)
    render.local_path(root, "/run/haproxy").mkdir(parents=True, exist_ok=True)
    return render.local_path(root, path)


def systemd_prefix(files: dict[str, str], root: Path) -> list[Path]:
    """Lay the rendered systemd units out under `root/etc/systemd/system`; returns their paths, to
    pass to `systemd-analyze verify` / `security --offline=true`.

    The release (/srv/) and the app's config directory (/etc/<app>/) move under `root`, and each
    Exec*= program that lands there is created as an executable stub: `verify` refuses a unit
    whose program does not exist. The plain environment file is written where the unit reads it."""
    units = {p: c for p, c in files.items() if p.startswith("/etc/systemd/system/")}
    socket = next(p for p in units if p.endswith(".socket"))  # <app>.socket: one per app
    etc = Paths(PurePosixPath(socket).stem).etc
    prefixes = ("/srv/", etc + "/")
    out = {p: relocate(c, root, prefixes) for p, c in units.items()}
    out.update({p: c for p, c in files.items() if p.startswith(etc + "/") and p.endswith(".env")})
    write_tree(out, root)
    for content in out.values():
        for program in re.findall(r"^Exec\w+=[-@:+!|]*(\S+)", content, flags=re.M):
            if program.startswith(str(root) + "/"):
                stub = Path(program)
                stub.parent.mkdir(parents=True, exist_ok=True)
                stub.write_text("#!/bin/sh\nexit 0\n")
                stub.chmod(0o755)
    return [render.local_path(root, p) for p in sorted(units)]


def self_signed(cert: Path, key: Path, domain: str) -> None:
    """A throwaway certificate for `domain` (and www.`domain`), so `nginx -t`/`haproxy -c` can
    load the files a host gets from Let's Encrypt (/etc/<app>/tls)."""
    cert.parent.mkdir(parents=True, exist_ok=True)
    key.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", f"/CN={domain}",
         "-addext", f"subjectAltName=DNS:{domain},DNS:www.{domain}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
