#!/bin/sh
# readme_tour.sh: the README's "A quick tour with curl" is run against the
# real daemon, so the tour cannot drift from the program.
#
# README.md marks what this script uses with HTML comments (invisible when
# rendered) on the line before a fenced block:
#   <!-- tour: receiver -->    the webhook receiver; started in the background
#   <!-- tour: run -->         shell commands; run in order in one shell, so a
#                              variable set by one block (TASK=...) is seen by
#                              the next; "wait=N" sleeps N s first, as a
#                              reader pasting by hand would
#   <!-- tour: output -->      the output of the nearest run block above it;
#                              "states=a,b": a state may be a or b (a race)
#   <!-- tour: output hook --> lines the receiver prints
#   <!-- tour: output log -->  lines of the daemon's start-up log
#   <!-- tour: transcript -->  "$ command" lines, each followed by its exact
#                              output (run at the end, from the repository)
# An output is compared by shape: the same JSON keys (recursively; arrays by
# their first element), the same value types, the same booleans and the same
# fixed strings (states, kinds, roles, names, URLs); ids, timestamps, counts
# and texts may differ. In a shown output "…" stands for members, elements or
# a value left out (the object may then have more keys), or for part of a
# string.
#
# A second check: every key of `a2ad -t -v` (the defaults, from an empty
# file) is in the README's "## Configuration reference" tables, with the same
# default, and the tables list no key the program lacks.
#
# Usage: tests/readme_tour.sh [BUILD]   (BUILD defaults to build)
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-build}
A2AD=$BUILD/a2ad
[ -x "$A2AD" ] || { echo "readme_tour.sh: $A2AD is missing; run make first" >&2; exit 1; }
command -v python3 >/dev/null || { echo "readme_tour.sh: needs python3" >&2; exit 1; }
command -v curl >/dev/null || { echo "readme_tour.sh: needs curl" >&2; exit 1; }

