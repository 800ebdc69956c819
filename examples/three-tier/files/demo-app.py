#!/usr/bin/python3
"""demo-app: the application tier of examples/three-tier.

A small HTTP service (Python's standard library only). Every page view increments a counter in
Redis, so the app is only healthy while it can reach its database:

  GET /        -> 200 "demo-app release R on HOST: view N"   (503 when Redis is unreachable)
  GET /health  -> 200 "ok release R"                          (503 with the reason otherwise)

The configuration (/etc/demo-app/app.conf, `key = value` lines: release, listen_port,
redis_host, redis_port) is read once at start, as most services do: a new configuration takes a
restart.
"""
import http.server
import socket
import sys

CONF = sys.argv[1] if len(sys.argv) > 1 else "/etc/demo-app/app.conf"


def load(path):
    conf = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                conf[key.strip()] = value.strip()
    return conf


conf = load(CONF)
RELEASE = conf["release"]
HOST = socket.gethostname()


def redis(*args):
    """One command over RESP; returns the reply line. Raises OSError when Redis is unreachable."""
    req = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args)
    )
    with socket.create_connection((conf["redis_host"], int(conf["redis_port"])), timeout=1) as s:
        s.sendall(req)
        reply = s.makefile("rb").readline().decode().strip()
    if reply.startswith("-"):
        raise OSError("redis: " + reply[1:])
    return reply.lstrip(":+")


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Release", RELEASE)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            if self.path == "/health":
                redis("PING")
                self.answer(200, "ok release %s" % RELEASE)
            else:
                views = redis("INCR", "views")
                self.answer(200, "demo-app release %s on %s: view %s" % (RELEASE, HOST, views))
        except OSError as e:
            self.answer(503, "unavailable: cannot reach redis at %s:%s (%s)"
                        % (conf["redis_host"], conf["redis_port"], e))

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", int(conf["listen_port"])), Handler).serve_forever()
