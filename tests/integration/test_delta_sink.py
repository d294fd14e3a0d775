"""The embedded Delta writer on real Delta files: retried batches, redelivery after a crash, compaction."""

from __future__ import annotations

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import requests
from deltalake import DeltaTable, write_deltalake

from coelho.adapters.delta_snapshot import DeltaSnapshot
from coelho.adapters.delta_store import compact, ensure_table, table_properties
from coelho.adapters.duckdb_sql import SqlEngine
from coelho.config import Settings
from coelho.core import USE_CASES
from coelho.ingest import delta_sink
from coelho.ingest.delta_sink import DeltaWriter
from support import binary, make_event, stream
from support.servers import FunctionServer

TFD = USE_CASES["tfd"]


def ids(settings) -> list[str]:
    return DeltaTable(settings.delta_uri("tfd")).to_pyarrow_table(columns=["ce_id"])["ce_id"].to_pylist()


def submit_all(writer: DeltaWriter, payloads) -> list[str]:
    return [writer.submit("/tests/tfd", str(p[TFD.id_field]), p) for p in payloads]


def test_batch_retried_after_a_failure_between_commit_and_ack_is_not_duplicated(settings, monkeypatch):
    real_write = delta_sink.append
    failures = []

    def commit_then_fail(*args, **kwargs):  # the commit lands, then the storage call reports an error
        real_write(*args, **kwargs)
        if not failures:
            failures.append(1)
            raise OSError("connection reset after the commit")

    monkeypatch.setattr(delta_sink, "append", commit_then_fail)
    writer = DeltaWriter(TFD, settings)
    try:
        assert submit_all(writer, stream("tfd", 3, seed=1)) == ["written"] * 3
        assert writer.status()["retries"] == 1
    finally:
        writer.close()
    assert sorted(ids(settings)) == sorted(str(p[TFD.id_field]) for p in stream("tfd", 3, seed=1))


def test_redelivery_to_a_restarted_writer_is_not_duplicated(settings):
    payloads = stream("tfd", 6, seed=2)
    first = DeltaWriter(TFD, settings)
    submit_all(first, payloads[:4])
    first.close()
    second = DeltaWriter(TFD, settings)  # a new process: remembers recent rows from the table
    try:
        assert submit_all(second, payloads) == ["duplicate"] * 4 + ["written"] * 2
    finally:
        second.close()
    assert len(ids(settings)) == len(set(ids(settings))) == 6


def test_compaction_keeps_the_rows_and_drops_the_files(settings):
    writer = DeltaWriter(TFD, dataclasses.replace(settings, sink_compact_every=8, delta_row_group_rows=3))
    try:
        submit_all(writer, stream("tfd", 7, seed=4))  # one commit each: a lone sequential sender
        before = len(DeltaTable(settings.delta_uri("tfd")).file_uris())
        submit_all(writer, stream("tfd", 8, seed=4)[7:])  # the 8th commit triggers the compaction
    finally:
        writer.close()  # compaction runs after the answers, in the writer's thread: wait for it
    assert writer.status()["compactions"] == 1
    table = DeltaTable(settings.delta_uri("tfd"))
    assert before == 7 and len(table.file_uris()) == 1
    assert len(ids(settings)) == len(set(ids(settings))) == 8
    [compacted] = table.file_uris()  # row groups of at most COELHO_DELTA_ROW_GROUP_ROWS: what one scan holds
    metadata = pq.ParquetFile(compacted).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [3, 3, 2]


def test_events_acknowledged_before_a_crash_are_kept_once_after_redelivery(env, settings, tmp_path):
    events = [make_event("tfd", payload) for payload in stream("tfd", 20, seed=6)]
    with FunctionServer("delta-sink", env, tmp_path) as server:
        for event in events[:15]:
            headers, body = binary(event)
            assert requests.post(server.url, headers=headers, data=body, timeout=30).status_code == 200
        server.kill()  # SIGKILL: no clean shutdown
    with FunctionServer("delta-sink", env, tmp_path) as server:
        for event in events:  # the sender did not see its answers: everything is sent again
            headers, body = binary(event)
            assert requests.post(server.url, headers=headers, data=body, timeout=30).status_code == 200
        status = requests.get(server.url + "/status", timeout=5).json()["tables"]["tfd"]
    assert (status["rows"], status["duplicates"]) == (5, 15)
    assert len(ids(settings)) == len(set(ids(settings))) == 20


def test_log_and_table_state_stay_bounded_over_many_commits(settings):
    """Hundreds of commits: the log keeps about one checkpoint interval of entries, the writer and a reader
    reload from the latest checkpoint instead of replaying every commit, and every row is there once."""
    every, commits = 10, 240
    settings = dataclasses.replace(settings, delta_checkpoint_every=every, delta_log_retention_hours=1e-9,
                                   sink_compact_every=50)
    engine = SqlEngine.from_settings(dataclasses.replace(settings, sql_refresh_ms=1))
    writer = DeltaWriter(TFD, settings)
    payloads = stream("tfd", commits, seed=5)
    log_dir = Path(settings.delta_uri("tfd")) / "_delta_log"
    most_entries = most_replayed = 0
    try:
        for payload in payloads:  # one sequential sender: one commit per event
            assert writer.submit("/tests/tfd", str(payload[TFD.id_field]), payload) == "written"
            engine.refresh("tfd")
            most_entries = max(most_entries, len(list(log_dir.glob("*.json"))))
            most_replayed = max(most_replayed, writer._snapshot.replayed, engine.sources["tfd"].replayed)
        assert engine.count("tfd")[0] == commits
    finally:
        writer.close()
    table = DeltaTable(settings.delta_uri("tfd"))
    assert table.version() > commits  # the commits, the table's creation and the compactions
    assert most_entries <= 2 * every + 2, most_entries
    assert len(list(log_dir.glob("*.checkpoint.parquet"))) <= 2
    assert most_replayed <= every
    assert writer._snapshot.reloads >= commits // every - 1
    assert engine.sources["tfd"].reloads >= 1
    assert sorted(ids(settings)) == sorted(str(p[TFD.id_field]) for p in payloads)


