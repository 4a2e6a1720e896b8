"""Untrusted ``file`` reads stay inside ``catalog.allowedFileRoots``; trusted ones need not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.errors import NotAllowedError
from app.reading.access import RootedFileReader, read_trust, reads_trusted


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "allowed"
    (root / "sub").mkdir(parents=True)
    (root / "a.yaml").write_text("a: 1\n")
    (root / "sub" / "b.yaml").write_text("b: 1\n")
    outside = tmp_path / "secret.yaml"
    outside.write_text("secret: 1\n")
    os.symlink(outside, root / "link.yaml")
    os.symlink(tmp_path, root / "escape")
    return root, outside


def test_trusted_reads_go_anywhere(layout):
    root, outside = layout
    reader = RootedFileReader([str(root)])
    assert reads_trusted()
    assert reader.read(str(outside)).data == b"secret: 1\n"


def test_untrusted_reads_stay_inside_the_roots(layout):
    root, outside = layout
    reader = RootedFileReader([str(root)])
    with read_trust(False):
        assert reader.read(str(root / "a.yaml")).data == b"a: 1\n"
        assert reader.read(str(root / "sub" / ".." / "a.yaml")).data == b"a: 1\n"
        for target in (
            str(outside),
            str(root / ".." / "secret.yaml"),
            str(root / "sub" / ".." / ".." / "secret.yaml"),
            str(root / "link.yaml"),
            str(root / "escape" / "secret.yaml"),
            "/etc/passwd",
            "",
        ):
            with pytest.raises(NotAllowedError, match="catalog.allowedFileRoots"):
                reader.read(target)
    assert reads_trusted()


def test_untrusted_globs_only_match_inside_the_roots(layout):
    root, _ = layout
    reader = RootedFileReader([str(root)])
    with read_trust(False):
        matches = reader.search(str(root / "**" / "*.yaml"))
        assert matches == sorted([str(root / "a.yaml"), str(root / "sub" / "b.yaml")])
        with pytest.raises(NotAllowedError):
            reader.search(str(root.parent / "*.yaml"))
        with pytest.raises(NotAllowedError):
            reader.search(str(root / ".." / "*.yaml"))


def test_no_roots_means_no_untrusted_file_reads(layout):
    root, _ = layout
    reader = RootedFileReader([])
    with read_trust(False), pytest.raises(NotAllowedError):
        reader.read(str(root / "a.yaml"))
