"""`pixit separate` with several worker processes (the path several GPUs take), on CPU: every recording
is done exactly once, an interrupted batch resumes, machines (NODE_RANK) and torchrun share the work,
and a batch of windows that would not fit in memory is made smaller."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
COMMON = ["--device", "cpu", "--embedding", "mfcc", "--quiet"]


@pytest.fixture(scope="module")
def meetings(tmp_path_factory) -> Path:
    from conftest import write_meeting

    folder = tmp_path_factory.mktemp("workers")
    for i in range(4):
        write_meeting(folder, f"m{i}", duration=8.0, num_speakers=2, seed=40 + i)
    return folder


def start(*args, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core.cli", *map(str, args)], cwd=ROOT, env=env or ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def done_lines(stdout: str) -> dict[str, list[str]]:
    """uri -> the worker lines that report it separated."""
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        m = re.match(r"worker (\d+)/(\d+): \[\d+/\d+\] (\S+): \d+ speakers", line)
        if m:
            found.setdefault(m.group(3), []).append(m.group(1))
    return found


def complete(out: Path, uris) -> bool:
    return all((out / f"{u}.json").is_file() and (out / f"{u}.rttm").is_file() for u in uris)


def test_local_workers_do_every_recording_once(meetings, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    proc = start("separate", meetings, "--out", out, "--model", tiny_model_dir, "--devices", "2", *COMMON)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    uris = sorted(p.stem for p in meetings.glob("*.wav"))
    found = done_lines(stdout)
    assert sorted(found) == uris and all(len(w) == 1 for w in found.values()), stdout
    assert {found[u][0] for u in uris[0::2]} == {"0"} and {found[u][0] for u in uris[1::2]} == {"1"}
    assert re.search(r"^2 workers \(2 on this machine, \d+ CPU thread\(s\) each\)$", stdout, re.M), stdout
    assert complete(out, uris)


def test_interrupted_workers_resume(meetings, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    uris = sorted(p.stem for p in meetings.glob("*.wav"))
    proc = start("separate", meetings, "--out", out, "--model", tiny_model_dir, "--devices", "2", *COMMON,
                 start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(out.glob("*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl+C in the terminal: the whole process group
    proc.communicate(timeout=120)
    first = {p.stem: p.stat().st_mtime_ns for p in out.glob("*.json")}
    assert 1 <= len(first) <= len(uris)
    proc = start("separate", meetings, "--out", out, "--model", tiny_model_dir, "--devices", "2", *COMMON)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    assert complete(out, uris)
    redone = done_lines(stdout)
    assert not set(redone) & set(first), "finished recordings were separated again"
    assert sorted(set(redone) | set(first)) == uris and all(len(w) == 1 for w in redone.values())
    assert all((out / f"{u}.json").stat().st_mtime_ns == t for u, t in first.items())


def test_two_machines_share_the_recordings(meetings, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    procs = [start("separate", meetings, "--out", out, "--model", tiny_model_dir, "--num-nodes", "2", "--devices", "1",
                   *COMMON, env={**ENV, "NODE_RANK": str(node)}) for node in (0, 1)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e for _, e in outputs]
    found = [done_lines(o) for o, _ in outputs]
    uris = sorted(p.stem for p in meetings.glob("*.wav"))
    assert sorted(found[0]) == uris[0::2] and sorted(found[1]) == uris[1::2]
    assert complete(out, uris)


def test_torchrun_processes_are_the_workers(meetings, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "core.cli", "separate", str(meetings), "--out", str(out), "--model", str(tiny_model_dir),
                             *COMMON], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    found = done_lines(stdout)
    uris = sorted(p.stem for p in meetings.glob("*.wav"))
    assert sorted(found) == uris and all(len(w) == 1 for w in found.values())


def test_a_batch_that_does_not_fit_is_made_smaller(meetings, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    wav = sorted(meetings.glob("*.wav"))[0]
    proc = start("separate", wav, "--out", out, "--model", tiny_model_dir, "--batch-size", "100000000", *COMMON)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert re.search(r"warning: batch of 100000000 windows needs about [\d.]+ GB but [\d.]+ GB is free: "
                     r"using batches of \d+", stdout), stdout
    summary = json.loads((out / f"{wav.stem}.json").read_text())
    assert any("using batches of" in w for w in summary["warnings"])
    assert summary["params"]["batch_size"] < 100000000
