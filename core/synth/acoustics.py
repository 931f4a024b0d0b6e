"""How a synthetic meeting is recorded: rooms, background noise, level differences, channel.

Why: a separation model trained on one kind of room and one kind of hiss has not heard a meeting
room, a hum, a laptop fan, a door, distant chatter or a phone line. Everything here is drawn per
meeting from an AcousticsConfig: `ACOUSTICS["basic"]` is the original set-up (statistical
exponential-decay rooms, coloured noise at 15-30 dB SNR), `ACOUSTICS["room"]` a quiet simulated
meeting room (the demo meeting), `ACOUSTICS["varied"]` the training mix of the shipped model:

- rooms: shoebox rooms simulated with pyroomacoustics' image-source method (3-10 x 3-8 x 2.4-3.5 m,
  RT60 0.15-0.9 s, air absorption; falls back to the statistical model when pyroomacoustics is
  not installed), one microphone on the table and each speaker 0.4-4.5 m away (far field), 5 %
  of the meetings dry. The direct path is aligned to sample 0, so the RTTM of the dry speech
  still marks where each source starts;
- levels: +-6 dB per speaker plus the distance law (-20 log10 d, at most -12 dB);
- noise (1-3 kinds summed, 5-30 dB SNR): coloured (white to brown), mains hum with harmonics,
  ventilation (low-passed rumble with a slow wobble), clicks (keyboard, cups, door: decaying
  bursts), babble (distant talkers, built by the caller from other voices' utterances);
- channel: microphone colouration (random low / high shelving, 50 %), telephone band (300-3400 Hz,
  15 %), both linear and applied to every source and the noise alike; codecs (20 %: 8 kHz mu-law,
  Ogg Vorbis, Opus or MP3 at a low bit rate) are not linear, so what a codec changes in the mixture
  is added to the noise, which keeps mixture == sum(sources) + noise exactly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace

import numpy as np

from core.synth.activity import SAMPLE_RATE


@dataclass(frozen=True)
class AcousticsConfig:
    """Ranges the recording chain of one meeting is drawn from (see the module docstring)."""

    rooms: str = "statistical"  # "statistical" | "simulated" (pyroomacoustics)
    rt60: tuple[float, float] = (0.2, 0.6)
    drr_db: tuple[float, float] = (0.0, 10.0)  # statistical rooms: direct-to-reverberant ratio
    distance: tuple[float, float] = (0.5, 2.0)  # simulated rooms: speaker to microphone (m)
    distance_attenuation: bool = False
    level_range_db: float = 6.0  # per-speaker level: +- this
    snr_db: tuple[float, float] = (15.0, 30.0)
    noise_kinds: tuple[str, ...] = ("coloured",)
    max_noise_kinds: int = 1
    dry_probability: float = 0.0
    colouration_probability: float = 0.0
    telephone_probability: float = 0.0
    codec_probability: float = 0.0


NOISE_KINDS = ("coloured", "hum", "ventilation", "clicks", "babble")
CODECS = ("mulaw", "vorbis", "opus", "mp3")
ACOUSTICS = {
    "basic": AcousticsConfig(),
    "room": AcousticsConfig(rooms="simulated", rt60=(0.25, 0.5), distance=(0.6, 1.8), distance_attenuation=True,
                            snr_db=(22.0, 32.0), noise_kinds=("coloured", "ventilation", "hum"), max_noise_kinds=2),
    "varied": AcousticsConfig(rooms="simulated", rt60=(0.15, 0.9), distance=(0.4, 4.5), distance_attenuation=True,
                              snr_db=(5.0, 30.0), noise_kinds=NOISE_KINDS, max_noise_kinds=3, dry_probability=0.05,
                              colouration_probability=0.5, telephone_probability=0.15, codec_probability=0.2),
}


@dataclass
class Room:
    """One meeting's room: an impulse response per speaker (None: dry) and what was drawn."""

    irs: list[np.ndarray] | None
    gains_db: np.ndarray  # extra level per speaker from the distance law (0 without it)
    meta: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ rooms
