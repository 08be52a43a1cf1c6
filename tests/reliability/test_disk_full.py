"""A full disk while writing an artifact: no partial version, CURRENT unchanged, the CLI says so in one line.

Two ways: ENOSPC injected at each write of model.artifact.write_version (always runs), and a real tmpfs too
small for the next version (runs where this process may mount one, e.g. as root in a container; else skips).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import elcrec.model.artifact as artifact
from elcrec.cli import app
from elcrec.model.artifact import ManifestInfo, Store, load_artifact
from elcrec.training.data import write_interactions
from elcrec.training.synthetic import SyntheticSpec, generate
from tests.support.service import ITEM_IDS, add_version, tiny_model


def _listing(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*"))


def _enospc(*_: object, **__: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["weights", "items", "manifest", "fsync", "CURRENT"])
def test_enospc_anywhere_in_write_version_leaves_the_store_as_it_was(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    add_version(store)
    before = _listing(store)
    real_write_text = Path.write_text

    def write_text(self: Path, text: str, *args: object, **kw: object) -> int:
        if self.name == {"items": artifact.ITEMS, "manifest": artifact.MANIFEST}.get(where):
            real_write_text(self, text[: len(text) // 2])  # what fits before the disk is full
            _enospc()
        return real_write_text(self, text, *args, **kw)  # type: ignore[arg-type]

    def save_file(state: dict, path: str) -> None:
        Path(path).write_bytes(b"\x00" * 100)
        raise artifact.SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    if where == "weights":
        monkeypatch.setattr(artifact, "save_file", save_file)
    elif where == "fsync":
        monkeypatch.setattr(artifact.os, "fsync", _enospc)
    elif where == "CURRENT":
        monkeypatch.setattr(artifact, "write_text_atomic", _enospc)
    monkeypatch.setattr(Path, "write_text", write_text)

    with pytest.raises(OSError, match="No space left on device"):
        Store(store).write_version(tiny_model(seed=1), ITEM_IDS, ManifestInfo())
    monkeypatch.undo()
    if where == "CURRENT":  # the version was complete; only the pointer could not move
        assert Store(store).versions() == ["v0001", "v0002"]
    else:
        assert _listing(store) == before
    assert Store(store).current() == "v0001" and not list(store.glob(".*"))
    load_artifact(store)  # still loads
    assert Store(store).write_version(tiny_model(seed=1), ITEM_IDS, ManifestInfo()).name == ("v0003" if where == "CURRENT" else "v0002")


@contextlib.contextmanager
def small_tmpfs(where: Path, size_kib: int) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC injection test covers the same code")
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", f"elcrec-test-{uuid.uuid4().hex[:8]}", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_real_full_disk_refuses_the_version_and_the_cli_says_so_in_one_line(tmp_path: Path) -> None:
    data, _ = generate(SyntheticSpec(n_users=60, n_items=40, n_intents=2, seed=0))
    write_interactions(data, tmp_path / "data.txt")
    with small_tmpfs(tmp_path / "disk", 1024) as disk:
        store = disk / "store"
        add_version(store)
        before = _listing(store)
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "ballast").write_bytes(b"\x00" * (free - 16 * 1024))  # 16 KiB left: not enough for a version

        argv = ["train", "--data", str(tmp_path / "data.txt"), "--out", str(store), "--epochs", "1"]
        argv += ["--layers", "1", "--intents", "2", "--device", "cpu", "--no-progress"]
        result = CliRunner().invoke(app, [*argv, "--run-dir", str(tmp_path / "run")])
        assert result.exit_code == 2, result.output
        assert "No space left on device" in result.stderr and "nothing was published" in result.stderr
        assert "Traceback" not in result.output and not isinstance(result.exception, OSError)
        assert _listing(store) == before and Store(store).current() == "v0001"
        load_artifact(store)

        (disk / "ballast").unlink()  # space again: the next version is written as usual
        assert Store(store).write_version(tiny_model(seed=1), ITEM_IDS, ManifestInfo()).name == "v0002"
        assert Store(store).current() == "v0002"
