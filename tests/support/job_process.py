"""`ledgersync run` as a background process tree that a test can kill or stop."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Optional

from job.cli.local.processes import session_members

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class JobProcess:
    """One ``python -m job.cli run ...`` in its own session (the driver, the JVM it starts and
    the Python workers the JVM starts), its output in ``log_path``."""

    def __init__(self, args: list, log_path: str):
        self.log_path = str(log_path)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "job.cli", "run", *args], cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.time()

    def output(self) -> str:
        with open(self.log_path, errors="replace") as handle:
            return handle.read()

    def _field(self, pattern: str) -> Optional[str]:
        match = re.search(pattern, self.output())
        return match.group(1) if match else None

    @property
    def job_id(self) -> Optional[str]:
        return self._field(r"ledgersync: job ([0-9a-f]{32}) running")

    @property
    def status_dir(self) -> Optional[str]:
        return self._field(r"; status in (\S+);")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_for(self, condition, timeout_s: float, what: str, poll_s: float = 0.2):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            if not self.alive():
                raise AssertionError(f"ledgersync run ended while waiting for {what}:\n{self.output()[-4000:]}")
            time.sleep(poll_s)
        raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}:\n{self.output()[-4000:]}")

    def kill_tree(self) -> int:
        """SIGKILL the whole process tree at once; returns how many processes it held."""
        members = session_members(self.proc.pid)
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._log.close()
        deadline = time.monotonic() + 30
        while session_members(self.proc.pid):
            if time.monotonic() > deadline:
                raise AssertionError(f"processes of the killed job still alive: {session_members(self.proc.pid)}")
            time.sleep(0.1)
        return len(members)

    def stop(self, sig=signal.SIGTERM, timeout_s: float = 120) -> int:
        """Send ``sig`` to the driver only (as a user or a service manager does); returns its exit code."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout_s)
        self._log.close()
        return code

    def cleanup(self) -> None:
        if self.alive():
            self.kill_tree()
        elif not self._log.closed:
            self._log.close()
