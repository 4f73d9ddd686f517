"""The console in Debian's chromium: what a person does with a release, start to end."""

import re
import uuid

from conftest import visit
from playwright.sync_api import expect


def open_function(page, base_url, function_id, tab):
    visit(page, f"{base_url}/ui/#/functions/{function_id}/{tab}")


def test_publishing_a_version_shows_it_in_the_history(page, base_url, api, runtime_id):
    fn = api.function(runtime_id)
    open_function(page, base_url, fn["id"], "versions")
    page.get_by_label("Description").fill("first release")
    page.get_by_role("button", name="Publish version").click()
    expect(page.get_by_role("status")).to_have_text("Published version 1.")
    row = page.get_by_role("row").filter(has_text="first release")
    expect(row.get_by_role("cell").first).to_have_text("v1")


def test_the_diff_of_two_versions_lists_the_changed_files(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "hello")
    api.publish(fn["id"])
    api.new_code(fn["id"], "echo")
    api.publish(fn["id"])
    open_function(page, base_url, fn["id"], "diff")
    page.get_by_label("From", exact=True).select_option("1")
    page.get_by_label("To", exact=True).select_option("2")
    page.get_by_role("button", name="Compare").click()
    expect(page).to_have_url(re.compile(r"/diff/1/2$"))
    files = page.get_by_role("table", name="Files changed from v1 to v2")
    expect(files.get_by_role("row").filter(has_text="spinling-example-echo.wasm")).to_contain_text("added")
    expect(files.get_by_role("row").filter(has_text="spinling-example-hello.wasm")).to_contain_text("removed")


def test_a_ten_percent_canary_is_drawn_as_a_weight_bar(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "hello")
    api.publish(fn["id"])
    api.new_code(fn["id"], "echo")
    api.publish(fn["id"])
    name = f"prod-{uuid.uuid4().hex[:6]}"
    api.call("POST", "/aliases", {"name": name, "function_id": fn["id"], "function_version": 1})
    open_function(page, base_url, fn["id"], "aliases")
    page.get_by_text(f"Edit weights of {name}").click()
    page.get_by_role("spinbutton", name="v2").fill("10")
    page.get_by_role("button", name="Save routing").click()
    expect(page.get_by_role("status")).to_have_text(f"Alias {name} routing saved.")
    expect(page.get_by_role("img", name=f"Routing of {name}: v1 90 %, v2 10 %")).to_be_visible()
    expect(page.get_by_text("v1 90 % │ v2 10 %")).to_be_visible()
    assert api.call("GET", f"/aliases/{name}")["routing"] == {"2": 0.1}


def test_point_to_a_version_moves_the_whole_alias_in_one_click(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "hello")
    api.publish(fn["id"])
    api.new_code(fn["id"], "echo")
    api.publish(fn["id"])
    name = f"live-{uuid.uuid4().hex[:6]}"
    api.call("POST", "/aliases", {"name": name, "function_id": fn["id"], "function_version": 1,
                                  "routing": {"2": 0.5}})
    open_function(page, base_url, fn["id"], "aliases")
    page.get_by_role("button", name=f"Point {name} to v2").click()
    expect(page.get_by_role("img", name=f"Routing of {name}: v2 100 %")).to_be_visible()
    alias = api.call("GET", f"/aliases/{name}")
    assert (alias["function_version"], alias["routing"]) == (2, {})


def test_running_a_version_shows_its_result_and_log(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "hello")
    api.publish(fn["id"])
    api.new_code(fn["id"], "echo")
    open_function(page, base_url, fn["id"], "versions")
    page.get_by_role("link", name="Run v1").click()
    expect(page.get_by_label("What to run")).to_have_value("version:1")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_label("Result", exact=True)).to_contain_text("Hello, Spinling!")
    expect(page.get_by_label("Log", exact=True)).to_have_text("hello: saying hello\n")
    expect(page.locator(".run-result .badge")).to_have_text("success")


def test_an_async_run_is_followed_until_it_ends(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "echo")
    open_function(page, base_url, fn["id"], "run")
    page.get_by_label("Input (JSON or text)").fill('{"name": "Ada"}')
    page.get_by_label("Wait for the result").uncheck()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_label("Result", exact=True)).to_contain_text('"greeting": "Hello, Ada!"')
    expect(page.locator(".run-result .badge")).to_have_text("success")


