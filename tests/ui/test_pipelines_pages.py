"""The Pipelines and Runs pages of the dashboard: over HTTP, and the live run page in headless Chromium."""

# no `from __future__ import annotations`: kfp reads the component annotations as types

import re
import shutil
from pathlib import Path

import httpx
import pytest
from test_dashboard import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, check_screenshot, log_in, root, session, watched_page  # noqa: F401

import kfp
from kfp import compiler, dsl  # noqa: E402

from flowyard.ui.pipelines import duration_text, run_row  # noqa: E402

SCREENSHOTS = {"runs": "/tmp/ui-runs.png", "run": "/tmp/ui-run.png", "pipelines": "/tmp/ui-pipelines.png"}
EDIT_CONTROLS = ('id="upload-form"', 'id="create-run"', 'id="terminate-run"', 'id="version-form"',
                 'id="experiment-form"', 'id="new-recurring"', 'data-action=', 'id="archive-run"', 'id="pipeline-actions"')


@dsl.component
def add(a: float, b: float) -> float:
    print(f"adding {a} and {b}")
    return a + b


@dsl.pipeline(name="calc-pipeline", description="classic calc pipeline")
def calc(a: float = 7.0, b: float = 8.0) -> float:
    first = add(a=a, b=4.0)
    second = add(a=a, b=b)
    return add(a=first.output, b=second.output).output


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pkg") / "calc.yaml"
    compiler.Compiler().compile(calc, str(path))
    return path


def _client(srv, namespace: str = "admin"):
    return kfp.Client(host=srv.url, existing_token=srv.token(), namespace=namespace)


def _run_name(srv, run_id: str, ns: str = "admin") -> str:
    with srv.client() as c:
        items = c.get(f"/api/v1/namespaces/{ns}/runs").json()["items"]
    return next(i["metadata"]["name"] for i in items if i["metadata"]["uid"] == run_id)


def _keep(shot: Path, key: str) -> None:
    check_screenshot(shot)
    shutil.copy(shot, SCREENSHOTS[key])


# -- without a browser -------------------------------------------------------------------------


def test_run_row_and_durations() -> None:
    run = {"metadata": {"name": "r-1", "uid": "u1", "creationTimestamp": "2024-05-01T10:00:00Z"},
           "spec": {"displayName": "first", "experimentId": "e1", "pipelineVersionReference": {"pipelineId": "p1"}},
           "status": {"state": "SUCCEEDED", "startedAt": "2024-05-01T10:00:01Z", "finishedAt": "2024-05-01T10:01:06Z"}}
    row = run_row(run, {"p1": "calc"}, {"e1": "exp"})
    assert (row["pipeline"], row["experiment"], row["state"], row["active"]) == ("calc", "exp", "SUCCEEDED", False)
    assert row["seconds"] == 65 and row["duration"] == "1 min 5 s"
    assert run_row({"metadata": {"name": "x"}, "spec": {}}, {}, {})["state"] == "PENDING"
    assert duration_text(None) == "—" and duration_text(2.25) == "2.2 s" and duration_text(7320) == "2 h 2 min"


def test_pages_need_a_login(shared_server) -> None:
    with httpx.Client(base_url=shared_server.url) as c:
        for path in ("/pipelines", "/runs", "/runs/x", "/runs/compare", "/pipelines/x", "/experiments", "/recurringruns"):
            r = c.get(path)
            assert r.status_code == 303 and httpx.URL(r.headers["location"]).params["next"] == path


