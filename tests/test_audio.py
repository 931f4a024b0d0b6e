import numpy as np
import pytest
import soundfile as sf

from core.audio import SAMPLE_RATE, audio_info, load_audio, save_audio
from core.errors import AudioError


def tone(sr: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 44100, 48000])
def test_resamples_to_16k_preserving_duration_and_pitch(tmp_path, sr):
    path = tmp_path / "a.wav"
    sf.write(path, tone(sr, 1.5), sr)
    x = load_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert abs(len(x) - int(1.5 * SAMPLE_RATE)) <= 2
    spectrum = np.abs(np.fft.rfft(x))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(x)
    assert abs(peak_hz - 440) < 5


def test_stereo_is_downmixed(tmp_path):
    left, right = tone(16000, 1.0), np.zeros(16000, np.float32)
    sf.write(tmp_path / "s.flac", np.stack([left, right], axis=1), 16000)
    x = load_audio(tmp_path / "s.flac")
    np.testing.assert_allclose(x, left / 2, atol=1e-3)
    assert audio_info(tmp_path / "s.flac")[2] == 2


def test_ogg_is_readable(tmp_path):
    sf.write(tmp_path / "a.ogg", tone(16000, 1.0), 16000, format="OGG", subtype="VORBIS")
    assert abs(len(load_audio(tmp_path / "a.ogg")) - 16000) < 100


@pytest.mark.parametrize(
    "content, message",
    [(b"", "cannot read audio"), (b"this is not audio at all" * 10, "cannot read audio")],
)
def test_unreadable_files_give_one_line_error(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert "\n" not in str(info.value) and "bad.wav" in str(info.value)


def test_empty_and_non_finite_audio_are_rejected(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    bad = tone(16000, 0.5)
    bad[100] = np.nan
    sf.write(tmp_path / "nan.wav", bad, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="no such audio file"):
        load_audio(tmp_path / "nope.wav")


def test_save_audio_roundtrip_and_leaves_no_temp_files(tmp_path):
    x = tone(16000, 0.25)
    save_audio(tmp_path / "out" / "x.wav", x)
    np.testing.assert_array_equal(load_audio(tmp_path / "out" / "x.wav"), x)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["x.wav"]


def test_written_files_are_readable_by_others(tmp_path):
    from core.fileio import atomic_write_text

    save_audio(tmp_path / "x.wav", tone(16000, 0.1))
    atomic_write_text(tmp_path / "x.txt", "hi")
    for name in ("x.wav", "x.txt"):
        assert (tmp_path / name).stat().st_mode & 0o044 == 0o044