def test_paging_walks_through_150_functions(page, base_url, api, runtime_id):
    prefix = f"paged-{uuid.uuid4().hex[:6]}"
    created = [api.function(runtime_id, name=f"{prefix}-{i:03}")["name"] for i in range(150)]
    page.reload()
    seen = []
    pager = page.get_by_role("navigation", name="Function pages")
    while True:
        expect(page.get_by_role("table", name="Functions")).to_be_visible()
        page.wait_for_timeout(0)
        seen += [name for name in page.get_by_role("table", name="Functions").get_by_role("link").all_inner_texts()
                 if name.startswith(prefix)]
        next_page = pager.get_by_role("button", name="Next page")
        if next_page.is_disabled():
            break
        where = pager.locator(".where").inner_text()
        next_page.click()
        expect(pager.locator(".where")).not_to_have_text(where)
    assert seen == created
    pager.get_by_role("button", name="Previous page").click()
    expect(pager.locator(".where")).not_to_have_text("Page 1")


def test_a_refused_delete_shows_the_api_message_and_disables_the_button(page, base_url, api, runtime_id):
    fn = api.function(runtime_id)
    api.publish(fn["id"])
    api.call("POST", "/aliases", {"name": f"held-{uuid.uuid4().hex[:6]}", "function_id": fn["id"],
                                  "function_version": 1})
    open_function(page, base_url, fn["id"], "versions")
    page.once("dialog", lambda dialog: dialog.accept())
    delete = page.get_by_role("button", name="Delete v1")
    delete.click()
    expect(page.get_by_role("alert")).to_have_text("403: The function version is still associated with alias.")
    expect(delete).to_be_disabled()


def test_a_delete_asks_first_and_a_refusal_keeps_the_row(page, base_url, api, runtime_id):
    fn = api.function(runtime_id)
    api.publish(fn["id"])
    open_function(page, base_url, fn["id"], "versions")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete v1").click()
    assert asked == ["Delete version 1?"]
    assert api.call("GET", f"/functions/{fn['id']}/versions/1")["version_number"] == 1


def test_the_token_is_kept_in_session_storage_and_sent_as_x_auth_token(page, base_url):
    page.get_by_label("Keystone token").fill("gAAAA-test-token")
    page.get_by_role("button", name="Use token").click()
    with page.expect_request(lambda request: "/v1/functions" in request.url) as call:
        page.reload()
    assert call.value.headers.get("x-auth-token") == "gAAAA-test-token"
    assert page.evaluate("sessionStorage.getItem('spinling.token')") == "gAAAA-test-token"
    expect(page.get_by_label("Keystone token")).to_have_value("gAAAA-test-token")


def test_a_name_full_of_markup_is_shown_as_text(page, base_url, api, runtime_id):
    name = '<img src=x onerror="window.pwned=1">'
    fn = api.function(runtime_id, name=name)
    open_function(page, base_url, fn["id"], "overview")
    expect(page.get_by_role("heading", level=1)).to_have_text(name)
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img").count() == 0


def test_the_content_security_policy_blocks_inline_script(page):
    violations = page.evaluate("""() => new Promise((resolve) => {
        document.addEventListener('securitypolicyviolation',
            (event) => resolve(event.violatedDirective), { once: true });
        const script = document.createElement('script');
        script.textContent = 'window.inlineRan = true';
        document.body.append(script);
    })""")
    assert violations.startswith("script-src")
    assert page.evaluate("window.inlineRan") is None


def test_the_execution_list_filters_by_status(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "echo")
    api.call("POST", "/executions", {"function_id": fn["id"], "input": '{"name": "ok"}'})
    api.call("POST", "/executions", {"function_id": fn["id"], "input": "not json"})
    open_function(page, base_url, fn["id"], "executions")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("table", name="Executions").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("failed")


def test_a_runtime_is_created_from_its_list(page, base_url):
    visit(page, base_url + "/ui/#/runtimes")
    page.get_by_text("New runtime").click()
    name = f"rt-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_have_text(f"Created {name}.")


def test_a_cold_load_transfers_under_50_kb_gzipped(browser, base_url):
    import gzip

    tab = browser.new_page()
    cdp = browser.new_cdp_session(tab)
    cdp.send("Network.clearBrowserCache")
    bodies = []
    tab.on("response", lambda response: bodies.append(response) if "/ui/" in response.url else None)
    tab.goto(base_url + "/ui/")
    tab.wait_for_load_state("networkidle")
    files = {response.url: response.body() for response in bodies}
    tab.close()
    assert all(response.status == 200 for response in bodies), [(r.url, r.status) for r in bodies]
    needed = {"", "style.css", "main.js", "api.js", "dom.js", "functions.js", "resources.js"}
    assert needed <= {url.split("/ui/", 1)[1] for url in files}, sorted(files)
    gzipped = sum(len(gzip.compress(body, 9)) for body in files.values())
    raw = sum(len(body) for body in files.values())
    print(f"console cold load: {len(files)} files, {raw} bytes, {gzipped} bytes gzipped")
    assert gzipped < 50_000


