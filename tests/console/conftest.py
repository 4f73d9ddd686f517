"""Fixtures of the console's browser tests: the app served by the real Spin CLI (`spin up`) on
a loopback port (a fresh state directory per test session), Debian's chromium driven by Playwright, and
an API client for setting up what a test looks at."""

import io
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
WASM = ROOT / "target/wasm32-wasip1/release"
# The flags this machine needs: no sandbox as root, and no background calls to the network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


# Room for a loaded 2-core machine (the default is 5 s).
expect.set_options(timeout=10_000)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def base_url():
    port = free_port()
    with tempfile.TemporaryDirectory() as state:
        host = subprocess.Popen(
            [os.environ.get("SPIN", "spin"), "up", "--from", str(ROOT / "spin.toml"),
             "--listen", f"127.0.0.1:{port}", "--state-dir", state, "--quiet"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(Path(state) / "host.log", "w"),
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300  # a first load compiles every component
            while True:
                assert host.poll() is None, (Path(state) / "host.log").read_text()
                try:
                    urllib.request.urlopen(url + "/", timeout=5)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "spin up did not answer in 300 s"
                    time.sleep(0.3)
            yield url
        finally:
            host.terminate()
            host.wait(timeout=10)


@pytest.fixture(scope="session")
def playwright_session():
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_session):
    with tempfile.TemporaryDirectory() as profile:
        context = playwright_session.chromium.launch_persistent_context(
            profile, executable_path=os.environ["CHROMIUM"], args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 800},
        )
        yield context
        context.close()


def visit(tab, url):
    """Loads a console URL afresh (not as a hash change within the loaded page) and waits
    until its API calls are done, so what a test reads is the page's final state."""
    tab.goto("about:blank")
    tab.goto(url, wait_until="networkidle")
    expect(tab.locator("main")).not_to_contain_text("Loading…")


@pytest.fixture
def page(browser, base_url):
    """A fresh tab on the console; its session storage starts empty."""
    tab = browser.new_page()
    tab.set_default_timeout(10_000)
    errors = []
    tab.on("pageerror", lambda error: errors.append(error))
    visit(tab, base_url + "/ui/")
    yield tab
    tab.close()
    assert not errors, f"script errors: {errors}"


class Api:
    """The API, for setup: what a test looks at in the browser is made here first."""

    def __init__(self, request):
        self.request = request

    def call(self, method, path, json=None, multipart=None):
        response = self.request.fetch("/v1" + path, method=method, data=json, multipart=multipart)
        assert response.ok, f"{method} {path}: {response.status} {response.text()}"
        return response.json() if response.status != 204 else None

    def runtime(self):
        return self.call("POST", "/runtimes", {"image": "spinling/wasm", "name": "wasm"})["id"]

    def function(self, runtime_id, example="hello", name=None):
        package = {"name": "package.zip", "mimeType": "application/zip", "buffer": zip_of(example)}
        return self.call("POST", "/functions", multipart={
            "code": '{"source": "package"}', "runtime_id": runtime_id,
            "name": name or f"fn-{uuid.uuid4().hex[:8]}", "package": package,
        })

    def new_code(self, function_id, example):
        package = {"name": "package.zip", "mimeType": "application/zip", "buffer": zip_of(example)}
        return self.call("PUT", f"/functions/{function_id}", multipart={"package": package})

    def publish(self, function_id, description=""):
        return self.call("POST", f"/functions/{function_id}/versions", {"description": description})


def zip_of(example):
    """A package holding one of the example functions (built by scripts/test)."""
    wasm = WASM / f"spinling-example-{example}.wasm"
    assert wasm.exists(), f"{wasm} is missing: build the components first (scripts/test)"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.write(wasm, wasm.name)
    return out.getvalue()


@pytest.fixture(scope="session")
def api(playwright_session, base_url):
    context = playwright_session.request.new_context(base_url=base_url)
    yield Api(context)
    context.dispose()


@pytest.fixture(scope="session")
def runtime_id(api):
    return api.runtime()
