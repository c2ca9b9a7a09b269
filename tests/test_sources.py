"""Listing log files (albstats.sources.expand): order, names, what is skipped, and the stat the cache keys on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from albstats.errors import UsageError
from albstats.sources import CONTROL_NAME, expand


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "logs"
    for rel in (
        "z.log",
        "a.log.gz",
        "b/2.gz",
        "b/1.log",
        "b/c/3.log.gz",
        "d/4.log",
        f"b/{CONTROL_NAME}",
        "b/notes.txt",
        "b/c/README",
    ):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * len(rel))
    (root / "e").mkdir()  # empty folder
    (root / "linked").symlink_to(root / "d", target_is_directory=True)  # not followed, as os.walk
    return root


def _walk_order(root: Path) -> list[str]:
    """What the listing has always given: os.walk with sorted names, joined by pathlib."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        out += [str(Path(d) / f) for f in sorted(files) if f.endswith((".log", ".log.gz", ".gz"))]
    return out


def test_a_folder_lists_its_log_files_in_walk_order(tree: Path) -> None:
    names = [s.name for s in expand([str(tree)])]
    assert names == _walk_order(tree)
    rel = [os.path.relpath(n, tree) for n in names]
    assert rel == ["a.log.gz", "z.log", "b/1.log", "b/2.gz", "b/c/3.log.gz", "d/4.log"]


def test_names_are_spelled_as_given_like_pathlib(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tree.parent)
    assert [s.name for s in expand(["logs/"])] == [s.name for s in expand(["logs"])] == _walk_order(Path("logs"))
    assert [s.name for s in expand(["./logs/b/c"])] == ["logs/b/c/3.log.gz"]
    monkeypatch.chdir(tree)
    assert [s.name for s in expand(["."])][:3] == ["a.log.gz", "z.log", "b/1.log"]


def test_sources_carry_the_stat_the_cache_keys_on(tree: Path) -> None:
    for s in expand([str(tree), str(tree / "z.log")]):
        st = os.stat(s.name)
        assert (s.size, s.mtime_ns, s.local_path) == (st.st_size, st.st_mtime_ns, s.name)
        with s.open() as fh:
            assert fh.read() == b"x" * st.st_size


def test_a_glob_expands_folders_and_files(tree: Path) -> None:
    names = [os.path.relpath(s.name, tree) for s in expand([str(tree / "[bz]*")])]
    assert names == ["b/1.log", "b/2.gz", "b/c/3.log.gz", "z.log"]


def test_missing_paths_are_usage_errors_naming_them(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nope: no such file"):
        expand([str(tmp_path / "nope")])
    with pytest.raises(UsageError, match=r"\*\.log: no files match"):
        expand([str(tmp_path / "*.log")])
