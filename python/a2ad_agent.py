"""a2ad_agent - write an a2ad agent in Python (standard library only).

An a2ad exec agent is a program that a2ad starts for each job and talks to
over stdin/stdout with the agent protocol (docs/agent-protocol.md). This
module speaks it for you and mirrors the background-job API of the Health
Universe A2A SDK (``AsyncAgent``, ``update_progress``, ``add_artifact``,
``validate_message``, ``get_max_duration_seconds``), so an agent written for
that SDK runs with few changes::

    from a2ad_agent import AsyncAgent, UpdateImportance

    class Summarizer(AsyncAgent):
        max_duration = 600                      # seconds (or get_max_duration_seconds)

        async def run_background(self, query, ctx):
            await ctx.update_progress("reading", 0.2, importance=UpdateImportance.INFO)
            await ctx.add_artifact("summary.txt", "...", "text/plain")
            return "done"

    if __name__ == "__main__":
        Summarizer().run()

and in a2ad's configuration::

    [agent.summarizer]
    exec = /usr/bin/python3 /opt/agents/summarizer.py
    description = Summarizes documents

Differences from the SDK, all because a2ad does the serving: no HTTP server
(``run()``/``serve()`` speak the protocol on stdin/stdout), no webhooks of
its own (a2ad sends them), one process per job. ``print()`` goes to the
daemon's log (stdout is the protocol channel and is moved out of the way).
Cancellation is real: ``ctx.is_cancelled()`` turns true and the job's
asyncio task is cancelled (``asyncio.CancelledError``) when a client cancels
or the maximum duration passes; a2ad kills the process if it does not end
within ``[workers] cancel_grace_ms``.
"""

import asyncio
import base64
import enum
import json
import os
import sys
import threading
import traceback

__all__ = [
    "AsyncAgent", "Agent", "BackgroundContext", "AgentContext", "UpdateImportance",
    "ValidationAccepted", "ValidationRejected",
]


class UpdateImportance(str, enum.Enum):
    """How prominently an update is shown (the SDK's enum, same values)."""
    ERROR = "error"
    NOTICE = "notice"
    INFO = "info"
    DEBUG = "debug"


class ValidationAccepted:
    def __init__(self, estimated_duration_seconds=None):
        self.status = "accepted"
        self.estimated_duration_seconds = estimated_duration_seconds


class ValidationRejected:
    def __init__(self, reason):
        self.status = "rejected"
        self.reason = reason


class _Wire:
    """The protocol channel: one JSON object per line, whole, thread-safe."""

    def __init__(self):
        # Keep the protocol on a private descriptor and point fd 1 at stderr,
        # so a stray print() lands in the log instead of breaking a line.
        self._out = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._in = os.fdopen(os.dup(0), "rb")
        self._lock = threading.Lock()

    def send(self, obj):
        line = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
        with self._lock:
            try:
                self._out.write(line)
            except (BrokenPipeError, OSError):
                pass  # a2ad went away; the job is over either way

    def receive(self):
        line = self._in.readline()
        if not line:
            return None
        try:
            return json.loads(line)
        except ValueError:
            return {}


def _importance(value):
    if isinstance(value, UpdateImportance):
        return value.value
    value = str(value).lower()
    return value if value in ("error", "notice", "info", "debug") else "info"


class BackgroundContext:
    """What a job gets: the job's fields and the calls back to a2ad."""

    def __init__(self, wire, job, loop):
        self._wire = wire
        self._cancelled = threading.Event()
        self.loop = loop
        self.task_id = job.get("taskId", "")
        self.context_id = job.get("contextId", "")
        self.agent = job.get("agent", "")
        self.attempt = int(job.get("attempt", 1))
        self.query = job.get("query", "")
        self.message = job.get("message") or {}     # the A2A Message: all parts, metadata
        self.metadata = job.get("metadata") or {}   # the request's params.metadata
        self.options = job.get("options") or {}     # the [agent.NAME] options
        self.max_duration_s = job.get("maxDurationS")
        self.messages = asyncio.Queue()             # later messages of the conversation

    # -- cancellation (the SDK's is_cancelled, here actually implemented) --
    def is_cancelled(self):
        return self._cancelled.is_set()

    # -- progress --
    async def update_progress(self, message=None, progress=None, status="working",
                              importance=UpdateImportance.NOTICE):
        self.update_progress_sync(message, progress, status, importance)

    def update_progress_sync(self, message=None, progress=None, status="working",
                             importance=UpdateImportance.NOTICE):
        """Safe from any thread (the SDK's form for ThreadPoolExecutor code)."""
        del status  # a2ad keeps the task working until the job returns
        if self.is_cancelled():
            return
        m = {"type": "progress", "importance": _importance(importance)}
        if message:
            m["message"] = str(message)
        if progress is not None:
            m["progress"] = float(progress)
        if len(m) == 2:
            raise ValueError("update_progress needs a message or a progress figure")
        self._wire.send(m)

    # -- artifacts --
    async def add_artifact(self, name, content, data_type="text/plain", description="",
                           metadata=None, *, mime_type=None):
        self.add_artifact_sync(name, content, data_type, description, metadata,
                               mime_type=mime_type)

    def add_artifact_sync(self, name, content, data_type="text/plain", description="",
                          metadata=None, *, mime_type=None):
        """content: str (text), bytes (any MIME type) or a dict/list (JSON, an
        A2A data part). mime_type= is accepted as another name for data_type."""
        del description, metadata  # not carried by the protocol yet
        mime = mime_type or data_type
        m = {"type": "artifact", "name": str(name)}
        if isinstance(content, (dict, list)):
            m["data"] = content
            m["mimeType"] = "application/json" if mime == "text/plain" else mime
        elif isinstance(content, (bytes, bytearray, memoryview)):
            m["base64"] = base64.b64encode(bytes(content)).decode()
            m["mimeType"] = "application/octet-stream" if mime == "text/plain" else mime
        else:
            m["text"] = str(content)
            m["mimeType"] = mime
        self._wire.send(m)

    async def add_artifact_chunk(self, name, content, data_type="text/plain", *,
                                 append=False, last_chunk=False, mime_type=None):
        self.add_artifact_chunk_sync(name, content, data_type, append=append,
                                     last_chunk=last_chunk, mime_type=mime_type)

    def add_artifact_chunk_sync(self, name, content, data_type="text/plain", *,
                                append=False, last_chunk=False, mime_type=None):
        """One chunk of an artifact streamed in pieces (A2A append/lastChunk):
        append=False starts it, append=True adds to it, last_chunk=True ends
        it. content: str or bytes. tasks/get shows the assembled artifact."""
        mime = mime_type or data_type
        m = {"type": "artifact", "name": str(name), "append": bool(append),
             "lastChunk": bool(last_chunk)}
        if isinstance(content, (bytes, bytearray, memoryview)):
            m["base64"] = base64.b64encode(bytes(content)).decode()
            m["mimeType"] = "application/octet-stream" if mime == "text/plain" else mime
        else:
            m["text"] = str(content)
            m["mimeType"] = mime
        self._wire.send(m)

    # -- logging --
    def log(self, message, level="info"):
        self._wire.send({"type": "log", "level": level, "message": str(message)})


