#!/usr/bin/env python3
"""runners - what isolation costs: end-to-end jobs/s and progress events/s
for the same agent run in a daemon thread, in a child process (isolation =
process, a2ad-agent-host), and as an exec agent (Python), in one run.

    make -j2 all build/tests/plugins/burst.so && python3 bench/runners.py [BUILD]

Each mode gets its own a2ad on 127.0.0.1 (store = memory, so the disk is
not what is measured; STORE=sqlite to include it), 2 workers; MODES=thread,process picks modes; JOBS blocking message/send calls from
CLIENTS threads measure jobs/s (each job: 1 progress update + result);
BURST_JOBS jobs of BURST progress updates each measure progress events/s.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS, CLIENTS = int(os.environ.get("JOBS", "400")), 4
BURST_JOBS, BURST = 2, int(os.environ.get("BURST", "20000"))
STORE = os.environ.get("STORE", "memory")  # or sqlite (sync = full): the disk joins in
MODES = os.environ.get("MODES", "thread,process,exec").split(",")


def start(mode):
    d = tempfile.mkdtemp(prefix="a2ad-runners-")
    os.mkdir(os.path.join(d, "plugins"))
    extra = ""
    if mode == "exec":
        extra = "[agent.burst]\nexec = %s %s\n" % (sys.executable, os.path.join(ROOT, "bench", "burst_agent.py"))
        # exec agents need no .so; keep one harmless plugin so the directory is not empty
        shutil.copy(os.path.join(ROOT, BUILD, "plugins", "echo.so"), os.path.join(d, "plugins"))
    else:
        shutil.copy(os.path.join(ROOT, BUILD, "tests", "plugins", "burst.so"), os.path.join(d, "plugins"))
        extra = "[agent.burst]\nisolation = %s\n" % mode
    conf = os.path.join(d, "a2ad.conf")
    with open(conf, "w") as f:
        f.write("[server]\nlisten = 127.0.0.1\nport = 0\nrate_limit_per_s = 0\nmax_connections_per_ip = 0\n[workers]\nthreads = 2\n"
                "[plugins]\ndir = %s/plugins\n[tasks]\nstore = %s\npath = %s/a2ad.db\n"
                "[log]\nlevel = warning\n%s" % (d, STORE, d, extra))
    log = open(os.path.join(d, "log"), "w+")
    p = subprocess.Popen([os.path.join(ROOT, BUILD, "a2ad"), "-c", conf], stderr=log, stdout=log)
    # level = warning hides the "listening" line: find the port with ss-free /proc parsing
    port = None
    for _ in range(500):
        time.sleep(0.02)
        port = listen_port(p.pid)
        if port:
            break
    return p, port, d


def listen_port(pid):
    try:
        inodes = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:
                    return int(parts[1].split(":")[1], 16)
    except OSError:
        return None
    return None


def send(port, text):
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
        "configuration": {"blocking": True},
        "message": {"kind": "message", "messageId": "m", "role": "user",
                    "parts": [{"kind": "text", "text": text}]}}}).encode()
    req = urllib.request.Request("http://127.0.0.1:%d/agents/burst" % port, body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        state = json.load(r)["result"]["status"]["state"]
    if state != "completed":
        raise SystemExit("job ended %s" % state)


def timed(port, n, clients, text):
    left = [n]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            send(port, text)

    t0 = time.monotonic()
    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0


def main():
    print("mode     jobs/s (1 update/job)   progress events/s   (%d jobs, %d clients; %d jobs x %d updates)"
          % (JOBS, CLIENTS, BURST_JOBS, BURST))
    for mode in MODES:
        p, port, d = start(mode)
        try:
            if not port:
                raise SystemExit("%s: a2ad did not start; see %s/log" % (mode, d))
            timed(port, 4, 2, "1")  # warm up
            jobs = JOBS if mode != "exec" else max(JOBS // 4, 20)
            el = timed(port, jobs, CLIENTS, "1")
            el2 = timed(port, BURST_JOBS, BURST_JOBS, str(BURST))
            print("%-8s %10.0f              %12.0f" % (mode, jobs / el, BURST_JOBS * BURST / el2))
        finally:
            p.terminate()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