def test_editor_and_viewer_pages(shared_server, root, package) -> None:
    client = _client(shared_server)
    pipeline = client.upload_pipeline(str(package), pipeline_name="calc-ui")
    result = client.create_run_from_pipeline_package(str(package), arguments={"a": 1, "b": 2},
                                                     experiment_name="ui-exp", run_name="calc-one")
    other = client.create_run_from_pipeline_package(str(package), arguments={"a": 7, "b": 2},
                                                    experiment_name="ui-exp", run_name="calc-two")
    client.wait_for_run_completion(result.run_id, timeout=120, sleep_duration=0.5)
    client.wait_for_run_completion(other.run_id, timeout=120, sleep_duration=0.5)
    name, name2 = _run_name(shared_server, result.run_id), _run_name(shared_server, other.run_id)
    with shared_server.client() as c:
        pname = next(i["metadata"]["name"] for i in c.get("/api/v1/namespaces/admin/pipelines").json()["items"]
                     if i["metadata"]["uid"] == pipeline.pipeline_id)

    with session(shared_server, "admin", root.ADMIN_PASSWORD) as c:
        nav = re.findall(r'<nav class="sidenav".*?</nav>', c.get("/").text, re.S)[0]
        labels = re.findall(r"</svg>([^<]+)</a>", nav)
        assert labels[labels.index("Notebooks") + 1:labels.index("Notebooks") + 3] == ["Pipelines", "Runs"], labels

        page = c.get("/pipelines")
        assert page.status_code == 200 and "<h1>Pipelines</h1>" in page.text
        assert 'id="upload-form"' in page.text and "calc-ui" in page.text
        detail = c.get(f"/pipelines/{pname}")
        assert detail.status_code == 200 and 'id="create-run"' in detail.text
        assert 'id="pipeline-spec"' in detail.text and 'data-param="a"' in detail.text and 'value="7.0"' in detail.text
        assert c.get(f"/pipelines/{pipeline.pipeline_id}").status_code == 200  # by KFP id too
        assert c.get("/pipelines/nope").status_code == 404

        runs = c.get("/runs")
        assert runs.status_code == 200 and f'data-name="{name}"' in runs.text and "calc-one" in runs.text
        assert 'data-state="SUCCEEDED"' in runs.text and 'name="run"' in runs.text
        assert f'data-name="{name}"' not in c.get("/runs?state=FAILED").text
        assert f'data-name="{name}"' in c.get("/runs?state=SUCCEEDED&sort=duration").text

        run = c.get(f"/runs/{name}")
        assert run.status_code == 200 and 'id="run-data"' in run.text and 'id="dag"' in run.text
        assert 'id="terminate-run"' in run.text  # present for editors, hidden once the run is final
        assert c.get(f"/runs/{result.run_id}").status_code == 200
        assert c.get("/runs/nope").status_code == 404

        cmp = c.get(f"/runs/compare?runs={name},{name2}")
        assert cmp.status_code == 200 and 'id="compare-params"' in cmp.text
        differs = re.findall(r'<tr class="differs"><th scope="row">(\w+)', cmp.text)
        assert "a" in differs and "b" not in differs, differs
        assert 'id="compare-outputs"' in cmp.text and "8.0" in cmp.text and "20.0" in cmp.text  # (1+4)+(1+2), (7+4)+(7+2)
        assert 'id="compare-need"' in c.get(f"/runs/compare?run={name}").text
        assert "calc-one" in c.get("/runs?q=ONE").text and "calc-one" not in c.get("/runs?q=two").text

        exps = c.get("/experiments")
        assert exps.status_code == 200 and 'data-name="ui-exp"' in exps.text and 'id="experiment-form"' in exps.text
        assert re.search(r'data-name="ui-exp".*?<td class="num">2</td>', exps.text, re.S), "two runs in ui-exp"
        recurring = c.get("/recurringruns")
        assert recurring.status_code == 200 and 'id="recurring-empty"' in recurring.text and "calc-ui" in recurring.text
        assert 'name="run_type" value="recurring" checked' in c.get(f"/pipelines/{pname}?mode=recurring").text

    shared_server.add_user("paula")
    password = shared_server.add_user("viv", namespace=False)
    with shared_server.client() as c:
        assert c.put("/api/v1/namespaces/admin/members/viv", json={"role": "view"}).status_code == 200
    with session(shared_server, "viv", password) as c:
        for path in ("/pipelines?ns=admin", f"/pipelines/{pname}?ns=admin", "/runs?ns=admin", f"/runs/{name}?ns=admin",
                     "/experiments?ns=admin", "/recurringruns?ns=admin"):
            r = c.get(path)
            assert r.status_code == 200, path
            for control in EDIT_CONTROLS:
                assert control not in r.text, (path, control)
        assert 'id="viewer-note"' in c.get("/pipelines?ns=admin").text


