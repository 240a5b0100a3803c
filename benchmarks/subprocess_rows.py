"""One model per subprocess for the sweep benchmarks (hf_sweep.py, generation.py): the child prints
its result as a ``ROW {json}`` line; a crash or a timeout becomes a row that says why."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def row_of(script: str, args: list[str], model_type: str, timeout: float) -> dict:
    """Run ``python script *args`` from the repository root; its last ``ROW`` line, parsed, or
    ``{"type", "why"}`` with the timeout or the last line of stderr and the seconds it ran."""
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"type": model_type, "why": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("ROW "):
            return json.loads(line[4:])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"type": model_type, "why": f"crashed ({proc.returncode}): {tail[:200]} ({time.perf_counter() - started:.0f} s)"}
