"""--force replaces only what snn-lab wrote; no file is written through a symbolic link;
folders and files follow the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import cli_runner

from snn_lab import results
from snn_lab.cli import main

SMALL = ["-q", "--set", "width=4", "--set", "depth=2", "--set", "batch=4", "--set", "trials=2"]


def invoke(*args):
    return cli_runner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def written(tmp_path) -> Path:
    out = tmp_path / "r"
    assert invoke("run", "--out", out, *SMALL).exit_code == 0
    return out


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("plant, named", [("notes.txt", "notes.txt"), ("plots/notes.txt", "plots/notes.txt"),
                                          ("data/x.csv", "data")])
def test_force_refuses_a_results_folder_holding_a_file_of_the_users(written, plant, named):
    """One file snn-lab did not write, anywhere in the folder: exit 2 naming it, nothing deleted."""
    (written / "plots").mkdir()
    (written / "plots" / "map.png").write_bytes(b"\x89PNG")
    (written / plant).parent.mkdir(exist_ok=True)
    (written / plant).write_text("mine")
    before = _tree(written)
    done = invoke("run", "--out", written, "--force", *SMALL)
    assert done.exit_code == 2
    assert done.stderr.startswith(f"error: {written / named} was not written by snn-lab; --force replaces only")
    assert _tree(written) == before


def test_force_refuses_a_folder_of_the_users_own_files(tmp_path):
    own = tmp_path / "photos"
    own.mkdir()
    (own / "a.jpg").write_bytes(b"\xff\xd8")
    done = invoke("run", "--out", own, "--force", *SMALL)
    assert done.exit_code == 2 and done.stderr.startswith(f"error: {own / 'a.jpg'} was not written by snn-lab")
    assert (own / "a.jpg").read_bytes() == b"\xff\xd8"


def test_force_never_replaces_the_current_folder(written, monkeypatch):
    """Even a results folder snn-lab wrote is kept when it is where the user stands (or holds it)."""
    (written / "plots").mkdir()
    before = _tree(written)
    for cwd, out in ((written, "."), (written / "plots", "..")):
        monkeypatch.chdir(cwd)
        done = invoke("run", "--out", out, "--force", *SMALL)
        assert done.exit_code == 2 and "is the current folder or holds it" in done.stderr, done.output
    assert _tree(written) == before and (written / "plots").is_dir()


def test_force_replaces_a_folder_snn_lab_wrote_with_its_plots(written):
    (written / "plots").mkdir()
    (written / "plots" / "map.png").write_bytes(b"\x89PNG")
    (written / ".meta.json.tmp-1234").write_text("")  # a temporary of a killed write
    assert invoke("run", "--out", written, "--force", *SMALL, "--set", "trials=3").exit_code == 0
    assert results.read(written).config["trials"] == 3 and not (written / "plots").exists()


def test_foreign_knows_results_and_sweep_layouts(tmp_path, written):
    """What a sweep may replace (sweep.json, sweep.csv, points/ of results folders, plots/)."""
    sweep = tmp_path / "s"
    (sweep / "points").mkdir(parents=True)
    (sweep / "sweep.json").write_text("{}")
    (sweep / "sweep.csv").write_text("")
    os.rename(written, sweep / "points" / "gain=1")
    (sweep / "points" / ".gain=2.tmp-1234").mkdir()
    assert results.foreign(sweep) is None
    (sweep / "points" / "gain=1" / "mine.txt").write_text("x")
    assert results.foreign(sweep) == sweep / "points" / "gain=1" / "mine.txt"
    os.remove(sweep / "points" / "gain=1" / "mine.txt")
    os.symlink(tmp_path, sweep / "points" / "gain=3")
    assert results.foreign(sweep) == sweep / "points" / "gain=3"


def test_force_does_not_follow_a_link_inside_the_folder(written, tmp_path):
    """plots/ planted as a link to the user's folder: --force refuses it; the target is untouched."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    os.symlink(outside, written / "plots")
    done = invoke("run", "--out", written, "--force", *SMALL)
    assert done.exit_code == 2 and done.stderr.startswith(f"error: {written / 'plots'} was not written")
    assert (outside / "precious.txt").read_text() == "keep"


def test_plot_never_writes_through_a_link(written, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.png").write_text("keep")
    (written / "plots").mkdir()
    os.symlink(outside / "precious.png", written / "plots" / "map.png")
    assert invoke("plot", written).exit_code == 0
    assert (outside / "precious.png").read_text() == "keep"
    assert not (written / "plots" / "map.png").is_symlink()
    assert (written / "plots" / "map.png").read_bytes()[:4] == b"\x89PNG"
    for f in (written / "plots").iterdir():
        f.unlink()
    (written / "plots").rmdir()
    os.symlink(outside, written / "plots")
    done = invoke("plot", written)
    assert done.exit_code == 2 and "is a symbolic link" in done.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["precious.png"]


def test_check_update_replaces_a_link_at_the_baseline_name(written, tmp_path):
    (tmp_path / "precious.json").write_text("keep")
    link = tmp_path / "base.json"
    os.symlink(tmp_path / "precious.json", link)
    assert invoke("check", written, "--baseline", link, "--update").exit_code == 0
    assert (tmp_path / "precious.json").read_text() == "keep" and not link.is_symlink()
    assert invoke("check", written, "--baseline", link).exit_code == 0


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_folders_and_files_follow_the_umask(tmp_path, umask):
    """Modes as mkdir(1) and touch(1) give them (the folder was 0700 whatever the umask)."""
    old = os.umask(umask)
    try:
        out = tmp_path / "r"
        assert invoke("run", "--out", out, *SMALL).exit_code == 0
        if umask == 0o077:  # figures too (drawing takes seconds: once)
            assert invoke("plot", out).exit_code == 0
    finally:
        os.umask(old)
    paths = [(out, 0o777), (out / "meta.json", 0o666), (out / "summary.csv", 0o666)]
    if umask == 0o077:
        paths += [(out / "plots", 0o777), (out / "plots" / "map.png", 0o666)]
    for p, full in paths:
        assert stat.S_IMODE(os.stat(p).st_mode) == full & ~umask, p


def test_a_forced_sweep_refuses_a_folder_of_the_users_own_files(tmp_path):
    """`run --force` with a sweep follows the same rule: a folder snn-lab did not write is kept."""
    own = tmp_path / "photos"
    own.mkdir()
    (own / "a.jpg").write_bytes(b"\xff\xd8")
    done = invoke("run", "--out", own, "--force", "--sweep", "gain=0.9,1.1", *SMALL)
    assert done.exit_code == 2 and f"{own / 'a.jpg'} was not written by snn-lab" in done.stderr
    assert sorted(p.name for p in own.iterdir()) == ["a.jpg"]
    sweep = tmp_path / "s"
    assert invoke("run", "--out", sweep, "--sweep", "gain=0.9,1.1", *SMALL).exit_code == 0
    assert invoke("run", "--out", sweep, "--force", "--sweep", "gain=0.9,1.1", *SMALL).exit_code == 0


def test_a_run_goes_into_a_folder_the_user_reached_through_a_link(tmp_path):
    """The parent the user names may be a link (~/data -> /big/disk): followed, as before; the
    results folder itself is built in it, never written through a link of its own."""
    disk = tmp_path / "disk"
    disk.mkdir()
    (tmp_path / "data").symlink_to(disk, target_is_directory=True)
    done = invoke("run", "--out", tmp_path / "data" / "r", *SMALL)
    assert done.exit_code == 0, done.output
    assert results.read(disk / "r").meta["complete"]
