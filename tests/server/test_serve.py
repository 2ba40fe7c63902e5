"""`flowyard up` itself: TLS, first-start admin, login throttling, environments end to end."""

from __future__ import annotations

import ipaddress
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from fyserver import free_port, make_server


@pytest.fixture
def tls_server(tmp_path: Path, request: pytest.FixtureRequest):
    yield from make_server(tmp_path, request, "--tls")


def test_tls_self_signed_certificate(tls_server) -> None:
    cert_path = tls_server.home / "tls" / "cert.pem"
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    ctx = ssl.create_default_context(cafile=str(cert_path))
    r = httpx.get(f"https://127.0.0.1:{tls_server.port}/readyz", verify=ctx)
    assert r.status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{tls_server.port}/readyz")  # untrusted without the CA


def test_first_start_prints_a_random_admin_password_once(tmp_path: Path) -> None:
    home, port = tmp_path / "home", free_port()
    env = {k: v for k, v in os.environ.items() if k != "FLOWYARD_ADMIN_PASSWORD"}
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flowyard", "up", "--home", str(home), "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            for _ in range(300):
                if "password" in log.read_text():
                    break
                time.sleep(0.1)
            line = next(ln for ln in log.read_text().splitlines() if "created user 'admin' with password" in ln)
            password = line.rsplit(" ", 1)[1]
            assert len(password) >= 12
            for _ in range(100):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            r = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/token",
                           json={"username": "admin", "password": password})
            assert r.status_code == 200 and r.json()["token"].startswith("fy_")
            assert "admin" == httpx.get(f"http://127.0.0.1:{port}/api/v1/auth/whoami",
                                        headers={"Authorization": f"Bearer {r.json()['token']}"}).json()["username"]
        finally:
            proc.terminate()
            proc.wait(30)
    assert password not in (home / "flowyard.db").read_bytes().decode("latin-1")


def test_failed_logins_are_slowed_down(server) -> None:
    server.add_user("mallory-target")
    url = f"{server.url}/api/v1/auth/token"
    codes = [httpx.post(url, json={"username": "mallory-target", "password": "wrong-guess-1"}).status_code
             for _ in range(7)]
    assert codes[:5] == [401] * 5 and 429 in codes[5:]
    r = httpx.post(url, json={"username": "mallory-target", "password": "mallory-target-password-1"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "mallory-target-password-1" not in server.read_log() and "wrong-guess-1" not in server.read_log()


def _local_package(root: Path) -> Path:
    pkg = root / "tinypkg"
    (pkg / "tinypkg").mkdir(parents=True)
    (pkg / "tinypkg" / "__init__.py").write_text("ANSWER = 42\n")
    (pkg / "backend.py").write_text(
        "import base64, hashlib, io, zipfile\n"
        "def _wheel(d):\n"
        "    name = 'tinypkg-1.0-py3-none-any.whl'\n"
        "    files = {'tinypkg/__init__.py': b'ANSWER = 42\\n',\n"
        "             'tinypkg-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\\nName: tinypkg\\nVersion: 1.0\\n',\n"
        "             'tinypkg-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}\n"
        "    rec = ''.join(f'{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b\"=\").decode()},{len(b)}\\n' for p, b in files.items())\n"
        "    files['tinypkg-1.0.dist-info/RECORD'] = (rec + 'tinypkg-1.0.dist-info/RECORD,,\\n').encode()\n"
        "    with zipfile.ZipFile(f'{d}/{name}', 'w') as z:\n"
        "        for p, b in files.items(): z.writestr(p, b)\n"
        "    return name\n"
        "def build_wheel(d, config_settings=None, metadata_directory=None): return _wheel(d)\n"
        "def build_editable(d, config_settings=None, metadata_directory=None): return _wheel(d)\n"
        "def get_requires_for_build_wheel(config_settings=None): return []\n"
    )
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "tinypkg"\nversion = "1.0"\n')
    return pkg


def test_environment_build_and_job_in_it(server, tmp_path: Path) -> None:
    pkg = _local_package(tmp_path)
    env = {"apiVersion": "flowyard.io/v1", "kind": "Environment", "metadata": {"name": "tiny"},
           "spec": {"requirements": [str(pkg)], "systemSitePackages": False}}
    with server.client() as c:
        assert c.post("/api/v1/environments", json=env).status_code == 201
        deadline = time.time() + 120
        while (phase := c.get("/api/v1/environments/tiny").json()["status"].get("phase")) not in ("Ready", "Failed"):
            assert time.time() < deadline, "environment build took too long"
            time.sleep(0.3)
        assert phase == "Ready", c.get("/api/v1/environments/tiny").json()["status"]
        assert "tinypkg" in c.get("/api/v1/environments/tiny/log").text
        job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "in-env"}, "spec": {"template": {"spec": {
            "containers": [{"image": "tiny", "command": ["python", "-c", "import sys, tinypkg; print(tinypkg.ANSWER, sys.prefix)"]}]}}}}
        c.post("/api/v1/namespaces/admin/jobs", json=job)
        while (st := c.get("/api/v1/namespaces/admin/jobs/in-env").json()["status"]).get("phase") not in ("Succeeded", "Failed"):
            assert time.time() < deadline
            time.sleep(0.2)
        out = c.get("/api/v1/namespaces/admin/jobs/in-env/log").text
        assert st["phase"] == "Succeeded" and out.startswith("42 ") and "envs" in out, (st, out)

        # the same content under another name reuses the build
        env2 = {**env, "metadata": {"name": "tiny-again"}}
        c.post("/api/v1/environments", json=env2)
        time.sleep(0.5)
        again = c.get("/api/v1/environments/tiny-again").json()["status"]
        assert again["phase"] == "Ready" and again["hash"] == c.get("/api/v1/environments/tiny").json()["status"]["hash"]

        bad = {**env, "metadata": {"name": "broken"}, "spec": {"requirements": [str(tmp_path / "missing-pkg")]}}
        c.post("/api/v1/environments", json=bad)
        while (st := c.get("/api/v1/environments/broken").json()["status"]).get("phase") not in ("Ready", "Failed"):
            assert time.time() < deadline
            time.sleep(0.3)
        assert st["phase"] == "Failed" and "missing-pkg" in st["message"]