tmp=$(mktemp -d /tmp/a2ad-tour.XXXXXX)
daemon_pid= hook_pid=
cleanup() {
  # The receiver runs in its own session: its sh and python3 stop together.
  [ -n "$hook_pid" ] && kill -- "-$hook_pid" 2>/dev/null
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null
    i=0; while kill -0 "$daemon_pid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
  fi
  if [ -n "${A2AD_TOUR_KEEP:-}" ]; then echo "readme_tour.sh: kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The demo configuration of `make run`, on a free port, with its own database.
grep -q '^port = ' conf/a2ad.conf && grep -q '^path = ' conf/a2ad.conf ||
  { echo "readme_tour.sh: conf/a2ad.conf has no 'port =' or 'path =' line" >&2; exit 1; }
sed -e 's/^port = .*/port = 0/' -e "s|^path = .*|path = $tmp/a2ad.db|" conf/a2ad.conf > "$tmp/a2ad.conf"
: > "$tmp/daemon.log"   # before the child opens it: the loop below reads it
: > "$tmp/hook.log"
"$A2AD" -c "$tmp/a2ad.conf" > /dev/null 2> "$tmp/daemon.log" < /dev/null &
daemon_pid=$!
port=
i=0
while [ $i -lt 300 ]; do
  port=$(sed -n 's|.*http: listening on http://127\.0\.0\.1:\([0-9]*\) .*|\1|p' "$tmp/daemon.log")
  [ -n "$port" ] && grep -q ' ready in ' "$tmp/daemon.log" && break
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1; i=$((i + 1))
done
if [ -z "$port" ] || ! grep -q ' ready in ' "$tmp/daemon.log"; then
  echo "readme_tour.sh: the daemon did not start; its log:" >&2; cat "$tmp/daemon.log" >&2; exit 1
fi
hook_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cat > "$tmp/tour.py" <<'PY'
import json, os, re, sys

README = "README.md"
# Other pages with <!-- tour: transcript --> blocks, and the one that may hold
# the configuration reference.
PAGES = ["docs/configuration.md"]
ELL = "\u2026"
FIXED = {"state", "kind", "role", "jsonrpc", "protocolBinding", "transport", "protocolVersion",
         "status", "name", "mimeType", "scheme", "url", "preferredTransport", "uri"}
MARK = re.compile(r"^<!-- tour: (receiver|run|output|transcript)((?: [a-z]+(?:=\S+)?)*) -->$")


def blocks(page=README):
    """The marked fenced blocks: (kind, attrs, line of the fence, body)."""
    lines = open(page, encoding="utf-8").read().split("\n")
    out, i = [], 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        kind, attrs = m.group(1), m.group(2).split()
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            sys.exit("%s:%d: a tour marker must be followed by a fenced block" % (page, i + 1))
        start, j = i + 2, i + 2
        while j < len(lines) and lines[j] != "```":
            j += 1
        out.append((kind, attrs, start, "\n".join(lines[start:j])))
        i = j + 1
    return out


def subst(text, tmp, port, hook_port):
    text = text.replace("127.0.0.1:8080", "127.0.0.1:%s" % port)
    text = text.replace("127.0.0.1:9000", "127.0.0.1:%s" % hook_port)
    return text.replace("/tmp/", tmp + "/")


def gen(tmp, port, hook_port):
    """Writes tmp/receiver.sh and tmp/tour.bash (the run blocks, in order)."""
    bs = blocks()
    rec = [b for b in bs if b[0] == "receiver"]
    if len(rec) != 1:
        sys.exit("README.md: expected one <!-- tour: receiver --> block, found %d" % len(rec))
    body = subst(rec[0][3], tmp, port, hook_port).replace(" 9000", " %s" % hook_port)
    open(os.path.join(tmp, "receiver.sh"), "w").write(body + "\n")
    n, script = 0, ["set +e"]
    for kind, attrs, line, body in bs:
        if kind != "run":
            continue
        for a in attrs:
            if a.startswith("wait="):
                script.append("sleep %s" % a[5:])
        n += 1
        script.append("{\n%s\n} > %s/out.%d 2>&1; echo $? > %s/rc.%d"
                      % (subst(body, tmp, port, hook_port), tmp, n, tmp, n))
    script.append("printf '%%s\\n' \"$TASK\" > %s/TASK" % tmp)
    open(os.path.join(tmp, "tour.bash"), "w").write("\n".join(script) + "\n")
    if n == 0:
        sys.exit("README.md: no <!-- tour: run --> block")


# A parser for shown JSON, which may hold "…".
class Any:
    pass


class Obj:
    def __init__(self, items, open_):
        self.items, self.open = items, open_


class Arr:
    def __init__(self, items, open_):
        self.items, self.open = items, open_


# "states=a,b" on an output marker: a state that may be either (a race the
# text explains, such as a non-blocking ack that a worker overtook).
ALT_STATES = set()
NUM = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


class Parser:
    def __init__(self, s):
        self.s, self.i = s, 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self, t):
        return self.s.startswith(t, self.i)

    def fail(self, what):
        raise ValueError("%s at offset %d: %r" % (what, self.i, self.s[self.i:self.i + 30]))

    def value(self):
        self.ws()
        if self.peek(ELL):
            self.i += 1
            return Any()
        c = self.s[self.i:self.i + 1]
        if c == "{":
            return self.container("}", True)
        if c == "[":
            return self.container("]", False)
        if c == '"':
            v, self.i = json.decoder.scanstring(self.s, self.i + 1)
            return v
        for w, v in (("true", True), ("false", False), ("null", None)):
            if self.peek(w):
                self.i += len(w)
                return v
        m = NUM.match(self.s, self.i)
        if m:
            self.i = m.end()
            return float(m.group(0))
        self.fail("not a value")

    def container(self, close, is_obj):
        self.i += 1
        items, open_ = [], False
        while True:
            self.ws()
            if self.peek(ELL):
                self.i += 1
                open_ = True
                self.ws()
                if self.peek(","):
                    self.i += 1
                continue
            if self.peek(close):
                self.i += 1
                return Obj(items, open_) if is_obj else Arr(items, open_)
            if is_obj:
                if not self.peek('"'):
                    self.fail("expected a key")
                k, self.i = json.decoder.scanstring(self.s, self.i + 1)
                self.ws()
                if not self.peek(":"):
                    self.fail("expected ':'")
                self.i += 1
                items.append((k, self.value()))
            else:
                items.append(self.value())
            self.ws()
            if self.peek(","):
                self.i += 1
            elif not (self.peek(close) or self.peek(ELL)):
                self.fail("expected ',' or '%s'" % close)

    def all(self):
        vals = []
        self.ws()
        while self.i < len(self.s):
            vals.append(self.value())
            self.ws()
        return vals


