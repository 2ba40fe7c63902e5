"""The Experiments & models pages: over HTTP, and in headless Chromium (compare runs, move an alias)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, check_screenshot, log_in, root, session, watched_page  # noqa: E402,F401

NS = "/api/v1/namespaces/admin"


def _seed(server) -> list[str]:
    uids = []
    with server.client() as c:
        for i, (lr, acc) in enumerate([(0.1, 0.7), (0.01, 0.9), (0.001, 0.95)]):
            uid = c.post(f"{NS}/tracking/runs", json={"experiment": "ui-exp", "name": f"ui-run-{i}",
                                                       "params": {"lr": lr}}).json()["uid"]
            points = [{"key": "acc", "value": acc * (s + 1) / 5, "step": s} for s in range(5)]
            c.post(f"{NS}/tracking/runs/{uid}/log", json={"metrics": points})
            uids.append(uid)
        for uri in ("file:///m/ui/1", "file:///m/ui/2"):
            assert c.post(f"{NS}/registeredmodels/ui-model/versions", json={"uri": uri, "format": "sklearn"}).status_code == 201
        c.put(f"{NS}/registeredmodels/ui-model/aliases/production", json={"version": 1})
    return uids


def test_pages_render_for_a_member(shared_server, root) -> None:
    _seed(shared_server)
    with session(shared_server, "admin", root.ADMIN_PASSWORD) as c:
        for path, needle in (("/tracking", 'id="tracking-experiments"'), ("/tracking/experiments/ui-exp", "ui-exp"),
                             ("/models", "ui-model"), ("/models/ui-model", 'id="versions-table"'),
                             ("/lineage?node=model:ui-model", 'id="lineage-graph"'),
                             ("/tracking/compare?runs=a,b", 'id="tracking-compare"')):
            r = c.get(path)
            assert r.status_code == 200 and needle in r.text, path
        assert c.get("/models/nope").status_code == 404


@pytest.mark.browser
def test_compare_and_alias_in_chromium(server, root, tmp_path: Path) -> None:
    root.require(CHROMIUM.exists(), "Debian chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        root.require(False, "the playwright Python package")
    _seed(server)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser.new_context(viewport=VIEWPORT))
            log_in(page, server.url + "/login?next=/tracking", "**/tracking")
            page.get_by_role("link", name="ui-exp").click()
            expect(page.locator("#runs-table tbody tr")).to_have_count(3)
            page.get_by_label("Filter").fill("metrics.acc > 0.8 OR params.lr IN (0.1)")
            page.get_by_role("button", name="Apply").click()
            expect(page.locator("#runs-count")).to_have_text("3 runs")
            page.get_by_label("Filter").fill("metrics.acc > 0.8")
            page.get_by_label("Sort by").fill("metrics.acc DESC")
            page.get_by_role("button", name="Apply").click()
            expect(page.locator("#runs-count")).to_have_text("2 runs")
            assert page.locator("#runs-table tbody tr").first.get_attribute("data-run") == "ui-run-2"
            expect(page.locator("#runs-parallel polyline")).to_have_count(2)
            page.get_by_label("select ui-run-1").check()
            page.get_by_label("select ui-run-2").check()
            page.get_by_role("button", name="Compare selected").click()
            page.wait_for_url("**/tracking/compare**")
            expect(page.locator("#compare-curves polyline")).to_have_count(2)
            assert "0.001" in page.locator("#compare-params").inner_text()
            shot = tmp_path / "ui-compare.png"
            page.screenshot(path=str(shot))
            check_screenshot(shot)

            page.goto(server.url + "/models/ui-model")
            expect(page.locator("#model-lineage .node.modelversion")).to_have_count(2)
            page.get_by_label("Alias", exact=True).fill("production")
            page.get_by_label("Version", exact=True).fill("2")
            page.get_by_role("button", name="Move alias").click()
            expect(page.locator('#versions-table tr[data-version="2"] .badge')).to_have_text("production")
            assert problems == [], problems
        finally:
            browser.close()
