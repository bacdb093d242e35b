"""A small raw-socket client for the memcached text protocol, for tests.

Everything here is bounded in time: every read has a deadline and raises
`ReplyTimeout` (or returns what it has, see `read_until_version`) instead of
hanging.
"""

import hashlib
import socket
import time

CRLF = b"\r\n"
DEFAULT_TIMEOUT_S = 10.0


class ReplyTimeout(AssertionError):
    pass


class Closed(AssertionError):
    pass


class Conn:
    """A connection with a read buffer and deadline-bounded reads."""

    def __init__(self, sock, timeout=DEFAULT_TIMEOUT_S):
        self.sock = sock
        self.timeout = timeout
        self.buf = bytearray()
        self.closed_by_peer = False

    @classmethod
    def to(cls, server, timeout=DEFAULT_TIMEOUT_S):
        return cls(server.connect(timeout=timeout), timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Reads more bytes into the buffer; False on EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout(f"timed out; buffered={bytes(self.buf[:300])!r}")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise ReplyTimeout(
                f"timed out; buffered={bytes(self.buf[:300])!r}") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed_by_peer = True
            return False
        self.buf += data
        return True

    def readline(self, timeout=None):
        """One line including its "\\r\\n" (or "\\n")."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return line
            if not self._fill(deadline):
                raise Closed(f"connection closed; buffered={bytes(self.buf)!r}")

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed(f"connection closed after {len(self.buf)} of "
                             f"{n} bytes")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def expect(self, expected, timeout=None):
        """Reads len(expected) bytes and asserts they are `expected`."""
        try:
            got = self.read_exact(len(expected), timeout)
        except Closed as e:
            raise AssertionError(f"expected {expected[:300]!r}: {e}; "
                                 f"got {bytes(self.buf[:300])!r}") from None
        assert got == expected, f"expected {expected[:300]!r}, got {got[:300]!r}"
        return got

    def call(self, request, timeout=None):
        """Sends one request and returns its one-line reply."""
        self.send(request)
        return self.readline(timeout)

    def read_values(self, timeout=None):
        """Reads a get/gets/gat reply up to END.

        Returns a list of (key, flags, data, cas-or-None) in reply order."""
        out = []
        while True:
            line = self.readline(timeout)
            if line == b"END\r\n":
                return out
            parts = line.split()
            assert parts and parts[0] == b"VALUE" and len(parts) in (4, 5), \
                f"unexpected line in get reply: {line[:300]!r}"
            n = int(parts[3])
            data = self.read_exact(n + 2, timeout)
            assert data.endswith(CRLF), f"value not followed by CRLF: {data[-10:]!r}"
            cas = int(parts[4]) if len(parts) == 5 else None
            out.append((parts[1], int(parts[2]), data[:-2], cas))

    def wait_closed(self, timeout=None):
        """Reads until EOF; returns everything received before it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_until_version(self, timeout=None):
        """Reads a reply stream up to and including the first VERSION line.

        VALUE lines are parsed so that their data blocks are skipped whatever
        they contain.  Returns (replies, status) where replies is the raw
        bytes and status is "ok", "closed" (EOF first) or "timeout"."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = bytearray()
        pos = 0  # parse position in self.buf
        try:
            while True:
                i = self.buf.find(b"\n", pos)
                if i < 0:
                    if not self._fill(deadline):
                        out += self.buf
                        self.buf.clear()
                        return bytes(out), "closed"
                    continue
                line = bytes(self.buf[pos:i + 1])
                if line.startswith(b"VALUE "):
                    parts = line.split(b" ")
                    try:
                        n = int(parts[3])
                    except (IndexError, ValueError):
                        n = -2
                    need = i + 1 + n + 2
                    while len(self.buf) < need:
                        if not self._fill(deadline):
                            out += self.buf
                            self.buf.clear()
                            return bytes(out), "closed"
                    pos = max(need, i + 1)
                    continue
                pos = i + 1
                if line.startswith(b"VERSION "):
                    out += self.buf[:pos]
                    del self.buf[:pos]
                    return bytes(out), "ok"
        except ReplyTimeout:
            out += self.buf
            self.buf.clear()
            return bytes(out), "timeout"


def stats(conn, sub=b""):
    """`stats [sub]` as an ordered list of (name, value) byte pairs.

    Asserts the reply is only STAT lines of exactly three space-separated
    tokens (what memcached_exporter's client requires) ending in END."""
    cmd = b"stats" + (b" " + sub if sub else b"") + CRLF
    conn.send(cmd)
    out = []
    while True:
        line = conn.readline()
        if line == b"END\r\n":
            return out
        assert line.endswith(CRLF), line
        parts = line[:-2].split(b" ")
        assert len(parts) == 3 and parts[0] == b"STAT", \
            f"bad line in {cmd!r} reply: {line!r}"
        out.append((parts[1], parts[2]))


def value_for(key, length, seed=b""):
    """A deterministic value that verifies itself: sha256(seed+key) repeated."""
    block = hashlib.sha256(seed + key).hexdigest().encode()
    reps = length // len(block) + 1
    return (block * reps)[:length]
