"""Hostile MySQL servers on 127.0.0.1 for tests: one that asks for the password in clear text, one that never speaks.

The first speaks just enough of the protocol (a v10 handshake, then an auth switch to `mysql_clear_password` or
`dialog`) to record what a client answers; the second accepts connections and stays silent.
"""

from __future__ import annotations

import asyncio
import struct
from types import TracebackType
from typing import Self

CAPABILITIES = 0x0001 | 0x0008 | 0x0200 | 0x8000 | 0x80000  # long password, with db, 4.1, secure, plugin auth
SALT = b"abcdefghijklmnopqrst"


def _packet(sequence: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([sequence]) + payload


def _handshake() -> bytes:
    return (b"\x0a" + b"5.7.99-fake\x00" + struct.pack("<I", 7) + SALT[:8] + b"\x00"
            + struct.pack("<H", CAPABILITIES & 0xFFFF) + b"\x21" + struct.pack("<H", 2)
            + struct.pack("<H", CAPABILITIES >> 16) + bytes([len(SALT) + 1]) + b"\x00" * 10 + SALT[8:] + b"\x00"
            + b"mysql_native_password\x00")


class Listener:
    """A TCP server on a free port of 127.0.0.1 for the block (`port`); connections still open at its end close."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self._handle(reader, writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class ClearTextServer(Listener):
    """Answers every login with an auth switch to `plugin`; `received` holds what clients sent after it."""

    def __init__(self, plugin: str = "mysql_clear_password") -> None:
        super().__init__()
        self.plugin = plugin
        self.received: list[bytes] = []
        self.logins = 0

    async def _read_packet(self, reader: asyncio.StreamReader) -> bytes:
        header = await reader.readexactly(4)
        return await reader.readexactly(int.from_bytes(header[:3], "little"))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(_packet(0, _handshake()))
            await writer.drain()
            await self._read_packet(reader)  # the login (user, scrambled password)
            self.logins += 1
            switch = b"\xfe" + self.plugin.encode() + b"\x00"
            if self.plugin == "dialog":
                switch += b"\x04Password: "
            writer.write(_packet(2, switch))
            await writer.drain()
            self.received.append(await asyncio.wait_for(self._read_packet(reader), timeout=5))
            writer.write(_packet(4, b"\xff" + struct.pack("<H", 1045) + b"#28000Access denied"))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()


class SilentServer(Listener):
    """Accepts connections and never sends a byte; `connections` counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.read()  # until the client gives up
