"""`stepflow serve` on loopback: API latency under 50 concurrent clients over 100,000 runs, the
delay from a line printed by a running job to an SSE client, and 200 SSE clients at once.

Load is bounded in count and in time. The client is a minimal asyncio HTTP/1.1 reader
(keep-alive connections, no client library), so that on a small machine the figures are the
server's, not the client's; client and server still share the machine's cores.

    python benchmarks/bench_serve.py [--quick] [--runs-in-store 100000] [--requests 5000]
Targets (issue 14): list and detail p50 <= 5 ms under 50 clients; line-to-SSE p99 <= 500 ms;
200 SSE clients: every line delivered to every client, server RSS reported.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_ls
import common

ROOT = Path(__file__).resolve().parent.parent


def start_server(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([sys.executable, "-m", "stepflow", "serve", "--port", "0"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    found = re.search(r"127\.0\.0\.1:(\d+)", line)
    if not found:
        raise SystemExit(f"server did not start: {line}")
    return proc, int(found.group(1))


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def rss_mb(pid: int) -> float:
    """Private resident memory (RssAnon): VmRSS also counts the database pages SQLite maps,
    once per connection, which are the OS's file cache, not the server's memory."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    return status, await reader.readexactly(length)


async def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/executions?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await read_response(reader)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def load(port: int, paths: list[str], *, clients: int, requests: int, seconds: float) -> tuple[list[float], int]:
    """`clients` keep-alive connections sending GETs for `paths` in turn; latencies in seconds."""
    latencies: list[float] = []
    errors = 0
    left = requests
    turn = 0
    deadline = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal left, errors, turn
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left > 0 and time.monotonic() < deadline:
            left -= 1
            path = paths[turn % len(paths)]
            turn += 1
            start = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status, _ = await read_response(reader)
            latencies.append(time.perf_counter() - start)
            errors += status != 200
        writer.close()

    await asyncio.gather(*(client(k) for k in range(clients)))
    return latencies, errors


