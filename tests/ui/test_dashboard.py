"""The web dashboard: login/logout security over plain HTTP, and the shell driven in headless Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest
from fyserver import ADMIN_PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture(scope="session")
def root(pytestconfig: pytest.Config) -> ModuleType:
    """tests/conftest.py (its module name `conftest` is shared with other test folders' conftests)."""
    module = pytestconfig.pluginmanager.get_plugin(str(Path(__file__).resolve().parents[1] / "conftest.py"))
    assert module is not None
    return module


# -- helpers -----------------------------------------------------------------------------------


def _form_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match.group(1)


def login(c: httpx.Client, user: str, password: str, next_: str | None = None) -> httpx.Response:
    """Log in through the form the way a browser does: GET the form, POST it back with its token."""
    r = c.get("/login", params={"next": next_} if next_ else None)
    assert r.status_code == 200, r.text
    return c.post("/login", data={"username": user, "password": password, "csrf": _form_csrf(r.text),
                                  "next": next_ or "/"})


@contextlib.contextmanager
def session(srv, user: str, password: str) -> Iterator[httpx.Client]:
    """A client holding a browser session of `user`."""
    with httpx.Client(base_url=srv.url, timeout=30, verify=False) as c:
        r = login(c, user, password)
        assert r.status_code == 303, r.text
        yield c


def page_csrf(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, html
    return match.group(1)


def read_png(path: Path) -> tuple[int, int, Counter]:
    """(width, height, colour histogram) of an 8-bit RGB/RGBA PNG, decoded with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(ctype + chunk) == crc, f"bad CRC in chunk {ctype!r}"
        if ctype == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif ctype == b"IDAT":
            idat += chunk
        elif ctype == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "no IHDR chunk"
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    bpp = 3 if colour_type == 2 else 4
    raw = zlib.decompress(bytes(idat))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    prev = bytearray(stride)
    colours: Counter = Counter()
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        else:
            assert kind == 0, f"unknown PNG filter {kind}"
        if y % 2 == 0:  # every other row is plenty for a histogram
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, bpp * 2))
        prev = line
    return width, height, colours


def watched_page(context):  # type: ignore[no-untyped-def]
    """A new page of `context` and the list its JS errors and CSP violations are collected in."""
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    return page, problems


def log_in(page, url: str, lands_on: str) -> None:  # type: ignore[no-untyped-def]
    """Open `url` (its login form shows), log in as admin and wait to land on `lands_on` (a URL glob)."""
    page.goto(url)
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lands_on)


def check_screenshot(path: Path) -> None:
    width, height, colours = read_png(path)
    assert (width, height) == (VIEWPORT["width"], VIEWPORT["height"])
    total = sum(colours.values())
    assert len(colours) >= 20, f"{path.name}: only {len(colours)} colours: a blank page?"
    assert colours.most_common(1)[0][1] / total < 0.95, f"{path.name}: one colour covers the page"
    keep = os.environ.get("FLOWYARD_UI_SCREENSHOTS")
    if keep:
        shutil.copy(path, Path(keep) / path.name)


# -- without a browser -------------------------------------------------------------------------


def test_pages_need_login_and_keep_the_target(shared_server) -> None:
    with httpx.Client(base_url=shared_server.url) as c:
        for path in ("/", "/members?ns=admin"):
            r = c.get(path)
            assert r.status_code == 303
            assert r.headers["location"].startswith("/login?next=")
            assert httpx.URL(r.headers["location"]).params["next"] == path
    with httpx.Client(base_url=shared_server.url, cookies={"flowyard_session": "forged"}) as c:
        r = c.get("/")
        assert r.status_code == 303 and r.headers["location"].startswith("/login")
        assert c.get("/static/app.css").headers["content-type"].startswith("text/css")
        assert c.get("/static/app.js").status_code == 200
        paths = c.get("/openapi.json").json()["paths"]
        assert not {"/", "/login", "/logout", "/members"} & set(paths)


def test_login_form_rejects_a_post_without_csrf(shared_server, root) -> None:
    with httpx.Client(base_url=shared_server.url) as c:
        r = c.post("/login", data={"username": "admin", "password": root.ADMIN_PASSWORD, "next": "/"})
        assert r.status_code in (400, 403)
        assert "expired or was not sent by this site" in r.text
        assert "flowyard_session" not in r.cookies
        # a token in the form but no matching cookie (a cross-site post) is refused too
        token = _form_csrf(c.get("/login").text)
        c.cookies.clear()
        r = c.post("/login", data={"username": "admin", "password": root.ADMIN_PASSWORD, "csrf": token})
        assert r.status_code == 403 and "flowyard_session" not in r.cookies
        # the refused form carries a fresh token that works
        r = c.post("/login", data={"username": "admin", "password": root.ADMIN_PASSWORD, "csrf": _form_csrf(r.text)})
        assert r.status_code == 303 and "flowyard_session" in r.cookies


def test_wrong_password_is_a_message_not_a_traceback(shared_server) -> None:
    with httpx.Client(base_url=shared_server.url) as c:
        r = login(c, "admin", "not-the-password")
        assert r.status_code == 401
        assert "Wrong user name or password." in r.text and "Traceback" not in r.text
        assert 'value="admin"' in r.text  # the user name is kept
        r = login(c, "", "x")
        assert r.status_code == 400 and "Enter your user name and password." in r.text


def test_cookie_flags_and_no_open_redirect(shared_server, root) -> None:
    with httpx.Client(base_url=shared_server.url) as c:
        assert 'name="next" value="/"' in c.get("/login", params={"next": "//evil.example"}).text
        for evil in ("//evil.example", "https://evil.example/", "/\\evil.example", "evil.example"):
            c.cookies.clear()
            r = login(c, "admin", root.ADMIN_PASSWORD, next_=evil)
            assert r.status_code == 303 and r.headers["location"] == "/", evil
        assert c.get("/login", params={"next": "/members"}).headers["location"] == "/members"  # logged in already
        c.cookies.clear()
        r = login(c, "admin", root.ADMIN_PASSWORD, next_="/members?ns=admin")
        assert r.status_code == 303 and r.headers["location"] == "/members?ns=admin"
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("flowyard_session="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
        assert "secure" not in flags  # plain http here; https gets Secure
        assert c.get("/members?ns=admin").status_code == 200


def test_cookies_are_secure_over_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root) -> None:
    """In process (no controllers started): a request that arrived over https gets Secure cookies."""
    from flowyard.config import Settings
    from flowyard.platform import Platform
    from flowyard.server.app import create_app
    from flowyard.server.serve import bootstrap

    monkeypatch.setenv("FLOWYARD_ADMIN_PASSWORD", root.ADMIN_PASSWORD)
    monkeypatch.delenv("FLOWYARD_DB", raising=False)
    p = Platform.open(Settings(home=tmp_path / "home"))
    bootstrap(p)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=create_app(p))
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            form = await c.get("/login")
            assert "secure" in form.headers["set-cookie"].lower()
            r = await c.post("/login", data={"username": "admin", "password": root.ADMIN_PASSWORD,
                                             "csrf": _form_csrf(form.text)})
            assert r.status_code == 303, r.text
            cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("flowyard_session="))
            flags = {part.strip().lower() for part in cookie.split(";")[1:]}
            assert {"secure", "httponly", "samesite=lax", "path=/"} <= flags
            assert (await c.get("/")).status_code == 200

    asyncio.run(scenario())


def test_logout_ends_the_session(shared_server, root) -> None:
    with session(shared_server, "admin", root.ADMIN_PASSWORD) as c:
        cookie = c.cookies["flowyard_session"]
        page = c.get("/")
        assert page.status_code == 200
        csrf = page_csrf(page.text)
        assert c.get("/api/v1/auth/whoami").json()["username"] == "admin"
        assert c.post("/logout", data={}).status_code == 403
        assert c.post("/logout", data={"csrf": "wrong"}).status_code == 403
        r = c.post("/logout", data={"csrf": csrf})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert "flowyard_session" not in c.cookies
    with httpx.Client(base_url=shared_server.url, cookies={"flowyard_session": cookie}) as old:
        r = old.get("/api/v1/auth/whoami")
        assert r.status_code == 401, r.text
        assert old.get("/").status_code == 303


def test_repeated_failures_are_throttled(server) -> None:
    with httpx.Client(base_url=server.url) as c:
        for _ in range(5):
            assert login(c, "admin", "wrong-password").status_code == 401
        r = login(c, "admin", "wrong-password")
        assert r.status_code == 429
        assert "Too many failed logins" in r.text and int(r.headers["retry-after"]) >= 1


def test_page_csrf_token_works_for_the_api(shared_server) -> None:
    password = shared_server.add_user("dora")
    with session(shared_server, "dora", password) as c:
        page = c.get("/members")
        assert page.status_code == 200 and 'id="add-member"' in page.text
        csrf = page_csrf(page.text)
        url = "/api/v1/namespaces/dora/members/admin"
        assert c.put(url, json={"role": "view"}).status_code == 403  # cookie without the header
        r = c.put(url, json={"role": "view"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200, r.text


def test_viewers_see_members_read_only(shared_server) -> None:
    shared_server.add_user("erin")
    password = shared_server.add_user("finn", namespace=False)
    with shared_server.client("erin", "erin-password-1") as c:
        assert c.put("/api/v1/namespaces/erin/members/finn", json={"role": "view"}).status_code == 200
    with session(shared_server, "finn", password) as c:
        home = c.get("/")
        assert home.status_code == 200 and "<h1>erin</h1>" in home.text
        page = c.get("/members")
        assert page.status_code == 200
        assert "finn" in page.text and "erin" in page.text and "owner" in page.text
        assert 'id="add-member"' not in page.text and "role-select" not in page.text
        assert "only namespace admins change members" in page.text
        # an unknown or foreign namespace falls back with a notice
        r = c.get("/", params={"ns": "admin"})
        assert r.status_code == 200 and "does not exist or you are not a member" in r.text


def test_a_user_without_namespaces_gets_a_clear_message(shared_server) -> None:
    password = shared_server.add_user("gail", namespace=False)
    with session(shared_server, "gail", password) as c:
        for path in ("/", "/members", "/?ns=admin"):
            r = c.get(path)
            assert r.status_code == 200, path
            assert "You have no namespace yet" in r.text and "gail" in r.text
            assert 'id="ns-select"' not in r.text


# -- in a browser ------------------------------------------------------------------------------


@pytest.mark.browser
def test_dashboard_in_chromium(server, root, tmp_path: Path) -> None:
    root.require(CHROMIUM.exists(), "Debian chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        root.require(False, "the playwright Python package")
    server.add_user("alice")
    server.add_user("bob")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser.new_context(viewport=VIEWPORT))

            page.goto(server.url + "/")
            page.wait_for_url("**/login?next=%2F")
            page.get_by_label("User name").fill("admin")
            page.get_by_label("Password").fill("not-the-password")
            page.get_by_role("button", name="Log in").click()
            assert "Wrong user name or password" in page.locator("#login-error").inner_text()

            page.get_by_label("Password").fill(root.ADMIN_PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url(server.url + "/")
            assert page.locator("main h1").inner_text() == "admin"
            assert page.locator(".topbar .user-name").inner_text() == "admin"
            body = page.locator("main").inner_text()
            assert "Objects" in body and "Quota" in body and "Latest events" in body
            shot = tmp_path / "ui-home.png"
            page.screenshot(path=str(shot))
            check_screenshot(shot)

            page.get_by_label("Namespace").select_option("alice")
            page.wait_for_url("**/?ns=alice")
            assert page.locator("main h1").inner_text() == "alice"

            page.get_by_role("link", name="Members").click()
            page.wait_for_url("**/members?ns=alice")
            table = page.locator("#members-table")
            assert "alice" in table.inner_text() and "owner" in table.inner_text()

            page.get_by_label("User name").fill("nobody-here")
            page.get_by_role("button", name="Add member").click()
            message = page.locator("#members-message")
            message.wait_for(state="visible")
            assert "User 'nobody-here' not found" in message.inner_text()

            page.get_by_label("User name").fill("bob")
            page.locator("#member-role").select_option("edit")
            page.get_by_role("button", name="Add member").click()
            page.locator('#members-table tr[data-user="bob"]').wait_for()
            assert page.get_by_label("Role of bob").input_value() == "edit"
            assert "bob is now a member of alice" in message.inner_text()
            with server.client() as c:
                items = c.get("/api/v1/namespaces/alice/members").json()["items"]
            assert {"user": "bob", "role": "edit", "owner": False} in items
            shot = tmp_path / "ui-members.png"
            page.screenshot(path=str(shot))
            check_screenshot(shot)

            page.get_by_role("button", name="Log out").click()
            page.wait_for_url("**/login")
            page.goto(server.url + "/")
            page.wait_for_url("**/login?next=%2F")
            assert page.get_by_role("button", name="Log in").is_visible()
            assert problems == []
        finally:
            browser.close()
