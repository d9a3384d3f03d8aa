"""A plain install works, not only an editable one: the wheel carries the firmware and
the sensor layouts (package data), and `insole hil` runs from it outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def _run(args: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False, **options)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A copy of the checkout's files (what git tracks or would), symlinks kept: an
    # in-tree build would reuse a stale build/ folder and hide missing package data.
    source = tmp_path_factory.mktemp("source")
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO_ROOT).stdout
    for name in filter(None, listed.split("\0")):
        origin = REPO_ROOT / name
        if not origin.exists() and not origin.is_symlink():
            continue  # deleted, not yet committed
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            target.symlink_to(os.readlink(origin))
        else:
            shutil.copy2(origin, target)
    dist = tmp_path_factory.mktemp("dist")
    # Built as `pip install .` builds it (isolated, from pyproject.toml).
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--disable-pip-version-check", str(source),
          "-w", str(dist)])
    (found,) = dist.glob("insole-*.whl")
    return found


def test_wheel_carries_every_module_the_firmware_and_the_layouts_but_not_the_firmware_tests(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO_ROOT / "host" / "insole"
    modules = {
        "insole/" + p.relative_to(package).as_posix()
        for p in package.rglob("*.py")
        if "bundled" not in p.relative_to(package).parts
    }
    assert modules and modules <= names, f"not in the wheel: {sorted(modules - names)}"
    firmware = sorted(
        "insole/bundled/firmware/" + p.relative_to(REPO_ROOT / "firmware").as_posix()
        for p in (REPO_ROOT / "firmware").rglob("*.py")
        if "tests" not in p.relative_to(REPO_ROOT / "firmware").parts
    )
    layouts = sorted(f"insole/bundled/layouts/{p.name}" for p in (REPO_ROOT / "hardware" / "layouts").glob("*.json"))
    assert firmware and layouts
    assert set(firmware) <= names
    assert set(layouts) <= names
    assert not [n for n in names if n.startswith("insole/bundled/firmware/tests/")]


@pytest.mark.micropython
def test_plain_install_runs_hil_on_a_recording_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    site = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    # The package itself from the wheel, unpacked as pip would; its dependencies from
    # this environment (a .pth adds them after the venv's own site-packages, whose
    # insole therefore wins; the editable install's own hook is not run from there).
    zipfile.ZipFile(wheel).extractall(site)
    (site / "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = venv / "bin" / "python"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # micropython
    env.pop("PYTHONPATH", None)
    where = _run([str(python), "-c", "import insole.resources as r; print(r.__file__); print(r.FIRMWARE_DIR)"],
                 cwd=tmp_path, env=env).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where

    cli = [str(python), "-c", "import sys; from insole.cli import main; sys.exit(main())"]
    _run([*cli, "simulate", "-o", "walk.insole", "--plan", "walk", "--duration-s", "15"], cwd=tmp_path, env=env)
    result = _run([*cli, "hil", "walk.insole", "--steps", "steps.csv"], cwd=tmp_path, env=env)
    rows = (tmp_path / "steps.csv").read_text().splitlines()
    assert rows[0] == "side,ic_s,to_s,fpa_deg,direction"
    assert len(rows) > 10, result.stderr
    truth = (tmp_path / "walk.steps.csv").read_text().splitlines()
    assert abs(len(rows) - len(truth)) <= 4, (len(rows), len(truth))


def test_setup_script_installs_only_when_something_changed(tmp_path: Path) -> None:
    """scripts/setup.sh runs pip on a fresh checkout and when pyproject.toml, the Python or
    the extras asked for changed; a warm checkout (the demo's every start) skips it."""
    project = tmp_path / "project"
    (project / "scripts").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "scripts" / "setup.sh", project / "scripts" / "setup.sh")
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    log = tmp_path / "calls.log"
    # Stand-ins that log instead of building a venv and installing: `python3 -m venv`
    # makes a .venv whose python logs pip's arguments and "installs" bin/insole.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python3").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
            echo venv >> {log}
            mkdir -p "$3/bin"
            printf '#!/bin/sh\\necho "$*" >> {log}\\ntouch "$(dirname "$0")/insole"\\nchmod +x "$(dirname "$0")/insole"\\n' > "$3/bin/python"
            chmod +x "$3/bin/python"
            exit 0
        fi
        exec {sys.executable} "$@"
        """))  # fmt: skip
    (fake_bin / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}

    def setup(extras: str) -> list[str]:
        log.write_text("")
        _run(["bash", str(project / "scripts" / "setup.sh"), extras], env=env)
        return log.read_text().splitlines()

    first = setup("emulation,test")
    assert first[0] == "venv" and first[1].endswith("-e .[emulation,test]")
    assert setup("emulation,test") == []
    assert setup("emulation") == []  # already there
    more = setup("emulation,mutation")
    assert more[0] == "venv" and more[1].endswith("-e .[emulation,test,emulation,mutation]")
    assert setup("test,mutation") == []
    (project / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '2'\n")
    assert setup("emulation")[1:] == ["-m pip install -q --disable-pip-version-check -e .[emulation]"]
