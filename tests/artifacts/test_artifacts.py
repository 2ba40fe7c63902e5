"""Artifacts: the store on its own (memory://) and the HTTP API against a real server.

Namespace `alice` is owned by alice; bob is `edit`, carol is `view`; dave is an outsider.
"""

from __future__ import annotations

import hashlib
import io
import os

import httpx
import pytest

from flowyard.artifacts import ArtifactStore, check_path
from flowyard.errors import Conflict, Invalid, NotFound

ART = "/api/v1/namespaces/alice/artifacts"
BAD_PATHS = ["../escape", "a/../../b", "/etc/passwd", "a\\b", "a\x00b", "a//b", "./a", "x" * 1025]


# -- the store on its own --------------------------------------------------------------------

@pytest.fixture
def store() -> ArtifactStore:
    return ArtifactStore(f"memory://fy-{os.urandom(4).hex()}")


def test_store_round_trip_list_and_delete(store: ArtifactStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    info = store.write("ns", "runs/1/model.bin", io.BytesIO(data))
    assert info["size"] == len(data) and info["uri"].startswith("memory://")
    assert info["uri"].endswith("/ns/runs/1/model.bin")
    store.write("ns", "runs/2/metrics.json", b"{}")
    store.write("ns", "notes.txt", iter([b"a", b"b"]))
    store.write("other", "runs/1/x", b"not alice's")
    with store.open_read("ns", "runs/1/model.bin") as f:
        assert f.read() == data
    assert store.size("ns", "notes.txt") == 2 and store.exists("ns", "notes.txt")
    assert not store.exists("ns", "runs")  # a folder is not an artifact
    assert [e["path"] for e in store.list("ns")] == ["notes.txt", "runs/1/model.bin", "runs/2/metrics.json"]
    assert [e["path"] for e in store.list("ns", "runs/1")] == ["runs/1/model.bin"]
    assert [e["path"] for e in store.list("ns", "runs/")] == ["runs/1/model.bin", "runs/2/metrics.json"]
    assert store.list("ns", "nothing/") == [] and store.list("empty") == []
    assert all(e["modified"] for e in store.list("ns"))
    store.delete("ns", "notes.txt")
    assert not store.exists("ns", "notes.txt")
    with pytest.raises(NotFound):
        store.delete("ns", "notes.txt")
    with pytest.raises(NotFound):
        store.open_read("ns", "runs")
    with pytest.raises(NotFound):
        store.size("ns", "missing")


def test_store_replace_is_atomic_and_failed_writes_leave_nothing(store: ArtifactStore) -> None:
    store.write("ns", "m", b"old")

    def broken() -> object:
        yield b"partial"
        raise RuntimeError("crash mid-upload")

    with pytest.raises(RuntimeError):
        store.write("ns", "m", broken())
    with pytest.raises(RuntimeError):
        store.write("ns", "new", broken())
    assert store.open_read("ns", "m").read() == b"old"
    assert not store.exists("ns", "new")
    assert store.fs.ls(f"{store.root}/.uploads") == []  # temporary files are cleaned up
    store.write("ns", "m", b"new")
    assert store.open_read("ns", "m").read() == b"new"


def test_store_file_and_folder_clash(store: ArtifactStore) -> None:
    store.write("ns", "a/b", b"1")
    with pytest.raises(Conflict):
        store.write("ns", "a", b"2")
    with pytest.raises(Conflict):
        store.write("ns", "a/b/c", b"3")


@pytest.mark.parametrize("path", BAD_PATHS)
def test_store_rejects_unsafe_paths(store: ArtifactStore, path: str) -> None:
    with pytest.raises(Invalid) as e:
        store.write("ns", path, b"x")
    assert "use" in e.value.message or "drop" in e.value.message or "name each" in e.value.message
    with pytest.raises(Invalid):
        check_path(path)


def test_store_rejects_bad_namespaces(store: ArtifactStore) -> None:
    for ns in ["..", "", "a/b", ".uploads"]:
        with pytest.raises(Invalid):
            store.write(ns, "x", b"x")


def test_store_on_local_folder(tmp_path) -> None:
    store = ArtifactStore(f"file://{tmp_path}/art")
    info = store.write("ns", "deep/er/file.txt", b"hi")
    assert (tmp_path / "art/ns/deep/er/file.txt").read_bytes() == b"hi"
    assert info["uri"] == f"file://{tmp_path}/art/ns/deep/er/file.txt"
    store.delete("ns", "deep/er/file.txt")
    assert not (tmp_path / "art/ns/deep").exists()  # empty folders do not linger


# -- the HTTP API ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(shared_server):
    for user in ("alice", "bob", "carol", "dave"):
        shared_server.add_user(user)
    with shared_server.client("alice", "alice-password-1") as alice:
        assert alice.put("/api/v1/namespaces/alice/members/bob", json={"role": "edit"}).status_code == 200
        assert alice.put("/api/v1/namespaces/alice/members/carol", json={"role": "view"}).status_code == 200
    return shared_server


def _as(server, user: str) -> httpx.Client:
    return server.client(user, f"{user}-password-1")


def test_upload_download_round_trip(world) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    with _as(world, "bob") as bob:
        r = bob.put(f"{ART}/runs/7/model.bin", content=iter([data[:1000], data[1000:]]))  # chunked upload
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["path"] == "runs/7/model.bin" and body["size"] == len(data)
        assert body["uri"] == f"file://{world.home}/artifacts/alice/runs/7/model.bin"
    assert (world.home / "artifacts/alice/runs/7/model.bin").read_bytes() == data
    with _as(world, "carol") as carol, carol.stream("GET", f"{ART}/runs/7/model.bin") as r:
        assert r.status_code == 200
        assert r.headers["content-length"] == str(len(data))
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.headers["content-disposition"].startswith("attachment")
        digest = hashlib.sha256()
        for chunk in r.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()


def test_list_nested_and_prefix(world) -> None:
    with _as(world, "alice") as alice:
        for path in ("ls/a.txt", "ls/sub/b.json", "ls/sub/deeper/c.csv", "lsx.txt"):
            assert alice.put(f"{ART}/{path}", content=path.encode()).status_code == 201
        items = alice.get(ART, params={"prefix": "ls/"}).json()["items"]
        assert [i["path"] for i in items] == ["ls/a.txt", "ls/sub/b.json", "ls/sub/deeper/c.csv"]
        assert all(i["size"] == len(i["path"]) and i["modified"] for i in items)
        assert [i["path"] for i in alice.get(ART, params={"prefix": "ls/sub/d"}).json()["items"]] == [
            "ls/sub/deeper/c.csv"]
        assert {"ls/a.txt", "lsx.txt"} <= {i["path"] for i in alice.get(ART).json()["items"]}
        r = alice.get(f"{ART}/ls/sub/b.json")
        assert r.content == b"ls/sub/b.json" and r.headers["content-type"] == "application/json"
        assert alice.get(ART, params={"prefix": "../"}).status_code == 422


def test_replace_and_delete(world) -> None:
    with _as(world, "bob") as bob:
        assert bob.put(f"{ART}/del/x.bin", content=b"one").status_code == 201
        assert bob.put(f"{ART}/del/x.bin", content=b"two").status_code == 201
        assert bob.get(f"{ART}/del/x.bin").content == b"two"
        r = bob.delete(f"{ART}/del/x.bin")
        assert r.status_code == 200, r.text
        assert bob.get(f"{ART}/del/x.bin").status_code == 404
        assert bob.delete(f"{ART}/del/x.bin").status_code == 404
        assert not (world.home / "artifacts/alice/del").exists()


def test_missing_is_404(world) -> None:
    with _as(world, "carol") as carol:
        r = carol.get(f"{ART}/no/such/file")
        assert r.status_code == 404 and r.json()["code"] == "NotFound"
        assert "no/such/file" in r.json()["message"]
        assert carol.get(ART, params={"prefix": "no/such/"}).json() == {"items": []}


@pytest.mark.parametrize("path,hint", [
    ("a/%2E%2E/%2E%2E/secret", "'..'"),
    ("%2E%2E/x", "'..'"),
    ("/etc/passwd", "leading '/'"),
    ("a%5Cb", "backslash"),
    ("a%00b", "control"),
    ("x" * 1100, "at most 1024"),
])
def test_unsafe_paths_are_rejected_clearly(world, path: str, hint: str) -> None:
    with _as(world, "alice") as alice:
        for method in ("PUT", "GET", "DELETE"):
            r = alice.request(method, f"{ART}/{path}", content=b"x" if method == "PUT" else None)
            assert 400 <= r.status_code < 500 and r.status_code != 404, (method, path, r.text)
            assert r.json()["code"] == "Invalid" and hint in r.json()["message"], r.text
    assert not (world.home / "secret").exists() and not (world.home / "artifacts/x").exists()


def test_roles(world) -> None:
    with _as(world, "alice") as alice:
        assert alice.put(f"{ART}/roles/f.txt", content=b"secret-bytes").status_code == 201
    with _as(world, "bob") as bob:  # editor
        assert bob.put(f"{ART}/roles/bob.txt", content=b"b").status_code == 201
        assert bob.get(f"{ART}/roles/f.txt").content == b"secret-bytes"
        assert bob.delete(f"{ART}/roles/bob.txt").status_code == 200
    with _as(world, "carol") as carol:  # viewer
        assert carol.get(f"{ART}/roles/f.txt").content == b"secret-bytes"
        assert carol.get(ART, params={"prefix": "roles/"}).status_code == 200
        for r in (carol.put(f"{ART}/roles/carol.txt", content=b"c"), carol.delete(f"{ART}/roles/f.txt")):
            assert r.status_code == 403 and r.json()["code"] == "Forbidden"
    assert not (world.home / "artifacts/alice/roles/carol.txt").exists()


def test_outsider_learns_nothing(world) -> None:
    with _as(world, "alice") as alice:
        assert alice.put(f"{ART}/private/f.txt", content=b"secret-bytes").status_code == 201
    with _as(world, "dave") as dave:
        answers = [
            dave.get(ART),
            dave.get(ART, params={"prefix": "private/"}),
            dave.get(f"{ART}/private/f.txt"),
            dave.get(f"{ART}/private/missing.txt"),
            dave.get(f"{ART}/%2E%2E/x"),
            dave.put(f"{ART}/private/f.txt", content=b"overwritten"),
            dave.put(f"{ART}/private/new.txt", content=b"new"),
            dave.delete(f"{ART}/private/f.txt"),
            dave.get("/api/v1/namespaces/no-such-ns/artifacts/private/f.txt"),
        ]
        for r in answers:
            assert r.status_code == 403, (r.request.method, r.request.url, r.text)
            assert "secret-bytes" not in r.text and "items" not in r.json()
        assert len({r.json()["message"] for r in answers[2:5]}) == 1  # exists or not: same answer
        assert dave.put("/api/v1/namespaces/dave/artifacts/mine.txt", content=b"d").status_code == 201
    with _as(world, "alice") as alice:
        assert alice.get(f"{ART}/private/f.txt").content == b"secret-bytes"
        assert alice.get(f"{ART}/private/new.txt").status_code == 404


def test_anonymous_and_bad_token_get_401(world) -> None:
    with httpx.Client(base_url=world.url) as anon, \
            httpx.Client(base_url=world.url, headers={"Authorization": "Bearer fy_0000_bogus"}) as bogus:
        for c in (anon, bogus):
            for method, url in (("GET", ART), ("GET", f"{ART}/a"), ("PUT", f"{ART}/a"), ("DELETE", f"{ART}/a")):
                r = c.request(method, url, content=b"x" if method == "PUT" else None)
                assert r.status_code == 401 and r.json()["code"] == "Unauthorized", (method, url, r.text)


def test_admin_and_unknown_namespace(world) -> None:
    with world.client() as admin:
        assert admin.get(f"{ART}/private/f.txt").status_code in (200, 404)
        assert admin.get("/api/v1/namespaces/no-such-ns/artifacts").status_code == 404


def test_artifacts_route_is_in_openapi(world) -> None:
    paths = httpx.get(f"{world.url}/openapi.json").json()["paths"]
    assert "/api/v1/namespaces/{namespace}/artifacts/{path}" in paths
