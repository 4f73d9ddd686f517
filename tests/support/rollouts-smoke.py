# A smoke test of issue 25 (rollouts, sticky keys, history, stats) under the real Spin CLI:
# builds nothing; run it after `cargo build --target wasm32-wasip1 --release $(scripts/components)`
# with `PORT=3871 python3 tests/support/rollouts-smoke.py`. It drives rollback by the tick
# endpoint and promotion by the scheduler loop alone.
import io, json, os, subprocess, sys, tempfile, time, urllib.request, zipfile, uuid
PORT = int(os.environ.get("PORT", "3871"))
S = f"http://127.0.0.1:{PORT}"
state = tempfile.mkdtemp()
spin = subprocess.Popen(["/work/shared/spin/bin/spin", "up", "--from", "/work/wt-rollout/spin.toml",
                         "--listen", f"127.0.0.1:{PORT}", "--state-dir", state],
                        stdout=open("/tmp/rollout-spin.log", "w"), stderr=subprocess.STDOUT)
def req(method, path, body=None, headers=None, raw=None, ctype="application/json"):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = dict(headers or {})
    if data is not None: h.setdefault("content-type", ctype)
    r = urllib.request.Request(S + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            t = resp.read(); return resp.status, (json.loads(t) if t else None)
    except urllib.error.HTTPError as e:
        t = e.read()
        try: return e.code, json.loads(t)
        except Exception: return e.code, t
def wasm(instr):
    body = bytes([0x00]) + instr + bytes([0x0b])
    code = bytes([1, len(body)]) + body
    exp = bytes([2, 6]) + b"memory" + bytes([2, 0, 6]) + b"_start" + bytes([0, 0])
    return (b"\x00asm\x01\x00\x00\x00" + bytes([1, 4, 1, 0x60, 0, 0]) + bytes([3, 2, 1, 0]) +
            bytes([5, 3, 1, 0, 1]) + bytes([7, len(exp)]) + exp + bytes([10, len(code)]) + code)
def zipped(w):
    b = io.BytesIO(); z = zipfile.ZipFile(b, "w"); z.writestr("main.wasm", w); z.close(); return b.getvalue()
def multipart(fields, package):
    bd = uuid.uuid4().hex; out = b""
    for k, v in fields:
        out += f"--{bd}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    out += f"--{bd}\r\nContent-Disposition: form-data; name=\"package\"; filename=\"p.zip\"\r\nContent-Type: application/zip\r\n\r\n".encode() + package + b"\r\n"
    out += f"--{bd}--\r\n".encode()
    return out, f"multipart/form-data; boundary={bd}"
fails = 0
def check(what, cond, extra=""):
    global fails
    print(("ok   " if cond else "FAIL ") + what, "" if cond else extra)
    if not cond: fails += 1
try:
    for _ in range(90):
        try:
            if req("GET", "/v1/")[0] == 200: break
        except Exception: pass
        time.sleep(1)
    st, rt = req("POST", "/v1/runtimes", {"image": "spinling/wasm", "name": "wasm"}); check("runtime", st == 201, rt)
    def function(first, second):
        body, ct = multipart([("code", '{"source": "package"}'), ("runtime_id", rt["id"])], zipped(wasm(first)))
        st, fn = req("POST", "/v1/functions", raw=body, ctype=ct); check("function", st == 201, fn)
        fid = fn["id"]
        check("publish 1", req("POST", f"/v1/functions/{fid}/versions", {})[0] == 201)
        body, ct = multipart([], zipped(wasm(second)))
        st, x = req("PUT", f"/v1/functions/{fid}", raw=body, ctype=ct); check("update", st == 200, x)
        check("publish 2", req("POST", f"/v1/functions/{fid}/versions", {})[0] == 201)
        return fid
    OK, OK2, FAIL = b"", bytes([1]), bytes([0])
    # --- rollback
    fid = function(OK, FAIL)
    st, a = req("POST", "/v1/aliases", {"name": "prod", "function_id": fid, "function_version": 1}); check("alias", st == 201, a)
    st, r = req("POST", "/v1/aliases/prod/rollout", {"to_version": 2, "steps": [99], "step_seconds": 3600, "max_failure_rate": 0.5, "min_executions": 50})
    check("rollout started", st == 201 and r["status"] == "running", r)
    canary = 0
    while canary < 3:
        st, e = req("POST", "/v1/executions", {"function_alias": "prod"})
        if e["function_version"] == 2:
            check("canary fails", e["status"] == "failed", e); canary += 1
    st, t = req("POST", "/v1/jobs/tick", {}); check("tick", st == 200 and "decided" in t, t)
    st, r = req("GET", "/v1/aliases/prod/rollout"); check("3 of 3: still running", r["status"] == "running", r)
    while True:
        st, e = req("POST", "/v1/executions", {"function_alias": "prod"})
        if e["function_version"] == 2: break
    for _ in range(20):
        req("POST", "/v1/jobs/tick", {}); st, r = req("GET", "/v1/aliases/prod/rollout")
        if r["status"] != "running": break
        time.sleep(0.3)
    check("4 of 4: rolled back", r["status"] == "rolled_back", r); print("     reason:", r.get("reason"))
    st, a = req("GET", "/v1/aliases/prod"); check("alias back at 1", a["function_version"] == 1 and a["routing"] == {}, a)
    st, hist = req("GET", "/v1/aliases/prod/history")
    check("history", [e["cause"] for e in hist["history"]] == ["created", "rollout_started", "rollback"], hist)
    st, stats = req("GET", f"/v1/functions/{fid}/stats"); check("stats", st == 200 and len(stats["versions"]) >= 1, stats)
    print("     stats:", json.dumps(stats)[:400])
    check("delete alias", req("DELETE", "/v1/aliases/prod")[0] == 204)
    # --- promotion, by the scheduler loop alone (no ticks)
    fid2 = function(OK, OK2)
    req("POST", "/v1/aliases", {"name": "prod", "function_id": fid2, "function_version": 1})
    st, r = req("POST", "/v1/aliases/prod/rollout", {"to_version": 2, "steps": [10, 50], "step_seconds": 2, "max_failure_rate": 0.05, "min_executions": 2})
    check("rollout 2 started", st == 201, r)
    st, x = req("PUT", "/v1/aliases/prod", {"function_version": 2}); check("locked 409", st == 409, x)
    st, x = req("DELETE", f"/v1/functions/{fid2}/versions/2"); check("version locked 403", st == 403, x)
    seen = []; deadline = time.time() + 90; k = 0
    while time.time() < deadline:
        k += 1
        req("POST", "/v1/executions", {"function_alias": "prod", "routing_key": f"user-{k}"})
        st, r = req("GET", "/v1/aliases/prod/rollout")
        now = (r["status"], r["step"])
        if not seen or seen[-1] != now: seen.append(now)
        if r["status"] != "running": break
        time.sleep(0.2)
    check("promoted through every step (loop)", seen == [("running", 1), ("running", 2), ("promoted", 2)], seen)
    st, a = req("GET", "/v1/aliases/prod"); check("alias at 2", a["function_version"] == 2 and a["routing"] == {}, a)
    st, hist = req("GET", "/v1/aliases/prod/history?limit=2")
    check("history paged", len(hist["history"]) == 2 and "next" in hist, hist)
    # --- sticky + abort
    st, x = req("PUT", "/v1/aliases/prod", {"function_version": 1, "routing": {"2": 0.5}}); check("routing", st == 200, x)
    versions = set(); stable = True
    for i in range(12):
        got = {req("POST", "/v1/executions", {"function_alias": "prod", "routing_key": f"c{i}"})[1]["function_version"] for _ in range(3)}
        stable &= len(got) == 1; versions |= got
    check("sticky keys", stable and versions == {1, 2}, versions)
    st, wh = req("POST", "/v1/webhooks", {"function_alias": "prod"})
    vs = set()
    for _ in range(3):
        st, inv = req("POST", f"/v1/webhooks/{wh['id']}/invoke", {}, headers={"X-Routing-Key": "c3"})
        vs.add(req("GET", f"/v1/executions/{inv['execution_id']}")[1]["function_version"])
    direct = req("POST", "/v1/executions", {"function_alias": "prod", "routing_key": "c3"})[1]["function_version"]
    check("webhook header sticky", vs == {direct}, (vs, direct))
    req("PUT", "/v1/aliases/prod", {"routing": {}})
    st, r = req("POST", "/v1/aliases/prod/rollout", {"to_version": 2}); check("rollout 3", st == 201, r)
    st, r = req("DELETE", "/v1/aliases/prod/rollout"); check("abort", st == 200 and r["status"] == "aborted", r)
    st, r = req("DELETE", "/v1/aliases/prod/rollout"); check("abort again 409", st == 409, r)
    st, x = req("POST", "/v1/aliases/prod/rollout", {"to_version": 2, "steps": [50, 10]}); check("bad steps 400", st == 400, x); print("    ", x)
finally:
    spin.terminate()
print("FAILS", fails)
sys.exit(1 if fails else 0)
