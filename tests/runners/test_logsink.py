"""Log lines are stored in order, scrubbed, in batches and capped; read back after a sequence number."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event

from app.db import session_scope
from app.models import Run, Task
from app.engines.logsink import LogSink, read_logs


@pytest.fixture
def run_id(engine) -> int:
    with session_scope(engine) as session:
        task = Task(installation_id=1, repo_full_name="octo/demo", issue_number=7, requester="alice", trigger="assignment")
        session.add(task)
        session.flush()
        run = Run(task_id=task.id)
        session.add(run)
        session.flush()
        return run.id


def test_lines_from_many_threads_get_unique_gapless_sequence_numbers(engine, run_id):
    sink = LogSink(engine, run_id, secrets=[], max_bytes=10_000_000)

    def writer(name: str) -> None:
        for i in range(100):
            sink.write("stdout", f"{name}-{i}")

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sink.close()

    lines = read_logs(engine, run_id, after=0, limit=10_000)
    assert [line.seq for line in lines] == list(range(1, 401))
    for name in ("t0", "t1", "t2", "t3"):  # each writer's own lines keep their order
        assert [line.text for line in lines if line.text.startswith(name + "-")] == [f"{name}-{i}" for i in range(100)]


def test_secrets_are_scrubbed_before_they_are_stored(engine, run_id):
    with LogSink(engine, run_id, secrets=["hunter2-model-key"]) as sink:
        sink.write("stdout", "using key hunter2-model-key and token ghs_" + "a" * 36)
        sink.write("stderr", "Authorization: Bearer sk-ant-" + "b" * 30)

    texts = [line.text for line in read_logs(engine, run_id)]
    stored = "\n".join(texts)
    assert "hunter2-model-key" not in stored and "ghs_" not in stored and "sk-ant-" not in stored
    assert texts[0].startswith("using key [redacted]")


def test_lines_are_written_in_batches_one_transaction_each(engine, run_id):
    commits = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    sink = LogSink(engine, run_id, secrets=[], batch=200, flush_interval=30)

    for i in range(450):
        sink.write("stdout", f"line {i}")
    sink.close()

    assert len(read_logs(engine, run_id, limit=1000)) == 450
    assert len(commits) <= 4  # 200 + 200 + 50, not 450


def test_lines_become_readable_while_the_run_is_still_going(engine, run_id):
    sink = LogSink(engine, run_id, secrets=[], flush_interval=0.05)
    try:
        sink.write("stdout", "first")
        deadline = time.monotonic() + 3
        while not read_logs(engine, run_id) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [line.text for line in read_logs(engine, run_id)] == ["first"]
    finally:
        sink.close()


def test_size_cap_keeps_the_start_and_says_the_log_was_truncated(engine, run_id):
    with LogSink(engine, run_id, secrets=[], max_bytes=100) as sink:
        for i in range(50):
            sink.write("stdout", f"line-{i:04d}")  # 9 bytes each

    lines = read_logs(engine, run_id, limit=1000)
    assert [line.text for line in lines[:-1]] == [f"line-{i:04d}" for i in range(11)]
    assert lines[-1].stream == "system" and "truncated" in lines[-1].text
    assert len(lines) == 12


def test_read_logs_pages_after_a_sequence_number(engine, run_id):
    with LogSink(engine, run_id, secrets=[]) as sink:
        sink.write("stdout", "a\nb\nc\nd\ne")

    assert [line.text for line in read_logs(engine, run_id, after=2, limit=2)] == ["c", "d"]
    assert read_logs(engine, run_id, after=5) == []


def test_a_reopened_sink_continues_the_numbering(engine, run_id):
    with LogSink(engine, run_id, secrets=[]) as sink:
        sink.write("stdout", "before the worker restarted")
    with LogSink(engine, run_id, secrets=[]) as sink:
        sink.write("system", "after")

    assert [(line.seq, line.text) for line in read_logs(engine, run_id)] == [(1, "before the worker restarted"), (2, "after")]
