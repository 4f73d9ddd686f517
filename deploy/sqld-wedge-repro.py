#!/usr/bin/env python3
"""Wedge sqld without Spinling: N threads, each request its own Hrana stream (pipeline ... close),
autocommit blob inserts/deletes (grow the WAL -> autocheckpoints) plus short BEGIN IMMEDIATE txns.
usage: deploy/sqld-wedge-repro.py http://127.0.0.1:8080 THREADS SECONDS [BLOB_BYTES]
Then check: a bare write to sqld hangs while reads answer, and sqld stays at 100 % CPU."""
import json, sys, threading, time, urllib.request, random, collections
url, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
blob = int(sys.argv[4]) if len(sys.argv) > 4 else 200000
def pipe(stmts, timeout=30):
    body = json.dumps({"requests": [{"type": "execute", "stmt": {"sql": s}} for s in stmts] + [{"type": "close"}]}).encode()
    r = urllib.request.Request(url + "/v2/pipeline", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(r, timeout=timeout) as resp:
        return json.loads(resp.read())
pipe(["CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, k INTEGER, data BLOB)", "CREATE TABLE IF NOT EXISTS c(k INTEGER PRIMARY KEY, n INTEGER)"])
stats = collections.Counter(); lock = threading.Lock(); stop = time.time() + secs
def worker(i):
    while time.time() < stop:
        k = random.randrange(1000)
        op = random.random()
        if op < 0.4: stmts = [f"INSERT INTO t(k, data) VALUES ({k}, randomblob({blob}))"]
        elif op < 0.6: stmts = [f"DELETE FROM t WHERE k = {k}"]
        elif op < 0.9: stmts = ["BEGIN IMMEDIATE", f"INSERT OR REPLACE INTO c VALUES ({k}, coalesce((SELECT n FROM c WHERE k={k}),0)+1)", "COMMIT"]
        else: stmts = ["SELECT count(*) FROM t"]
        try:
            res = pipe(stmts); kind = "ok" if all(x["type"] == "ok" for x in res["results"]) else "err"
        except Exception as e:
            kind = "exc:" + type(e).__name__
        with lock: stats[kind] += 1
ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
for t in ts: t.start()
t0 = time.time()
while time.time() < stop + 35:
    time.sleep(10)
    with lock: s = dict(stats); stats.clear()
    print(f"{time.strftime('%H:%M:%S')} t={time.time()-t0:.0f}s {s}", flush=True)
    if not any(t.is_alive() for t in ts): break