def room_impulse_response(rng: np.random.Generator, rt60: float, drr_db: float,
                          sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Direct path (1 at t=0) + exponentially decaying, slightly low-passed noise tail whose
    energy is `drr_db` below the direct path; decays by 60 dB in `rt60` seconds."""
    from scipy.signal import lfilter

    length = int(rt60 * sample_rate)
    delay = int(rng.uniform(0.002, 0.008) * sample_rate)  # first reflection after the direct path
    t = np.arange(length - delay) / sample_rate
    tail = rng.standard_normal(length - delay) * np.exp(-6.9078 * t / rt60)
    tail = lfilter([0.6], [1.0, -0.4], tail)  # mild absorption of high frequencies
    tail *= np.sqrt(10 ** (-drr_db / 10) / max(float(np.sum(tail ** 2)), 1e-12))
    h = np.zeros(length)
    h[0] = 1.0
    h[delay:] = tail
    return h



def simulated_room(rng: np.random.Generator, n: int, rt60: float, distance: tuple[float, float]) -> tuple[list[np.ndarray], dict]:
    """Shoebox room (pyroomacoustics image sources, order <= 25), one microphone, `n` talkers at
    `distance` metres; each response is cut to start at its direct path, scaled to a direct path
    of 1 (the distance law is applied as a level, see Room.gains_db)."""
    import pyroomacoustics as pra

    dims = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 3.5])
    absorption, order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(float(absorption)), max_order=int(min(order, 25)),
                       air_absorption=True)
    mic = np.array([*rng.uniform([0.8, 0.8], dims[:2] - 0.8), rng.uniform(0.7, 1.2)])
    room.add_microphone(mic)
    distances = []
    for _ in range(n):
        for _ in range(50):  # a place inside the room at about the drawn distance
            d = float(rng.uniform(*distance))
            angle = rng.uniform(0, 2 * np.pi)
            pos = np.array([mic[0] + d * np.cos(angle), mic[1] + d * np.sin(angle), rng.uniform(1.1, 1.7)])
            if np.all(pos[:2] > 0.3) and np.all(pos[:2] < dims[:2] - 0.3):
                break
        else:
            pos = np.array([*(dims[:2] / 2 + 0.3), 1.4])
        room.add_source(pos)
        distances.append(float(np.linalg.norm(pos - mic)))
    room.compute_rir()
    irs = []
    for k in range(n):
        h = np.asarray(room.rir[0][k], dtype=np.float64)
        start = int(np.argmax(np.abs(h)))
        irs.append(h[start:] / h[start])
    return irs, {"room_m": [round(float(x), 2) for x in dims], "distance_m": [round(d, 2) for d in distances]}


def draw_room(rng: np.random.Generator, n: int, cfg: AcousticsConfig, reverb: bool = True) -> Room:
    """The room of one meeting with `n` speakers (statistical or simulated, see AcousticsConfig)."""
    rt60 = float(rng.uniform(*cfg.rt60))
    drrs = rng.uniform(*cfg.drr_db, size=n)
    dry = rng.random() < cfg.dry_probability
    gains = np.zeros(n)
    if not reverb or dry:
        return Room(None, gains, {"reverb": False, "rt60": None})
    if cfg.rooms == "simulated" and _have_pyroomacoustics():
        irs, meta = simulated_room(rng, n, rt60, cfg.distance)
        if cfg.distance_attenuation:
            gains = np.maximum(-20 * np.log10(np.maximum(meta["distance_m"], 1.0)), -12.0)
        return Room(irs, gains, {"reverb": True, "room": "simulated", "rt60": round(rt60, 3), **meta})
    irs = [room_impulse_response(rng, rt60, float(d)) for d in drrs]
    return Room(irs, gains, {"reverb": True, "room": "statistical", "rt60": round(rt60, 3),
                             "drr_db": [round(float(d), 2) for d in drrs]})


def _have_pyroomacoustics() -> bool:
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        return False
    return True


# ------------------------------------------------------------------------------------------ noise
NOISE_BLOCK = 1 << 18  # 16.4 s: long noise is shaped block by block (bounded memory)




def coloured_noise(rng: np.random.Generator, num_samples: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f^exponent power spectrum (0 white, 1 pink, 2 brown) above 20 Hz.

    Shaped in the frequency domain, in independent blocks cross-faded with sqrt-Hann windows
    (so the variance stays constant) when the signal is longer than one block."""

    def shaped(n: int) -> np.ndarray:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
        block = np.fft.irfft(spectrum / freqs ** (exponent / 2), n=n)
        block -= block.mean()
        return block / max(float(np.sqrt(np.mean(block ** 2))), 1e-12)

    if num_samples <= NOISE_BLOCK:
        return shaped(max(num_samples, 2))[:num_samples]
    hop = NOISE_BLOCK // 2
    window = np.sqrt(np.hanning(NOISE_BLOCK + 1)[:-1])  # periodic: w^2 overlap-adds to 1
    noise = np.zeros(num_samples + NOISE_BLOCK)
    for start in range(-hop, num_samples, hop):
        lo = max(start, 0)
        noise[lo:start + NOISE_BLOCK] += (shaped(NOISE_BLOCK) * window)[lo - start:]
    noise = noise[:num_samples]
    return noise / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)


