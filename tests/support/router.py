"""A stand-in for Heroku's router, in front of a dyno run on this machine
(tests/test_heroku_release.py).

Two listeners on loopback: one stands for the router's HTTPS side (Heroku ends TLS before the
router; what reaches the dyno is plain HTTP either way, so here it is plain HTTP marked https),
one for its HTTP side. Each request goes on to the dyno with what Heroku's router adds
(devcenter.heroku.com/articles/http-routing, "Heroku headers"):

- X-Forwarded-For: what the client sent (several such lines first made one list, as Router 2.0
  does), then the address that connected to the router, appended;
- X-Forwarded-Proto and X-Forwarded-Port: the listener's scheme and public port (https and 443,
  or http and 80), replacing whatever the client sent;
- X-Request-Id and X-Request-Start (milliseconds since the epoch), and Via on the answer.

It connects to the dyno from an address of its own (ROUTER_ADDRESS), so the dyno's REMOTE_ADDR
is the router's and not the client's, as on Heroku. The router neither redirects nor rewrites
the Host header: both are the dyno's business. Bodies are read whole (requests by their
Content-Length, answers to the end); nothing here streams.
"""

from __future__ import annotations

import http.client
import http.server
import threading
import time
import uuid

ROUTER_ADDRESS = "127.0.0.2"  # where the router connects to the dyno from
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer",
                        "transfer-encoding", "upgrade", "content-length"})
SET_BY_ROUTER = frozenset({"x-forwarded-for", "x-forwarded-proto", "x-forwarded-port", "x-request-id",
                           "x-request-start", "via"})


class Router:
    """`with Router(dyno_port) as router:` then `router.port("https")` / `router.port("http")`."""

    def __init__(self, dyno_port: int, dyno_host: str = "127.0.0.1"):
        self.dyno = (dyno_host, dyno_port)
        self.servers = {scheme: self._server(scheme, public) for scheme, public in
                        (("https", 443), ("http", 80))}
        self.seen: list[dict[str, str]] = []  # the headers each forwarded request carried

    def _server(self, scheme: str, public_port: int) -> http.server.ThreadingHTTPServer:
        router = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_any(self):
                router.forward(self, scheme, public_port)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_any

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    def port(self, scheme: str) -> int:
        return self.servers[scheme].server_address[1]

    def forward(self, handler: http.server.BaseHTTPRequestHandler, scheme: str, public_port: int) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        forwarded = [v.strip() for v in handler.headers.get_all("X-Forwarded-For") or [] if v.strip()]
        headers = [(k, v) for k, v in handler.headers.items()
                   if k.lower() not in HOP_BY_HOP | SET_BY_ROUTER]
        headers += [("X-Forwarded-For", ", ".join([*forwarded, handler.client_address[0]])),
                    ("X-Forwarded-Proto", scheme), ("X-Forwarded-Port", str(public_port)),
                    ("X-Request-Id", str(uuid.uuid4())),
                    ("X-Request-Start", str(int(time.time() * 1000)))]
        if body is not None:
            headers.append(("Content-Length", str(len(body))))
        self.seen.append(dict(headers))
        upstream = http.client.HTTPConnection(*self.dyno, timeout=30, source_address=(ROUTER_ADDRESS, 0))
        try:
            upstream.putrequest(handler.command, handler.path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers:
                upstream.putheader(key, value)
            upstream.endheaders(body)
            answer = upstream.getresponse()
            data = answer.read()
        except OSError as exc:  # the router's own 503, as Heroku's H-codes are
            answer, data = None, f"router: the dyno did not answer ({exc})\n".encode()
        finally:
            upstream.close()
        if answer is None:
            handler.send_response(503)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        handler.send_response_only(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                handler.send_header(key, value)
        declared = answer.getheader("Content-Length")
        handler.send_header("Content-Length", declared if handler.command == "HEAD" and declared
                            else str(len(data)))
        handler.send_header("Via", "1.1 flask-stack-test-router")
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)

    def __enter__(self) -> Router:
        for server in self.servers.values():
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
