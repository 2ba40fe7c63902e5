"""Property-based fuzzing of the whole OpenAPI schema against a live server: no 5xx, ever."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def test_no_server_errors(shared_server) -> None:
    st = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    cmd = [st, "run", f"{shared_server.url}/openapi.json", "--checks", "not_a_server_error",
           "-H", f"Authorization: Bearer {shared_server.token()}", "--max-examples", "25", "--seed", "7",
           "--request-timeout", "20"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    tail = r.stdout[-4000:] + r.stderr[-2000:]
    assert r.returncode == 0, tail
    assert "passed" in r.stdout and " failed" not in r.stdout.split("SUMMARY")[-1], tail
    assert "Traceback" not in shared_server.read_log(), shared_server.read_log()[-4000:]