async def fetch(port: int, path: str) -> dict:  # type: ignore[type-arg]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    _, body = await read_response(reader)
    writer.close()
    return json.loads(body)  # type: ignore[no-any-return]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class SseClient:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []  # (arrival time, text)
        self.ended = False

    async def run(self, port: int, run_id: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
        writer.write(f"GET /api/executions/{run_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        event = ""
        while True:
            line = await reader.readline()
            if not line:
                break
            text = line.decode().rstrip("\r\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: "):
                if event == "lines":
                    now = time.time()
                    self.arrivals.extend((now, x["text"]) for x in json.loads(text[6:]))
                elif event == "end":
                    self.ended = True
                    break
            elif re.fullmatch(r"[0-9a-f]+", text):  # a chunk-size line of the chunked body
                continue
        writer.close()


JOB = """
import sys, time
print("STEP_START:tick", flush=True)
open(sys.argv[1], "w").close()
with open(sys.argv[2]) as go:
    go.read()
for i in range(int(sys.argv[3])):
    print(f"{time.time():.6f}", flush=True)
    time.sleep(float(sys.argv[4]))
"""


async def live(port: int, env: dict[str, str], work: Path, *, clients: int, lines: int, gap: float,
               server_pid: int) -> dict[str, float]:
    """A job prints `lines` timestamps; `clients` SSE clients follow it. Delay = arrival - printed."""
    ready, go = work / f"ready{clients}", work / f"go{clients}"
    os.mkfifo(go)
    job = subprocess.Popen([sys.executable, "-m", "stepflow", "run", "--name", f"live{clients}", "--", sys.executable,
                            "-u", "-c", JOB, str(ready), str(go), str(lines), str(gap)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not ready.exists():
        await asyncio.sleep(0.05)
    run_id = ""
    while not run_id:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/executions/active HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _, body = await read_response(reader)
        writer.close()
        active = [r for r in json.loads(body) if r["name"] == f"live{clients}"]
        run_id = active[0]["id"] if active else ""
        await asyncio.sleep(0.05)
    rss_before = rss_mb(server_pid)
    followers = [SseClient() for _ in range(clients)]
    tasks = [asyncio.create_task(f.run(port, run_id)) for f in followers]
    await asyncio.sleep(1.0)  # let every client connect and catch up before the job starts printing
    rss_connected = rss_mb(server_pid)
    with open(go, "w") as feed:
        feed.write("go")
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
    job.wait(timeout=60)
    delays = [arrived - float(text) for f in followers for arrived, text in f.arrivals if text[:1].isdigit()]
    delivered = [sum(1 for _, t in f.arrivals if t[:1].isdigit()) for f in followers]
    return {"clients": clients, "lines": lines, "delivered_min": min(delivered), "delivered_max": max(delivered),
            "ended": sum(f.ended for f in followers), "p50_ms": pct(delays, 0.5), "p99_ms": pct(delays, 0.99),
            "max_ms": max(delays) * 1000, "rss_before_mb": rss_before, "rss_connected_mb": rss_connected,
            "rss_after_mb": rss_mb(server_pid)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 runs, fewer requests and lines")
    parser.add_argument("--runs-in-store", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=5000, help="per endpoint, at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="per endpoint, at most")
    args = parser.parse_args()
    if args.quick:
        args.runs_in_store, args.requests = 10_000, 1000
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        work = Path(tmp)
        storage = work / "store"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STEPFLOW_")}
        env["STEPFLOW_STORAGE_PATH"] = str(storage)
        built = bench_ls.build(storage, args.runs_in_store)
        print(f"store: {args.runs_in_store:,} runs built in {built:.1f} s; load {common.loadavg()};"
              f" {os.cpu_count()} cpus")
        ids = [r[0] for r in common.query(common.database(storage),
                                          "SELECT id FROM executions ORDER BY random() LIMIT ?",
                                          (args.requests + 400,))]
        proc, port = start_server(env)
        try:
            asyncio.run(wait_ready(port))
            rows = []
            # Kept bodies are reused until the store changes: "kept" arms mostly hit them. "cold" arms
            # never do: each detail asks a run not asked before; a list with `since` is never kept.
            cold_ids = ids[400:]
            for label, paths in (
                ("GET /api/executions?limit=50 (kept)", ["/api/executions?limit=50"]),
                ("GET /api/executions?limit=50&since=DATE (cold)",
                 [f"/api/executions?limit=50&since=2001-01-01T00:00:{i % 60:02d}" for i in range(60)]),
                ("GET /api/executions/{id} (kept, 400 ids)", [f"/api/executions/{i}" for i in ids[:400]]),
                ("GET /api/executions/{id} (cold, each id once)", [f"/api/executions/{i}" for i in cold_ids]),
            ):
                for clients in (1, 50):
                    if "cold" in label and "{id}" in label:
                        paths, cold_ids = cold_ids[:args.requests // 2], cold_ids[args.requests // 2:]
                        paths = [f"/api/executions/{i}" for i in paths]
                    else:
                        asyncio.run(load(port, paths, clients=clients, requests=200, seconds=10))  # warm-up
                    t0 = time.perf_counter()
                    count = min(args.requests, len(paths)) if "each id once" in label else args.requests
                    lat, errors = asyncio.run(load(port, paths, clients=clients, requests=count,
                                                   seconds=args.seconds))
                    took = time.perf_counter() - t0
                    rows.append([label, clients, len(lat), errors, f"{pct(lat, 0.5):.2f}", f"{pct(lat, 0.99):.2f}",
                                 f"{len(lat) / took:.0f}"])
            common.table(["endpoint", "clients", "requests", "errors", "p50 ms", "p99 ms", "req/s"], rows)
            print("target: p50 <= 5 ms with 50 clients")
            lines = 100 if args.quick else 200
            one = asyncio.run(live(port, env, work, clients=1, lines=lines, gap=0.02, server_pid=proc.pid))
            many = asyncio.run(live(port, env, work, clients=200, lines=lines // 2, gap=0.05, server_pid=proc.pid))
            for r in (one, many):
                print(f"SSE {r['clients']} client(s): {r['lines']} lines printed; delivered per client min"
                      f" {r['delivered_min']} max {r['delivered_max']}; end seen by {r['ended']};"
                      f" delay p50 {r['p50_ms']:.0f} ms p99 {r['p99_ms']:.0f} ms max {r['max_ms']:.0f} ms;"
                      f" server RssAnon {r['rss_before_mb']:.0f} MB before, {r['rss_connected_mb']:.0f} MB connected,"
                      f" {r['rss_after_mb']:.0f} MB after")
            print("target: line-to-client p99 <= 500 ms; 200 clients: all lines to all")
            m = asyncio.run(fetch(port, "/api/health/metrics"))
            print(f"hub: {m['watch_polls']} wake-ups from its one Watch, {m['watch_reads']} reads of followed runs"
                  f" in {m['uptime_s']:.0f} s, for every client together")
        finally:
            stop(proc)
    print(f"took {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
