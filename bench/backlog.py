#!/usr/bin/env python3
"""backlog.py - what a backlog of webhooks to a black hole costs a2ad.

Starts a2ad (the binary given) with the processor plugin (step_ms = 0: 13
webhooks a job, each the whole Task), a TCP "black hole" on 127.0.0.1 that
accepts connections and never answers, submits N jobs of SIZE bytes of text
whose push URL is the black hole, waits until every job has ended (or was
refused), and prints the daemon's resident memory and the size of its
database files.

    bench/backlog.py build/a2ad build/plugins [N [SIZE]]

Only the standard library; everything on 127.0.0.1; stops what it starts.
"""
import glob
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blackhole as bh  # noqa: E402


def post(port, body):
    req = urllib.request.Request("http://127.0.0.1:%d/agents/processor" % port,
                                 json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binary, plugins = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
    hole, held = bh.blackhole()
    url = "http://127.0.0.1:%d/hook" % hole.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        # processor without pauses: the backlog builds as fast as it can
        p, port = bh.start_daemon(binary, plugins, tmp, "processor",
                                  ["[agent.processor]", "step_ms = 0"])
        rss0 = rss_kib(p.pid)
        accepted = refused = 0
        sent = 0
        for i in range(n):
            body = {"jsonrpc": "2.0", "id": i, "method": "message/send", "params": {
                "message": {"kind": "message", "messageId": "m%d" % i, "role": "user",
                            "parts": [{"kind": "text", "text": "x" * size}]},
                "configuration": {"blocking": False, "pushNotificationConfig": {"url": url}}}}
            sent += len(json.dumps(body))
            status, _ = post(port, body)
            if status == 200:
                accepted += 1
            else:
                refused += 1
        time.sleep(20)  # the jobs run, their webhooks pile up
        rss1 = rss_kib(p.pid)
        disk = sum(os.path.getsize(x) for x in glob.glob(os.path.join(tmp, "a2ad.db*")))
        p.terminate()
        p.wait(120)
    hole.close()
    for c in held:
        c.close()
    print("%s: %.1f MB of requests (%d accepted, %d refused): RSS +%.0f MB, database %.0f MB"
          % (binary, sent / 1e6, accepted, refused, (rss1 - rss0) / 1024, disk / 1e6))


if __name__ == "__main__":
    main()
