"""Helpers shared by the app's tests and its benchmark: a tiny random model, a synthetic model
result for a long meeting, synthetic meetings, and a launched server with a client."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# pipeline settings that make the tiny model's run take seconds (coarse steps, small clusters allowed)
FAST_PIPELINE = {"step": 2.5, "min_embedding_duration": 0.1, "min_cluster_size": 1, "min_duration_on": 0.2,
                 "min_duration_off": 0.3}


def tiny_model(folder: str | Path, seed: int = 0, spread: float = 10.0) -> Path:
    """A small randomly initialised ToTaToNet saved to `folder` (fast on 2 CPU cores).

    A random model's activations are flat (about 0.5 everywhere), so the pipeline would find no
    speaker and leave nothing to edit. The diarization head's output layer is therefore given
    large random weights and a bias centred on a calibration signal: its activations then vary
    with the input around the threshold, and the pipeline finds a few (meaningless) speakers."""
    import torch

    from core.models.totatonet import ToTaToNet, ToTaToNetConfig

    cfg = ToTaToNetConfig(
        n_sources=3, n_filters=16, kernel_size=32, stride=16, masker="dprnn",
        masker_params={"bn_chan": 16, "hid_size": 16, "chunk_size": 50, "hop": 25, "n_repeats": 1},
        diar_pool=8, diar_hidden=16, diar_layers=1,
    )
    torch.manual_seed(seed)
    model = ToTaToNet(cfg).eval()
    heads = [m for m in model.modules() if isinstance(getattr(m, "out", None), torch.nn.Linear)
             and m.out.out_features == 1]
    with torch.no_grad():
        for head in heads:
            head.out.weight.normal_(0.0, spread)
            head.out.bias.zero_()
        import tempfile

        import soundfile as sf

        with tempfile.TemporaryDirectory() as tmp:
            calib = sf.read(synthetic_meeting(tmp, duration=10.0, seed=seed + 7)["audio"], dtype="float32")[0]
        _, act = model(torch.from_numpy(calib.reshape(2, -1)))
        logit = torch.log(act.clamp(1e-6, 1 - 1e-6) / (1 - act.clamp(1e-6, 1 - 1e-6)))
        for head in heads:
            head.out.bias.fill_(-float(logit.median()))
    folder = Path(folder)
    model.save(folder)
    return folder


def synthetic_meeting(folder: str | Path, duration: float = 20.0, num_speakers: int = 3, seed: int = 1,
                      uri: str = "meeting") -> dict[str, Path]:
    """A synthetic annotated meeting (wav + rttm + uem), from the test suite's generator."""
    import sys

    repo = Path(__file__).resolve().parent.parent
    if str(repo) not in sys.path:
        sys.path.insert(0, str(repo))
    from conftest import write_meeting

    return write_meeting(Path(folder), uri, duration=duration, num_speakers=num_speakers, seed=seed)


def tiny_workbench(tmp: Path, duration: float, seed: int, **settings):
    """What the app tests serve: a tiny model, one synthetic two-speaker meeting, and Settings
    using them (workspace tmp/ws, fast pipeline, 20 MB uploads). Returns (meeting, settings)."""
    from app.session import Settings

    model = tiny_model(tmp / "model")
    meeting = synthetic_meeting(tmp / "data", duration=duration, num_speakers=2, seed=seed)
    return meeting, Settings(root=tmp / "ws", model=str(model), params=FAST_PIPELINE, max_upload_mb=20, **settings)


def long_waveform(duration: float, seed: int = 0) -> np.ndarray:
    """Noise bursts with silences: a cheap stand-in for a long recording."""
    rng = np.random.default_rng(seed)
    n = int(duration * 16000)
    env = np.repeat((rng.random(int(duration * 4) + 1) > 0.3).astype(np.float32), 4000)[:n]
    return (0.1 * env * rng.standard_normal(n).astype(np.float32)).astype(np.float32)