# ----------------------------------------------------------------------------------------------
# meetings and corpora


def _unit(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)


def hum(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and a few harmonics with random levels, slowly wobbling."""
    t = np.arange(num_samples) / SAMPLE_RATE
    base = 50.0 if rng.random() < 0.5 else 60.0
    wobble = 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    x = sum(rng.uniform(0.1, 1.0) / h * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi))
            for h in range(1, 6))
    return _unit(x * wobble)


def ventilation(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Fan / air-conditioning: low-passed noise with a slow level wobble and a faint blade tone."""
    from scipy.signal import butter, sosfilt

    sos = butter(2, rng.uniform(200, 1200), fs=SAMPLE_RATE, output="sos")
    x = _unit(sosfilt(sos, rng.standard_normal(num_samples)))
    t = np.arange(num_samples) / SAMPLE_RATE
    x *= 1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    return _unit(x + 0.1 * np.sin(2 * np.pi * rng.uniform(80, 300) * t))


def clicks(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Sparse impulsive events (typing, cups, a door): decaying, filtered bursts, 0.3-3 per second."""
    from scipy.signal import butter, sosfilt

    x = np.zeros(num_samples)
    rate = rng.uniform(0.3, 3.0)
    count = int(rng.poisson(rate * num_samples / SAMPLE_RATE))
    for start in rng.integers(0, max(1, num_samples), size=count):
        length = int(rng.uniform(0.005, 0.15) * SAMPLE_RATE)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (length / rng.uniform(3, 8)))
        lo = rng.uniform(200, 2000)
        burst = sosfilt(butter(2, [lo, min(7800.0, lo * rng.uniform(2, 6))], btype="band", fs=SAMPLE_RATE, output="sos"), burst)
        end = min(num_samples, start + length)
        x[start:end] += burst[: end - start] * 10 ** (rng.uniform(-20, 0) / 20)
    if not x.any():  # a short meeting may draw no event: one in the middle
        x[num_samples // 2] = 1.0
    return _unit(x)


def noise_mix(rng: np.random.Generator, num_samples: int, cfg: AcousticsConfig, babble=None) -> tuple[np.ndarray, list[str]]:
    """Unit-RMS background noise of 1..max_noise_kinds kinds (each kind at a random relative level).
    `babble(rng, num_samples)` makes distant chatter (the caller has the voices); without it,
    babble is not drawn."""
    kinds = [k for k in cfg.noise_kinds if k != "babble" or babble is not None] or ["coloured"]
    count = int(rng.integers(1, min(cfg.max_noise_kinds, len(kinds)) + 1))
    chosen = [kinds[i] for i in sorted(rng.choice(len(kinds), size=count, replace=False))]
    makers = {"coloured": lambda: coloured_noise(rng, num_samples, float(rng.uniform(0.0, 2.0))),
              "hum": lambda: hum(rng, num_samples), "ventilation": lambda: ventilation(rng, num_samples),
              "clicks": lambda: clicks(rng, num_samples), "babble": lambda: _unit(babble(rng, num_samples))}
    total = np.zeros(num_samples)
    for kind in chosen:
        total += makers[kind]() * 10 ** (rng.uniform(-10, 0) / 20)
    return _unit(total), chosen


# ---------------------------------------------------------------------------------------- channel
def draw_channel(rng: np.random.Generator, cfg: AcousticsConfig) -> dict:
    """The channel of one meeting: colouration shelves, telephone band, codec (None: none)."""
    channel = {"colouration": None, "telephone": False, "codec": None}
    if rng.random() < cfg.colouration_probability:
        channel["colouration"] = {"low_db": round(float(rng.uniform(-8, 6)), 2), "high_db": round(float(rng.uniform(-10, 4)), 2),
                                  "low_hz": round(float(rng.uniform(150, 500)), 1), "high_hz": round(float(rng.uniform(2500, 6000)), 1)}
    channel["telephone"] = bool(rng.random() < cfg.telephone_probability)
    if rng.random() < cfg.codec_probability:
        channel["codec"] = str(CODECS[int(rng.integers(len(CODECS)))])
    return channel


def _shelf(x: np.ndarray, freq: float, gain_db: float, high: bool) -> np.ndarray:
    """x plus (gain - 1) times its low-passed (or high-passed) part: a first-order shelf."""
    from scipy.signal import butter, sosfilt

    part = sosfilt(butter(1, freq, btype="highpass" if high else "lowpass", fs=SAMPLE_RATE, output="sos"), x)
    return x + (10 ** (gain_db / 20) - 1) * part


def apply_linear_channel(x: np.ndarray, channel: dict) -> np.ndarray:
    """Colouration and telephone band of `channel` on one signal (linear: apply to every part)."""
    from scipy.signal import butter, sosfilt

    y = np.asarray(x, dtype=np.float64)
    c = channel.get("colouration")
    if c:
        y = _shelf(_shelf(y, c["low_hz"], c["low_db"], False), c["high_hz"], c["high_db"], True)
    if channel.get("telephone"):
        y = sosfilt(butter(4, [300, 3400], btype="band", fs=SAMPLE_RATE, output="sos"), y)
    return y


def apply_codec(mixture: np.ndarray, codec: str | None) -> np.ndarray:
    """The mixture after an encode / decode round trip (same length, delay removed)."""
    import soundfile as sf
    from scipy.signal import resample_poly

    if codec is None:
        return mixture
    x = np.clip(mixture, -1.0, 1.0).astype(np.float64)
    if codec == "mulaw":  # G.711: 8 kHz, 8-bit mu-law
        narrow = resample_poly(x, 1, 2)
        mu = 255.0
        q = np.round(np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu) * 127) / 127
        y = resample_poly(np.sign(q) * np.expm1(np.abs(q) * np.log1p(mu)) / mu, 2, 1)
    else:
        fmt, subtype = {"vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III")}[codec]
        buffer = io.BytesIO()
        sf.write(buffer, x.astype(np.float32), SAMPLE_RATE, format=fmt, subtype=subtype, compression_level=0.9)
        buffer.seek(0)
        y, _ = sf.read(buffer, dtype="float64")
    y = _align(x, np.asarray(y, dtype=np.float64))
    return y


def _align(reference: np.ndarray, y: np.ndarray, max_lag: int = 4000) -> np.ndarray:
    """`y` shifted by the lag (|lag| <= max_lag) that best matches `reference`, cut / padded to its length."""
    from scipy.signal import correlate

    n = len(reference)
    probe = slice(0, min(n, 5 * SAMPLE_RATE))
    corr = correlate(y[: probe.stop + max_lag], reference[probe], mode="full", method="fft")
    centre = probe.stop - 1
    window = corr[max(0, centre - max_lag): centre + max_lag + 1]
    lag = int(np.argmax(window)) + max(0, centre - max_lag) - centre
    out = np.zeros(n)
    src = y[max(0, lag):]
    dst = max(0, -lag)
    m = min(n - dst, len(src))
    out[dst: dst + m] = src[:m]
    return out


def with_defaults(cfg: AcousticsConfig | str | None) -> AcousticsConfig:
    """An AcousticsConfig from a preset name, a config, or None ("basic")."""
    if cfg is None:
        return ACOUSTICS["basic"]
    if isinstance(cfg, str):
        from core.errors import PixitError

        if cfg not in ACOUSTICS:
            raise PixitError(f"--acoustics must be one of {', '.join(ACOUSTICS)}, got {cfg!r}")
        return ACOUSTICS[cfg]
    return replace(cfg)
