#!/usr/bin/env python3
"""demo_agent - an a2ad exec agent in Python, written like a Health Universe
A2A SDK background agent (see python/a2ad_agent.py).

    [agent.pydemo]
    exec = /usr/bin/python3 /path/to/examples/python/demo_agent.py
    description = Python demo agent

The query decides what it does (the tests use each):
    fail ...   raises an exception: the job fails with its text
    slow ...   reports progress until cancelled (or 60 s pass)
    reject ... is refused by validate_message
    chunks     streams "story.txt" in 3 chunks (add_artifact_chunk)
    anything else: progress (async and from a thread), a text and a JSON
    artifact, and a result naming the task.
"""
import asyncio
import os
import sys
import threading

try:
    from a2ad_agent import AsyncAgent, UpdateImportance, ValidationRejected, ValidationAccepted
except ImportError:  # running from a source tree: python/ beside examples/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    from a2ad_agent import AsyncAgent, UpdateImportance, ValidationRejected, ValidationAccepted


class DemoAgent(AsyncAgent):
    max_duration = 120

    async def validate_message(self, message, metadata):
        if message.startswith("reject"):
            return ValidationRejected("demo refuses queries starting with 'reject'")
        return ValidationAccepted(estimated_duration_seconds=1)

    async def run_background(self, query, ctx):
        if query.startswith("fail"):
            raise RuntimeError("demo failure as asked")
        if query.startswith("slow"):
            for i in range(600):
                if ctx.is_cancelled():
                    return "stopped"
                await ctx.update_progress("step %d" % i, i / 600, importance=UpdateImportance.DEBUG)
                await asyncio.sleep(0.1)
            return "slow done"
        if query == "chunks":
            for i in range(1, 4):
                await ctx.add_artifact_chunk("story.txt", "part%d;" % i, "text/plain",
                                             append=i > 1, last_chunk=i == 3)
            return "chunked"
        await ctx.update_progress("starting", 0.1, importance=UpdateImportance.INFO)
        t = threading.Thread(target=ctx.update_progress_sync,
                             args=("from a thread", 0.5), kwargs={"importance": UpdateImportance.NOTICE})
        t.start()
        t.join()
        print("this print goes to the daemon's log, not the protocol")
        await ctx.add_artifact("echo.txt", "you said: " + query, "text/plain")
        await ctx.add_artifact("job.json", {"taskId": ctx.task_id, "contextId": ctx.context_id,
                                            "attempt": ctx.attempt, "metadata": ctx.metadata,
                                            "parts": len(ctx.message.get("parts", []))},
                               mime_type="application/json")
        return "python done: task %s" % ctx.task_id


if __name__ == "__main__":
    DemoAgent().run()
