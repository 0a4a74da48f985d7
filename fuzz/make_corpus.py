#!/usr/bin/env python3
"""Writes the seed corpora in fuzz/corpus/NAME/ (run from the project root).

Inputs are small real requests and stored values; the first byte of an rpc,
hu or roundtrip input is the harness's selector (see each fuzz_*.c)."""
import hashlib, json, os, sqlite3, sys

URI = "https://healthuniverse.com/ext/background_job/v1"
out = {}

def add(name, data):
    if isinstance(data, str): data = data.encode()
    out.setdefault(name, []).append(data)

MSG03 = {"kind": "message", "messageId": "m1", "role": "user", "parts": [{"kind": "text", "text": "hi"}]}
MSG10 = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
TID = "0b7a5c1e-5f1e-4d4e-9a52-0c2d5f0e8a11"
push03 = {"url": "http://127.0.0.1:9/h", "token": "t", "authentication": {"schemes": ["Bearer"], "credentials": "c"}}
reqs = [
    (0, "message/send", {"message": MSG03}),
    (0, "message/send", {"message": MSG03, "configuration": {"blocking": False, "historyLength": 2, "pushNotificationConfig": push03}}),
    (0, "message/send", {"message": dict(MSG03, taskId=TID, contextId="c")}),
    (0, "message/send", {"message": dict(MSG03, parts=[{"kind": "data", "data": {"a": [1, 2]}}, {"kind": "file", "file": {"bytes": "aGk=", "name": "f"}}])}),
    (8, "message/send", {"message": MSG03, "metadata": {URI: {"job_id": "j", "api_key": "k", "job_status_update_url": "http://127.0.0.1:9/s"}}}),
    (0, "message/stream", {"message": MSG03}),
    (0, "tasks/get", {"id": TID, "historyLength": 1}),
    (0, "tasks/cancel", {"id": TID}),
    (0, "tasks/resubscribe", {"id": TID}),
    (0, "tasks/pushNotificationConfig/set", {"taskId": TID, "pushNotificationConfig": push03}),
    (0, "tasks/pushNotificationConfig/get", {"id": TID, "pushNotificationConfigId": "a"}),
    (0, "tasks/pushNotificationConfig/list", {"id": TID}),
    (0, "tasks/pushNotificationConfig/delete", {"id": TID, "pushNotificationConfigId": "a"}),
    (0, "agent/getAuthenticatedExtendedCard", None),
    (1, "SendMessage", {"message": MSG10}),
    (1, "SendMessage", {"message": MSG10, "configuration": {"returnImmediately": True, "acceptedOutputModes": ["text/plain"], "taskPushNotificationConfig": {"url": "http://127.0.0.1:9/h", "authentication": {"scheme": "Bearer", "credentials": "c"}}}}),
    (1, "SendMessage", {"message": dict(MSG10, parts=[{"data": {"x": 1}}, {"raw": "aGk=", "mediaType": "text/plain"}, {"url": "http://x/f"}])}),
    (1, "SendStreamingMessage", {"message": MSG10}),
    (1, "GetTask", {"id": TID, "historyLength": 0}),
    (1, "ListTasks", {"pageSize": 2, "status": "TASK_STATE_WORKING"}),
    (1, "CancelTask", {"id": TID}),
    (1, "SubscribeToTask", {"id": TID}),
    (1, "CreateTaskPushNotificationConfig", {"taskId": TID, "url": "http://127.0.0.1:9/h", "token": "t"}),
    (1, "CreateTaskPushNotificationConfig", {"taskId": TID, "config": {"url": "http://127.0.0.1:9/h"}}),
    (1, "GetTaskPushNotificationConfig", {"taskId": TID, "id": "a"}),
    (1, "ListTaskPushNotificationConfigs", {"taskId": TID}),
    (1, "DeleteTaskPushNotificationConfig", {"taskId": TID, "id": "a"}),
    (1, "GetExtendedAgentCard", None),
]
for sel, method, params in reqs:
    r = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None: r["params"] = params
    add("rpc", bytes([sel]) + json.dumps(r, separators=(",", ":")).encode())
for raw in ['[{"jsonrpc":"2.0","id":1,"method":"tasks/get"}]', '{"jsonrpc":"2.0","method":"x"}', '{"jsonrpc":"2.0","id":{},"method":"GetTask"}', '"\\ud800"', '{"jsonrpc":"2.0","id":1,"method":"GetTask","params":[]}']:
    add("rpc", b"\x02" + raw.encode())

conf = open("conf/a2ad.conf").read()
add("config", conf)
for text in ["[server]\nport = 0\nmax_body_bytes = 2M\n", "[tasks]\nstore = memory\n", "[agent.echo]\nmax_duration_s = 5\nx = y\n",
             "[log]\nlevel = DEBUG\nclient_lines_per_s = 3\n", "[webhooks]\nenabled = no\n", "[server]\nlisten = ::1\n[server]\n",
             "  port = 1\n", "[agent.a]\n[agent.a]\n", "[server]\nauth_bearer_tokens = aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb\n",
             "[plugins]\nload = echo, processor\nerrors = skip\n", "\xef\xbb\xbf[server]\nport=1 ; c\n", "[server]\nport = 1 # x\n",
             "[workers]\nthreads = 99999999999\n", "[server]\nrate_limit_per_s = 0\nrequest_timeout_s = 1\n", "x" * 300 + "\n"]:
    add("config", text)

hu_meta = {URI: {"job_id": "j", "api_key": "k", "job_status_update_url": "http://127.0.0.1:1/s", "job_results_url": "https://h.example/r"}}
for sel, p in [(1, {"message": MSG03, "metadata": hu_meta}), (0, {"message": dict(MSG03, metadata=hu_meta)}),
               (1, {"message": MSG03, "metadata": {URI: "j"}}), (1, {"message": MSG03, "metadata": {URI: {"api_key": "k"}}}),
               (2, {"message": MSG03, "metadata": {URI: {"job_id": "j", "api_key": "k\r\nX: 1"}}}),
               (1, {"message": MSG03, "metadata": {URI: {"job_id": "j", "api_key": "k", "min_importance": "notice"}}}),
               (0, {"message": MSG03}), (3, {"metadata": hu_meta})]:
    add("hu", bytes([sel]) + json.dumps(p).encode())

# Real stored rows, when a database from a run is given: tasks.doc and
# each slot of tasks.ext.
if len(sys.argv) > 1:
    db = sqlite3.connect(sys.argv[1])
    for doc, ext, state in db.execute("SELECT doc, ext, state FROM tasks LIMIT 12"):
        add("roundtrip", bytes([1 if state in ("completed", "failed", "canceled", "rejected") else 0]) + doc.encode())
        e = json.loads(ext)
        if "push" in e: add("roundtrip", b"\x02" + json.dumps(e["push"]).encode())
        if "hu" in e: add("roundtrip", b"\x03" + json.dumps(e["hu"]).encode())
add("roundtrip", b"\x02" + json.dumps([{"id": "a", "url": "http://127.0.0.1:9/h", "token": "t"}]).encode())
add("roundtrip", b"\x03" + json.dumps({"job_id": "j9", "api_key": "k9", "job_results_url": "http://h/r", "min_importance": 1}).encode())

for name, items in out.items():
    d = os.path.join("fuzz", "corpus", name)
    os.makedirs(d, exist_ok=True)
    for data in items:
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f: f.write(data)
    print(f"{name}: {len(items)} inputs")