def real_values(text):
    dec, vals, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            return vals
        v, i = dec.raw_decode(text, i)
        vals.append(v)


def tname(v):
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "null"
    if isinstance(v, (dict, Obj)):
        return "object"
    return "array"


def compare(shown, real, path, key, errs):
    if isinstance(shown, Any):
        return
    if tname(shown) != tname(real):
        errs.append("%s: shown a %s, the real one is a %s (%s)"
                    % (path, tname(shown), tname(real), json.dumps(real)[:120]))
        return
    if isinstance(shown, Obj):
        for k, v in shown.items:
            if k not in real:
                errs.append("%s: key %r is shown but the real object has no such key (it has %s)"
                            % (path, k, ", ".join(sorted(real))))
            else:
                compare(v, real[k], "%s.%s" % (path, k), k, errs)
        extra = sorted(set(real) - {k for k, _ in shown.items})
        if extra and not shown.open:
            errs.append("%s: the real object has keys that are not shown: %s (write \u2026 if that is meant)"
                        % (path, ", ".join(extra)))
    elif isinstance(shown, Arr):
        if shown.items and not real:
            errs.append("%s: shown with elements, the real array is empty" % path)
        elif shown.items:
            compare(shown.items[0], real[0], path + "[0]", key, errs)
    elif isinstance(shown, bool):
        if shown != real:
            errs.append("%s: shown %s, the real one is %s" % (path, json.dumps(shown), json.dumps(real)))
    elif key == "state" and shown in ALT_STATES and real in ALT_STATES:
        return
    elif isinstance(shown, str) and key in FIXED and ELL not in shown and shown != real:
        errs.append("%s: shown %r, the real one is %r" % (path, shown, real))


def compare_docs(shown_text, real_text, errs):
    """A block of JSON values, or of SSE events (data: lines)."""
    if re.search(r"^data:", shown_text, re.M):
        def fields(t):
            return sorted({l.split(":", 1)[0] for l in t.split("\n") if l and not l.startswith(":")})
        if fields(shown_text) != fields(real_text):
            errs.append("the SSE fields shown are %s, the real ones %s" % (fields(shown_text), fields(real_text)))
        shown_text = "\n".join(l[5:] for l in shown_text.split("\n") if l.startswith("data:"))
        real_text = "\n".join(l[5:] for l in real_text.split("\n") if l.startswith("data:"))
    try:
        shown = Parser(shown_text).all()
    except ValueError as e:
        errs.append("the shown output does not parse: %s" % e)
        return
    try:
        real = real_values(real_text)
    except ValueError as e:
        errs.append("the real output is not JSON: %s" % e)
        return
    if len(shown) != len(real):
        errs.append("%d values shown, the real output has %d" % (len(shown), len(real)))
    for n, (s, r) in enumerate(zip(shown, real)):
        compare(s, r, "value %d" % (n + 1), None, errs)


def norm_log(line):
    line = re.sub(r"^\S+Z ", "", line)
    line = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", line)
    return re.sub(r"\d+", "N", line)


