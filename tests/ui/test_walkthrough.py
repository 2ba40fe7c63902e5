"""The README walk-through in headless Chromium: after `flowyard demo mnist`, the dashboard shows
the run's graph (five tasks succeeded), the model (a version aliased production) and the
endpoint (Ready, with its URL)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from fyserver import shared_mnist
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, check_screenshot, log_in, root, watched_page  # noqa: F401

TASKS = ("load-digits", "train", "evaluate", "register", "deploy")


@pytest.mark.browser
def test_dashboard_after_the_mnist_demo(server, root, tmp_path: Path) -> None:
    root.require(CHROMIUM.exists(), "Debian chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        root.require(False, "the playwright Python package")
    env = {**server.env, "FLOWYARD_URL": server.url, "FLOWYARD_TOKEN": server.token(), "HOME": str(tmp_path)}
    demo = subprocess.run([sys.executable, "-m", "flowyard", "demo", "mnist", "--data", str(shared_mnist())],
                          env=env, capture_output=True, text=True, timeout=240)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    with server.client() as c:
        runs = c.get("/api/v1/namespaces/admin/runs").json()["items"]
    run = next(r["metadata"]["name"] for r in runs if r["metadata"]["name"].startswith("mnist-"))

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser.new_context(viewport=VIEWPORT))
            log_in(page, server.url + "/login?next=/", server.url + "/")
            shoot(page, tmp_path / "walkthrough-home.png")

            # the run, reached through the menu: its graph, every task succeeded
            page.get_by_role("link", name="Runs", exact=True).first.click()
            page.locator(f'#runs-table a.row-title[href*="/runs/{run}"]').click()
            page.wait_for_url(f"**/runs/{run}*")
            expect(page.locator("#dag .dag-node")).to_have_count(len(TASKS))
            for task in TASKS:
                expect(page.locator(f'#dag .dag-node[data-task="{task}"]')).to_have_attribute("data-state", "SUCCEEDED")
            expect(page.locator("#run-state .badge")).to_have_attribute("data-state", "SUCCEEDED")
            shoot(page, tmp_path / "walkthrough-run.png")

            # the model: version 1 holds the alias production
            page.goto(f"{server.url}/models")
            page.get_by_role("link", name="mnist", exact=True).click()
            page.wait_for_url("**/models/mnist*")
            row = page.locator('#versions-table tr[data-version="1"]')
            expect(row).to_contain_text("production")
            expect(row).to_contain_text("accuracy=")
            shoot(page, tmp_path / "walkthrough-model.png")

            # the endpoint: Ready, with the URL the demo queried
            page.get_by_role("link", name="Endpoints", exact=True).first.click()
            page.locator('a[href*="/endpoints/mnist"]').first.click()
            page.wait_for_url("**/endpoints/mnist*")
            expect(page.locator("#endpoint-phase")).to_have_text("Ready")
            expect(page.locator("#endpoint-url")).to_have_text(f"{server.url}/serving/admin/mnist")
            shoot(page, tmp_path / "walkthrough-endpoint.png")
            assert problems == [], problems
        finally:
            browser.close()


def shoot(page, path: Path) -> None:  # type: ignore[no-untyped-def]
    """A checked screenshot (kept in $FLOWYARD_UI_SCREENSHOTS when set, like the other UI tests')."""
    page.wait_for_timeout(300)
    page.screenshot(path=str(path))
    check_screenshot(path)