def synthetic_result(duration: float, n_segments: int, n_speakers: int = 4, seed: int = 0,
                     with_sources: bool = True, frame_step: float = 0.016):
    """Something shaped like a core.pipeline.SeparationResult (annotation, activations, sources,
    labels) for a meeting of `duration` seconds with `n_segments` turns: benchmark input."""
    from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature

    rng = np.random.default_rng(seed)
    labels = [f"SPEAKER_{k:02d}" for k in range(n_speakers)]
    ann = Annotation(uri="bench")
    starts = np.sort(rng.uniform(0, duration - 5, n_segments))
    n_frames = int(duration / frame_step)
    act = np.zeros((n_frames, n_speakers), np.float32)
    for i, a in enumerate(starts):
        b = min(duration, a + rng.uniform(0.3, 4.0))
        k = int(rng.integers(n_speakers))
        ann[Segment(float(a), float(b)), i] = labels[k]
        act[int(a / frame_step):int(b / frame_step), k] = 0.9
    act += rng.uniform(0, 0.2, act.shape).astype(np.float32)
    np.clip(act, 0, 1, out=act)
    sources = None
    if with_sources:
        n = int(duration * 16000)
        sources = np.zeros((n, n_speakers), np.float32)
        for s, _, lab in ann.itertracks(yield_label=True):
            k = labels.index(lab)
            a, b = int(s.start * 16000), int(s.end * 16000)
            sources[a:b, k] = 0.05 * rng.standard_normal(b - a).astype(np.float32)
    return SimpleNamespace(
        uri="bench", annotation=ann, labels=labels, sources=sources, sample_rate=16000, duration=duration,
        speaker_note="",
        activations=SlidingWindowFeature(act, SlidingWindow(start=0.0, duration=frame_step, step=frame_step)),
    )


def long_meeting_session(root: str | Path, duration: float, n_segments: int, n_speakers: int = 4):
    """A Session (workspace under `root`) with a generated `duration`-second meeting open and a
    synthetic model result of `n_segments` turns stored as its run: the app benchmarks' input."""
    import soundfile as sf

    from app import meetings, runs
    from app.session import Session, Settings
    from app.workspace import new_session_id

    root = Path(root)
    S = Session(Settings(root=root / "ws"), new_session_id())
    wav = root / "long.wav"
    sf.write(wav, long_waveform(duration), 16000, subtype="PCM_16")
    meetings.add_audio(S, wav, "long.wav")
    runs.store_result(S, synthetic_result(duration, n_segments, n_speakers, with_sources=False), "synthetic", "synthetic")
    return S


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(settings, download_dir: str | Path):
    """Launch the workbench on a free localhost port; yields (demo, url, gradio_client.Client)."""
    from gradio_client import Client

    from app.main import build_demo, launch

    demo = build_demo(settings)
    _, url, _ = launch(demo, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        yield demo, url, Client(url, verbose=False, download_files=str(download_dir))
    finally:
        demo.close()


# ------------------------------------------------------------------ the raw Gradio protocol (httpx)
def visit(url: str) -> dict:
    """The cookies a new visitor gets from the server (what a browser or gradio_client receives
    with the app's config before calling anything)."""
    import httpx

    return dict(httpx.get(url.rstrip("/") + "/config", timeout=30).cookies)


def find_fn(demo, name: str):
    """The event of `demo` whose Python function is called `name`."""
    for fn in demo.fns.values():
        if getattr(fn.fn, "__name__", None) == name:
            return fn
    raise KeyError(name)


def raw_call(url: str, cookies: dict | None, session_hash: str, fn, *values, timeout: float = 60.0) -> dict:
    """Join the queue for `fn` as a hand-written client would, then read its result from the
    event stream. Returns {"status": HTTP status of the join, "success": bool, "output": ...}."""
    import json

    import gradio as gr
    import httpx

    base = url.rstrip("/") + "/gradio_api"
    vals = iter(values)
    data = [None if isinstance(b, gr.State) else next(vals, None) for b in fn.inputs]
    body = {"data": data, "fn_index": fn._id, "session_hash": session_hash, "event_data": None, "trigger_id": None}
    r = httpx.post(base + "/queue/join", json=body, cookies=cookies, timeout=timeout)
    if r.status_code != 200:
        return {"status": r.status_code, "success": False, "output": r.text}
    event_id = r.json()["event_id"]
    with httpx.stream("GET", base + "/queue/data", params={"session_hash": session_hash}, cookies=cookies,
                      timeout=timeout) as stream:
        if stream.status_code != 200:
            return {"status": stream.status_code, "success": False, "output": stream.read().decode()}
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                return {"status": 200, "success": bool(msg.get("success")), "output": msg.get("output")}
    return {"status": 200, "success": False, "output": "no result"}


def raw_upload(url: str, cookies: dict | None, path: str | Path) -> list[str]:
    """POST a file to Gradio's upload route; returns the server paths it answers with."""
    import httpx

    with open(path, "rb") as fh:
        r = httpx.post(url.rstrip("/") + "/gradio_api/upload", files={"files": (Path(path).name, fh)},
                       cookies=cookies, timeout=60)
    r.raise_for_status()
    return r.json()


def file_data(path: str) -> dict:
    """A file input value naming a server path (as a client would send it back)."""
    return {"path": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def refused(answer) -> str:
    """The message of a refused request, from its answer: the status line (the VIEW's second
    output, or the only output), which says "Not done". A refusal keeps the view, so it is an
    answer, not an error."""
    status = answer[1] if isinstance(answer, (tuple, list)) else answer
    assert str(status).startswith("**Not done:**"), status
    return str(status)