# -- in a browser ------------------------------------------------------------------------------


@pytest.mark.browser
def test_run_page_in_chromium(server, root, tmp_path: Path, package) -> None:
    root.require(CHROMIUM.exists(), "Debian chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        root.require(False, "the playwright Python package")
    client = _client(server)
    client.upload_pipeline(str(package), pipeline_name="calc-uploaded")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser.new_context(viewport=VIEWPORT))
            log_in(page, server.url + "/login?next=/pipelines", "**/pipelines")

            # an upload the server refuses shows its message inline
            bad = tmp_path / "bad.yaml"
            bad.write_text("just: text\n")
            page.locator("#upload-file").set_input_files(str(bad))
            page.get_by_role("button", name="Upload").click()
            expect(page.locator("#upload-message")).to_be_visible()
            assert "pipeline" in page.locator("#upload-message").inner_text().lower()

            result = client.create_run_from_pipeline_func(calc, arguments={"a": 7, "b": 8}, experiment_name="ui")
            name = _run_name(server, result.run_id)
            page.goto(f"{server.url}/runs/{name}")
            boxes = page.locator("#dag .dag-node")
            expect(boxes).to_have_count(3)
            expect(page.locator("#dag .dag-edge")).to_have_count(2)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#dag .dag-node')].every(n => n.dataset.state === 'SUCCEEDED')",
                timeout=120_000)
            colour = page.locator('#dag .dag-node[data-task="add-3"] .dag-box').evaluate(
                "e => getComputedStyle(e).fill")
            assert colour.startswith("rgb(227, 244, 234)") or "ok" in colour or colour != "rgb(255, 255, 255)", colour
            expect(page.locator("#run-state .badge")).to_have_attribute("data-state", "SUCCEEDED")
            expect(page.locator("#terminate-run")).to_be_hidden()

            page.locator('#dag .dag-node[data-task="add-3"]').click()
            panel = page.locator("#task-panel")
            expect(panel).to_be_visible()
            expect(panel.locator(".task-outputs")).to_contain_text("26")
            expect(panel.locator(".task-inputs")).to_contain_text("11")
            page.get_by_role("button", name="Show logs").click()
            page.wait_for_function(
                """() => { const s = document.getElementById('task-log-status');
                           const l = document.getElementById('task-log');
                           return (l && l.textContent.length > 0 && s.textContent.startsWith('End'))
                                  || (s && /404|not available|log/i.test(s.textContent) && !s.textContent.startsWith('Load')); }""",
                timeout=30_000)
            log_text = page.locator("#task-log").inner_text() if page.locator("#task-log").count() else ""
            status = page.locator("#task-log-status").inner_text()
            assert "adding 11.0 and 15.0" in log_text or "404" in status or "not available" in status, (log_text, status)
            page.wait_for_timeout(300)
            shot = tmp_path / "ui-run.png"
            page.screenshot(path=str(shot))
            _keep(shot, "run")

            page.goto(f"{server.url}/runs")
            expect(page.locator(f'#runs-table tr[data-name="{name}"]')).to_be_visible()
            shot = tmp_path / "ui-runs.png"
            page.screenshot(path=str(shot))
            _keep(shot, "runs")

            page.get_by_role("link", name="Pipelines", exact=True).first.click()
            page.wait_for_url("**/pipelines?ns=admin")
            page.locator("#pipelines-table a.row-title", has_text="calc-uploaded").click()
            expect(page.locator("#dag .dag-node")).to_have_count(3)
            page.locator("#param-b").fill("not a number")
            page.get_by_role("button", name="Start run").click()
            expect(page.locator("#param-b-error")).to_be_visible()
            page.locator("#param-b").fill("1")
            expect(page.locator("#param-b-error")).to_be_hidden()
            page.evaluate("window.scrollTo(0, 0)")
            shot = tmp_path / "ui-pipelines.png"
            page.screenshot(path=str(shot))
            _keep(shot, "pipelines")
            page.get_by_role("button", name="Start run").click()
            page.wait_for_url(re.compile(r".*/runs/[^/?]+\?ns=admin"))
            expect(page.locator("#dag .dag-node")).to_have_count(3)
            page.wait_for_function(
                "() => document.querySelector('#run-state .badge').dataset.state === 'SUCCEEDED'", timeout=120_000)
            expect(page.locator("#run-outputs")).to_contain_text("19")  # (7+4) + (7+1)
            assert problems == [], problems
        finally:
            browser.close()


