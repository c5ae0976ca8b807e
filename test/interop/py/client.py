"""Client for wsconn's interop tests, on Python websockets' asyncio API (10.x).

Usage: client.py URL COUNT CLOSE_CODE CLOSE_REASON [SUBPROTOCOL...]

Sends COUNT messages (text and binary, of growing sizes), checks that each
comes back unchanged, pings once, then closes with CLOSE_CODE and
CLOSE_REASON. Prints one JSON object with what it saw; exits 1 on a mismatch.
"""
import asyncio
import json
import sys

import websockets

SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20]


def message(i):
    size = SIZES[i % len(SIZES)]
    if i % 2 == 0:
        return "é" * (size // 2) + "a" * (size % 2)
    return bytes((j * 7 + i) & 0xFF for j in range(size))


async def main(url, count, close_code, close_reason, subprotocols):
    result = {"ok": True, "errors": []}
    async with websockets.connect(url, max_size=None, subprotocols=subprotocols or None) as ws:
        result["subprotocol"] = ws.subprotocol
        for i in range(count):
            sent = message(i)
            await ws.send(sent)
            got = await ws.recv()
            if got != sent:
                result["ok"] = False
                result["errors"].append(f"message {i}: echo differs ({type(got).__name__} of {len(got)})")
        pong = await ws.ping(b"py-ping")
        await asyncio.wait_for(pong, 5)
        await ws.close(close_code, close_reason)
        result["close_code"] = ws.close_code
        result["close_reason"] = ws.close_reason
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    url, count, code, reason, *protocols = sys.argv[1:]
    sys.exit(asyncio.run(main(url, int(count), int(code), reason, protocols)))
