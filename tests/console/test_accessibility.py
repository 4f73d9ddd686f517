"""axe-core (from axe-playwright-python) finds no WCAG 2.1 A/AA violation on any page of the
console, each shown with content: a function with versions, a canary alias, executions, a
webhook, a job."""

import uuid

import pytest
from axe_playwright_python.sync_playwright import Axe
from conftest import visit
from playwright.sync_api import expect

WCAG_21_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}

# Each page, and a text it shows once loaded (so axe judges the page with its content).
PAGES = [
    ("#/functions", "Latest version"),
    ("#/functions/{fid}/overview", "Package MD5"),
    ("#/functions/{fid}/versions", "says hello"),
    ("#/functions/{fid}/diff/1/2", "Files changed from v1 to v2"),
    ("#/functions/{fid}/aliases", "v1 90 % │ v2 10 %"),
    ("#/functions/{fid}/executions", "success"),
    ("#/functions/{fid}/run", "What to run"),
    ("#/executions", "success"),
    ("#/executions/{eid}", "hello: saying hello"),
    ("#/runtimes", "spinling/wasm"),
    ("#/runtimes/{rid}", "available"),
    ("#/webhooks", "/invoke"),
    ("#/webhooks/{wid}", "/invoke"),
    ("#/jobs", "0 3 * * *"),
    ("#/jobs/{jid}", "0 3 * * *"),
]


@pytest.fixture(scope="module")
def release(api, runtime_id):
    fn = api.function(runtime_id, "hello")
    api.publish(fn["id"], "says hello")
    api.new_code(fn["id"], "echo")
    api.publish(fn["id"], "second")
    alias = f"a11y-{uuid.uuid4().hex[:6]}"
    api.call("POST", "/aliases", {"name": alias, "function_id": fn["id"], "function_version": 1,
                                  "routing": {"2": 0.1}})
    execution = api.call("POST", "/executions", {"function_id": fn["id"], "function_version": 1})
    webhook = api.call("POST", "/webhooks", {"function_alias": alias})
    job = api.call("POST", "/jobs", {"name": "nightly", "function_id": fn["id"], "function_version": 1,
                                     "pattern": "0 3 * * *"})
    return {"fid": fn["id"], "eid": execution["id"], "rid": runtime_id, "wid": webhook["id"], "jid": job["id"]}


@pytest.mark.parametrize("hash_route, shows", PAGES)
def test_the_page_has_no_wcag_21_aa_violation(page, base_url, release, hash_route, shows):
    visit(page, f"{base_url}/ui/{hash_route.format(**release)}")
    expect(page.locator("main")).to_contain_text(shows)
    results = Axe().run(page, options=WCAG_21_AA)
    assert results.violations_count == 0, results.generate_report()
