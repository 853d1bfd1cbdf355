"""theory.fileio: every --out of the toolkit goes through atomic_write_*; special files survive."""
import os
import stat

import pytest

from theory.fileio import OutputPathError, atomic_write_text, check_writable


def test_a_regular_file_is_replaced_with_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = tmp_path / "report.txt"
        atomic_write_text(path, "first\n")
        assert path.read_text() == "first\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_replacing_keeps_the_existing_files_mode(tmp_path):
    path = tmp_path / "report.txt"
    path.write_text("old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_fifo_is_written_directly_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        atomic_write_text(fifo, "through the pipe\n")
        assert os.read(reader, 100) == b"through the pipe\n"
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_dev_full_raises_no_space_and_stays_a_device():
    with pytest.raises(OSError) as err:
        atomic_write_text("/dev/full", "x" * 10000)
    assert err.value.errno == 28
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_directory_is_refused_by_name(tmp_path):
    with pytest.raises(OSError, match="directory"):
        check_writable(str(tmp_path))
    with pytest.raises(OutputPathError, match="directory"):
        atomic_write_text(tmp_path, "x")


def test_a_missing_folder_is_refused_before_any_work(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_writable(str(tmp_path / "no" / "such" / "file.txt"))
