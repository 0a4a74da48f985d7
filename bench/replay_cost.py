#!/usr/bin/env python3
# replay_cost.py BUILD REPLAY_BYTES N: what [server] stream_replay_bytes costs with
# store = sqlite. Runs BUILD/a2ad with the processor plugin (step_ms = 5), sends N
# blocking message/send one after the other, and prints the time, what the daemon
# wrote (/proc/PID/io) and the task rows' sizes. Example:
#   python3 bench/replay_cost.py build 0 100; python3 bench/replay_cost.py build 64K 100
import json, os, subprocess, sys, time, urllib.request, tempfile, re
build = sys.argv[1]; replay = sys.argv[2]; n = int(sys.argv[3])
d = tempfile.mkdtemp(prefix="proto-measure-")
conf = os.path.join(d, "a.conf")
open(conf, "w").write(f"""[server]
listen = 127.0.0.1
port = 0
stream_replay_bytes = {replay}
[workers]
threads = 2
[plugins]
dir = {build}/plugins
load = processor
[tasks]
store = sqlite
path = {d}/a2ad.db
[agent.processor]
step_ms = 5
""")
p = subprocess.Popen([f"{build}/a2ad", "-c", conf], stderr=subprocess.PIPE, text=True)
port = None
for line in p.stderr:
    m = re.search(r"listening on http://127.0.0.1:(\d+)", line)
    if m: port = int(m.group(1))
    if " ready in " in line: break
t0 = time.time()
for i in range(n):
    body = json.dumps({"jsonrpc":"2.0","id":i,"method":"message/send","params":{"message":{"kind":"message","messageId":f"m{i}","role":"user","parts":[{"kind":"text","text":"go"}]}}}).encode()
    r = json.load(urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/", body, {"Content-Type":"application/json"})))
    assert r["result"]["status"]["state"] == "completed", r
el = time.time() - t0
io = dict(l.split(': ') for l in open(f'/proc/{p.pid}/io').read().splitlines())
p.terminate(); p.wait()
size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if f.startswith("a2ad.db"))
import sqlite3
db = sqlite3.connect(os.path.join(d, "a2ad.db"))
ext = db.execute("select avg(length(ext)), avg(length(doc)) from tasks").fetchone()
print(f"written {int(io['write_bytes'])/1024:.0f} KiB, wchar {int(io['wchar'])/1024:.0f} KiB; stream_replay_bytes={replay}: {n} blocking processor jobs (13 events each) in {el:.2f} s = {n/el:.0f} jobs/s; db files {size/1024:.0f} KiB; per task row: ext {ext[0]:.0f} B, doc {ext[1]:.0f} B")
subprocess.run(["rm", "-rf", d])
