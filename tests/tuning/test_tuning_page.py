"""The Tuning pages: the list over HTTP, and an experiment's page (plots, sorting) in headless Chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ui"))
from katib import EXPERIMENTS, experiment, wait_done
from test_dashboard import (  # noqa: F401
    log_in,
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    check_screenshot,
    root,
    session,
    watched_page,
)

CODE = ("x=int('${trialParameters.x}'); y=float('${trialParameters.y}')\n"
        "print('no metric here' if x == 2 else f'loss={(x-1)**2 + y}')")


@pytest.mark.browser
def test_tuning_pages(shared_server, root, tmp_path: Path) -> None:
    grid = [{"name": "x", "parameterType": "int", "feasibleSpace": {"min": "-2", "max": "2"}},
            {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["0.5", "1.5"]}}]
    with shared_server.client() as c:
        assert c.post(EXPERIMENTS, json=experiment("page", code=CODE, algorithm="grid", max_trials=10, parallel=3,
                                                   parameters=grid)).status_code == 201
        st = wait_done(c, "page")["status"]
        assert st["trialsFailed"] == 2 and st["trialsSucceeded"] == 8, st
    with session(shared_server, "admin", root.ADMIN_PASSWORD) as s:
        html = s.get("/tuning?ns=admin").text
        assert 'href="/tuning/page?ns=admin"' in html and "grid" in html and "minimize loss" in html
    root.require(CHROMIUM.exists(), "Debian chromium")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser.new_context(viewport=VIEWPORT))
            log_in(page, shared_server.url + "/login?next=/tuning/page%3Fns%3Dadmin", "**/tuning/page?ns=admin")
            expect(page.locator("#objective-plot circle")).to_have_count(8)
            expect(page.locator("#parallel-plot path.pc-line")).to_have_count(8)
            expect(page.locator("#parallel-plot path.pc-line.best")).to_have_count(1)
            expect(page.locator("#best-trial")).to_contain_text("0.5")
            expect(page.locator("#trials-table")).to_contain_text("metric loss not found in output")
            page.locator("button.sort[data-key='m:loss']").click()
            first = page.locator("#trials-table tbody tr").first
            expect(first).to_have_class("best")
            page.locator("button.sort[data-key='m:loss']").click()  # descending: trials without a value last
            expect(page.locator("#trials-table tbody tr").last).to_contain_text("Failed")
            shot = tmp_path / "ui-tuning.png"
            page.screenshot(path=str(shot))
            check_screenshot(shot)
            assert problems == []
        finally:
            browser.close()