def test_the_sections_are_reachable_with_the_keyboard_alone(page, base_url):
    # Each page puts the focus on its main content; the section links are just before it.
    for _ in range(10):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.textContent") == "Jobs":
            break
    page.keyboard.press("Enter")
    expect(page).to_have_url(base_url + "/ui/#/jobs")
    expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    expect(page.get_by_role("link", name="Jobs")).to_have_attribute("aria-current", "page")


def test_a_rollout_is_started_followed_and_aborted_from_the_aliases_tab(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "hello")
    api.publish(fn["id"])
    api.new_code(fn["id"], "echo")
    api.publish(fn["id"])
    name = f"canary-{uuid.uuid4().hex[:6]}"
    api.call("POST", "/aliases", {"name": name, "function_id": fn["id"], "function_version": 1})
    open_function(page, base_url, fn["id"], "aliases")
    start = page.get_by_role("form", name=f"Start a rollout of {name}")
    expect(start.get_by_label("To version")).to_have_value("2")
    start.get_by_role("button", name="Start rollout").click()
    expect(page.get_by_role("heading", name="Rollout to v2: running")).to_be_visible()
    rollout = api.call("GET", f"/aliases/{name}/rollout")
    assert (rollout["status"], rollout["weight"]) == ("running", 10)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Abort rollout of {name}").click()
    expect(page.get_by_role("heading", name="Rollout to v2: aborted")).to_be_visible()
    alias = api.call("GET", f"/aliases/{name}")
    assert (alias["function_version"], alias["routing"]) == (1, {})
    history = api.call("GET", f"/aliases/{name}/history")
    assert "rollout_started" in str(history)


def test_an_alias_history_lists_each_change_with_its_cause(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "hello")
    api.publish(fn["id"])
    api.new_code(fn["id"], "echo")
    api.publish(fn["id"])
    name = f"hist-{uuid.uuid4().hex[:6]}"
    api.call("POST", "/aliases", {"name": name, "function_id": fn["id"], "function_version": 1})
    api.call("PUT", f"/aliases/{name}", {"routing": {"2": 0.25}})
    open_function(page, base_url, fn["id"], "aliases")
    # A change made in the console is in the history too.
    page.get_by_role("button", name=f"Point {name} to v2").click()
    expect(page.get_by_role("status")).to_have_text(f"Alias {name} now points to v2.")
    page.locator("summary", has_text=f"History of {name}").click()
    rows = page.get_by_role("table", name=f"History of {name}").locator("tbody tr")
    expect(rows).to_have_count(3)
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
    # When, why, who (no token names a user in auth mode none), before, after, reason.
    expect(rows.nth(0).get_by_role("cell")).to_have_text([stamp, "created", "default", "—", "v1", ""])
    expect(rows.nth(1).get_by_role("cell")).to_have_text(
        [stamp, "request", "default", "v1", 'v1 {"2":0.25}', ""])
    expect(rows.nth(2).get_by_role("cell")).to_have_text(
        [stamp, "request", "default", 'v1 {"2":0.25}', "v2", ""])
    history = api.call("GET", f"/aliases/{name}/history")["history"]
    assert [entry["cause"] for entry in history] == ["created", "request", "request"]


def test_the_versions_tab_shows_each_versions_numbers(page, base_url, api, runtime_id):
    fn = api.function(runtime_id, "echo")
    api.publish(fn["id"])
    api.new_code(fn["id"], "hello")
    api.publish(fn["id"])
    # v1 (echo) fails on input that is not JSON; v2 (hello) succeeds.
    for body in ['{"name": "a"}', '{"name": "b"}', "not json"]:
        api.call("POST", "/executions", {"function_id": fn["id"], "function_version": 1, "input": body})
    api.call("POST", "/executions", {"function_id": fn["id"], "function_version": 2})
    open_function(page, base_url, fn["id"], "versions")
    numbers = page.get_by_role("table", name="Numbers of the last 24 hours, per version")
    rows = numbers.locator("tbody tr")
    expect(rows).to_have_count(2)
    ms = re.compile(r"^\d+ ms$")
    # Version, executions, failures, failure rate, duration p50, p95, p99.
    expect(rows.filter(has_text="v1").get_by_role("cell")).to_have_text(["v1", "3", "1", "33.3 %", ms, ms, ms])
    expect(rows.filter(has_text="v2").get_by_role("cell")).to_have_text(["v2", "1", "0", "0 %", ms, ms, ms])
    stats = {v["function_version"]: v for v in api.call("GET", f"/functions/{fn['id']}/stats")["versions"]}
    assert (stats[1]["executions"], stats[1]["failures"]) == (3, 1)
    assert (stats[2]["executions"], stats[2]["failures"]) == (1, 0)
