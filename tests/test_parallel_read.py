"""Files are read in parallel: after matching, the files' byte ranges are
reshuffled over the workers, so two worker processes read different files,
and different ranges of one large file."""
from __future__ import annotations

import json
import os

import apache_beam as beam

from pipeline.sources import ReadRecords
from tests.helpers import beam_pipeline


def write_lines(path, name: str, count: int) -> None:
    path.write_text("".join(json.dumps({"file": name, "line": i}) + "\n"
                            for i in range(count)))


def worker_of_each_line(tmp_path, desired_range_bytes: int) -> dict[str, list]:
    """File name -> the process ids that read its lines, on two workers."""
    out = tmp_path / "read-by"
    with beam_pipeline(direct_num_workers=2,
                       direct_running_mode="multi_processing") as p:
        read = p | ReadRecords(str(tmp_path / "*.jsonl"),
                               desired_range_bytes=desired_range_bytes)
        (read.records
         | beam.Map(lambda line: f"{os.getpid()} {json.loads(line.data)['file']}")
         | beam.io.WriteToText(str(out)))
    read_by: dict[str, list] = {}
    for path in tmp_path.glob("read-by*"):
        for line in path.read_text().splitlines():
            pid, name = line.split()
            read_by.setdefault(name, []).append(int(pid))
    assert os.getpid() not in {pid for pids in read_by.values() for pid in pids}
    return read_by


def test_two_workers_read_different_files(tmp_path):
    for n in range(4):
        write_lines(tmp_path / f"part-{n}.jsonl", f"part-{n}", 20)
    read_by = worker_of_each_line(tmp_path, 1024 * 1024)
    assert sorted(read_by) == [f"part-{n}" for n in range(4)]
    assert all(len(pids) == 20 for pids in read_by.values())
    workers = [set(pids) for pids in read_by.values()]
    assert all(len(w) == 1 for w in workers)  # a small file: one range
    assert len(set.union(*workers)) == 2


def test_two_workers_read_ranges_of_one_large_file(tmp_path):
    write_lines(tmp_path / "big.jsonl", "big", 2000)  # about 50 kB
    read_by = worker_of_each_line(tmp_path, 4096)
    assert len(read_by["big"]) == 2000
    assert len(set(read_by["big"])) == 2
