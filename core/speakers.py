"""Known speakers: the people of corrected meetings, recognised in the next ones.

A profile is the unit mean speaker embedding of one named speaker (the pipeline's own embedding back
end, on the parts of the corrected meeting where that speaker talks alone). Profiles are stored as
`speakers.json` in a model folder (fine-tuning writes them; `pixit separate --speakers FILE` takes
others). With profiles, the pipeline clusters as usual and then matches its speakers to the known
ones (one to one, the closest centroids first, within MATCH_DISTANCE): the output names the people
("alice" rather than SPEAKER_00) and a speaker nobody knows stays SPEAKER_nn. Letting the profiles
steer the clustering itself was measured and made it worse (tests/bench_retrain.py, README): the
same voice in another room lies farther from its profile than two voices of one room lie apart.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import PixitError

PROFILE_FILE = "speakers.json"
FORMAT = "pixit-speaker-profiles"
PIECE_SECONDS = (1.0, 3.0)  # single-speaker speech is embedded in pieces of 1 to 3 s
MAX_PIECES = 60  # per speaker (a few minutes of speech is plenty for a centroid)
MATCH_DISTANCE = 1.0  # Euclidean, unit vectors (0..2): a cluster farther from every profile is a new speaker


@dataclass
class SpeakerProfiles:
    embedding: str  # the core.embeddings back end the vectors come from
    names: list[str]
    vectors: np.ndarray  # (S, D) unit vectors
    seconds: list[float]  # speech each profile was made from

    def save(self, path: str | os.PathLike) -> None:
        from core.fileio import atomic_write_json

        atomic_write_json(Path(path), {
            "format": FORMAT, "version": 1, "embedding": self.embedding,
            "speakers": [{"name": n, "seconds": round(s, 2), "vector": [round(float(x), 6) for x in v]}
                         for n, s, v in zip(self.names, self.seconds, self.vectors)]})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SpeakerProfiles":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            rows = data["speakers"]
            vectors = np.asarray([r["vector"] for r in rows], np.float32)
            names = [str(r["name"]) for r in rows]
            if not rows or vectors.ndim != 2 or not np.isfinite(vectors).all() or len(set(names)) != len(names):
                raise ValueError("no speakers, unequal vectors, non-finite values or repeated names")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PixitError(f"{path.name}: not a speaker profile file ({str(exc).splitlines()[0]})") from None
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return cls(str(data.get("embedding", "")), names, vectors / np.maximum(norms, 1e-12),
                   [float(r.get("seconds", 0.0)) for r in rows])


def label_for(name: str) -> str:
    """A speaker name as one RTTM field (runs of whitespace become '_')."""
    return re.sub(r"\s+", "_", name.strip()) or "speaker"


def alone_pieces(annotation, uem, label: str) -> list[tuple[float, float]]:
    """(start, end) pieces of 1-3 s where `label` speaks alone, inside the annotated regions."""
    from pyannote.core import Timeline

    own = annotation.label_timeline(label).support()
    others = Timeline([s for other in annotation.labels() if other != label
                       for s in annotation.label_timeline(other)]).support()
    alone = own.extrude(others).crop(uem, mode="intersection") if uem is not None else own.extrude(others)
    lo, hi = PIECE_SECONDS
    pieces = []
    for seg in alone.support():
        t = seg.start
        while seg.end - t >= lo:
            pieces.append((t, min(seg.end, t + hi)))
            t += hi
    return pieces


def build_profiles(recordings, encoder, embedding_name: str) -> SpeakerProfiles:
    """A profile per speaker label of the (corrected) recordings, from their single-speaker speech."""
    from core.audio import SAMPLE_RATE, load_audio

    pieces: dict[str, list[np.ndarray]] = {}
    for rec in recordings:
        waveform = load_audio(rec.audio)
        for label in rec.labels:
            for a, b in alone_pieces(rec.annotation, rec.uem, label):
                if len(pieces.setdefault(label, [])) < MAX_PIECES:
                    pieces[label].append(waveform[int(a * SAMPLE_RATE):int(b * SAMPLE_RATE)])
    names = sorted(n for n, p in pieces.items() if p)
    if not names:
        raise PixitError("no speaker talks alone for a second or more in the corrected regions: no profile")
    vectors, seconds = [], []
    for name in names:
        emb = np.asarray(encoder(pieces[name]), np.float64)
        mean = emb.mean(axis=0)
        vectors.append(mean / max(np.linalg.norm(mean), 1e-12))
        seconds.append(sum(len(w) for w in pieces[name]) / SAMPLE_RATE)
    return SpeakerProfiles(embedding_name, names, np.asarray(vectors, np.float32), seconds)


def profiles_of_model(model) -> SpeakerProfiles | None:
    """The profiles stored in a model folder (None for a model without them, or not a folder)."""
    if not isinstance(model, (str, Path)):
        return None
    from core.models.resolve import resolve_model

    try:
        path = Path(resolve_model(model).path) / PROFILE_FILE
    except PixitError:
        return None
    return SpeakerProfiles.load(path) if path.is_file() else None


def name_speakers(embeddings, hard: np.ndarray, n_global: int, profiles: SpeakerProfiles,
                  max_distance: float = MATCH_DISTANCE) -> dict[int, str]:
    """global speaker -> known name: the centroid of each global speaker's embeddings matched one to
    one to the profiles (Hungarian on distances), pairs farther than `max_distance` left unnamed."""
    from scipy.optimize import linear_sum_assignment

    from core.clustering import centroids_of

    if n_global == 0 or len(embeddings.vectors) == 0:
        return {}
    owner = hard[embeddings.chunk, embeddings.local]
    keep = owner >= 0
    if not keep.any():
        return {}
    centroids = centroids_of(embeddings.vectors[keep], owner[keep], n_global)
    present = np.linalg.norm(centroids, axis=1) > 0.5  # a speaker without embeddings has a zero centroid
    distance = np.sqrt(np.maximum(0.0, 2.0 - 2.0 * centroids @ profiles.vectors.T))
    distance[~present] = np.inf
    rows, cols = linear_sum_assignment(np.where(np.isfinite(distance), distance, 1e6))
    return {int(g): profiles.names[int(k)] for g, k in zip(rows, cols) if distance[g, k] <= max_distance}
