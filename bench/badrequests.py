#!/usr/bin/env python3
"""badrequests.py A2AD ["[server] key = value" lines...] - 2,000 malformed requests
(garbage request lines, a bad header, an unknown path, a truncated body) on
fresh connections; prints the time and how many lines the daemon logged."""
import os, socket, subprocess, sys, tempfile, time
a2ad = sys.argv[1]; plugins = os.path.join(os.path.dirname(a2ad), "plugins")
work = tempfile.mkdtemp(prefix="a2ad-bad-")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
conf = os.path.join(work, "a.conf")
open(conf, "w").write(f"[server]\nlisten = 127.0.0.1\nport = {port}\n{chr(10).join(sys.argv[2:])}\n[plugins]\ndir = {plugins}\nload = echo\n[tasks]\npath = {work}/a.db\n")
log = open(os.path.join(work, "log"), "w")
p = subprocess.Popen([a2ad, "-c", conf], stderr=log)
time.sleep(0.5)
kinds = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n{"]
t0 = time.monotonic()
for i in range(2000):
    c = socket.create_connection(("127.0.0.1", port)); c.settimeout(2); c.sendall(kinds[i % 4])
    try: c.recv(4096)
    except OSError: pass
    c.close()
dt = time.monotonic() - t0
time.sleep(1.5); p.terminate(); p.wait(); log.close()
text = open(os.path.join(work, "log")).read()
print(f"2000 bad requests in {dt:.2f} s: {text.count(chr(10))} log lines"); 
import collections; print(collections.Counter(l.split(' ', 2)[2][:70] for l in text.splitlines()).most_common(6))
subprocess.call(["rm", "-rf", work])
