"""A loopback TCP proxy in front of PostgreSQL that counts round trips on the wire.

A round trip is one exchange: the client sends (one message or a whole pipeline of them)
and waits until the server answers. The proxy counts, per connection, every time server
bytes arrive after client bytes were forwarded since the server last answered; messages the
server sends on its own (ParameterStatus, notices) are not counted. This is what the
network latency between a replica and its database multiplies, whatever the driver does
(statement preparation, BEGIN/COMMIT, pool resets), so the tests and the benchmark count
here rather than trusting a driver's own bookkeeping.
"""
from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class RoundTripProxy:
    def __init__(self, target_host: str, target_port: int):
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._count = 0
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="round-trip-proxy").start()

    @classmethod
    def in_front_of(cls, database_url: str) -> "RoundTripProxy":
        parts = urlsplit(database_url)
        return cls(parts.hostname or "127.0.0.1", parts.port or 5432)

    def url(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by this proxy's."""
        parts = urlsplit(database_url)
        user = parts.netloc.rpartition("@")[0]
        netloc = (user + "@" if user else "") + f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def round_trips(self) -> int:
        with self._lock:
            return self._count

    def reset(self) -> int:
        """The count so far, and start again from zero."""
        with self._lock:
            count, self._count = self._count, 0
            return count

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in list(self._sockets):
            try:
                sock.close()
            except OSError:
                pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, server]
            waiting = [False]  # the client sent since the server last answered
            threading.Thread(target=self._pump, args=(client, server, waiting, True),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, waiting, False),
                             daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, waiting: list[bool],
              from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    if from_client:
                        waiting[0] = True  # before forwarding: the answer cannot come first
                    elif waiting[0]:
                        waiting[0] = False
                        self._count += 1
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
