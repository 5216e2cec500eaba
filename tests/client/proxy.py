"""A small TCP proxy in front of a test gateway that loses connections on purpose, and keeps every HTTP request it
passed on (head and body), so a test can see what a client resent."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, SeenRequest] | None:
    """One HTTP/1.1 request (a Content-Length body, as httpx sends): its raw bytes and what it says."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    method, path, _ = request_line.split(" ", 2)
    return head + body, SeenRequest(method, path, headers, body)


@dataclass
class DroppingProxy:
    """Forwards 127.0.0.1:<port> to the gateway. With `drop_first_answer`, the first connection's request reaches
    the gateway, the proxy waits until the gateway starts answering (so its work is done) and closes the
    connection without passing the answer on: the client sees the connection drop. `cut()` closes every open
    connection at once."""

    upstream_port: int
    drop_first_answer: bool = False
    requests: list[SeenRequest] = field(default_factory=list)
    answers: list[bytearray] = field(default_factory=list)  # what each connection passed back, in order
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()

    @property
    def connections(self) -> int:
        return len(self.answers)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answer = bytearray()
        self.answers.append(answer)
        first = self.connections == 1
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._open |= {writer, upstream_writer}
        try:
            if first and self.drop_first_answer:
                await self._forward_one_and_drop(reader, upstream_reader, upstream_writer)
            else:
                await asyncio.gather(self._forward_requests(reader, upstream_writer),
                                     self._pipe(upstream_reader, writer, answer))
        finally:
            for end in (writer, upstream_writer):
                self._open.discard(end)
                end.transport.abort()

    async def _forward_one_and_drop(self, reader: asyncio.StreamReader, upstream_reader: asyncio.StreamReader,
                                    upstream_writer: asyncio.StreamWriter) -> None:
        read = await _read_request(reader)
        if read is None:
            return
        raw, seen = read
        self.requests.append(seen)
        upstream_writer.write(raw)
        await upstream_writer.drain()
        await upstream_reader.read(1)  # the gateway answers: the request was applied

    async def _forward_requests(self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while (read := await _read_request(reader)) is not None:
                raw, seen = read
                self.requests.append(seen)
                upstream.write(raw)
                await upstream.drain()
        upstream.transport.abort()

    async def _pipe(self, source: asyncio.StreamReader, destination: asyncio.StreamWriter, answer: bytearray) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                answer += chunk
                destination.write(chunk)
                await destination.drain()
        destination.transport.abort()
