"""The Endpoints pages in headless Chromium: deploy from a URI with the form, see status, URL, examples,
traffic and the live request rate."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import httpx
import joblib
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, check_screenshot, log_in, root, watched_page  # noqa: E402,F401


@pytest.mark.browser
def test_deploy_from_the_form_and_watch_it(server, root, tmp_path: Path) -> None:
    root.require(CHROMIUM.exists(), "Debian chromium")
    from playwright.sync_api import expect, sync_playwright

    x, y = load_digits(return_X_y=True)
    (tmp_path / "digits").mkdir()
    joblib.dump(LogisticRegression(max_iter=200).fit(x, y), tmp_path / "digits" / "model.joblib")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser.new_context(viewport=VIEWPORT))
            log_in(page, server.url + "/endpoints", server.url + "/endpoints")
            expect(page.locator("#endpoints-empty")).to_be_visible()
            page.locator("#new-endpoint").click()
            page.get_by_label("Name", exact=True).fill("digits")
            page.get_by_label("Storage URI").fill(f"file://{tmp_path / 'digits'}")
            page.get_by_label("Format").select_option("sklearn")
            page.get_by_role("button", name="Deploy").click()
            page.wait_for_url("**/endpoints/digits?ns=admin")
            deadline = time.time() + 60
            while page.locator("#endpoint-phase").inner_text() != "Ready":
                assert time.time() < deadline, page.locator("#endpoint-phase").inner_text()
                time.sleep(0.5)
                page.reload()
            url = f"{server.url}/serving/admin/digits"
            expect(page.locator("#endpoint-url")).to_have_text(url)
            expect(page.locator("#example-curl")).to_contain_text(f"{url}/v2/models/digits/infer")
            expect(page.locator("#example-python")).to_contain_text("tritonclient.http")
            expect(page.locator("#revisions-table")).to_contain_text("100%")
            with httpx.Client(headers={"Authorization": f"Bearer {server.token()}"}) as c:
                for _ in range(30):
                    assert c.post(f"{url}/v1/models/digits:predict", json={"instances": x[:1].tolist()}).status_code == 200
                    time.sleep(0.1)
            expect(page.locator("#stat-latency")).to_contain_text("ms", timeout=10_000)
            page.screenshot(path=str(tmp_path / "endpoint.png"))
            check_screenshot(tmp_path / "endpoint.png")
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Endpoints").click()
            expect(page.locator('#endpoints-table tr[data-name="digits"]')).to_contain_text("Ready")
            assert problems == [], problems
        finally:
            browser.close()
