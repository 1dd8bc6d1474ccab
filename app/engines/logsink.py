"""A run's log: lines numbered in order, scrubbed of secrets, stored in batches, capped in size."""

from __future__ import annotations

import threading

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.logs import scrub
from app.models import LogLine, utcnow

TRUNCATED_MESSAGE = "log truncated: this run wrote more than {limit} bytes; later lines were dropped"


class LogSink:
    """Thread-safe writer for one run's log lines.

    `write()` never touches the database: lines are scrubbed and numbered under a lock, then a
    background thread stores them every `flush_interval` seconds or every `batch` lines, one
    transaction per batch, so a chatty agent costs a few inserts a second.
    """

    def __init__(
        self,
        engine: Engine,
        run_id: int,
        secrets: list[str],
        max_bytes: int = 5 * 1024 * 1024,
        flush_interval: float = 0.2,
        batch: int = 200,
    ) -> None:
        self.engine = engine
        self.run_id = run_id
        self.secrets = [s for s in secrets if s]
        self.max_bytes = max_bytes
        self.flush_interval = flush_interval
        self.batch = batch
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: list[dict] = []
        self._wake = threading.Event()
        self._closed = False
        self._bytes = 0
        self.truncated = False
        with engine.connect() as conn:
            # A re-opened sink (same run, new worker) continues the numbering instead of colliding.
            last = conn.execute(select(func.max(LogLine.seq)).where(LogLine.run_id == run_id)).scalar()
        self._next_seq = (last or 0) + 1
        self._thread = threading.Thread(target=self._flush_loop, name=f"logsink-{run_id}", daemon=True)
        self._thread.start()

    def write(self, stream: str, text: str) -> None:
        """Append `text` (one line, or several separated by newlines) to the log."""
        lines = text.splitlines() or [""]
        with self._lock:
            if self._closed:
                raise RuntimeError("log sink is closed")
            for line in lines:
                if self.truncated:
                    return
                clean = scrub(line, self.secrets)
                size = len(clean.encode("utf-8", errors="replace"))
                if self._bytes + size > self.max_bytes:
                    self.truncated = True
                    self._append("system", TRUNCATED_MESSAGE.format(limit=self.max_bytes))
                    return
                self._bytes += size
                self._append(stream, clean)
            if len(self._pending) >= self.batch:
                self._wake.set()

    def _append(self, stream: str, text: str) -> None:
        self._pending.append(
            {"run_id": self.run_id, "seq": self._next_seq, "stream": stream, "text": text, "created_at": utcnow()}
        )
        self._next_seq += 1

    def flush(self) -> None:
        """Store everything written so far."""
        with self._flush_lock:  # one flusher at a time keeps batches in sequence order
            collisions = 0
            while True:
                with self._lock:
                    rows, self._pending = self._pending[: self.batch], self._pending[self.batch :]
                if not rows:
                    return
                try:
                    with self.engine.begin() as conn:
                        conn.execute(insert(LogLine), rows)
                except IntegrityError:
                    # Another writer numbers lines of this run too (a Kubernetes run's pod log beside its
                    # callbacks): continue after what is stored now, and try again.
                    with self._lock:
                        self._pending[:0] = rows
                        collisions += 1
                        if collisions > 5:
                            raise
                        self._renumber()
                except Exception:
                    with self._lock:
                        self._pending[:0] = rows  # keep them, in order, for the next attempt
                    raise

    def _renumber(self) -> None:
        with self.engine.connect() as conn:
            last = conn.execute(select(func.max(LogLine.seq)).where(LogLine.run_id == self.run_id)).scalar() or 0
        for row in self._pending:
            last += 1
            row["seq"] = last
        self._next_seq = last + 1

    def _flush_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - the database may blip; the lines stay pending and retry
                pass
            if self._closed:
                return

    def close(self) -> None:
        """Store what is pending and stop the background thread."""
        with self._lock:
            self._closed = True
        self._wake.set()
        self._thread.join(timeout=30)
        self.flush()

    def __enter__(self) -> LogSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_logs(engine: Engine, run_id: int, after: int = 0, limit: int = 1000) -> list[LogLine]:
    """Lines of `run_id` with seq > `after`, in order, at most `limit` (detached LogLine rows)."""
    query = (
        select(LogLine.id, LogLine.seq, LogLine.stream, LogLine.text, LogLine.created_at)
        .where(LogLine.run_id == run_id, LogLine.seq > after)
        .order_by(LogLine.seq)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [
            LogLine(id=id_, run_id=run_id, seq=seq, stream=stream, text=text, created_at=created_at)
            for id_, seq, stream, text, created_at in conn.execute(query)
        ]
