"""permessage-deflate peer for wsconn's interop tests, on Python websockets' asyncio API (10.x).

Usage:
  deflate_peer.py client URL OPTIONS_JSON
      Connects with compression (OPTIONS_JSON: keyword arguments of
      ClientPerMessageDeflateFactory, or null for websockets' default), sends
      the messages of PLAN (see below), checks that each comes back unchanged,
      closes with 1000, and prints one JSON object with what it saw; exits 1
      on a mismatch.
  deflate_peer.py server OPTIONS_JSON_LIST
      Runs one echo server per entry of the list (keyword arguments of
      ServerPerMessageDeflateFactory, or null for the default), prints
      {"event": "listening", "ports": [...]}, then {"event": "open", ...} with
      the negotiated headers for every connection. Exits when stdin closes.

PLAN: text and binary messages of the sizes in SIZES (text compressible,
binary a counter pattern), then the same 1000 random bytes three times, then
one binary message sent in three fragments.
"""
import asyncio
import json
import os
import sys

import websockets
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

SIZES = [0, 1, 127, 128, 129, 511, 512, 513, 5000, 70000]


def text_of(size):
    words = "alpha beta gamma delta event user value true null "
    return (words * (size // len(words) + 1))[:size]


def binary_of(size, seed):
    return bytes((i * 31 + seed + (i >> 8)) & 0xFF for i in range(size))


def plan():
    messages = []
    for i, size in enumerate(SIZES):
        messages.append(text_of(size) if i % 2 == 0 else binary_of(size, i))
    random = os.urandom(1000)
    messages += [random, random, random]
    return messages


async def client(url, options):
    result = {"ok": True, "errors": []}
    extensions = None if options is None else [ClientPerMessageDeflateFactory(**options)]
    async with websockets.connect(url, max_size=None, extensions=extensions, compression="deflate") as ws:
        result["request_extensions"] = ws.request_headers.get("Sec-WebSocket-Extensions")
        result["response_extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        for i, sent in enumerate(plan()):
            await ws.send(sent)
            got = await ws.recv()
            if got != sent:
                result["ok"] = False
                result["errors"].append(f"message {i}: echo differs ({type(got).__name__} of {len(got)})")
        fragments = [binary_of(400, 1), binary_of(400, 2), binary_of(400, 3)]
        await ws.send(iter(fragments))
        got = await ws.recv()
        if got != b"".join(fragments):
            result["ok"] = False
            result["errors"].append("the fragmented message came back changed")
        await ws.close(1000)
        result["close_code"] = ws.close_code
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


def emit(**fields):
    print(json.dumps(fields), flush=True)


async def echo(ws, path=None):
    emit(
        event="open",
        path=ws.path,
        request_extensions=ws.request_headers.get("Sec-WebSocket-Extensions"),
        response_extensions=ws.response_headers.get("Sec-WebSocket-Extensions"),
    )
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def server(option_list):
    servers = []
    for options in option_list:
        extensions = None if options is None else [ServerPerMessageDeflateFactory(**options)]
        servers.append(
            await websockets.serve(echo, "127.0.0.1", 0, max_size=None, extensions=extensions, compression="deflate")
        )
    emit(
        event="listening",
        ports=[s.sockets[0].getsockname()[1] for s in servers],
        version=websockets.__version__,
    )
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for s in servers:
        s.close()
        await s.wait_closed()


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "client":
        sys.exit(asyncio.run(client(sys.argv[2], json.loads(sys.argv[3]))))
    asyncio.run(server(json.loads(sys.argv[2])))
