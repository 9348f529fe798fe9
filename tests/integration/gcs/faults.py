"""A TCP relay that stands between the storage client and the emulator and breaks the network
on cue: it cuts every open connection once a number of bytes has gone upstream (a connection
reset in the middle of an upload), flips one bit of what comes back (a download damaged in
transit), holds an upload still once it has reached a given size (so that a test can kill the
uploader at a known point), and goes down for good (every later connection refused).

It relays bytes and nothing else, so the client and the emulator still speak real HTTP to each
other; only the network between them misbehaves.
"""

from __future__ import annotations

import contextlib
import socket
import threading

BUFFER = 64 * 1024


class FaultRelay:
    """Relays ``127.0.0.1:<port>`` to ``127.0.0.1:<upstream_port>``; see the module docstring."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._cut_at: int | None = None
        self._flip_at: int | None = None
        self._stall_at: int | None = None
        self._stalled = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._down = False
        self.sent = 0  # bytes relayed from clients to the emulator
        self.received = 0  # bytes relayed from the emulator to clients
        self.cuts = 0
        self.flips = 0
        threading.Thread(target=self._accept_loop, name="relay-accept", daemon=True).start()

    # -- cues -------------------------------------------------------------------------------

    def cut_once_after(self, nbytes: int) -> None:
        """Reset every open connection once ``nbytes`` more bytes have gone upstream."""
        with self._lock:
            self._cut_at = self.sent + nbytes

    def flip_once_after(self, nbytes: int) -> None:
        """Invert one byte, ``nbytes`` into what the emulator sends back from now on."""
        with self._lock:
            self._flip_at = self.received + nbytes

    def stall_after(self, nbytes: int) -> threading.Event:
        """Hold all upstream traffic once ``nbytes`` more bytes have passed, until
        :meth:`resume`; the returned event is set when the hold begins."""
        with self._lock:
            self._stall_at = self.sent + nbytes
            self._stalled = threading.Event()
            return self._stalled

    def resume(self) -> None:
        self._flowing.set()

    def go_down(self) -> None:
        """Drop every connection and refuse all later ones: the network is gone."""
        with self._lock:
            self._down = True
        self._listener.close()
        self._flowing.set()  # release held pumps so that they see their sockets closed
        self._reset_all()

    close = go_down

    # -- relaying ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # listener closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._down:
                    client.close()
                    upstream.close()
                    return
                self._sockets.update((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _count_upstream(self, nbytes: int) -> bool:
        """Add to ``sent``, start a due hold; True when the cut is due now."""
        with self._lock:
            self.sent += nbytes
            if self._stall_at is not None and self.sent >= self._stall_at:
                self._stall_at = None
                self._flowing.clear()
                self._stalled.set()
            if self._cut_at is not None and self.sent >= self._cut_at:
                self._cut_at = None
                self.cuts += 1
                return True
        return False

    def _damage_downstream(self, data: bytes) -> bytes:
        """Count bytes coming back; invert the one the flip cue points at, if it is in ``data``."""
        with self._lock:
            start = self.received
            self.received += len(data)
            if self._flip_at is None or not start <= self._flip_at < self.received:
                return data
            index, self._flip_at = self._flip_at - start, None
            self.flips += 1
        damaged = bytearray(data)
        damaged[index] ^= 0xFF
        return bytes(damaged)

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(BUFFER):
                if upstream and self._count_upstream(len(data)):
                    self._reset_all()  # this chunk never arrives: the request is torn
                    return
                if upstream:
                    self._flowing.wait()
                if not upstream:
                    data = self._damage_downstream(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(sink)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        # shutdown wakes the partner thread blocked in recv(); close alone would not.
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def _reset_all(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            self._close(sock)
