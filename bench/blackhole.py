#!/usr/bin/env python3
"""blackhole.py - how long one client's webhook waits behind a black hole.

Starts a2ad (the binary given) with the echo plugin, a TCP "black hole" on
127.0.0.1 that accepts connections and never answers, and a healthy webhook
receiver. Submits N jobs whose push URL is the black hole, then one whose push
URL is the healthy receiver, and prints how long that one took from submission
to arrival (and the same with no black hole, as a baseline).

    bench/blackhole.py build/a2ad build/plugins [N]

Only the standard library; everything on 127.0.0.1; stops what it starts.
"""
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def blackhole():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    held = []

    def run():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            held.append(c)

    threading.Thread(target=run, daemon=True).start()
    return s, held


class Healthy(http.server.BaseHTTPRequestHandler):
    arrived = []

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Healthy.arrived.append(time.monotonic())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *a):
        pass


def start_daemon(binary, plugins, tmp, load="echo", extra=()):
    conf = os.path.join(tmp, "a2ad.conf")
    lines = ["[server]", "listen = 127.0.0.1", "port = 0", "[plugins]",
             "dir = " + os.path.abspath(plugins), "load = " + load, "[tasks]",
             "path = " + os.path.join(tmp, "a2ad.db"), "[webhooks]",
             "allow_networks = 127.0.0.0/8", "[log]", "level = info"] + list(extra)
    with open(conf, "w") as f:
        f.write("\n".join(lines) + "\n")
    # A build without the SSRF guard does not know allow_networks.
    if subprocess.run([binary, "-t", "-c", conf], capture_output=True).returncode != 0:
        with open(conf, "w") as f:
            f.write("\n".join(l for l in lines if not l.startswith("allow_networks")) + "\n")
    log = open(os.path.join(tmp, "log"), "w+")
    p = subprocess.Popen([binary, "-c", conf], stderr=log, stdout=log)
    for _ in range(500):
        time.sleep(0.02)
        log.seek(0)
        m = re.search(r"listening on \S*?:(\d+)", log.read())
        if m:
            return p, int(m.group(1))
    p.kill()
    sys.exit("a2ad did not start; see " + log.name)


def send(port, url):
    body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
        "message": {"kind": "message", "messageId": "m", "role": "user",
                    "parts": [{"kind": "text", "text": "hi"}]},
        "configuration": {"blocking": False, "pushNotificationConfig": {"url": url}}}}
    req = urllib.request.Request("http://127.0.0.1:%d/" % port, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        out = json.load(r)
    if "result" not in out:
        sys.exit("send refused: %s" % out)


def healthy_delay(binary, plugins, n):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    bh, held = blackhole()
    Healthy.arrived = []
    with tempfile.TemporaryDirectory() as tmp:
        p, port = start_daemon(binary, plugins, tmp)
        try:
            for _ in range(n):
                send(port, "http://127.0.0.1:%d/hook" % bh.getsockname()[1])
            t0 = time.monotonic()
            send(port, "http://127.0.0.1:%d/hook" % srv.server_address[1])
            while not Healthy.arrived and time.monotonic() - t0 < 300:
                time.sleep(0.005)
            delay = Healthy.arrived[0] - t0 if Healthy.arrived else float("inf")
            return delay, len(held)
        finally:
            p.terminate()
            if p.wait(60) != 0:
                print("a2ad exited with status %d; its log:" % p.returncode, file=sys.stderr)
                with open(os.path.join(tmp, "log")) as f:
                    sys.stderr.write(f.read()[-5000:])
            srv.shutdown()
            bh.close()
            for c in held:
                c.close()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, plugins = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 300
    base, _ = healthy_delay(binary, plugins, 0)
    delay, conns = healthy_delay(binary, plugins, n)
    print("%s: healthy webhook %.3f s alone, %.3f s behind %d black-hole webhooks "
          "(black hole got %d connections by then)" % (binary, base, delay, n, conns))


if __name__ == "__main__":
    main()
