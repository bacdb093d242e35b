"""Concurrency stress test of the tiered path (issue 20, part 5).

Many connections over both workers mix every classic command over one
shared key set while keys cross between a small RAM tier and an SSD tier,
and an offline checker then proves every reply consistent with some
linearizable history of the cache, losses aside (below).

The server: `-m 8` (RAM tier 8 MiB, two shards), an SSD tier of 64 MiB in
8 MiB regions with the default admission (`reaccessed`), two workers, the
metrics endpoint on; run once with `tiers.ssd.io: io_uring` and once with
`threadpool` (the `ssd` fixture of test_ssd.py). The working set (8,000
value keys of 64 B to 128 KiB, about 10 KiB on average, and 256 counters)
is ten times the RAM tier and outgrows what the SSD tier keeps live (38
MiB), so keys are demoted, promoted, read ahead, rejected by admission and
moved by reclaim all the time. (The issue's example was a 256 MiB SSD
tier: it would keep the whole working set, and admission would never
reject, so misses would never need explaining.)

The load (STRATA_STRESS_SECONDS, default 25 s per I/O mode; each
connection's commands come from its own seeded RNG, so the generator is
deterministic though the interleaving is not):

* 16 mixed connections: pipelines of 1 to 32 commands: get/gets/gat/gats
  with one and several keys, set/add/replace/append/prepend/cas,
  incr/decr, touch, delete, set and delete with noreply; keys drawn with a
  skew (some hot, most cold);
* 4 readers: pipelines of 16 to 64 single-key gets (read-ahead) and
  multi-gets of up to 100 keys, on uniformly drawn (mostly SSD-resident)
  keys;
* 4 abandoners: connect, send a pipeline of 16 to 64 gets of cold keys,
  close at once (half of them with a RST), over and over: connections that
  go away while their SSD reads are in flight;
* a flusher: `flush_all` every 10 s or so;
* a monitor: `stats` (plain, items, slabs, settings, conns, sizes) and a
  scrape of /metrics every 50 ms, which read every worker's counters and
  the tiers' figures while they change (for ThreadSanitizer's sake).

Values verify themselves. A value key holds chunks
`#<version>:<length>:<tag>:<body>`, tag = BLAKE2b of key, version and
body: a set/add/replace/cas writes one chunk (the base), append/prepend add
one after/before it. A counter holds `<k><gen><count>` in 19 digits: k (5
digits) is the key's own number, gen (7) the version of the set that
started it, count (7) starts at 5,000,000; even counters only see incr,
odd ones only decr. Versions are unique across the run, so a value names
the writes that made it. A hit whose bytes are not a well-formed value of
its key (another key's bytes, corruption, a failed write's chunk) fails.

Timing. One global counter orders the client's events: S(op) is taken
before its pipeline is sent, A(op) after its reply is parsed (a noreply
op's A is that of the next replied command on its connection). The server
processed op within [S, A]. op1 happens before op2, hb(op1, op2), when
A(op1) < S(op2) (real time), or when both are on one connection and op1
came first (a connection's commands run in order).

The rules (for concurrent clients: a read may return any version written
or in flight during its window, never one superseded before it was sent):

1. Stale read. A read r (a get hit, or the state an incr/decr applied
   to) returned value V, made by base write b (and the appends/prepends in
   V). r is stale if some write w' that is not part of V (a store, a
   delete, a flush_all, an incr/decr of another generation or past V's
   count) has hb(b, w') and hb(w', r): w' certainly came after b and
   certainly before r, so V was superseded before r was sent. Also every
   write in V must not start after r ended, and must have succeeded.
2. Resurrection (a present key that transiently missed). An op r that
   found the key absent (a get miss, NOT_FOUND, NOT_STORED of
   replace/append/prepend, a delete, a flush_all) followed, hb(r, r2), by
   an op r2 that found it present (a hit, TOUCHED, EXISTS, add's
   NOT_STORED, an incr result) with no creating write (set, add) that
   could fall between them is impossible in any history: the key came
   back from nowhere. So is a hit r2 after r of a value whose writes all
   happened before r.
3. CAS. A `cas` with the unique a `gets` returned is STORED only if no
   write that changes the item fell certainly between the gets and the cas,
   and EXISTS only if one could have. A value (key, V) keeps one CAS unique
   for life, across tiers; no two values share one.
4. Counters. The results of a generation's incr (or decr) commands, in
   order, step from the start value by exactly each command's delta: no
   lost or repeated update.
5. Misses. A miss (get miss, NOT_FOUND, NOT_STORED of replace/append, an
   add that stored) of a key that was certainly present (a presence fact
   certainly before it, and no delete or flush_all that may fall between)
   is a loss: an eviction RAM
   did not admit to SSD, or a record the log dropped. The distinct loss
   events these misses prove (per key, a chain of lost misses each
   certainly after a presence fact certainly after the previous one) must
   be no more than the counters of such events moved
   (`ssd_admissions_rejected`, `ssd_entries_reclaimed`,
   `ssd_dropped_backlog`, `ssd_dropped_too_large`); I/O errors and corrupt
   records must stay at 0. Rule 2 catches a loss that was not one.

The rules are sound: run against memcached 1.6.18 itself (`-m 8`, no SSD
tier) the checker finds no violation. On strata before the fix of the
tiers' transit window it found 2 to 3 resurrections per 10 s.

At the end strata must still serve, every abandoned connection must be
gone (`curr_connections`), no SSD read may be left in flight, and a SIGTERM
(with /metrics scraped throughout) must stop it cleanly with no sanitizer
report in its log (the TSan build
in scripts/test.sh runs this test); the run must have exercised what it
claims (SSD hits, read-aheads, promotions, admission rejections, flushes,
abandoned pipelines, scrapes).
"""

