#!/usr/bin/env python3
"""slowloris.py A2AD CONF_EXTRA... - the issue 10 listener scenarios, measured.

Starts A2AD (a built binary) on 127.0.0.1 with the echo and processor
plugins (plugins dir: PLUGINS, default build/plugins) and:

  slow   N sockets (default 1100) from 127.0.0.1 send a request header one
         byte a second; meanwhile a legitimate GET /healthz and a message/send
         are timed from 127.0.0.2 (another client) and from 127.0.0.1;
  block  N blocking message/send requests to a job that runs for an hour;
         then /healthz is timed from 127.0.0.2 and 127.0.0.1.

Each timed request gives up after 80 s. Prints one line per figure.
Usage: bench/slowloris.py build/a2ad [slow|block] [N] ["[server] key = value" lines...]
"""
import os, resource, socket, subprocess, sys, tempfile, threading, time

a2ad = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "slow"
n = int(sys.argv[3]) if len(sys.argv) > 3 else 1100
extra = "\n".join(sys.argv[4:])
plugins = os.path.abspath(os.environ.get("PLUGINS", os.path.join(os.path.dirname(a2ad), "plugins")))

resource.setrlimit(resource.RLIMIT_NOFILE, (8192, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
work = tempfile.mkdtemp(prefix="a2ad-loris-")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
conf = os.path.join(work, "a2ad.conf")
with open(conf, "w") as f:
    f.write(f"[server]\nlisten = 127.0.0.1\nport = {port}\n{extra}\n"
            f"[plugins]\ndir = {plugins}\nload = echo, processor\n"
            f"[tasks]\npath = {work}/a2ad.db\n[log]\nlevel = warning\n"
            f"[agent.processor]\nstep_ms = 360000\n")
log = open(os.path.join(work, "a2ad.log"), "w")
proc = subprocess.Popen([a2ad, "-c", conf], stderr=log)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close(); break
    except OSError:
        time.sleep(0.05)

SEND = (b'{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"kind":"message",'
        b'"messageId":"m","role":"user","parts":[{"kind":"text","text":"hi"}]}%s}}')

def request(src, method, path, body=b"", timeout=80.0):
    """Seconds until a full answer, and its status line (or the error)."""
    t0 = time.monotonic()
    try:
        c = socket.socket(); c.settimeout(timeout); c.bind((src, 0))
        c.connect(("127.0.0.1", port))
        c.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (method, path, len(body), body))
        data = b""
        while True:
            d = c.recv(65536)
            if not d: break
            data += d
        c.close()
        line = data.split(b"\r\n", 1)[0].decode() or "connection closed without an answer"
    except OSError as e:
        line = f"error: {e}"
    return time.monotonic() - t0, line

def timed(label, *args, **kw):
    dt, line = request(*args, **kw)
    print(f"{label}: {dt:.2f} s ({line})", flush=True)

socks = []
stop = threading.Event()
if mode == "slow":
    for _ in range(n):
        c = socket.socket(); c.setblocking(False)
        try: c.connect(("127.0.0.1", port))
        except BlockingIOError: pass
        socks.append(c)
    time.sleep(0.5)
    for c in socks:
        try: c.send(b"POST / HTTP/1.1\r\nX-Slow: ")
        except OSError: pass
    def trickle():
        while not stop.is_set():
            for c in socks:
                try: c.send(b"a")
                except OSError: pass
            stop.wait(1.0)
    threading.Thread(target=trickle, daemon=True).start()
    time.sleep(2)
    print(f"{n} slow-loris sockets (1 byte/s) from 127.0.0.1", flush=True)
else:
    body = SEND % b',"configuration":{"blocking":true}'
    req = b"POST /agents/processor HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    for _ in range(n):
        c = socket.socket(); c.setblocking(False)
        try: c.connect(("127.0.0.1", port))
        except BlockingIOError: pass
        socks.append(c)
    time.sleep(0.5)
    for c in socks:
        try: c.send(req)
        except OSError: pass
    time.sleep(3)
    print(f"{n} blocking message/send from 127.0.0.1", flush=True)

timed("GET /healthz from 127.0.0.2", "127.0.0.2", b"GET", b"/healthz")
timed("message/send from 127.0.0.2", "127.0.0.2", b"POST", b"/agents/echo", SEND % b',"configuration":{"blocking":false}')
timed("GET /healthz from 127.0.0.1", "127.0.0.1", b"GET", b"/healthz")
timed("message/send from 127.0.0.1", "127.0.0.1", b"POST", b"/agents/echo", SEND % b',"configuration":{"blocking":false}')
if mode == "slow":
    time.sleep(12)
    alive = 0
    for c in socks:
        try:
            d = c.recv(1)
            if d: alive += 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print(f"slow sockets still open 14 s later: {alive} of {n}", flush=True)
stop.set()
for c in socks: c.close()
proc.terminate()
try: proc.wait(30)
except subprocess.TimeoutExpired: proc.kill()
log.close()
lines = open(os.path.join(work, "a2ad.log")).read().count("\n")
print(f"daemon log lines: {lines}", flush=True)
subprocess.call(["rm", "-rf", work])
