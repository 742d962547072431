"""Issue 15, part 1: numeric labels mean 0 = REAL and 1 = FAKE (the training guide's convention) unless
``--one-means REAL``; files whose numbers contradict their real/ and fake/ folders are refused with both conventions
and the flag named; words are words; Celeb-DF's and the 140k dataset's own conventions stay theirs."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, load_command_class

from model_creation.training.labels import parse_label, path_class
from model_creation.training.layouts import LayoutError, read_image_layout, read_layout

BOTH_CONVENTIONS = (
    "0 = REAL, 1 = FAKE (the default, as the training guide writes them) or --one-means REAL for 1 = REAL"
)


def labels(entries) -> dict[str, str]:
    return {entry.relpath: entry.label for entry in entries}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_numbers_mean_zero_real_one_fake_by_default():
    assert parse_label("0") == "REAL" and parse_label("1") == "FAKE" and parse_label("1.0") == "FAKE"
    assert parse_label("1", "REAL") == "REAL" and parse_label("0", "REAL") == "FAKE"
    assert parse_label(" fake ") == "FAKE" and parse_label("Real", "REAL") == "REAL", "words are words"
    assert parse_label("2") is None and parse_label("maybe") is None
    assert path_class("data/Real/v1.mp4") == "REAL" and path_class("FAKE/x/v.mp4") == "FAKE"
    assert path_class("real.mp4") is None and path_class("unreal/v.mp4") is None, "a folder, named exactly"


def test_a_guide_style_csv_is_read_as_the_guide_writes_it(tmp_path):
    guide = write(tmp_path / "labels.csv", "real/video1.mp4,0\nfake/video2.mp4,1\n")
    assert labels(read_layout("csv", guide)) == {"real/video1.mp4": "REAL", "fake/video2.mp4": "FAKE"}
    photos = write(tmp_path / "photos.csv", "file,label\nreal/a.jpg,0\nfake/b.png,1\n")
    assert labels(read_image_layout("csv", photos)) == {"real/a.jpg": "REAL", "fake/b.png": "FAKE"}
    # Paths that name no class: nothing to check against, the flag decides.
    plain = write(tmp_path / "plain.csv", "a.mp4,1\nb.mp4,0\n")
    assert labels(read_layout("csv", plain)) == {"a.mp4": "FAKE", "b.mp4": "REAL"}
    assert labels(read_layout("csv", plain, one_means="REAL")) == {"a.mp4": "REAL", "b.mp4": "FAKE"}


def test_one_means_real_reads_files_written_the_other_way(tmp_path):
    old = write(tmp_path / "old.csv", "real/a.mp4,1\nreal/b.mp4,1\nfake/c.mp4,0\n")
    assert labels(read_layout("csv", old, one_means="REAL")) == {
        "real/a.mp4": "REAL",
        "real/b.mp4": "REAL",
        "fake/c.mp4": "FAKE",
    }
    with pytest.raises(LayoutError) as refused:
        read_layout("csv", old)
    message = str(refused.value)
    assert BOTH_CONVENTIONS in message and "pass --one-means REAL" in message
    assert "3 of the 3 rows" in message and "line 1: real/a.mp4,1" in message


def test_the_flag_on_a_guide_style_file_is_refused_too(tmp_path):
    guide = write(tmp_path / "labels.csv", "file,label\nreal/video1.mp4,0\nfake/video2.mp4,1\n")
    with pytest.raises(LayoutError) as refused:
        read_layout("csv", guide, one_means="REAL")
    message = str(refused.value)
    assert BOTH_CONVENTIONS in message and "drop --one-means REAL" in message
    assert "line 2: real/video1.mp4,0" in message and "line 3: fake/video2.mp4,1" in message


def test_a_mixed_file_names_its_first_contradicting_rows(tmp_path):
    rows = [f"REAL/r{n}.mp4,0" for n in range(6)] + [f"Fake/f{n}.mp4,1" for n in range(6)]
    rows[3], rows[9] = "REAL/r3.mp4,1", "Fake/f3.mp4,0"
    mixed = write(tmp_path / "mixed.csv", "path,label\n\n" + "\n".join(rows) + "\n")
    with pytest.raises(LayoutError) as refused:
        read_layout("csv", mixed)
    message = str(refused.value)
    assert "2 of 12 contradict" in message and BOTH_CONVENTIONS in message
    # the blank line after the header counts: line numbers are the file's own
    assert "line 6: REAL/r3.mp4,1; line 12: Fake/f3.mp4,0" in message


def test_words_are_never_questioned(tmp_path):
    words = write(tmp_path / "words.csv", "real/a.mp4,FAKE\nfake/b.mp4,real\nreal/c.mp4,0\n")
    assert labels(read_layout("csv", words)) == {"real/a.mp4": "FAKE", "fake/b.mp4": "REAL", "real/c.mp4": "REAL"}


def test_celebdf_and_140k_keep_their_own_conventions_whatever_the_flag(tmp_path):
    celeb = tmp_path / "celeb"
    for name in ("Celeb-real/id0_0000.mp4", "YouTube-real/00000.mp4", "Celeb-synthesis/id0_id1_0000.mp4"):
        (celeb / name).parent.mkdir(parents=True, exist_ok=True)
        (celeb / name).write_bytes(b"")
    # Celeb-DF's test list writes 1 for real and 0 for fake
    write(celeb / "List_of_testing_videos.txt", "1 YouTube-real/00000.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n")
    expected = {
        "Celeb-real/id0_0000.mp4": "REAL",
        "YouTube-real/00000.mp4": "REAL",
        "Celeb-synthesis/id0_id1_0000.mp4": "FAKE",
    }
    for one_means in ("FAKE", "REAL"):
        assert labels(read_layout("celebdf", celeb, one_means=one_means)) == expected  # type: ignore[arg-type]

    faces = tmp_path / "140k"
    for name in ("train/real/1.jpg", "train/fake/2.jpg"):
        (faces / name).parent.mkdir(parents=True, exist_ok=True)
        (faces / name).write_bytes(b"")
    # label 1 = real in this dataset; no label_str, so the number alone decides
    write(
        faces / "train.csv",
        ",original_path,id,label,label_str,path\n0,x,1,1,,train/real/1.jpg\n1,y,2,0,,train/fake/2.jpg\n",
    )
    for one_means in ("FAKE", "REAL"):
        read = read_image_layout("140k", faces, one_means=one_means)  # type: ignore[arg-type]
        assert labels(read) == {"train/real/1.jpg": "REAL", "train/fake/2.jpg": "FAKE"}


def test_every_one_means_flag_defaults_to_fake_and_says_both_conventions():
    for app, command in (
        ("model_creation", "preprocess_videos"),
        ("model_creation", "preprocess_images"),
        ("model_creation", "evaluate_model"),
    ):
        parser = load_command_class(app, command).create_parser("manage.py", command)
        (action,) = [a for a in parser._actions if a.dest == "one_means"]
        assert action.default == "FAKE", command
        assert "0 = REAL, 1 = FAKE" in action.help and "1 = REAL, 0 = FAKE" in action.help, command


def test_the_command_refuses_a_backwards_file_in_one_line(tmp_path):
    old = write(tmp_path / "old.csv", "real/a.mp4,1\nfake/b.mp4,0\n")
    with pytest.raises(CommandError, match="pass --one-means REAL") as refused:
        call_command("preprocess_videos", old, "--layout", "csv", "--output", tmp_path / "o", stdout=StringIO())
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "o").exists(), "refused before anything is written"
