"""Takes the README's screenshots of the console (docs/console/*.png) from a running app:
`target/console-venv/bin/python tests/console/screenshots.py http://127.0.0.1:3000`, with
the app freshly started (it creates a function named greeter, two versions and an alias)."""

import sys
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

from conftest import CHROMIUM_ARGS, Api, visit

OUT = Path(__file__).resolve().parents[2] / "docs/console"


def main(base_url):
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        api = Api(playwright.request.new_context(base_url=base_url))
        runtime_id = api.runtime()
        fn = api.function(runtime_id, "hello", name="greeter")
        api.publish(fn["id"], "says hello")
        api.new_code(fn["id"], "echo")
        api.call("PUT", f"/functions/{fn['id']}", {"timeout": 10})
        api.publish(fn["id"], "greets by name")
        api.call("POST", "/aliases", {"name": "prod", "function_id": fn["id"], "function_version": 1,
                                      "routing": {"2": 0.1}})
        for _ in range(3):
            api.call("POST", "/executions", {"function_alias": "prod", "input": '{"name": "Ada"}'})
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 620})
        shots = {  # each page, and what it shows once loaded
            "versions": (f"#/functions/{fn['id']}/versions", "greets by name"),
            "diff": (f"#/functions/{fn['id']}/diff/1/2", "Settings changed"),
            "aliases": (f"#/functions/{fn['id']}/aliases", "v1 90 %"),
            "run": (f"#/functions/{fn['id']}/run", "What to run"),
        }
        for name, (route, shows) in shots.items():
            visit(page, f"{base_url}/ui/{route}")
            expect(page.locator("main")).to_contain_text(shows)
            if name == "run":
                page.get_by_label("Input (JSON or text)").fill('{"name": "Ada"}')
                page.get_by_role("button", name="Run", exact=True).click()
                page.get_by_label("Log", exact=True).wait_for()
            page.screenshot(path=OUT / f"{name}.png", full_page=name == "run")
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1])
