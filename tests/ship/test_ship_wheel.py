"""The package as a user installs it, by the Dockerfile's own commands.

The build stage's `pip wheel` runs on a copy of exactly what the build stage COPYs,
the runtime stage's `pip install` puts the wheel into a fresh venv (see shipkit: the
dependencies already installed here are visible, reconciler and the source tree are
not), and the installed `reconciler` runs validate, plan, apply, status and invoke on
a copy of config-examples from an unrelated directory. Two deviations from the image
build, for speed and to need no network: see the `wheel` fixture (conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from shipkit import ROOT, FreshVenv, fresh_venv, pip_command, run, stages

sys.path.insert(0, str(ROOT / "tests" / "runtime"))

from localkit import wait_for  # noqa: E402

import reconciler  # noqa: E402

pytestmark = pytest.mark.slow


@dataclass
class Installed:
    venv: FreshVenv
    wheel: Path
    home: Path

    def reconciler(self, *args: str, cwd: Path | None = None,
                   timeout: float = 60) -> tuple[int, str, str]:
        done = run([str(self.venv.bin / "reconciler"), *args], env=self.venv.env(self.home),
                   cwd=cwd or self.home, timeout=timeout)
        return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The wheel installed into a fresh venv by the runtime stage's `pip install`."""
    tmp = tmp_path_factory.mktemp("installed")
    venv = fresh_venv(tmp / "venv")
    home = tmp / "home"
    home.mkdir()
    install = pip_command(stages()[1], "install").replace("/wheels", str(wheel.parent))
    done = run(install, env=venv.env(home), cwd=home, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Successfully installed reconciler-" in done.stdout, done.stdout
    return Installed(venv, wheel, home)


def test_the_wheel_carries_every_module_the_schemas_and_the_templates(
        installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "reconciler").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts}
    assert sources - names == set(), "files of the package missing from the wheel"
    schemas = {f"reconciler/schemas/{p.name}" for p in (ROOT / "schemas").glob("*.json")}
    assert schemas and schemas <= names
    assert installed.wheel.name == f"reconciler-{reconciler.__version__}-py3-none-any.whl"


def test_the_installed_package_is_the_wheel_not_the_source_tree(installed: Installed) -> None:
    probe = ("import json, sys, reconciler, reconciler.config.schema as s; "
             "print(json.dumps([reconciler.__file__, str(s.SCHEMA_DIR), sys.path]))")
    done = run([str(installed.venv.python), "-c", probe], env=installed.venv.env(installed.home),
               cwd=installed.home)
    assert done.returncode == 0, done.stderr
    module, schema_dir, path = json.loads(done.stdout)
    assert Path(module).is_relative_to(installed.venv.root), module
    assert Path(schema_dir).is_relative_to(installed.venv.root), schema_dir
    assert not any(Path(entry).resolve() == ROOT for entry in path if entry)
    code, out, _ = installed.reconciler("--version")
    assert (code, out.split()[-1]) == (0, reconciler.__version__)


def test_validate_plan_apply_status_invoke_from_an_unrelated_directory(
        installed: Installed, tmp_path: Path) -> None:
    config = tmp_path / "platform-config"
    shutil.copytree(ROOT / "config-examples", config)
    state = tmp_path / "state"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    code, out, err = installed.reconciler("validate", str(config), cwd=elsewhere)
    assert code == 0 and "documents valid" in out, out + err
    code, out, err = installed.reconciler("plan", str(config), "--state", str(state),
                                          cwd=elsewhere)
    assert code == 0 and "to create" in out, out + err
    code, out, err = installed.reconciler("apply", str(config), "--state", str(state),
                                          "--auto-approve", cwd=elsewhere)
    assert code == 0 and "Apply complete" in out, out + err
    code, out, err = installed.reconciler("status", "--state", str(state), "--format", "json",
                                          cwd=elsewhere)
    assert code == 1 and "agent is not running" in err, err  # one-shot apply starts none
    assert {p["algorithm"] for p in json.loads(out)["pools"]} >= {"acme/sentiment"}
    code, out, err = installed.reconciler(
        "invoke", "--state", str(state), "--config", str(config), "--as", "alice",
        "acme/sentiment", '{"text": "I love this"}', cwd=elsewhere)
    assert code == 0, out + err
    assert json.loads(out)["label"] == "positive"



