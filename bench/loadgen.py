"""W9's load generator: a bounded HTTP/1.1 client, standard library only.

``python -m bench.loadgen <port> <requests> <concurrency> <warmup>`` opens
*concurrency* keep-alive connections to 127.0.0.1:<port> and sends
``GET /`` over them until *requests* responses came back (each connection
sends its next request when the last answer arrived), then prints one JSON
line: latency p50/p99 in ms (leaving out the first *warmup* responses),
requests/s from the end of the warm-up to the last response, and how many failed.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench.stats import percentile

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _connection(
    port: int, budget: list[int], latencies: list[float], ends: list[float], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(REQUEST)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            ended = time.perf_counter()
            latencies.append(ended - started)
            ends.append(ended)
            if not head.startswith(b"HTTP/1.1 200"):
                errors[0] += 1
    finally:
        writer.close()


async def main(port: int, requests: int, concurrency: int, warmup: int) -> dict[str, float]:
    budget, errors = [requests], [0]
    latencies: list[float] = []
    ends: list[float] = []
    await asyncio.gather(
        *(_connection(port, budget, latencies, ends, errors) for _ in range(concurrency))
    )
    measured = latencies[warmup:]
    return {
        "p50_ms": percentile(measured, 50) * 1000,
        "p99_ms": percentile(measured, 99) * 1000,
        "per_s": (len(ends) - warmup - 1) / (ends[-1] - ends[warmup]),
        "errors": float(errors[0]),
    }


if __name__ == "__main__":
    port, requests, concurrency, warmup = (int(arg) for arg in sys.argv[1:5])
    print(json.dumps(asyncio.run(main(port, requests, concurrency, warmup))))