def check(tmp, port, hook_port):
    bs = [(README, k, a, l, subst(b, tmp, port, hook_port) if k == "output" else b) for k, a, l, b in blocks()]
    for page in PAGES:
        if os.path.exists(page):
            for k, a, l, b in blocks(page):
                if k != "transcript":
                    sys.exit("%s:%d: only README.md's tour has run and output blocks" % (page, l))
                bs.append((page, k, a, l, b))
    failures, run_n, checked = 0, 0, 0
    last_run = None
    task = open(os.path.join(tmp, "TASK")).read().strip()
    hook_lines = open(os.path.join(tmp, "hook.log"), encoding="utf-8").read().split("\n")
    prose = open(README, encoding="utf-8").read().split("\n")
    global ALT_STATES
    for page, kind, attrs, line, body in bs:
        errs, real = [], ""
        ALT_STATES = set()
        for a in attrs:
            if a.startswith("states="):
                ALT_STATES = set(a[7:].split(","))
        if kind == "run":
            run_n += 1
            last_run = (run_n, line)
            rc = open(os.path.join(tmp, "rc.%d" % run_n)).read().strip()
            if rc != "0":
                out = open(os.path.join(tmp, "out.%d" % run_n)).read()
                errs.append("the commands exited with status %s; output:\n%s" % (rc, out[:2000]))
        elif kind == "output" and "hook" in attrs:
            real = "\n".join(l for l in hook_lines if l)
            mine = [l for l in hook_lines if task and '"%s"' % task in l]
            # "prints 13 POSTs" in the paragraph above the block.
            m = None
            for p in reversed(prose[max(0, line - 6):line - 1]):
                m = m or re.search(r"prints (\d+) POSTs", p)
            if not m:
                errs.append("no 'prints N POSTs' in the paragraph above the block")
            elif int(m.group(1)) != len(mine):
                errs.append("the text says %s POSTs, the receiver got %d for task %s"
                            % (m.group(1), len(mine), task))
            for sl in body.split("\n"):
                sm = re.match(r"^(/\S+) (\S+) (\{.*)$", sl)
                if not sm:
                    continue
                try:
                    shown = Parser(sm.group(3)).all()[0]
                except ValueError as e:
                    errs.append("shown line does not parse: %s: %s" % (e, sl[:80]))
                    continue
                best = None
                for rl in mine:
                    rm = re.match(r"^(/\S+) (\S+) (\{.*)$", rl)
                    if not rm or rm.group(1) != sm.group(1) or rm.group(2) != sm.group(2):
                        continue
                    e2 = []
                    compare(shown, json.loads(rm.group(3)), "body", None, e2)
                    if not e2:
                        best = []
                        break
                    if best is None or len(e2) < len(best):
                        best = e2
                if best is None:
                    errs.append("no POST to %s with token %s: %s" % (sm.group(1), sm.group(2), sl[:80]))
                elif best:
                    errs.append("no POST has the shape of: %s\n      closest: %s" % (sl[:100], "; ".join(best)))
        elif kind == "transcript":
            # "$ command" lines and the exact output of each (after $tmp
            # for /tmp/), run from the repository's root.
            import subprocess
            shown, real_l = [], []
            for sl in body.split("\n"):
                if sl.startswith("$ "):
                    cmd = subst(sl[2:], tmp, port, hook_port).replace("build/a2ad", os.environ["A2AD"])
                    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
                    real_l.append(sl)
                    real_l += [l.replace(tmp + "/", "/tmp/") for l in (r.stdout + r.stderr).split("\n") if l]
                shown.append(sl)
            real = "\n".join(real_l)
            if shown != real_l:
                errs.append("the transcript differs; the real one is below")
        elif kind == "output" and "log" in attrs:
            # The database is the demo's, build/a2ad.db, for the reader.
            log = open(os.path.join(tmp, "daemon.log"), encoding="utf-8").read()
            log = log.replace(tmp + "/a2ad.db", "build/a2ad.db").split("\n")
            real = "\n".join(log)
            have = {norm_log(l) for l in log}
            for sl in body.split("\n"):
                if sl and norm_log(sl) not in have:
                    errs.append("no such line in the real start-up log: %s" % sl)
        elif kind == "output":
            if last_run is None:
                errs.append("an output block with no run block above it")
            else:
                real = open(os.path.join(tmp, "out.%d" % last_run[0]), encoding="utf-8").read()
                compare_docs(body, real, errs)
        checked += 1
        if errs:
            failures += 1
            what = "output" if kind == "output" else kind
            src = (" (of the commands at README.md:%d)" % last_run[1]
                   if kind == "output" and last_run and "hook" not in attrs and "log" not in attrs else "")
            print("%s:%d: the tour's %s block%s differs from the real one:" % (page, line, what, src))
            for e in errs:
                print("    " + e)
            if real:
                print("    real output:\n      " + real[:3000].replace("\n", "\n      "))
    print("readme_tour.sh: %d marked blocks of README.md checked, %d differ" % (checked, failures))
    return failures == 0


