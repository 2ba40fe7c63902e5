"""EnvironmentBuilder builds real virtualenvs, offline: no index is ever contacted."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import pytest

from flowyard.environments import EnvironmentBuildError, EnvironmentBuilder

# A PEP 517 backend inside the package itself, so installing it needs nothing from an index.
BACKEND = '''
import base64, hashlib, os, zipfile

NAME, VERSION = "tinypkg", "0.1"
DIST = f"{NAME}-{VERSION}.dist-info"
FILES = {
    "tinypkg/__init__.py": b"ANSWER = 42\\n",
    f"{DIST}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME}\\nVersion: {VERSION}\\n".encode(),
    f"{DIST}/WHEEL": (b"Wheel-Version: 1.0\\nGenerator: tiny\\nRoot-Is-Purelib: true\\n"
                      b"Tag: py3-none-any\\n"),
}

def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    filename = f"{NAME}-{VERSION}-py3-none-any.whl"
    record = [_record_line(n, d) for n, d in FILES.items()] + [f"{DIST}/RECORD,,"]
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as zf:
        for name, data in FILES.items():
            zf.writestr(name, data)
        zf.writestr(f"{DIST}/RECORD", "\\n".join(record) + "\\n")
    return filename

def get_requires_for_build_wheel(config_settings=None):
    return []
'''

PYPROJECT = '''[build-system]
requires = []
build-backend = "tinybackend"
backend-path = ["."]

[project]
name = "tinypkg"
version = "0.1"
'''


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("PIP_NO_INDEX", "1")


@pytest.fixture
def tiny_package(tmp_path: Path) -> Path:
    pkg = tmp_path / "tinypkg-src"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "tinybackend.py").write_text(BACKEND)
    return pkg


def python_ok(env: Path, code: str) -> bool:
    return subprocess.run([env / "bin" / "python", "-c", code], capture_output=True).returncode == 0


def test_hash_is_content_based(tmp_path):
    b = EnvironmentBuilder(tmp_path)
    same = b.spec_hash(["a", "b", "# c", "a "], None, True)
    assert b.spec_hash(["b", "a", ""], None, True) == same
    assert b.spec_hash(["a"], None, True) != b.spec_hash(["a"], None, False)
    assert b.spec_hash(["a"], "3.12", True) != b.spec_hash(["a"], None, True)
    assert b.bin_dir("x") == tmp_path / "x" / "bin"


def test_empty_environment_and_cache_reuse(tmp_path):
    async def body():
        b = EnvironmentBuilder(tmp_path / "envs")
        log = tmp_path / "build.log"
        isolated = await b.build([], system_site_packages=False, log_path=log)
        env_hash = b.spec_hash([], None, False)
        assert isolated == b.path_for(env_hash) and b.is_built(env_hash)
        assert python_ok(isolated, "import sys; assert sys.prefix != sys.base_prefix")
        assert not python_ok(isolated, "import psutil")
        started = time.monotonic()
        assert await b.build([], system_site_packages=False, log_path=log) == isolated
        assert time.monotonic() - started < 0.5
        assert "already built" in log.read_text()
        shared = await b.build([], log_path=log)  # sees the platform's packages
        assert python_ok(shared, "import psutil, flowyard")
        b.delete(env_hash)
        assert not isolated.exists() and not b.is_built(env_hash)

    asyncio.run(body())


def test_local_package_install_and_concurrent_builds(tmp_path, tiny_package):
    async def body():
        b = EnvironmentBuilder(tmp_path / "envs")
        log = tmp_path / "build.log"
        reqs = [str(tiny_package)]
        first, second = await asyncio.gather(
            b.build(reqs, system_site_packages=False, log_path=log),
            b.build(reqs, system_site_packages=False, log_path=log),
        )
        assert first == second
        assert python_ok(first, "import tinypkg; assert tinypkg.ANSWER == 42")
        text = log.read_text()
        assert text.count("building environment") == 1 and "already built" in text

    asyncio.run(body())


def test_incomplete_build_is_rebuilt(tmp_path):
    async def body():
        b = EnvironmentBuilder(tmp_path / "envs")
        env_hash = b.spec_hash([], None, False)
        b.path_for(env_hash).mkdir(parents=True)
        (b.path_for(env_hash) / "junk").write_text("half a build")
        path = await b.build([], system_site_packages=False, log_path=tmp_path / "log")
        assert not (path / "junk").exists() and b.is_built(env_hash)

    asyncio.run(body())


@pytest.mark.parametrize("installer", ["auto", "pip"])
def test_failing_requirement_raises_with_log_tail(tmp_path, installer):
    missing = tmp_path / "does-not-exist"

    async def body():
        b = EnvironmentBuilder(tmp_path / "envs", installer=installer)
        with pytest.raises(EnvironmentBuildError) as info:
            await b.build([str(missing)], system_site_packages=False, log_path=tmp_path / "log")
        assert "failed with exit code" in str(info.value)
        assert "does-not-exist" in str(info.value)
        assert not b.is_built(b.spec_hash([str(missing)], None, False))
        assert not b.path_for(b.spec_hash([str(missing)], None, False)).exists()

    asyncio.run(body())
