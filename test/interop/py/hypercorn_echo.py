"""An RFC 8441 peer for wsconn's dial(): Hypercorn (Debian python3-hypercorn) serving an ASGI
WebSocket echo app over cleartext HTTP/2 (prior knowledge) and HTTP/1.1 on one port.

It binds 127.0.0.1 port 0 itself, prints the port on the first line of stdout, and prints one line
per WebSocket it accepted: the HTTP version the ASGI scope reports ("2" over RFC 8441) and the
subprotocols offered. Each text or binary message is echoed; the app closes with 1000 when the
client does.
"""
import asyncio
import json
import signal
import socket
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"websocket only\n"})
        return
    message = await receive()
    assert message["type"] == "websocket.connect"
    offered = scope.get("subprotocols", [])
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    print(json.dumps({"http_version": scope["http_version"], "subprotocols": offered, "path": scope["path"]}), flush=True)
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    config = Config()
    config.bind = [f"fd://{sock.fileno()}"]
    config.loglevel = "WARNING"
    config.accesslog = None
    print(sock.getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not sys.stdin.readline() else None)
    await serve(app, config, shutdown_trigger=stop.wait)


asyncio.run(main())