@pytest.mark.browser
def test_recurring_run_and_experiment_forms_in_chromium(server, root, tmp_path: Path, package) -> None:
    root.require(CHROMIUM.exists(), "Debian chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        root.require(False, "the playwright Python package")
    _client(server).upload_pipeline(str(package), pipeline_name="calc-scheduled")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page, problems = watched_page(browser.new_context(viewport=VIEWPORT))
            page.on("dialog", lambda d: d.accept())
            log_in(page, server.url + "/login?next=/experiments", "**/experiments")

            page.locator("#experiment-name").fill("nightly")
            page.get_by_role("button", name="Create").click()
            row = page.locator('#experiments-table tr[data-name="nightly"]')
            expect(row).to_be_visible()
            row.get_by_role("button", name="Archive").click()
            expect(page.locator('#experiments-table tr[data-name="nightly"] .badge')).to_have_text("archived")

            page.get_by_role("link", name="Recurring runs").click()
            expect(page.locator("#recurring-empty")).to_be_visible()
            page.get_by_role("link", name="Set up schedule").click()
            page.locator("#new-version summary").click()  # a second version, made from the pipeline page
            page.locator("#version-file").set_input_files(str(package))
            page.locator("#version-name").fill("v2")
            page.get_by_role("button", name="Upload version").click()
            page.wait_for_url(re.compile(r".*version=.*"))
            expect(page.locator("#version-select option")).to_have_count(2)
            expect(page.locator("#version-select option:checked")).to_contain_text("v2")
            page.goto(page.url.split("#")[0] + "&mode=recurring")
            expect(page.get_by_role("radio", name="Recurring")).to_be_checked()
            page.locator("#run-name").fill("every-two")
            page.locator("#trigger-type").select_option("cron")
            page.locator("#cron").fill("not a cron")
            page.get_by_role("button", name="Create recurring run").click()
            expect(page.locator("#create-error")).to_contain_text("cron")  # the server's message, shown inline
            page.locator("#trigger-type").select_option("periodic")
            page.locator("#interval-count").fill("2")
            page.locator("#interval-unit").select_option("1")
            page.locator("#param-a").fill("1")
            page.get_by_role("button", name="Create recurring run").click()
            page.wait_for_url("**/recurringruns?ns=admin")
            row = page.locator('#recurring-table tr[data-name="every-two"]')
            expect(row).to_contain_text("every 2 s")
            expect(row.locator(".recurring-status")).to_have_text("Enabled")
            for _ in range(60):  # the schedule starts a run within a few seconds
                if "none yet" not in row.inner_text():
                    break
                page.wait_for_timeout(500)
                page.reload()
            expect(row.locator("a").first).to_be_visible()
            shot = tmp_path / "ui-recurring.png"
            page.screenshot(path=str(shot))
            check_screenshot(shot)
            row.get_by_role("button", name="Disable").click()
            expect(page.locator('#recurring-table tr[data-name="every-two"] .recurring-status')).to_have_text("Disabled")
            page.locator('#recurring-table tr[data-name="every-two"]').get_by_role("button", name="Delete").click()
            expect(page.locator("#recurring-empty")).to_be_visible()
            client = _client(server)
            versions = {v.display_name: v.pipeline_version_id
                        for v in client.list_pipeline_versions(client.get_pipeline_id("calc-scheduled")).pipeline_versions}
            runs = client.list_runs(namespace="admin", page_size=50).runs or []
            assert runs and all(r.runtime_config.parameters["a"] == 1 for r in runs), runs
            assert {r.pipeline_version_reference.pipeline_version_id for r in runs} == {versions["v2"]}
            assert problems == [], problems
        finally:
            browser.close()
