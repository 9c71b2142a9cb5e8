"""``--strategy multi-worker`` run for real: two worker processes on this machine, joined by a TF_CONFIG that
names two loopback ports, train a quick dcgan together; the chief writes the run's files, the other worker
nothing (it trains in a temporary folder that it deletes)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = {"generator.keras", "samples.png", "history.json", "run.json"}


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_train_and_only_the_chief_writes(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    started = []
    for index in range(2):
        scratch = tmp_path / f"tmp{index}"
        scratch.mkdir()
        env = {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(ROOT),
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        command = [sys.executable, "-m", "gan_lessons", "train", "dcgan", "--quick", "--epochs", "1",
                   "--batch-size", "64", "--strategy", "multi-worker", "--out", str(tmp_path / f"out{index}")]
        started.append(subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [process.communicate(timeout=240)[0] for process in started]
    finally:
        for process in started:
            process.kill()
    for process, output in zip(started, outputs):
        assert process.returncode == 0, output[-3000:]
    chief, other = outputs
    assert "MultiWorkerMirroredStrategy over 2 replicas" in chief and "Finished: wrote" in chief
    assert other.startswith(f"Not the chief: training beside it, which writes {tmp_path / 'out1'}")
    assert CONTRACT <= {p.name for p in (tmp_path / "out0").iterdir()}
    record = json.loads((tmp_path / "out0" / "run.json").read_text())
    assert record["status"] == "finished" and record["batch_size"] == 64
    history = json.loads((tmp_path / "out0" / "history.json").read_text())
    assert len(history["epoch"]) == 1 and all(isinstance(v[0], (int, float)) for v in history.values())  # scalars
    assert not (tmp_path / "out1").exists() and not any((tmp_path / "tmp1").iterdir())  # nothing kept
