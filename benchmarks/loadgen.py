"""A bounded HTTP/1.1 load generator over loopback: N keep-alive connections (asyncio streams, no
client library in the way) each send POST requests back to back until the fixed total count is
reached or the time limit passes. Records each request's start, end, status and X-Model-Version.

    python -m benchmarks.loadgen URL BODY.json --connections 8 --requests 5000 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class Sample:
    start: float      # time.time()
    end: float
    status: int
    version: str | None


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.status == 200]

    @property
    def throughput(self) -> float:
        return len(self.ok) / self.elapsed if self.elapsed else 0.0

    def percentile(self, q: float) -> float:
        latencies = sorted(s.end - s.start for s in self.ok)
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    def summary(self) -> dict:
        latencies = [s.end - s.start for s in self.ok]
        return {"requests": len(self.samples), "ok": len(self.ok), "errors": self.errors,
                "seconds": round(self.elapsed, 3), "throughput": round(self.throughput, 1),
                "p50_ms": round(1000 * statistics.median(latencies), 3) if latencies else None,
                "p99_ms": round(1000 * self.percentile(0.99), 3) if latencies else None}


async def _connection(host: str, port: int, path: str, body: bytes, quota: list[int], deadline: float,
                      result: LoadResult, headers: dict[str, str]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        while quota[0] > 0 and time.monotonic() < deadline:
            quota[0] -= 1
            start = time.time()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            fields = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            await reader.readexactly(int(fields.get("content-length", "0")))
            result.samples.append(Sample(start, time.time(), status, fields.get("x-model-version")))
    except (OSError, asyncio.IncompleteReadError, ValueError):
        result.errors += 1
    finally:
        writer.close()


async def _run(url: str, body: bytes, connections: int, requests: int, seconds: float,
               headers: dict[str, str]) -> LoadResult:
    parts = urlsplit(url)
    result, quota = LoadResult(), [requests]
    deadline = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_connection(parts.hostname, parts.port, parts.path or "/", body, quota, deadline,
                                       result, headers) for _ in range(connections)))
    result.elapsed = time.perf_counter() - started
    return result


def generate(url: str, body: bytes, connections: int = 8, requests: int = 1000, seconds: float = 60,
             headers: dict[str, str] | None = None) -> LoadResult:
    """Send ``requests`` POSTs over ``connections`` connections, stopping early at ``seconds``."""
    return asyncio.run(_run(url, body, connections, requests, seconds, headers or {}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("body", help="file holding the JSON body")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args(argv)
    with open(args.body, "rb") as handle:
        body = handle.read()
    print(json.dumps(generate(args.url, body, args.connections, args.requests, args.seconds).summary()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
