"""A many-connection load of mixed value sizes, for memory-ceiling tests.

One thread drives every connection through epoll (no thread per
connection), so 1,000 connections cost the test little. Value sizes are
log-uniform between MIN_SIZE and MAX_SIZE and fixed per key, and a key's
value is always the same bytes, so every hit is checked byte for byte.

Connections play one of these parts (counts in `Mix`):

- writers: pipelined `set`s of random keys until their share of
  `write_bytes` is written; every reply must be STORED;
- readers: `get`s of 1-4 random keys, one request in flight, every reply
  read and checked, until the writers are done;
- non-readers: multi-gets of the largest keys, sent until the socket takes
  no more, and never a byte read back (their replies pile up in strata);
- stalled stores: a `set` of a large value whose data block stops half way;
- long lines: a `get` line of many keys that never ends (no newline).

The misbehaving parts (the last three) never finish and may be closed by
the server; the well-behaved parts must finish without being closed.
Everything is bounded by `deadline_s` (a test fails, it never hangs).
"""

import random
import selectors
import socket
import time
import zlib
from dataclasses import dataclass, field

MIN_SIZE, MAX_SIZE = 100, 500 * 1024
_TCP_ESTABLISHED = 1
POOL = random.Random(0x5EED).randbytes(2 * MAX_SIZE + 4096)


def size_of(key):
    """The value size of `key`: log-uniform in [MIN_SIZE, MAX_SIZE]."""
    h = zlib.crc32(key) / 2**32
    lo, hi = MIN_SIZE.bit_length() - 1, MAX_SIZE.bit_length() - 1
    s = int(2 ** (lo + h * (hi - lo)))
    return max(MIN_SIZE, min(MAX_SIZE, s))


def value_of(key):
    size = size_of(key)
    off = zlib.crc32(key + b"/v") % (len(POOL) - size)
    return POOL[off:off + size]


@dataclass
class Mix:
    writers: int = 200
    readers: int = 600
    non_readers: int = 100
    stalled_stores: int = 50
    long_lines: int = 50
    write_bytes: int = 1 << 30
    keys: int = 20000
    seed: int = 0x21
    deadline_s: float = 240.0
    # Keys whose values the non-readers ask for (the largest ones).
    big_keys: int = 64
    # Bytes of the never-ending get line, and of the stalled data block.
    long_line_bytes: int = 256 * 1024
    stalled_value_bytes: int = 400 * 1024

    @property
    def connections(self):
        return (self.writers + self.readers + self.non_readers +
                self.stalled_stores + self.long_lines)


@dataclass
class Result:
    stored: int = 0
    hits: int = 0
    misses: int = 0
    bad_replies: list = field(default_factory=list)
    healthy_closed: int = 0       # writers/readers the server closed
    misbehaving_closed: int = 0   # the others the server closed
    written_bytes: int = 0
    elapsed_s: float = 0.0
    errors: list = field(default_factory=list)


class _Conn:
    __slots__ = ("sock", "part", "rng", "out", "inbuf", "expect",
                 "budget", "done", "closed", "index", "writing")

    def __init__(self, sock, part, rng, index):
        self.sock = sock
        self.part = part
        self.rng = rng
        self.index = index
        self.out = bytearray()
        self.inbuf = bytearray()
        self.expect = []       # ("store",) or ("get", [keys])
        self.budget = 0
        self.done = False
        self.closed = False
        self.writing = False


