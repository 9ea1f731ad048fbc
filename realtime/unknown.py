from channels.generic.websocket import AsyncWebsocketConsumer


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """Refuses sockets on any other path (the handshake gets 403)."""

    async def connect(self) -> None:
        await self.close()
