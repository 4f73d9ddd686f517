#!/usr/bin/env python3
"""A reference worker for Qinling's runtime protocol (spec §5), standard library only.

Test infrastructure: it plays the worker side of a Spinling runtime whose `image` is its URL,
behaving as Qinling's Python 3 runtime (runtimes/python3/server.py plus its download sidecar).

    GET  /ping     200 "pong"
    POST /execute  {"execution_id", "function_id", "function_version", "entry", "input",
                    "download_url", "timeout", "memory_size", "cpu", "token"?, ...}
                -> 200 {"output", "duration", "logs", "success"}

* The package zip is fetched from `download_url` (with `X-Auth-Token` when the request has a
  `token`) and unzipped once per (function_id, function_version, md5 of the zip). When the
  request carries `package_md5` (Spinling sends it), a cached copy is used without a
  download; otherwise the zip is downloaded every time (Qinling's sidecar never re-downloaded,
  which is why Qinling detaches workers on update). A failed download answers 500 with
  "Failed to download function package from <url>, error: ...".
* `entry` is `module.method`, split on the last dot (default `main.main`). The method is
  called as `method(**input)`, or `method(raw, **input)` when input holds `__function_input`,
  with `context={"os_session": None}` added to input as Qinling does (so functions must
  accept **kwargs).
* It runs in a child process (this file with `--child`) in its own session, with rlimits
  NOFILE 1024, FSIZE 500 MB and AS = memory_size + INTERPRETER_OVERHEAD. Its stdout is the
  log, framed "Start execution: <id>" ... "Finished execution: <id>" (plus the traceback of
  an exception). Outcomes, as Qinling's:
    returns           -> output = the value (JSON, unserialisable parts str()), success true
    raises            -> output = str(exception), success false
    out of resources  -> "Function execution failed because of too much resource consumption"
    outlives timeout  -> process group killed, "Function execution timeout."

Run: python3 tests/worker/worker.py --port 0 [--cache-dir DIR] [--quiet]
The first stdout line is "Listening on http://127.0.0.1:PORT".
"""
import argparse
import hashlib
import importlib
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Address space the child needs besides the function's memory_size: the interpreter itself
# maps ~30 MB, and shared libraries, thread stacks and malloc arenas of imported modules
# reserve much more virtual memory than they touch. RLIMIT_AS counts all of it, so be generous.
INTERPRETER_OVERHEAD = 256 * 1024 * 1024
TIMEOUT_ERROR = "Function execution timeout."
INVOKE_ERROR = "Function execution failed because of too much resource consumption"


def fetch_package(cache_dir, params):
    """The directory of the unzipped package, downloaded unless cached. Raises on failure."""
    prefix = f"{params.get('function_id')}_{params.get('function_version', 0)}_"
    known = params.get("package_md5")
    if known and os.path.isdir(os.path.join(cache_dir, prefix + known)):
        return os.path.join(cache_dir, prefix + known)
    request = urllib.request.Request(params["download_url"])
    if params.get("token"):
        request.add_header("X-Auth-Token", params["token"])
    with urllib.request.urlopen(request, timeout=30) as response:
        data = response.read()
    target = os.path.join(cache_dir, prefix + hashlib.md5(data).hexdigest())
    if not os.path.isdir(target):
        staging = tempfile.mkdtemp(dir=cache_dir, prefix=".staging-")
        zipfile.ZipFile(io.BytesIO(data)).extractall(staging)
        try:
            os.rename(staging, target)  # atomic: concurrent runs never see half a package
        except OSError:  # another run got there first
            shutil.rmtree(staging, ignore_errors=True)
    return target