def config(defaults_file):
    """README's [section] tables against `a2ad -t -v` of an empty file."""
    real, sec = {}, None
    for l in open(defaults_file, encoding="utf-8"):
        l = l.rstrip("\n")
        m = re.match(r"^\[(\w+)\]$", l)
        if m:
            sec = m.group(1)
        elif sec and " = " in l + " " and not l.startswith("#"):
            k, _, v = l.partition(" =")
            real[(sec, k.strip())] = v.strip()
    page = README
    for p in PAGES:
        if os.path.exists(p) and re.search(r"^# Configuration reference$", open(p, encoding="utf-8").read(), re.M):
            page = p
    lines = open(page, encoding="utf-8").read().split("\n")
    shown, sec, in_ref = {}, None, False
    for n, l in enumerate(lines, 1):
        if l.startswith("## ") or l.startswith("# "):
            in_ref = l in ("## Configuration reference", "# Configuration reference")
        if not in_ref:
            continue
        m = re.match(r"^### `\[(\w+)\]`$", l)
        if m:
            sec = m.group(1)
            continue
        if l.startswith("### "):
            sec = None
        if sec and l.startswith("| `"):
            cells = [c.strip() for c in l.strip("|").split("|")]
            default = cells[2].strip("`") if len(cells) > 2 else None
            if default == "empty":
                default = ""
            for k in re.findall(r"`(\w+)`", cells[0]):
                shown[(sec, k)] = (default, n)
    errs = []
    if len(real) < 30:
        errs.append("a2ad -t -v printed only %d keys" % len(real))
    for sk, v in sorted(real.items()):
        if sk not in shown:
            errs.append("%s: [%s] %s (default %r) is not in the table of [%s]" % (page, sk[0], sk[1], v, sk[0]))
        elif shown[sk][0].lower() != v.lower():
            errs.append("%s:%d: [%s] %s: the table says the default is %r, a2ad -t -v says %r"
                        % (page, shown[sk][1], sk[0], sk[1], shown[sk][0], v))
    for sk, (v, n) in sorted(shown.items()):
        if sk not in real:
            errs.append("%s:%d: [%s] %s is in the table but a2ad -t -v has no such key" % (page, n, sk[0], sk[1]))
    for e in errs:
        print("readme_tour.sh: configuration reference: " + e)
    if not shown:
        errs.append("%s: no configuration reference tables found" % page)
    print("readme_tour.sh: %d keys of a2ad -t -v checked against %s's configuration reference, %d problems"
          % (len(real), page, len(errs)))
    return not errs


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(*sys.argv[2:5])
    elif cmd == "check":
        sys.exit(0 if check(*sys.argv[2:5]) else 1)
    elif cmd == "config":
        sys.exit(0 if config(sys.argv[2]) else 1)
PY

python3 "$tmp/tour.py" gen "$tmp" "$port" "$hook_port"

# The receiver, as the README starts it.
setsid sh "$tmp/receiver.sh" > "$tmp/hook.log" 2>&1 < /dev/null &
hook_pid=$!
i=0
until curl -s -o /dev/null "http://127.0.0.1:$hook_port/" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -ge 100 ] || ! kill -0 "$hook_pid" 2>/dev/null; then
    echo "readme_tour.sh: the tour's webhook receiver did not start:" >&2; cat "$tmp/hook.log" >&2; exit 1
  fi
  sleep 0.1
done

bash "$tmp/tour.bash"

# Let the first task's webhooks arrive (bounded): it has ended when its
# completed state has been POSTed.
task=$(cat "$tmp/TASK")
i=0
while [ $i -lt 300 ]; do
  grep "\"$task\"" "$tmp/hook.log" | grep -q '"state":"completed"' && break
  sleep 0.1; i=$((i + 1))
done
# POSTs may overtake each other: wait until no more come for half a second.
n1=-1 i=0
while [ $i -lt 20 ]; do
  n2=$(grep -c "\"$task\"" "$tmp/hook.log" || true)
  [ "$n1" = "$n2" ] && break
  n1=$n2; sleep 0.5; i=$((i + 1))
done

rc=0
A2AD=$A2AD python3 "$tmp/tour.py" check "$tmp" "$port" "$hook_port" || rc=1

# The configuration reference against the program's defaults: `a2ad -t -v`
# of an empty file prints every key with its default (and fails its checks,
# which do not matter here).
mkdir -p "$tmp/empty"
: > "$tmp/empty/a2ad.conf"
abs=$(cd "$(dirname "$A2AD")" && pwd)/$(basename "$A2AD")
(cd "$tmp/empty" && "$abs" -t -v -c a2ad.conf > defaults.txt 2>/dev/null) || true
python3 "$tmp/tour.py" config "$tmp/empty/defaults.txt" || rc=1

[ $rc -eq 0 ] && echo "readme_tour.sh: the README's tour and configuration reference match the program"
exit $rc
