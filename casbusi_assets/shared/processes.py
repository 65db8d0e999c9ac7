"""Run a few long-lived child processes as one service, and stop all of them together.

`casbusi ui` starts the Dagster webserver and the daemon this way. Each child runs in its own
process group, so TERM / INT / HUP to the parent (a `kill`, Ctrl-C, a closed terminal) reaches
every grandchild too (the code servers Dagster spawns), and nothing keeps serving after the
parent is gone. When one child exits, the others are stopped and its exit code is returned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_all(procs: Sequence[subprocess.Popen], grace_seconds: float = 10.0) -> None:
    """TERM every child's process group, then KILL what is still alive after the grace period."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    for proc in procs:
        # the group may outlive its leader (a grandchild still serving): always KILL the group
        _signal_group(proc, signal.SIGKILL)
        if proc.poll() is None:
            proc.wait()


def supervise(
    commands: Sequence[Sequence[str]],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    poll_seconds: float = 0.5,
) -> int:
    """Start every command, wait until one exits or a stop signal arrives, then stop them all.

    Returns the first child's exit code to end, or 128 + the signal number when stopped by one.
    """
    stopped_by: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_signal(signum: int, _frame: object) -> None:
        stopped_by.append(signum)

    procs: list[subprocess.Popen] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    try:
        for cmd in commands:
            procs.append(
                subprocess.Popen(
                    list(cmd),
                    cwd=cwd,
                    env=dict(env) if env is not None else None,
                    start_new_session=True,
                )
            )
        while not stopped_by:
            ended = [p for p in procs if p.poll() is not None]
            if ended:
                return ended[0].returncode
            time.sleep(poll_seconds)
        return 128 + stopped_by[0]
    finally:
        stop_all(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