class Load:
    def __init__(self, address, mix):
        self.address = address
        self.mix = mix
        self.sel = selectors.DefaultSelector()
        self.conns = []
        self.result = Result()
        self.key_names = [b"ml:%06d" % i for i in range(mix.keys)]
        by_size = sorted(self.key_names, key=size_of, reverse=True)
        self.big = by_size[:mix.big_keys]

    # ---------------------------------------------------------------- setup

    def connect_all(self):
        """Opens every connection (idle); returns when all are connected."""
        parts = (["writer"] * self.mix.writers + ["reader"] * self.mix.readers +
                 ["non_reader"] * self.mix.non_readers +
                 ["stalled_store"] * self.mix.stalled_stores +
                 ["long_line"] * self.mix.long_lines)
        random.Random(self.mix.seed).shuffle(parts)
        for i, part in enumerate(parts):
            s = socket.create_connection(self.address, timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            c = _Conn(s, part, random.Random(self.mix.seed * 7919 + i), i)
            self.conns.append(c)

    def prefill_big(self):
        """Stores the big keys (what the non-readers will ask for)."""
        s = socket.create_connection(self.address, timeout=30)
        try:
            for k in self.big:
                v = value_of(k)
                s.sendall(b"set %s 0 0 %d\r\n" % (k, len(v)) + v + b"\r\n")
                line = b""
                while not line.endswith(b"\r\n"):
                    chunk = s.recv(64)
                    if not chunk:
                        raise AssertionError("closed during prefill")
                    line += chunk
                if line != b"STORED\r\n":
                    raise AssertionError(f"prefill: {line!r}")
        finally:
            s.close()

    # ------------------------------------------------------------ requests

    def _queue_writer(self, c):
        share = self.mix.write_bytes // max(1, self.mix.writers)
        while len(c.expect) < 4 and c.budget < share:
            k = self.key_names[c.rng.randrange(len(self.key_names))]
            v = value_of(k)
            c.out += b"set %s 0 0 %d\r\n" % (k, len(v))
            c.out += v
            c.out += b"\r\n"
            c.budget += len(v)
            self.result.written_bytes += len(v)
            c.expect.append(("store",))
        if c.budget >= share and not c.expect:
            c.done = True

    def _queue_reader(self, c):
        if c.expect:
            return
        keys = [self.key_names[c.rng.randrange(len(self.key_names))]
                for _ in range(c.rng.randint(1, 4))]
        c.out += b"get " + b" ".join(keys) + b"\r\n"
        c.expect.append(("get", keys))

    def _start_misbehaving(self, c):
        if c.part == "non_reader":
            # Multi-gets of the big keys until the socket takes no more.
            line = b"get " + b" ".join(self.big) + b"\r\n"
            c.out += line * 8
        elif c.part == "stalled_store":
            n = self.mix.stalled_value_bytes
            c.out += b"set stall:%d 0 0 %d\r\n" % (c.index, n)
            c.out += POOL[:n // 2]
        elif c.part == "long_line":
            keys = b" ".join(b"nokey:%d:%08d" % (c.index, i)
                             for i in range(self.mix.long_line_bytes // 16))
            c.out += b"get " + keys[:self.mix.long_line_bytes]

    # ------------------------------------------------------------- replies

    def _parse(self, c):
        buf = c.inbuf
        pos = 0
        while c.expect:
            kind = c.expect[0]
            if kind[0] == "store":
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                line = bytes(buf[pos:end])
                pos = end + 2
                if line == b"STORED":
                    self.result.stored += 1
                else:
                    self.result.bad_replies.append(line[:100])
                c.expect.pop(0)
                continue
            # a get: VALUE lines then END
            done = False
            while True:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                line = bytes(buf[pos:end])
                if line == b"END":
                    pos = end + 2
                    done = True
                    break
                if not line.startswith(b"VALUE "):
                    self.result.bad_replies.append(line[:100])
                    pos = end + 2
                    done = True
                    break
                _, key, _flags, n = line.split(b" ")
                n = int(n)
                if len(buf) < end + 2 + n + 2:
                    break
                data = bytes(buf[end + 2:end + 2 + n])
                if data != value_of(key) or buf[end + 2 + n:end + 4 + n] != b"\r\n":
                    self.result.bad_replies.append(b"corrupt value for " + key)
                self.result.hits += 1
                pos = end + 2 + n + 2
            if not done:
                break
            self.result.misses += len(kind[1])  # corrected below by hits
            c.expect.pop(0)
        if pos:
            del buf[:pos]

    # ---------------------------------------------------------------- loop

    def _writers_done(self):
        return all(c.done or c.closed for c in self.conns if c.part == "writer")

    def _update(self, c):
        events = 0
        if c.part in ("writer", "reader"):
            events |= selectors.EVENT_READ
        if c.out:
            events |= selectors.EVENT_WRITE
        if events == 0:
            if c.writing:
                self.sel.unregister(c.sock)
                c.writing = False
            return
        if c.writing:
            self.sel.modify(c.sock, events, c)
        else:
            self.sel.register(c.sock, events, c)
            c.writing = True

    def _close(self, c):
        if c.closed:
            return
        c.closed = True
        if c.part in ("writer", "reader"):
            if not c.done:
                self.result.healthy_closed += 1
        else:
            self.result.misbehaving_closed += 1
        if c.writing:
            self.sel.unregister(c.sock)
            c.writing = False
        c.sock.close()

    def run(self, on_tick=None):
        """Runs the load; on_tick() is called about every 50 ms."""
        t0 = time.monotonic()
        deadline = t0 + self.mix.deadline_s
        for c in self.conns:
            if c.part == "writer":
                self._queue_writer(c)
            elif c.part == "reader":
                self._queue_reader(c)
            else:
                self._start_misbehaving(c)
            self._update(c)
        last_tick = 0.0
        while True:
            now = time.monotonic()
            if now > deadline:
                self.result.errors.append(
                    f"out of time after {now - t0:.0f} s: "
                    f"{sum(1 for c in self.conns if c.part == 'writer' and not c.done)}"
                    " writers unfinished")
                break
            if now - last_tick > 0.05:
                last_tick = now
                self._notice_closed()
                if on_tick is not None:
                    on_tick()
            writers_done = self._writers_done()
            if writers_done:
                for c in self.conns:
                    if c.part == "reader" and not c.expect and not c.done:
                        c.done = True
                        self._update(c)
                if all(c.done or c.closed for c in self.conns
                       if c.part == "reader"):
                    break
            for key, mask in self.sel.select(timeout=0.05):
                c = key.data
                if c.closed:
                    continue
                if mask & selectors.EVENT_WRITE and c.out:
                    try:
                        n = c.sock.send(c.out)
                        del c.out[:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._close(c)
                        continue
                if mask & selectors.EVENT_READ:
                    try:
                        data = c.sock.recv(1 << 20)
                    except BlockingIOError:
                        data = None
                    except OSError:
                        data = b""
                    if data == b"":
                        self._close(c)
                        continue
                    if data:
                        c.inbuf += data
                        self._parse(c)
                if c.part == "writer" and not c.done:
                    self._queue_writer(c)
                elif c.part == "reader" and not c.done and not writers_done:
                    self._queue_reader(c)
                if c.part == "non_reader" and not c.out:
                    # The socket took everything: send more until it refuses.
                    self._start_misbehaving(c)
                self._update(c)
        # hits counted per value; misses = keys asked - hits
        self.result.misses -= self.result.hits
        self.result.elapsed_s = time.monotonic() - t0
        return self.result

    def _notice_closed(self):
        """Marks the misbehaving connections the server has closed (they
        never read, so only the TCP state tells)."""
        for c in self.conns:
            if c.closed or c.part in ("writer", "reader"):
                continue
            try:
                state = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            except OSError:
                state = 0
            if state != _TCP_ESTABLISHED:
                self._close(c)

    def still_open(self, part):
        return sum(1 for c in self.conns if c.part == part and not c.closed)

    def close_all(self):
        for c in self.conns:
            if not c.closed:
                c.closed = True
                try:
                    c.sock.close()
                except OSError:
                    pass
        self.sel.close()
