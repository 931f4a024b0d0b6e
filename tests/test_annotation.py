import pytest
from pyannote.core import Annotation, Segment, Timeline

from core.annotation import (
    check_segment,
    read_rttm,
    read_rttm_single,
    read_uem,
    read_uem_single,
    write_rttm,
    write_uem,
)
from core.errors import AnnotationError


def test_rttm_roundtrip(tmp_path):
    ann = Annotation(uri="meeting")
    ann[Segment(0.5, 2.25)] = "alice"
    ann[Segment(2.0, 4.0)] = "bob"
    ann[Segment(5.0, 6.5)] = "alice"
    write_rttm(ann, tmp_path / "m.rttm")
    lines = (tmp_path / "m.rttm").read_text().splitlines()
    assert lines[0] == "SPEAKER meeting 1 0.500 1.750 <NA> <NA> alice <NA> <NA>"
    back = read_rttm_single(tmp_path / "m.rttm")
    assert back.uri == "meeting"
    assert sorted(back.labels()) == ["alice", "bob"]
    assert back.label_timeline("alice").duration() == pytest.approx(3.25)


def test_rttm_multiple_uris_and_comments(tmp_path):
    (tmp_path / "x.rttm").write_text(
        ";; comment\nSPEAKER a 1 0 1 <NA> <NA> s1 <NA> <NA>\n\nSPEAKER b 1 1 2 <NA> <NA> s2 <NA> <NA>\n"
    )
    anns = read_rttm(tmp_path / "x.rttm")
    assert set(anns) == {"a", "b"}
    with pytest.raises(AnnotationError, match="holds 2 recordings"):
        read_rttm_single(tmp_path / "x.rttm")
    assert read_rttm_single(tmp_path / "x.rttm", uri="b").labels() == ["s2"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("SPEAKER a 1 0 1", "line 1: expected 10 RTTM fields"),
        ("SPEAKER a 1 zero 1 <NA> <NA> s <NA> <NA>", "line 1: start 'zero' is not a number"),
        ("SPEAKER a 1 1 0 <NA> <NA> s <NA> <NA>", "line 1: zero or negative duration"),
        ("SPEAKER a 1 1 -2 <NA> <NA> s <NA> <NA>", "line 1: zero or negative duration"),
        ("SPEAKER a 1 -1 2 <NA> <NA> s <NA> <NA>", "line 1: negative start"),
        ("SPEAKER a 1 8 5 <NA> <NA> s <NA> <NA>", "line 1: segment ends at 13.000s, past the end"),
        ("SPEAKER a 1 nan 5 <NA> <NA> s <NA> <NA>", "line 1: start and end must be finite"),
    ],
)
def test_malformed_rttm_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "bad.rttm"
    path.write_text(line + "\n")
    with pytest.raises(AnnotationError, match=message) as info:
        read_rttm(path, duration=10.0)
    assert str(info.value).startswith("bad.rttm line 1")


def test_binary_and_missing_rttm(tmp_path):
    (tmp_path / "bin.rttm").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(AnnotationError, match="not a text file"):
        read_rttm(tmp_path / "bin.rttm")
    with pytest.raises(AnnotationError, match="no such file"):
        read_rttm(tmp_path / "none.rttm")


def test_uem_roundtrip_merges_overlaps(tmp_path):
    timeline = Timeline([Segment(0, 10), Segment(20, 30)], uri="m")
    write_uem(timeline, tmp_path / "m.uem")
    assert read_uem_single(tmp_path / "m.uem") == timeline
    (tmp_path / "o.uem").write_text("m 1 0 5\nm 1 4 8\n")
    assert list(read_uem(tmp_path / "o.uem")["m"]) == [Segment(0, 8)]
    (tmp_path / "bad.uem").write_text("m 1 5\n")
    with pytest.raises(AnnotationError, match="bad.uem line 1: expected 4 UEM fields"):
        read_uem(tmp_path / "bad.uem")


def test_check_segment_clips_rounding_past_end():
    assert check_segment(1.0, 10.004, duration=10.0) == Segment(1.0, 10.0)
    with pytest.raises(AnnotationError):
        check_segment(3.0, 2.0)
