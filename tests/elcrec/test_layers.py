"""elcrec/layers.py: a top-level layer name taken by another distribution is one clear error, not a stray import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from elcrec.layers import LAYERS, check

REPO = Path(__file__).resolve().parents[2]


def test_the_layers_in_this_environment_are_elcrecs() -> None:
    check()  # raises LayerClash otherwise


def _check_with(shadow: Path) -> subprocess.CompletedProcess[str]:
    """`elcrec --help` in a process whose sys.path finds `shadow` first, as a mixed site-packages would."""
    code = f"import sys; sys.path.insert(0, {str(shadow)!r}); sys.argv = ['elcrec', '--help']; " \
           "from elcrec.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)


def test_a_package_of_another_distribution_under_a_layer_name_is_named_with_the_remedy(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "__init__.py").write_text("# somebody else's model package\n")
    dist = tmp_path / "other_models-1.0.dist-info"  # what pip leaves beside it
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: other-models\nVersion: 1.0\n")
    (dist / "top_level.txt").write_text("model\n")
    done = _check_with(tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'model'" in done.stderr and "other-models" in done.stderr and "virtual environment" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_layer_carries_its_marker() -> None:
    for name in LAYERS:
        text = (REPO / name / "__init__.py").read_text()
        assert f'ELCREC_LAYER = "{name}"' in text