class AsyncAgent:
    """Subclass and implement run_background(query, ctx) (or the SDK's
    process_message(message, context)); call run() as the program's main."""

    max_duration = None  # seconds; None = get_max_duration_seconds()

    def get_max_duration_seconds(self):
        return 3600

    async def validate_message(self, message, metadata):
        """Return ValidationAccepted() or ValidationRejected(reason)."""
        ok = self.validate(message)
        if ok is True or ok is None:
            return ValidationAccepted()
        return ValidationRejected(ok if isinstance(ok, str) else "rejected by the agent")

    def validate(self, query):
        """Simple form: None/True accepts, a string rejects with that reason."""
        return None

    async def run_background(self, query, ctx):
        return await self.process_message(query, ctx)

    async def process_message(self, message, context):
        raise NotImplementedError("implement run_background(query, ctx) or process_message")

    async def on_message(self, text, ctx):
        """A further message of the conversation (also queued on ctx.messages)."""

    def on_task_error(self, message, error, context):
        """Return a string to replace the failure text, or None."""
        return None

    # -- the protocol loop --
    def run(self):
        wire = _Wire()
        job = wire.receive()
        if not job or job.get("type") != "job":
            wire.send({"type": "failed", "reason": "agent protocol error: no job line"})
            os._exit(0)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        ctx = BackgroundContext(wire, job, loop)
        outcome = loop.run_until_complete(self._run_job(wire, ctx))
        wire.send(outcome)
        sys.stderr.flush()
        os._exit(0)  # plugin threads must not keep the job alive

    serve = run

    async def _run_job(self, wire, ctx):
        main = asyncio.current_task()

        def on_cancel():
            if not main.done():
                main.cancel()

        def reader():
            while True:
                m = wire.receive()
                if m is None or m.get("type") == "cancel":
                    ctx._cancelled.set()
                    ctx.loop.call_soon_threadsafe(on_cancel)
                    if m is None:
                        return
                elif m.get("type") == "message":
                    text = m.get("text", "")
                    ctx.loop.call_soon_threadsafe(ctx.messages.put_nowait, text)
                    asyncio.run_coroutine_threadsafe(self.on_message(text, ctx), ctx.loop)

        threading.Thread(target=reader, name="a2ad-reader", daemon=True).start()
        query = ctx.query
        limit = self.max_duration or self.get_max_duration_seconds()
        try:
            v = await self.validate_message(query, ctx.metadata)
            if getattr(v, "status", "accepted") == "rejected":
                return {"type": "rejected", "reason": str(v.reason)}
            result = await asyncio.wait_for(self.run_background(query, ctx), timeout=limit)
            out = {"type": "result"}
            if result is not None:
                out["text"] = result if isinstance(result, str) else json.dumps(result)
            return out
        except asyncio.CancelledError:
            return {"type": "failed", "reason": "cancelled"}
        except asyncio.TimeoutError:
            # The Health Universe A2A SDK's wording, which platforms match on.
            return {"type": "failed", "reason": "Task exceeded maximum duration of %d seconds "
                    "(%d minutes)" % (limit, limit // 60)}
        except Exception as e:  # the agent's failure is the job's, never the loop's
            traceback.print_exc()
            text = self.on_task_error(query, e, ctx)
            return {"type": "failed", "reason": text or "%s: %s" % (type(e).__name__, e)}


Agent = AsyncAgent
AgentContext = BackgroundContext