def run(cache_dir, code_dir, params):
    """Runs the function in a child process; returns (output, duration, logs, success)."""
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".run-") as run_dir:
        out_path, result_path = os.path.join(run_dir, "out"), os.path.join(run_dir, "result")
        start = time.time()
        with open(out_path, "wb") as out:
            child = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--child", code_dir, result_path],
                stdin=subprocess.PIPE, stdout=out, cwd=run_dir, start_new_session=True)
        child.stdin.write(json.dumps(params).encode())
        child.stdin.close()
        try:
            child.wait(timeout=params.get("timeout"))
            timed_out = False
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the child and everything it started
            child.wait()
            timed_out = True
        duration = round(time.time() - start, 3)
        with open(out_path, encoding="utf-8", errors="replace") as f:
            logs = f.read()
        if child.returncode != 0:
            return (TIMEOUT_ERROR if timed_out else INVOKE_ERROR), duration, logs, False
        try:
            with open(result_path) as f:
                result = json.load(f)
        except (OSError, ValueError):  # exited 0 without a result (sys.exit(0))
            return None, duration, logs, False
        return result["output"], duration, logs, result["success"]


def child_main(code_dir, result_path):
    """In the child: limit resources, call the function, write {"output", "success"}."""
    params = json.load(sys.stdin)
    limit = int(params.get("memory_size") or 0) + INTERPRETER_OVERHEAD
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for kind, soft in ((resource.RLIMIT_NOFILE, 1024), (resource.RLIMIT_FSIZE, 524288000)):
        hard = resource.getrlimit(kind)[1]
        resource.setrlimit(kind, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    execution_id = params.get("execution_id")
    module_name, _, method_name = (params.get("entry") or "main.main").rpartition(".")
    arguments = params.get("input") or {}
    if not isinstance(arguments, dict):
        arguments = {"__function_input": arguments}
    arguments["context"] = {"os_session": None}
    raw = arguments.pop("__function_input", None)
    print(f"Start execution: {execution_id}", flush=True)
    sys.path.insert(0, code_dir)
    exhausted = False
    try:
        method = getattr(importlib.import_module(module_name or "main"), method_name)
        output = method(raw, **arguments) if raw is not None else method(**arguments)
        success = True
    except Exception as e:
        traceback.print_exception(type(e), e, e.__traceback__.tb_next, file=sys.stdout)
        exhausted = isinstance(e, MemoryError) or (isinstance(e, OSError) and "Resource" in str(e))
        output, success = str(e), False
    finally:
        print(f"Finished execution: {execution_id}", flush=True)
    if exhausted:  # as Qinling: the parent reports "too much resource consumption"
        sys.exit(1)
    with open(result_path, "w") as f:
        json.dump({"output": output, "success": success}, f, default=str)


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/ping":
            self.reply(200, b"pong", "text/plain")
        else:
            self.reply(404, b"Not Found", "text/plain")

    def do_POST(self):
        if self.path != "/execute":
            return self.reply(404, b"Not Found", "text/plain")
        try:
            params = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        except ValueError as e:
            return self.reply(400, f"Invalid JSON body: {e}".encode(), "text/plain")
        try:
            code_dir = fetch_package(self.server.cache_dir, params)
        except Exception as e:
            message = f"Failed to download function package from {params.get('download_url')}, error: {e}"
            return self.reply(500, message.encode(), "text/plain")
        output, duration, logs, success = run(self.server.cache_dir, code_dir, params)
        body = {"output": output, "duration": duration, "logs": logs, "success": success}
        self.reply(200, json.dumps(body, default=str).encode(), "application/json")

    def log_message(self, format, *args):
        if not self.server.quiet:
            super().log_message(format, *args)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9090, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--cache-dir", help="where packages are kept (default: a temp dir)")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    parser.add_argument("--child", nargs=2, metavar=("CODE_DIR", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(*args.child)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so the cleanup below runs
    cache_dir = args.cache_dir or tempfile.mkdtemp(prefix="spinling-worker-")
    os.makedirs(cache_dir, exist_ok=True)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.cache_dir, server.quiet = cache_dir, args.quiet
    print(f"Listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if not args.cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
