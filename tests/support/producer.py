"""A producer thread for the tests that stop or kill the job mid-stream: it puts the
records in batches a moment apart and holds its last batches back until ``release()``,
so that "mid-stream" holds however long the job takes to start on the machine at hand."""
from __future__ import annotations

import threading
import time

from job.cli.tools.simulate.qldb import put_records


class Producer:
    def __init__(self, kinesis, stream: str, records: list, batch_size: int, pause_s: float = 3.0,
                 held_batches: int = 1):
        self.errors: list = []
        self.sent = 0
        self._released = threading.Event()
        self._batches = [records[start:start + batch_size] for start in range(0, len(records), batch_size)]
        self._held = min(held_batches, len(self._batches))
        self._kinesis, self._stream, self._pause_s = kinesis, stream, pause_s
        self.thread = threading.Thread(target=self._produce, daemon=True)
        self.thread.start()

    @classmethod
    def in_batches(cls, kinesis, stream: str, records: list, batches: int = 10, **kwargs) -> "Producer":
        return cls(kinesis, stream, records, batch_size=-(-len(records) // batches), **kwargs)

    def _produce(self) -> None:
        free = len(self._batches) - self._held
        try:
            for index, batch in enumerate(self._batches):
                if index == free and not self._released.wait(timeout=600):
                    raise TimeoutError("the held batches were never released")
                self.sent += put_records(self._kinesis, self._stream, batch)
                time.sleep(self._pause_s)
        except Exception as exc:  # reported by finish()
            self.errors.append(exc)

    @property
    def total(self) -> int:
        return sum(len(batch) for batch in self._batches)

    def release(self) -> None:
        self._released.set()

    def finish(self, timeout_s: float = 300) -> None:
        """Release the held batches, wait until everything is put, and fail on any error."""
        self.release()
        self.thread.join(timeout=timeout_s)
        assert not self.thread.is_alive(), "the producer did not finish"
        assert not self.errors, self.errors
