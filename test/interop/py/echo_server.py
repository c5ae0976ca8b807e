"""Echo server for wsconn's interop tests, on Python websockets' asyncio API (10.x).

Prints one JSON object per line on stdout: first {"event": "listening", "port": N},
then {"event": "closed", ...} with the close code and reason each connection saw.
A path /close/<code>/<reason> closes that connection with the code and reason
after echoing its first message. Exits when stdin closes.
"""
import asyncio
import json
import sys
from urllib.parse import unquote

import websockets


def emit(**fields):
    print(json.dumps(fields), flush=True)


async def handle(ws):
    path = ws.path
    close_with = None
    parts = path.split("/")
    if len(parts) == 4 and parts[1] == "close":
        close_with = (int(parts[2]), unquote(parts[3]))
    try:
        async for message in ws:
            await ws.send(message)
            if close_with is not None:
                await ws.close(*close_with)
                break
    except websockets.ConnectionClosed:
        pass
    await ws.wait_closed()
    emit(event="closed", path=path, code=ws.close_code, reason=ws.close_reason,
         subprotocol=ws.subprotocol)


async def main():
    async with websockets.serve(
        handle, "127.0.0.1", 0, max_size=None, subprotocols=["chat.v2", "chat.v1"]
    ) as server:
        emit(event="listening", port=server.sockets[0].getsockname()[1],
             version=websockets.__version__)
        # Run until the test closes our stdin (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