import hashlib
import http.client
import itertools
import os
import random
import select
import socket
import struct
import threading
import time
import urllib.request
import zlib
from bisect import bisect_left, bisect_right
from collections import defaultdict

import pytest

from conftest import free_port
from test_ssd import BufferedReader, MiB, ssd  # noqa: F401  (the fixture)

pytestmark = pytest.mark.strata_only

DURATION_S = float(os.environ.get("STRATA_STRESS_SECONDS", "25"))
SEED = int(os.environ.get("STRATA_STRESS_SEED", "0x5712e55"), 0)
RAM_MB = 8
SSD_SIZE = "64MiB"
SSD_REGION = "8MiB"
N_VALUE_KEYS = 8000
N_COUNTERS = 256
MIXED_CONNS = 16
READER_CONNS = 4
ABANDON_CONNS = 4
FLUSH_EVERY_S = 10.0
IO_TIMEOUT_S = 120.0           # a TSan build is slow; a hang still ends
POOL = random.Random(SEED).randbytes(4 * MiB)
COUNT_START = 5_000_000
LOSS_STATS = ("ssd_admissions_rejected", "ssd_entries_reclaimed",
              "ssd_dropped_backlog", "ssd_dropped_too_large")

_clock = itertools.count(1)
tick = _clock.__next__          # atomic under the GIL: one global order
_versions = itertools.count(1)
next_version = _versions.__next__


class CheckFailure(AssertionError):
    pass


# --------------------------------------------------------------------------
# keys and self-verifying values


def value_key(i):
    return b"sv:%04d" % i


def counter_key(i):
    return b"sn:%03d" % i


def is_counter(key):
    return key.startswith(b"sn:")


def counter_k(key):
    return 10000 + int(key[3:]) * 37 % 90000


def counter_is_incr(key):
    return int(key[3:]) % 2 == 0


def flags_for(key):
    return zlib.crc32(key) & 0xFFFF


def chunk_tag(key, version, body):
    h = hashlib.blake2b(digest_size=8)
    h.update(key)
    h.update(b"\0%d\0" % version)
    h.update(body)
    return h.hexdigest().encode()


