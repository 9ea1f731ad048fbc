"""The floor's ASGI app: a websocket per user that forwards its group's messages as JSON.

    uvicorn tests.floor.app:application --lifespan off ...

`ws://host/?user=<id>` joins group `u<id>`, sends one first frame, then one text frame per
layer message, as channels' consumer does (a task per direction) but with no middleware,
authentication or reads. Any HTTP request gets 200, for the readiness probe.
"""

import asyncio
import json
from urllib.parse import parse_qs

from tests.floor.layer import floor_layer, group_name


async def application(scope, receive, send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send)


async def _websocket(scope, receive, send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    try:
        [user] = parse_qs(scope["query_string"].decode())["user"]
        user_id = int(user)
    except (KeyError, ValueError):
        await send({"type": "websocket.close", "code": 4400})
        return
    layer, group = floor_layer(), group_name(user_id)
    channel = await layer.new_channel()
    # Joined before the first frame, as the product's consumer does, so nothing falls between.
    await layer.group_add(group, channel)
    try:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps({"type": "floor.hello"})})

        async def from_client() -> None:
            while (await receive())["type"] != "websocket.disconnect":
                pass

        async def to_client() -> None:
            while True:
                message = await layer.receive(channel)
                await send({"type": "websocket.send", "text": json.dumps(message)})

        tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            # A send to a closed socket raises in `to_client`; that is how it ends.
            await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        await layer.group_discard(group, channel)