def test_the_installed_worker_serves_as_an_engine_container_would(
        installed: Installed, tmp_path: Path) -> None:
    """`reconciler worker`, the command of engine containers built FROM the image, with
    code and data where an algorithm image puts them (here: copies, as /code and /data);
    the image's HEALTHCHECK command finds it on the port of RECONCILER_LISTEN."""
    code, data = tmp_path / "code", tmp_path / "data"
    shutil.copytree(ROOT / "config-examples" / "src", code)
    shutil.copytree(ROOT / "config-examples" / "data", data)
    model = data / "acme" / "sentiment" / "words-1.1.json"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**installed.venv.env(installed.home), "RECONCILER_ENTRYPOINT": "sentiment:apply",
           "RECONCILER_MODEL_PATH": "data://acme/sentiment/words-1.1.json",
           "RECONCILER_MODEL_DIGEST": "sha256:" + hashlib.sha256(model.read_bytes()).hexdigest(),
           "RECONCILER_POOL_ID": "alice.acme.sentiment.0123456789ab",
           "RECONCILER_CODE_ROOT": str(code), "RECONCILER_DATA_ROOT": str(data),
           "RECONCILER_LISTEN": f"127.0.0.1:{port}"}
    assert _healthcheck(env).returncode == 1, "nothing listens yet: unhealthy"
    worker = subprocess.Popen([str(installed.venv.bin / "reconciler"), "worker"], env=env,
                              cwd=installed.home, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _status(f"http://127.0.0.1:{port}/healthz") == 200, timeout=30,
                 message="the worker's /healthz")
        checked = _healthcheck(env)
        assert (checked.returncode, checked.stderr) == (0, "")
        unset = _healthcheck({**env, "RECONCILER_LISTEN": "", "RECONCILER_HEALTHCHECK_URL":
                              f"http://127.0.0.1:{port}/nowhere"})
        assert unset.returncode == 1 and "answered 404" in unset.stderr
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invoke", method="POST",
                                         data=json.dumps({"text": "I love this"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["output"]["label"] == "positive"
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=15)
    assert worker.returncode is not None and "Traceback" not in err, err


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The runtime stage's HEALTHCHECK command (exec form), as Docker runs it in the image."""
    [command] = [args for word, args in stages()[1] if word == "HEALTHCHECK"]
    argv = json.loads(command.partition(" CMD ")[2])
    return subprocess.run(argv, env=env, cwd=env["HOME"], capture_output=True, text=True,
                          timeout=30)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@pytest.mark.parametrize(("python", "admitted"), [("3.11.2", False), ("3.11.4", True)])
def test_pip_admits_only_a_python_whose_tarfile_has_the_filters_diff_uses(
        wheel: Path, tmp_path: Path, python: str, admitted: bool) -> None:
    """`diff` unpacks `git archive` with tarfile's extraction filters (3.11.4+): on
    Debian 12's python3.11 (3.11.2) it died with a TypeError traceback; pip now refuses
    to install there instead."""
    import os

    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
                           "--only-binary=:all:", "--python-version", python, "--target",
                           str(tmp_path / "target"), str(wheel)],
                          capture_output=True, text=True, env=env, timeout=120)
    if admitted:
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        assert done.returncode != 0 and "requires a different Python" in done.stderr, (
            done.stdout + done.stderr)


def test_the_sdist_rebuilds_the_same_wheel(wheel: Path, tmp_path: Path) -> None:
    """The source distribution (PEP 517 build_sdist, as `python -m build` runs it, from a
    copy of the files Git tracks) holds what a rebuild needs: the schemas at the top, the
    init and dashboard templates, README."""
    import tarfile

    src = tmp_path / "src"
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], check=True,
                             capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_NO_INDEX": "1"}
    done = run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                f"print(build_meta.build_sdist({str(tmp_path / 'dist')!r}))"],
               env=env, cwd=src, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    sdist = tmp_path / "dist" / done.stdout.split()[-1]
    assert sdist.name == f"reconciler-{reconciler.__version__}.tar.gz"
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
        tar.extractall(tmp_path / "unpacked", filter="data")
    assert {"README.md", "pyproject.toml", "setup.py", "schemas/common.json"} <= names
    rebuilt = tmp_path / "rebuilt"
    done = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "--wheel-dir", str(rebuilt),
                str(tmp_path / "unpacked" / sdist.name.removesuffix(".tar.gz"))],
               env=env, cwd=tmp_path, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    [again] = rebuilt.glob("reconciler-*.whl")
    files = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    assert files and {n for n in zipfile.ZipFile(again).namelist()
                      if ".dist-info/" not in n} == files


def test_the_build_backend_is_pinned_to_the_setuptools_the_tests_build_with() -> None:
    """The image's `pip wheel` builds with build-system.requires; this suite builds with
    the test extra's setuptools (--no-build-isolation). One pin, so both build the same."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [backend] = project["build-system"]["requires"]
    assert backend.startswith("setuptools==")
    assert backend in project["project"]["optional-dependencies"]["test"]