def test_changed_log_settings_apply_to_an_existing_table(settings):
    DeltaWriter(TFD, settings).close()
    writer = DeltaWriter(TFD, dataclasses.replace(settings, delta_checkpoint_every=7, delta_log_retention_hours=3,
                                                  sink_retention_hours=0.5))
    writer.close()
    configuration = DeltaTable(settings.delta_uri("tfd")).metadata().configuration
    assert configuration["delta.checkpointInterval"] == "7"
    assert configuration["delta.logRetentionDuration"] == "interval 10800 seconds"
    assert configuration["delta.deletedFileRetentionDuration"] == "interval 1800 seconds"


def test_files_whose_remove_entries_left_the_checkpoints_are_still_vacuumed(tmp_path):
    """A compacted file's remove entry leaves the checkpoints after the retention; a vacuum after that
    (the next compaction) still deletes the file: nothing stays on disk that the table does not reference."""
    uri = str(tmp_path / "table")
    properties = table_properties(Settings(delta_checkpoint_every=5, sink_retention_hours=1 / 3600))
    ensure_table(uri, pa.schema([("x", pa.int64())]), properties=properties)
    for value in range(10):
        write_deltalake(uri, pa.table({"x": [value]}), mode="append")
    DeltaTable(uri).optimize.compact()  # 10 files removed, 1 written; no vacuum yet
    time.sleep(1.5)  # the remove entries expire ...
    for value in range(10, 20):  # ... and the next checkpoints leave them out
        write_deltalake(uri, pa.table({"x": [value]}), mode="append")
    table = DeltaTable(uri)
    assert compact(table, Settings(sink_retention_hours=0)) is not None
    on_disk = {path.name for path in Path(uri).glob("*.parquet")}
    assert on_disk == {Path(file).name for file in DeltaTable(uri).file_uris()}
    assert len(on_disk) == 1 and sorted(DeltaTable(uri).to_pyarrow_table()["x"].to_pylist()) == list(range(20))


def test_a_reader_catches_up_after_the_entries_it_had_not_read_were_removed(tmp_path):
    """An idle reader (a sql worker between queries) whose next log entries were cleaned up meanwhile loads the
    table again from a later checkpoint and sees every row."""
    uri = str(tmp_path / "table")
    properties = table_properties(Settings(delta_checkpoint_every=5, delta_log_retention_hours=1 / 3600))
    ensure_table(uri, pa.schema([("x", pa.int64())]), properties=properties)
    write_deltalake(uri, pa.table({"x": [0]}), mode="append")
    reader = DeltaSnapshot(uri, reload_every=1000)
    assert reader.version() == 1
    for value in range(1, 30):
        time.sleep(0.1)  # entries older than a second are removed at each checkpoint
        write_deltalake(uri, pa.table({"x": [value]}), mode="append")
    assert not (Path(uri) / "_delta_log" / f"{2:020d}.json").exists()
    assert reader.version() == 30
    assert sorted(reader.dataset().to_table()["x"].to_pylist()) == list(range(30))


def _submit_concurrently(writer: DeltaWriter, payloads) -> list[str]:
    with ThreadPoolExecutor(len(payloads)) as pool:
        return list(pool.map(lambda p: writer.submit("/tests/tfd", str(p[TFD.id_field]), p), payloads))


def test_a_few_concurrent_senders_share_one_commit_per_batch_interval(settings):
    """Fewer than GROUP_ROWS events are committed once their oldest waited COELHO_SINK_BATCH_MS: a slow
    stream makes about one commit a second, not one per event."""
    writer = DeltaWriter(TFD, dataclasses.replace(settings, sink_batch_ms=2000))
    try:
        assert _submit_concurrently(writer, stream("tfd", 6, seed=8)) == ["written"] * 6
        assert writer.status()["commits"] == 1
    finally:
        writer.close()


def test_a_full_window_of_senders_is_committed_without_waiting_for_the_batch_interval(settings):
    """GROUP_ROWS senders, all in: committed at once, and so are the same senders' next events (an interval
    longer than the 30 s answer timeout would make every submit fail). Two rounds of exactly GROUP_ROWS: with
    more senders at once, a commit may take some of them before the rest are in, and a tail smaller than
    GROUP_ROWS with nobody sending after it waits for the interval, as it should."""
    writer = DeltaWriter(TFD, dataclasses.replace(settings, sink_batch_ms=120_000))
    try:
        payloads = stream("tfd", 2 * delta_sink.GROUP_ROWS, seed=9)
        for window in (payloads[:delta_sink.GROUP_ROWS], payloads[delta_sink.GROUP_ROWS:]):
            assert _submit_concurrently(writer, window) == ["written"] * len(window)
        assert writer.status()["commits"] == 2
        assert sorted(ids(settings)) == sorted(str(p[TFD.id_field]) for p in payloads)
    finally:
        writer.close()
