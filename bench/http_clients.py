"""CPU per webhook POST: httpx against aiohttp (the gateway's sender), why deliveries use aiohttp.

Starts the receiver (``tests/e2e/receiver.py``) and sends ``--requests`` POSTs of a 0.5 kB
body from ``--lanes`` concurrent sequential lanes, with pools of 4, 8 and 32 connections,
through an ``httpx.AsyncClient`` (no redirects, no proxies, ``check_url`` before each request,
as a guarded sender would) and through ``HttpSender`` (aiohttp, what the dispatcher uses).
Prints requests/s and microseconds of CPU per request of this process.

    .venv/bin/python bench/http_clients.py [--requests 6000] [--lanes 50]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.receiver import ReceiverProcess  # noqa: E402
from warest.infra.webhooks.egress import EgressPolicy, check_url  # noqa: E402
from warest.infra.webhooks.sender import HttpSender  # noqa: E402

BODY = b'{"event":"message_received","data":{"x":"' + b"1" * 500 + b'"}}'
HEADERS = {"content-type": "application/json", "x-warest-session": "s"}
POLICY = EgressPolicy(allow_private=True)


async def measure(post: object, requests: int, lanes: int) -> tuple[float, float]:
    async def lane() -> None:
        for _ in range(requests // lanes):
            await post()  # type: ignore[operator]

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    return requests / elapsed, used / requests * 1e6


async def with_httpx(url: str, connections: int, requests: int, lanes: int) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    client = httpx.AsyncClient(
        timeout=httpx.Timeout(10.0), limits=limits, follow_redirects=False, trust_env=False
    )
    async with client:

        async def post() -> None:
            check_url(url, POLICY)
            response = await client.post(url, content=BODY, headers=HEADERS)
            assert response.status_code == 200

        return await measure(post, requests, lanes)


async def with_aiohttp(url: str, connections: int, requests: int, lanes: int) -> tuple[float, float]:
    sender = HttpSender(POLICY, connections_per_origin=connections)

    async def post() -> None:
        answer = await sender.post(url, BODY, dict(HEADERS), 10.0)
        assert answer.status == 200, answer.error

    try:
        return await measure(post, requests, lanes)
    finally:
        await sender.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--lanes", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds (make test runs it)")
    args = parser.parse_args()
    if args.smoke:
        args.requests = 100
        args.lanes = 5
    with ReceiverProcess() as receiver:
        url = f"{receiver.url}/hook"
        for connections in (4, 8, 32):
            for name, run in (("httpx  ", with_httpx), ("aiohttp", with_aiohttp)):
                rate, cpu = asyncio.run(run(url, connections, args.requests, args.lanes))
                print(f"{name} {connections:>2} connections: {rate:7.0f} req/s, {cpu:5.0f} us CPU/request")


if __name__ == "__main__":
    main()
