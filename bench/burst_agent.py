#!/usr/bin/env python3
"""burst_agent - tests/plugins/burst.c in Python, for bench/runners.py:
the query is a number N: N progress updates, then a result."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from a2ad_agent import AsyncAgent, UpdateImportance  # noqa: E402


class Burst(AsyncAgent):
    async def run_background(self, query, ctx):
        n = int(query or "0")
        for i in range(n):
            await ctx.update_progress("tick", (i + 1) / n, importance=UpdateImportance.DEBUG)
        return "done"


if __name__ == "__main__":
    Burst().run()
