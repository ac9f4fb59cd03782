"""hub.book_file finds the files the book ships from any folder inside the repository and never
reaches the network offline."""
import pytest

from mmcourse import hub


def test_book_file_is_found_from_a_subfolder(monkeypatch, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.bin").write_bytes(b"1")
    (tmp_path / "chapters" / "40").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "chapters" / "40")
    assert hub.book_file("data/x.bin") == tmp_path / "data" / "x.bin"


def test_a_missing_book_file_offline_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MMCOURSE_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="clone of the book's repository"):
        hub.book_file("data/not-shipped.bin")


def test_the_fetch_url_is_the_configured_repository():
    import yaml
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).parents[1] / "_config.yml").read_text())
    assert hub.BOOK_RAW_URL == config["repository"]["url"] + "/raw/" + config["repository"]["branch"] + "/"