def make_chunk(key, version, size, compressible):
    if compressible:
        block = hashlib.sha256(key + b"/%d" % version).hexdigest().encode()
        body = (block * (size // len(block) + 1))[:size]
    else:
        off = zlib.crc32(key + b"/%d" % version) % (len(POOL) - size)
        body = POOL[off:off + size]
    return b"#%d:%d:%s:" % (version, size, chunk_tag(key, version, body)) + body


def parse_chunks(key, value):
    """The versions of a value key's chunks, in order; raises on bad bytes."""
    out = []
    i = 0
    n = len(value)
    while i < n:
        if value[i:i + 1] != b"#":
            raise ValueError(f"no chunk at offset {i}")
        j = value.index(b":", i + 1, i + 16)
        k = value.index(b":", j + 1, j + 16)
        ver, size = int(value[i + 1:j]), int(value[j + 1:k])
        tag = value[k + 1:k + 17]
        if value[k + 17:k + 18] != b":":
            raise ValueError(f"bad chunk header at {i}")
        body = value[k + 18:k + 18 + size]
        if len(body) != size:
            raise ValueError(f"chunk {ver} truncated")
        if tag != chunk_tag(key, ver, body):
            raise ValueError(f"chunk {ver}: tag does not match (corrupt, or another key's)")
        out.append(ver)
        i = k + 18 + size
    if not out:
        raise ValueError("empty value")
    return tuple(out)


def make_counter(key, gen):
    assert gen < 10 ** 7, "versions outgrew the counters' 7 digits (a very long run)"
    return b"%d%07d%07d" % (counter_k(key), gen, COUNT_START)


def parse_counter(key, value):
    """(gen, count) of a counter key's value; raises on bad bytes."""
    text = value.rstrip(b" ")          # decr pads in place with spaces
    if len(text) != 19 or not text.isdigit():
        raise ValueError(f"not a counter: {value[:40]!r}")
    if int(text[:5]) != counter_k(key):
        raise ValueError(f"another key's counter: {value!r}")
    return int(text[5:12]), int(text[12:])


def value_size(rng):
    r = rng.random()
    if r < 0.6:
        return rng.randint(64, 1024)
    if r < 0.9:
        return rng.randint(1024, 16 * 1024)
    return rng.randint(16 * 1024, 128 * 1024)


# --------------------------------------------------------------------------
# what the clients record


class Op:
    """One command on one key, as the checker sees it."""

    __slots__ = ("conn", "seq", "S", "A", "key", "kind", "ver", "res", "val",
                 "cas", "ref", "delta", "noreply", "idx", "mates")

    def __init__(self, conn, seq, key, kind, ver=None):
        self.conn, self.seq, self.key, self.kind, self.ver = conn, seq, key, kind, ver
        self.S = self.A = None
        self.res = None      # the reply: "hit"/"miss", STORED, ..., "num"
        self.val = None      # a hit: chunk versions, or (gen, count); incr: (gen, count)
        self.cas = None      # gets/gats: the unique; cas: the unique sent
        self.ref = None      # cas: the gets op whose unique it sends
        self.delta = 0
        self.noreply = False
        self.idx = 0         # its place in its connection's list (the checker's)
        self.mates = None    # ops on its key in its pipeline (the checker's)

    def __repr__(self):
        return (f"<{self.kind} {self.key.decode()} v={self.ver} conn={self.conn} "
                f"seq={self.seq} S={self.S} A={self.A} res={self.res} "
                f"val={self.val} cas={self.cas}>")


def hb(a, b):
    """a certainly took effect before b (real time, or one connection's order)."""
    return a.A < b.S or (a.conn == b.conn and a.seq < b.seq)


# --------------------------------------------------------------------------
# a pipelining connection


class Conn(BufferedReader):
    RECV_BYTES = 1 << 20

    def __init__(self, srv, conn_id):
        super().__init__(srv, timeout=IO_TIMEOUT_S)
        self.id = conn_id
        self.seq = 0

    def send(self, data):
        """Sends all of `data` while taking in replies (never deadlocks on a
        server that stops reading until its replies are read)."""
        view = memoryview(data)
        off = 0
        s = self.sock
        s.setblocking(False)
        deadline = time.monotonic() + IO_TIMEOUT_S
        try:
            while off < len(view):
                if time.monotonic() > deadline:
                    raise TimeoutError("send stalled")
                r, w, _ = select.select([s], [s], [], 1.0)
                if r:
                    self._fill()
                if w:
                    try:
                        off += s.send(view[off:off + (1 << 18)])
                    except BlockingIOError:
                        pass
        finally:
            s.settimeout(IO_TIMEOUT_S)

    def closed_message(self):
        return f"connection {self.id} closed by the server"

    def new_op(self, key, kind, ver=None):
        self.seq += 1
        return Op(self.id, self.seq, key, kind, ver)


# --------------------------------------------------------------------------
# commands: each renders its bytes and parses its reply into its ops


class Command:
    def __init__(self, text, ops, parse):
        self.text, self.ops, self.parse = text, ops, parse


def read_values(conn, cmd):
    """VALUE lines up to END, matched in order against the ops' keys."""
    ops = cmd.ops
    i = 0
    while True:
        line = conn.readline()
        if line == b"END\r\n":
            break
        p = line.split()
        if not (p and p[0] == b"VALUE" and len(p) in (4, 5)):
            raise CheckFailure(f"conn {conn.id}: unexpected reply {line[:200]!r} "
                               f"to {cmd.text[:100]!r}")
        while i < len(ops) and ops[i].key != p[1]:
            ops[i].res = "miss"
            i += 1
        if i == len(ops):
            raise CheckFailure(f"conn {conn.id}: VALUE for {p[1]!r}, not asked for "
                               f"(or out of order) in {cmd.text[:200]!r}")
        op = ops[i]
        i += 1
        data = conn.read_exact(int(p[3]) + 2)
        if data[-2:] != b"\r\n":
            raise CheckFailure(f"conn {conn.id}: value of {p[1]!r} not followed by CRLF")
        value = data[:-2]
        if int(p[2]) != flags_for(op.key):
            raise CheckFailure(f"{op!r}: flags {int(p[2])}, expected {flags_for(op.key)}")
        try:
            op.val = parse_counter(op.key, value) if is_counter(op.key) else \
                parse_chunks(op.key, value)
        except ValueError as e:
            raise CheckFailure(f"{op!r}: bad value ({e}): {value[:120]!r}") from None
        op.res = "hit"
        if len(p) == 5:
            op.cas = int(p[4])
    for op in ops[i:]:
        op.res = "miss"


def one_line(expected):
    def parse(conn, cmd):
        line = conn.readline().rstrip(b"\r\n")
        op = cmd.ops[0]
        if line not in expected:
            raise CheckFailure(f"conn {conn.id}: reply {line[:200]!r} to {op!r}; "
                               f"expected one of {expected!r}")
        op.res = line.decode()
    return parse


def parse_delta(conn, cmd):
    line = conn.readline().rstrip(b"\r\n")
    op = cmd.ops[0]
    if line == b"NOT_FOUND":
        op.res = "NOT_FOUND"
        return
    try:
        gen, count = parse_counter(op.key, line)
    except ValueError as e:
        raise CheckFailure(f"{op!r}: reply {line[:100]!r} ({e})") from None
    op.res = "num"
    op.val = (gen, count)


def no_reply(conn, cmd):
    pass


STORE_REPLIES = {b"STORED", b"NOT_STORED", b"EXISTS", b"NOT_FOUND"}


class Load:
    """What one connection does; subclasses generate its pipelines."""

    def __init__(self, conn_id, seed):
        self.id = conn_id
        self.rng = random.Random(seed)
        self.ops = []
        self.pipelines = 0

    # ---- command builders

    def get(self, conn, kind, keys, exptime=0):
        ops = [conn.new_op(k, kind) for k in keys]
        if kind in ("gat", "gats"):
            text = b"%s %d %s\r\n" % (kind.encode(), exptime, b" ".join(keys))
        else:
            text = b"%s %s\r\n" % (kind.encode(), b" ".join(keys))
        return Command(text, ops, read_values)

    def store(self, conn, kind, key, noreply=False, cas_ref=None):
        rng = self.rng
        ver = next_version()
        op = conn.new_op(key, kind if not noreply else kind + "_nr", ver)
        op.noreply = noreply
        if is_counter(key):
            value = make_counter(key, ver)
        elif kind in ("append", "prepend"):
            value = make_chunk(key, ver, rng.randint(16, 512), rng.random() < 0.5)
        else:
            value = make_chunk(key, ver, value_size(rng), rng.random() < 0.3)
        exptime = 0 if rng.random() < 0.8 else 3600
        head = b"%s %s %d %d %d" % (kind.encode(), key, flags_for(key), exptime, len(value))
        if kind == "cas":
            op.cas = cas_ref.cas
            op.ref = cas_ref
            head += b" %d" % cas_ref.cas
        if noreply:
            head += b" noreply"
        return Command(head + b"\r\n" + value + b"\r\n", [op],
                       no_reply if noreply else one_line(STORE_REPLIES))

    def delta(self, conn, key):
        kind = "incr" if counter_is_incr(key) else "decr"
        op = conn.new_op(key, kind)
        op.delta = self.rng.randint(1, 9)
        return Command(b"%s %s %d\r\n" % (kind.encode(), key, op.delta), [op], parse_delta)

    def touch(self, conn, key):
        op = conn.new_op(key, "touch")
        exptime = self.rng.choice((0, 3600, 7200))
        return Command(b"touch %s %d\r\n" % (key, exptime), [op],
                       one_line({b"TOUCHED", b"NOT_FOUND"}))

    def delete(self, conn, key, noreply=False):
        op = conn.new_op(key, "delete_nr" if noreply else "delete")
        op.noreply = noreply
        if noreply:
            return Command(b"delete %s noreply\r\n" % key, [op], no_reply)
        return Command(b"delete %s\r\n" % key, [op], one_line({b"DELETED", b"NOT_FOUND"}))

    # ---- running pipelines

    def exchange(self, conn, cmds):
        """Sends the commands as one pipeline and parses every reply."""
        text = b"".join(c.text for c in cmds)
        s = tick()
        for c in cmds:
            for op in c.ops:
                op.S = s
        conn.send(text)
        unacked = []
        for c in cmds:
            c.parse(conn, c)
            if c.parse is no_reply:
                unacked.extend(c.ops)
                continue
            a = tick()
            for op in c.ops:
                op.A = a
            for op in unacked:
                op.A = a
            unacked.clear()
        assert not unacked, "a pipeline must end with a command that replies"
        for c in cmds:
            self.ops.extend(c.ops)
        self.pipelines += 1

    def run(self, srv, stop):
        raise NotImplementedError


class MixedLoad(Load):
    """Every classic command, pipelines of 1 to 32, skewed keys."""

    DEPTHS = (1, 1, 2, 3, 4, 8, 16, 32)

    def __init__(self, conn_id, seed):
        super().__init__(conn_id, seed)
        self.uniques = {}     # key -> the newest gets/gats op that returned a unique

    def pick_key(self):
        rng = self.rng
        if rng.random() < 0.1:
            return counter_key(int(N_COUNTERS * rng.random() ** 2))
        return value_key(int(N_VALUE_KEYS * rng.random() ** 2))

    def pick_keys(self, n):
        keys = []
        while len(keys) < n:
            k = self.pick_key()
            if k not in keys:
                keys.append(k)
        return keys

    def command(self, conn):
        rng = self.rng
        r = rng.random()
        key = self.pick_key()
        counter = is_counter(key)
        if r < 0.16:
            return self.get(conn, "get", [key])
        if r < 0.24:
            return self.get(conn, "get", self.pick_keys(rng.randint(2, 8)))
        if r < 0.30:
            return self.get(conn, "gets", [key])
        if r < 0.33:
            return self.get(conn, "gets", self.pick_keys(rng.randint(2, 6)))
        if r < 0.36:
            return self.get(conn, "gat", self.pick_keys(rng.randint(1, 4)),
                            rng.choice((0, 3600)))
        if r < 0.39:
            return self.get(conn, "gats", self.pick_keys(rng.randint(1, 4)),
                            rng.choice((0, 3600)))
        if r < 0.56:
            return self.store(conn, "set", key)
        if r < 0.58:
            return self.store(conn, "set", key, noreply=True)
        if r < 0.61:
            return self.store(conn, "add", key)
        if r < 0.64:
            return self.store(conn, "replace", key)
        if r < 0.69:
            if counter:
                return self.delta(conn, key)
            return self.store(conn, "append", key)
        if r < 0.73:
            if counter:
                return self.delta(conn, key)
            return self.store(conn, "prepend", key)
        if r < 0.79:
            ref = self.uniques.get(key)
            if ref is None:
                return self.get(conn, "gets", [key])
            return self.store(conn, "cas", key, cas_ref=ref)
        if r < 0.86:
            key = counter_key(int(N_COUNTERS * rng.random() ** 2))
            return self.delta(conn, key)
        if r < 0.91:
            return self.touch(conn, key)
        if r < 0.975:
            return self.delete(conn, key)
        return self.delete(conn, key, noreply=True)

    def run(self, srv, stop):
        conn = Conn(srv, self.id)
        try:
            while not stop.is_set():
                cmds = [self.command(conn) for _ in range(self.rng.choice(self.DEPTHS))]
                if cmds[-1].parse is no_reply:
                    cmds.append(self.get(conn, "get", [self.pick_key()]))
                self.exchange(conn, cmds)
                for c in cmds:
                    for op in c.ops:
                        if op.kind in ("gets", "gats") and op.res == "hit":
                            self.uniques[op.key] = op
                        elif op.kind == "cas":
                            self.uniques.pop(op.key, None)
        finally:
            conn.close()


class ReaderLoad(Load):
    """Deep pipelines of single-key gets (read-ahead) and long multi-gets on
    uniformly drawn keys, most of them on SSD."""

    def pick_key(self):
        rng = self.rng
        if rng.random() < 0.05:
            return counter_key(rng.randrange(N_COUNTERS))
        return value_key(rng.randrange(N_VALUE_KEYS))

    def run(self, srv, stop):
        rng = self.rng
        conn = Conn(srv, self.id)
        try:
            while not stop.is_set():
                if rng.random() < 0.75:
                    cmds = [self.get(conn, rng.choice(("get", "get", "gets")), [self.pick_key()])
                            for _ in range(rng.randint(16, 64))]
                else:
                    keys = list(dict.fromkeys(self.pick_key() for _ in range(rng.randint(10, 100))))
                    cmds = [self.get(conn, "get", keys)]
                self.exchange(conn, cmds)
        finally:
            conn.close()


class AbandonLoad(Load):
    """Sends a pipeline of gets of cold keys and closes at once, its SSD reads
    still in flight; half the closes are RSTs."""

    def run(self, srv, stop):
        rng = self.rng
        while not stop.is_set():
            keys = [value_key(rng.randrange(N_VALUE_KEYS)) for _ in range(rng.randint(16, 64))]
            text = b"".join(b"get %s\r\n" % k for k in keys)
            if rng.random() < 0.3:
                text += b"get " + b" ".join(keys[:20]) + b"\r\n"
            s = srv.connect(timeout=IO_TIMEOUT_S)
            try:
                if rng.random() < 0.5:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.sendall(text)
                if rng.random() < 0.3:
                    s.recv(rng.randint(1, 4096))   # read a little, then go
            finally:
                s.close()
            self.pipelines += 1
            if self.pipelines % 8 == 0:
                time.sleep(0.005)   # leave the loops some room for the others


class FlushLoad(Load):
    """flush_all now and then."""

    def run(self, srv, stop):
        conn = Conn(srv, self.id)
        every = min(FLUSH_EVERY_S, DURATION_S / 2.5)
        try:
            while not stop.wait(every * (0.75 + 0.5 * self.rng.random())):
                op = conn.new_op(None, "flush")
                self.exchange(conn, [Command(b"flush_all\r\n", [op], one_line({b"OK"}))])
        finally:
            conn.close()


class MonitorLoad(Load):
    """What a monitoring sidecar does meanwhile: `stats` and its variants
    (they read every worker's counters and the tiers' figures) and
    Prometheus scrapes of /metrics (the metrics server's threads)."""

    STATS = (b"stats", b"stats items", b"stats slabs", b"stats settings", b"stats conns",
             b"stats sizes")

    def __init__(self, conn_id, seed, metrics_url):
        super().__init__(conn_id, seed)
        self.metrics_url = metrics_url
        self.scrapes = 0

    def run(self, srv, stop):
        conn = Conn(srv, self.id)
        try:
            while not stop.wait(0.05):
                cmd = self.rng.choice(self.STATS)
                conn.send(cmd + b"\r\n")
                while True:
                    line = conn.readline()
                    if line == b"END\r\n":
                        break
                    if not line.startswith(b"STAT "):
                        raise CheckFailure(f"{cmd!r}: unexpected {line[:100]!r}")
                with urllib.request.urlopen(self.metrics_url, timeout=IO_TIMEOUT_S) as r:
                    body = r.read()
                if r.status != 200 or b"memcached_current_items" not in body:
                    raise CheckFailure(f"/metrics: {r.status} {body[:200]!r}")
                self.scrapes += 1
                self.pipelines += 1
        finally:
            conn.close()


# --------------------------------------------------------------------------
# the checker


CREATES = {"set", "add", "set_nr"}


def stores_ok(op):
    """A write whose value is (or may be, for noreply) in the cache."""
    return op.kind == "set_nr" or (op.kind in ("set", "add", "replace", "cas", "append",
                                               "prepend") and op.res == "STORED")


def changes_item(op):
    """Gives the key a new value and a new CAS unique."""
    return stores_ok(op) or (op.kind in ("incr", "decr") and op.res == "num")


def is_absent_maker(op):
    return op.kind in ("delete", "delete_nr", "flush")


def absent_fact(op):
    """The op found the key absent (or left it absent)."""
    k, r = op.kind, op.res
    if k in ("get", "gets", "gat", "gats"):
        return r == "miss"
    if k in ("replace", "append", "prepend"):
        return r == "NOT_STORED"
    if k in ("cas", "incr", "decr", "touch"):
        return r == "NOT_FOUND"
    return k in ("delete", "flush")


def is_miss(op):
    """The cache said "no such key": an absent fact that is not a delete or a
    flush_all, or an add that stored (the key was absent)."""
    return (absent_fact(op) and op.kind not in ("delete", "flush")) or \
        (op.kind == "add" and op.res == "STORED")


def present_fact(op):
    """The op found the key present (or left it present)."""
    k, r = op.kind, op.res
    if k in ("get", "gets", "gat", "gats"):
        return r == "hit"
    if k == "add":
        return r in ("STORED", "NOT_STORED")
    if k == "cas":
        return r in ("STORED", "EXISTS")
    if k in ("incr", "decr"):
        return r == "num"
    if k == "touch":
        return r == "TOUCHED"
    return stores_ok(op)


class KeyHistory:
    def __init__(self, key):
        self.key = key
        self.ops = []

    def prepare(self, flushes):
        ops = self.ops
        self.writes = {op.ver: op for op in ops if op.ver is not None}
        # Everything that changes the key's state, by ack time.
        muts = [op for op in ops if changes_item(op) or is_absent_maker(op)] + flushes
        muts.sort(key=lambda o: o.A)
        self.muts = muts
        self.muts_a = [o.A for o in muts]
        self.creates = sorted((op for op in ops if op.kind in CREATES and
                               (op.kind == "set_nr" or op.res == "STORED")),
                              key=lambda o: o.A)
        self.creates_a = [o.A for o in self.creates]
        facts = ops + flushes
        self.present = sorted((o for o in facts if present_fact(o)), key=lambda o: o.A)
        self.present_a = [o.A for o in self.present]
        # Presence facts by A, with the largest S so far (the best witness).
        best, best_ops = [], []
        for o in self.present:
            if not best or o.S > best[-1]:
                best.append(o.S)
                best_ops.append(o)
            else:
                best.append(best[-1])
                best_ops.append(best_ops[-1])
        self.present_best_op = best_ops
        self.absent_makers_by_a = [o for o in muts if is_absent_maker(o)]  # by A
        self.absent_makers_a = [o.A for o in self.absent_makers_by_a]
        self.absent_makers_s_min_suffix = list(reversed(list(itertools.accumulate(
            (o.S for o in reversed(self.absent_makers_by_a)), min)))) \
            if self.absent_makers_by_a else []


class Checker:
    def __init__(self, loads):
        self.errors = []
        self.notes = defaultdict(int)
        self.by_conn = defaultdict(list)
        flushes = []
        per_key = {}
        for load in loads:
            for op in load.ops:
                if op.A is None:
                    raise CheckFailure(f"{op!r} was never acknowledged")
                self.by_conn[op.conn].append(op)
                if op.kind == "flush":
                    flushes.append(op)
                    continue
                h = per_key.get(op.key)
                if h is None:
                    h = per_key[op.key] = KeyHistory(op.key)
                h.ops.append(op)
        for ops in self.by_conn.values():
            ops.sort(key=lambda o: o.seq)
            pipe = {}
            for i, o in enumerate(ops):
                o.idx = i
                if i == 0 or ops[i - 1].S != o.S:
                    pipe = {}
                o.mates = pipe.setdefault(o.key, [])
                o.mates.append(o)
        self.flushes = flushes
        self.keys = per_key
        for h in per_key.values():
            h.prepare(flushes)

    def fail(self, msg):
        if len(self.errors) < 30:
            self.errors.append(msg)
        self.notes["violations"] += 1

    # ---- the candidates a relation can hold for

    @staticmethod
    def pipeline_mates(op):
        """Ops on op's key sent before it in its pipeline (one connection)."""
        return [o for o in op.mates if o.seq < op.seq] if len(op.mates) > 1 else ()

    def conn_after(self, op, n):
        """Up to n ops of op's connection after it."""
        return self.by_conn[op.conn][op.idx + 1:op.idx + 1 + n]

    def muts_between(self, h, b, r):
        """Mutations w of the key with hb(b, w) and hb(w, r)."""
        lo = bisect_right(h.muts_a, b.A)
        hi = bisect_left(h.muts_a, r.S)
        for w in h.muts[lo:hi]:
            if w is not b and hb(b, w):
                yield w
        for w in self.pipeline_mates(r):
            if (changes_item(w) or is_absent_maker(w)) and w is not b and hb(b, w) \
                    and w.A >= r.S:
                yield w

    # ---- rule 1: values, staleness

    def check_value_read(self, h, r):
        key = h.key
        if is_counter(key):
            gen, count = r.val
            b = h.writes.get(gen)
            if b is None or b.key != key:
                return self.fail(f"{r!r}: generation {gen} was never written to {key!r}")
            if not stores_ok(b):
                return self.fail(f"{r!r}: generation {gen} is the value of a failed write {b!r}")
            if r.A < b.S:
                return self.fail(f"{r!r}: read before its write {b!r} was sent")
            up = counter_is_incr(key)
            for w in self.muts_between(h, b, r):
                if w.kind in ("incr", "decr") and w.val[0] == gen:
                    if (w.val[1] > count) if up else (w.val[1] < count):
                        self.fail(f"stale: {r!r} returned count {count} of gen {gen}, "
                                  f"but {w!r} had made it {w.val[1]} before it was sent")
                        return
                    continue
                self.fail(f"stale: {r!r} returned gen {gen} written by {b!r}, superseded "
                          f"by {w!r} before the read was sent")
                return
            return
        versions = r.val
        writes = []
        for v in versions:
            w = h.writes.get(v)
            if w is None:
                return self.fail(f"{r!r}: chunk {v} was never written to {key!r}")
            if not stores_ok(w):
                return self.fail(f"{r!r}: chunk {v} belongs to a failed write {w!r}")
            if r.A < w.S:
                return self.fail(f"{r!r}: chunk {v} read before its write {w!r} was sent")
            writes.append(w)
        bases = [i for i, w in enumerate(writes) if w.kind not in ("append", "prepend")]
        if len(bases) != 1:
            return self.fail(f"{r!r}: {len(bases)} base chunks in {[w.kind for w in writes]}")
        bi = bases[0]
        if any(w.kind != "prepend" for w in writes[:bi]) or \
                any(w.kind != "append" for w in writes[bi + 1:]):
            return self.fail(f"{r!r}: chunks out of place: {[w.kind for w in writes]}")
        b = writes[bi]
        lineage = set(versions)
        for w in self.muts_between(h, b, r):
            if w.ver in lineage:
                continue
            self.fail(f"stale: {r!r} returned a value based on {b!r}, superseded by "
                      f"{w!r} before the read was sent")
            return

    def check_delta(self, h, r):
        """An incr/decr result reveals the state it applied to."""
        gen, count = r.val
        before = count - r.delta if counter_is_incr(h.key) else count + r.delta
        saved = r.val
        r.val = (gen, before)
        try:
            self.check_value_read(h, r)
        finally:
            r.val = saved

    # ---- rule 2: resurrection; rule 5: losses

    def check_absent(self, h, r):
        """r found the key absent: nothing may bring back a state from before
        r without a creating write in between."""
        # The earliest presence fact certainly after r.
        i = bisect_right(h.present_a, r.A)
        later = []
        for o in h.present[i:]:
            if o.S > r.A:
                later.append(o)
                break
        later += [o for o in self.conn_after(r, 40) if o.key == h.key and present_fact(o)][:1]
        for r2 in later:
            if not hb(r, r2):
                continue
            # Creating writes that may fall between r and r2:
            # not hb(s, r) and not hb(r2, s).
            j = bisect_right(h.creates_a, r.S)
            between = [s for s in h.creates[j:] if not hb(s, r) and not hb(r2, s)]
            if r2.kind in ("get", "gets", "gat", "gats") and r2.res == "hit":
                if not is_counter(h.key):
                    ws = [h.writes[v] for v in r2.val]
                    if all(hb(w, r) for w in ws):
                        self.fail(f"resurrection: {r!r} found the key absent, then {r2!r} "
                                  f"returned a value whose writes all came before it "
                                  f"({ws[0]!r} ...)")
                        return
            if not between:
                self.fail(f"resurrection: {r!r} found the key absent, then {r2!r} found "
                          f"it present, and no set or add could fall between them")
                return

    def check_miss(self, h, r, lost):
        """A miss of a key that was certainly present is a loss (appended to
        `lost`)."""
        p = self.best_witness(h, r)
        if p is None:
            return
        # An absent maker that may fall between p and r: A(d) > S(p), S(d) < A(r).
        j = bisect_right(h.absent_makers_a, p.S)
        if j < len(h.absent_makers_by_a) and h.absent_makers_s_min_suffix[j] < r.A:
            return
        lost.append(r)

    def best_witness(self, h, r):
        """The presence fact certainly before r that started last."""
        i = bisect_left(h.present_a, r.S)
        p = h.present_best_op[i - 1] if i > 0 else None
        for o in self.pipeline_mates(r):
            if present_fact(o) and (p is None or o.S > p.S):
                p = o
        return p

    def count_losses(self, h, lost):
        """How many distinct loss events the key's lost misses prove: a chain
        of them, each certainly after a presence fact that is certainly after
        the previous one (so each loss happened after the previous miss)."""
        n = 0
        last = None
        for m in sorted(lost, key=lambda o: o.A):
            if last is None:
                n, last = 1, m
                continue
            p = self.best_witness(h, m)
            if p is not None and p.S > last.A:
                n, last = n + 1, m
        return n

    # ---- rule 3: CAS

    def check_cas(self, h, c):
        g = c.ref
        if c.res == "STORED":
            for w in self.muts_between(h, g, c):
                if w is c:
                    continue
                if changes_item(w) or is_absent_maker(w):
                    self.fail(f"cas: {c!r} was STORED with the unique of {g!r}, but "
                              f"{w!r} changed the item in between")
                    return
        elif c.res == "EXISTS":
            # Some item-changing op must be able to fall between g and c.
            for w in h.ops + self.flushes:
                if w is c or not (changes_item(w) or is_absent_maker(w)):
                    continue
                if not hb(w, g) and not hb(c, w):
                    return
            self.fail(f"cas: {c!r} got EXISTS with the unique of {g!r}, and nothing "
                      f"changed the item in between (did its CAS unique change?)")

    def check_uniques(self):
        by_value = {}
        by_unique = {}
        for h in self.keys.values():
            for o in h.ops:
                if o.cas is None or o.res != "hit":
                    continue
                v = (h.key, o.val)
                u = by_value.setdefault(v, (o.cas, o))
                if u[0] != o.cas:
                    self.fail(f"cas unique of one value changed: {u[1]!r} then {o!r}")
                w = by_unique.setdefault(o.cas, (v, o))
                if w[0] != v:
                    self.fail(f"two values share a cas unique: {w[1]!r} and {o!r}")

    # ---- rule 4: counters

    def check_counters(self, h):
        if not is_counter(h.key):
            return
        up = counter_is_incr(h.key)
        gens = defaultdict(list)
        for o in h.ops:
            if o.kind in ("incr", "decr") and o.res == "num":
                gens[o.val[0]].append(o)
        for gen, ops in gens.items():
            ops.sort(key=lambda o: o.val[1], reverse=not up)
            prev = COUNT_START
            for o in ops:
                want = prev + o.delta if up else prev - o.delta
                if o.val[1] != want:
                    self.fail(f"counter {h.key!r} gen {gen}: {o!r} gave {o.val[1]}, "
                              f"expected {want} after {prev} (a lost or repeated update)")
                    break
                prev = o.val[1]

    def run(self):
        losses = 0
        for h in self.keys.values():
            lost = []
            for o in h.ops:
                if o.res == "hit":
                    self.notes["hits"] += 1
                    self.check_value_read(h, o)
                elif o.kind in ("incr", "decr") and o.res == "num":
                    self.check_delta(h, o)
                if o.kind == "cas":
                    self.check_cas(h, o)
                if absent_fact(o):
                    self.check_absent(h, o)
                if is_miss(o):
                    self.notes["misses"] += 1
                    self.check_miss(h, o, lost)
            for f in self.flushes:
                self.check_absent(h, f)
            self.check_counters(h)
            losses += self.count_losses(h, lost)
        self.check_uniques()
        self.notes["losses"] = losses
        return losses


# --------------------------------------------------------------------------
# the test


def stats(srv):
    with socket.create_connection(srv.address, timeout=IO_TIMEOUT_S) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            data = s.recv(65536)
            if not data:
                raise ConnectionError("closed during stats")
            buf += data
    out = {}
    for line in buf.split(b"\r\n"):
        p = line.split(b" ", 2)
        if len(p) == 3 and p[0] == b"STAT":
            out[p[1].decode()] = p[2].decode()
    return out


def wait_for(fn, what, timeout=60.0):
    """Polls until fn() is true; the deadline only bounds a hang."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.1)


def seed_keys(srv):
    """Every key gets a first value (a set each, counters too)."""
    conn = Conn(srv, 0)
    load = Load(0, SEED)
    try:
        keys = [value_key(i) for i in range(N_VALUE_KEYS)] + \
            [counter_key(i) for i in range(N_COUNTERS)]
        for i in range(0, len(keys), 64):
            load.exchange(conn, [load.store(conn, "set", k) for k in keys[i:i + 64]])
    finally:
        conn.close()
    bad = [op for op in load.ops if op.res != "STORED"]
    assert not bad, f"seeding: {bad[:3]!r}"
    return load


def test_stress_many_connections_mixed_commands(ssd):
    metrics_port = free_port()
    srv = ssd.start(ram_mb=RAM_MB, ssd_size=SSD_SIZE, admission="reaccessed",
                    extra_yaml=f"    region_size: {SSD_REGION}\n", metrics_port=metrics_port)
    st0 = stats(srv)
    loads = [seed_keys(srv)]
    conn_id = itertools.count(1)
    mixed = [MixedLoad(next(conn_id), SEED * 1000 + i) for i in range(MIXED_CONNS)]
    readers = [ReaderLoad(next(conn_id), SEED * 2000 + i) for i in range(READER_CONNS)]
    abandoners = [AbandonLoad(next(conn_id), SEED * 3000 + i) for i in range(ABANDON_CONNS)]
    flusher = FlushLoad(next(conn_id), SEED * 4000)
    monitor = MonitorLoad(next(conn_id), SEED * 5000,
                          f"http://127.0.0.1:{metrics_port}/metrics")
    workers = mixed + readers + abandoners + [flusher, monitor]
    loads += workers
    stop = threading.Event()
    errors = []

    def run(load):
        try:
            load.run(srv, stop)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append((load.id, e))
            stop.set()

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in workers]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    stop.wait(DURATION_S)
    stop.set()
    for t in threads:
        t.join(IO_TIMEOUT_S * 2)
    elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "a load thread hung"
    assert srv.alive(), f"strata died: {srv.output()}"
    if errors:
        conn, e = errors[0]
        raise AssertionError(f"connection {conn}: {e!r}") from e

    # A last read of every key, after everything else: it must see the
    # newest state (rule 1 holds it to every write acknowledged before).
    final = Load(next(conn_id), SEED)
    conn = Conn(srv, final.id)
    try:
        keys = [value_key(i) for i in range(N_VALUE_KEYS)] + \
            [counter_key(i) for i in range(N_COUNTERS)]
        for i in range(0, len(keys), 50):
            final.exchange(conn, [final.get(conn, "gets", keys[i:i + 50])])
    finally:
        conn.close()
    loads.append(final)

    # Abandoned connections go, and their SSD reads complete.
    wait_for(lambda: int(stats(srv)["curr_connections"]) <= int(st0["curr_connections"]),
             "the abandoned connections are closed")
    wait_for(lambda: int(stats(srv)["ssd_reads_in_flight"]) == 0,
             "no SSD read left in flight")
    st = stats(srv)

    if os.environ.get("STRATA_STRESS_DUMP"):
        # Every op, for a look at a failure (python3 -c 'import pickle; ...').
        import pickle
        with open(os.environ["STRATA_STRESS_DUMP"], "wb") as f:
            pickle.dump([[(o.conn, o.seq, o.S, o.A, o.key, o.kind, o.ver, o.res, o.val, o.cas,
                           o.delta) for o in load.ops] for load in loads], f)
    t1 = time.monotonic()
    checker = Checker(loads)
    losses = checker.run()
    check_s = time.monotonic() - t1
    d = {k: int(st[k]) - int(st0[k]) for k in (
        "cmd_get", "get_hits", "evictions", "ssd_hits", "ssd_reads", "ssd_promotions",
        "ssd_read_aheads", "ssd_admitted", "ssd_regions_reclaimed", "ssd_stale_reads",
        "total_connections", "cmd_flush", "ssd_demoted_items") + LOSS_STATS}
    loss_events = sum(d[k] for k in LOSS_STATS)
    n_ops = sum(len(load.ops) for load in loads)
    print(f"\n[stress {ssd.io_mode}] {elapsed:.1f} s of load, {n_ops} ops "
          f"({n_ops / elapsed:.0f}/s), {sum(w.pipelines for w in mixed + readers)} pipelines, "
          f"{sum(a.pipelines for a in abandoners)} abandoned; checked in {check_s:.1f} s: "
          f"{dict(checker.notes)}; server: {d}")
    assert not checker.errors, \
        f"{checker.notes['violations']} violations; first ones:\n" + "\n".join(checker.errors)
    for name in ("ssd_corrupt_records", "ssd_read_errors", "ssd_write_errors"):
        assert int(st[name]) == 0, f"{name} = {st[name]}"
    assert losses <= loss_events, \
        f"{losses} times keys certainly present were lost, but the stats count only " \
        f"{loss_events} evictions not kept ({', '.join(f'{k} {d[k]}' for k in LOSS_STATS)})"
    # A clean stop (SIGTERM: exit 0); a sanitizer build exits non-zero on a
    # report, and its log must hold none.
    # Scrapes go on while it stops (the metrics server must not read what
    # the shutdown frees).
    stopping = threading.Event()

    def scrape_until_gone():
        while not stopping.is_set():
            try:
                with urllib.request.urlopen(monitor.metrics_url, timeout=5) as r:
                    r.read()
            except (OSError, http.client.HTTPException):  # it is going away
                time.sleep(0.001)

    scrapers = [threading.Thread(target=scrape_until_gone) for _ in range(2)]
    for t in scrapers:
        t.start()
    try:
        rc = srv.stop(timeout=120)
    finally:
        stopping.set()
        for t in scrapers:
            t.join()
    srv.close_log()
    log = ssd.log(srv)
    for tool in (b"ThreadSanitizer", b"AddressSanitizer", b"runtime error"):
        at = log.find(tool)
        assert at < 0, f"strata's log has a {tool.decode()} report:\n" + \
            log[max(0, at - 200):at + 8000].decode(errors="replace")
    assert rc == 0, f"exit code {rc} after SIGTERM: {log[-2000:]!r}"
    # It did what it claims to do.
    assert checker.notes["hits"] > 1000 and checker.notes["misses"] > 0
    assert d["evictions"] > 0 and d["ssd_admitted"] > 0, d
    assert d["ssd_hits"] > 0 and d["ssd_promotions"] > 0 and d["ssd_read_aheads"] > 0, d
    # Seeding alone (80 MiB into a 64 MiB log) makes these move.
    assert d["ssd_admissions_rejected"] > 0 and d["ssd_regions_reclaimed"] > 0, d
    assert d["cmd_flush"] >= 1, d
    assert sum(a.pipelines for a in abandoners) > 0
    assert monitor.scrapes > 0
