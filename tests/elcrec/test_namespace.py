"""Everything elcrec installs lives under `elcrec`: in an environment where other distributions own the generic
names `model`, `service` and `training`, every elcrec command still runs, on elcrec's own code.

The environment is a fresh virtual environment whose site-packages holds the foreign packages (each with the
dist-info pip leaves) and then, through a .pth file, this environment's packages, elcrec included, as an
environment with both installed would see them. The foreign packages fail on import, so a stray top-level import
anywhere in elcrec fails the command that makes it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.support.service import free_port, wait_for
from tests.support.shared_data import DATA, OFFICIAL_TOYS

FOREIGN = ("model", "service", "training")


def _env_without_checkout() -> dict[str, str]:
    """No PYTHONPATH (the checkout must not be found by accident) and no ELCREC_* settings."""
    drop = ("PYTHONPATH", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ELCREC_")}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def foreign_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("foreign-env")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120)
    python = root / "venv" / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for name in FOREIGN:
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(f"raise RuntimeError('the foreign {name} package was imported')\n")
        dist = site / f"foreign_{name}-1.0.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: foreign-{name}\nVersion: 1.0\n")
        (dist / "top_level.txt").write_text(f"{name}\n")
    ours = sysconfig.get_path("purelib")
    (site / "zz_elcrec_env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python


def _run(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(python), "-m", "elcrec", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=_env_without_checkout())
    assert done.returncode == 0, f"elcrec {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert "foreign" not in done.stderr
    return done


def test_the_foreign_packages_are_what_a_plain_import_finds(foreign_python: Path, tmp_path: Path) -> None:
    for name in FOREIGN:
        done = subprocess.run([str(foreign_python), "-c", f"import {name}"], capture_output=True, text=True,
                              cwd=tmp_path, env=_env_without_checkout())
        assert done.returncode != 0 and f"the foreign {name} package was imported" in done.stderr


def test_every_command_runs_beside_foreign_model_service_and_training(foreign_python: Path, tmp_path: Path) -> None:
    run = lambda *args: _run(foreign_python, tmp_path, *args)  # noqa: E731
    data, store = tmp_path / "syn.txt", tmp_path / "store"
    run("data", "synthetic", "--out", str(data), "--users", "200", "--items", "40", "--intents", "3", "--seed", "0")
    log = tmp_path / "log.csv"
    log.write_text("user,item,ts\n" + "".join(f"u{u},i{(u * 7 + t) % 30},{t}\n" for u in range(60) for t in range(6)))
    run("data", "import", str(log), "--out", str(tmp_path / "imported"), "--user", "user", "--item", "item",
        "--time", "ts", "--no-progress")
    catalog = tmp_path / "items.csv"
    catalog.write_text("id,title,genre\n" + "".join(f"{i},Item {i},g{i % 3}\n" for i in range(1, 41)))
    run("train", "--data", str(data), "--out", str(store), "--epochs", "1", "--layers", "1", "--intents", "3",
        "--hidden", "16", "--no-progress")
    run("evaluate", str(store), "--data", str(data), "--json")
    run("intents", "fit", str(store), "--data", str(data))
    run("intents", "calibrate", str(store), "--data", str(data))
    run("catalog", "set", str(store), str(catalog))
    run("report", str(store), "--data", str(data), "--out", str(tmp_path / "report"))
    run("bootstrap", "--artifacts", str(store))
    for group in ("data download", "retrain", "import-official"):  # need the network, Redis or the authors' files
        run(*group.split(), "--help")
    if OFFICIAL_TOYS.exists():  # CI has it; the full suite's importer tests skip with the reason where it is absent
        run("import-official", str(OFFICIAL_TOYS), "--data", str(DATA / "Toys_and_Games.txt"),
            "--out", str(tmp_path / "official-store"), "--no-evaluate")

    port, log_path = free_port(), tmp_path / "serve.log"
    with open(log_path, "w") as served_log:
        server = subprocess.Popen([str(foreign_python), "-m", "elcrec", "serve", "--artifacts", str(store),
                                   "--host", "127.0.0.1", "--port", str(port)], cwd=tmp_path,
                                  env=_env_without_checkout(), stdout=served_log, stderr=subprocess.STDOUT)
    try:
        def ready() -> bool:
            assert server.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 90, "elcrec serve beside the foreign packages")
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/recommend", json={"history": ["1", "2", "3"], "k": 5})
        assert answer.status_code == 200 and len(answer.json()["items"]) == 5
    finally:
        server.terminate()
        server.wait(timeout=30)
