"""Differential test: the same generated command sequences go to a real
memcached 1.6.18 (`-B ascii`) and to the server under test, over raw sockets;
the replies must be byte-identical.

* Sequences are generated from seeded RNGs (deterministic), several hundred
  of them, well-formed and malformed: bad/negative/huge/overflowing numbers
  in flags, exptime, bytes, delta and cas; too many/few tokens; extra and
  trailing spaces; bare "\\n" line ends; long keys (250/251); control and
  high bytes in keys; bad data-chunk terminators and length mismatches;
  noreply variants; incr/decr edge values; cas with right/stale/wrong
  uniques; gat/gats/touch; flush_all with and without delay/noreply;
  verbosity; cache_memlimit; shutdown (disabled); version; quit.
* A sequence is a list of steps; each step is sent followed by a `version`
  sentinel (to memcached in one write, to the server under test split at
  seeded random points, so its replies must not depend on read
  boundaries), and the replies are read until the sentinel's VERSION line
  (VALUE data blocks are skipped by length, so no value can fake it) or
  until the server closes the connection.  No timing is used.
* CAS uniques are mapped per server: the n-th distinct unique a server shows
  becomes <cas#n>; cas commands are rendered per server with that server's
  own uniques (right = the newest seen for the key, stale = an older one).
* Excluded because they legitimately differ: stats values (no `stats`
  command except unknown subcommands is generated) and the version string
  (only "VERSION " is compared).
* Small positive TTLs and flush delays are never generated: both servers'
  clocks would have to agree to the second.  Timed expiry is covered in
  test_protocol.py.
"""

import difflib
import random
import re
import time

import pytest

from mcraw import Conn

CHUNKS = 8             # pytest cases
SEQS_PER_CHUNK = 60    # 480 sequences in all
MAX_ITEM = 1024 * 1024  # both servers run with -I 1m
STEP_TIMEOUT_S = 10

# Data bytes can never spell a command that does anything when a data block
# is read as a command line (no v/q/s/f/m/w: version, quit, stats, flush_all,
# shutdown, meta commands, watch), and contain no space.
DATA_ALPHABET = b"abcdefgh0123456789xyz"
_pool_rng = random.Random(0xDA7A)
DATA_POOL = bytes(_pool_rng.choice(DATA_ALPHABET) for _ in range(1 << 16))
CTL_BYTES = [bytes([b]) for b in list(range(1, 9)) + [0x0b, 0x0c] +
             list(range(0x0e, 0x20)) + [0x7f, 0x80, 0xa0, 0xfe, 0xff]] + \
    [b"\t", b"\r"]

U32_EDGE = [b"0", b"1", b"65535", b"65536", b"2147483647", b"2147483648",
            b"4294967295"]
BAD_FLAGS = [b"-1", b"4294967296", b"4294967297", b"18446744073709551615",
             b"99999999999999999999", b"abc", b"1.5", b"+5", b"0x10", b"-0",
             b"-4294967295", b"1e3", b"5abc", b"\t5", b"5\t", b"7\x0b",
             b"\x0c9"]
GOOD_EXPTIMES = [b"0", b"0", b"0", b"1000", b"+1000", b"2592000",
                 b"2000000000", b"2147483647"]
EXPIRED_EXPTIMES = [b"-1", b"-100", b"2592001", b"1000000000", b"-2147483648",
                    b"4000000000", b"-0"]
BAD_EXPTIMES = [b"abc", b"99999999999999999999", b"1.5", b"-2147483649x",
                b"10s", b"-9223372036854775809", b"1000\t", b"\t-1"]
BAD_BYTES = [b"-1", b"abc", b"99999999999999999999", b"4294967296",
             b"4294967297", b"2147483647", b"-4294967295", b"1.0", b"+1",
             b"0x1", b"-2147483648", b"3\t", b"\t3"]
DELTAS = [b"0", b"1", b"1", b"7", b"1000", b"4294967296",
          b"9223372036854775808", b"18446744073709551615", b"01", b"+1"]
BAD_DELTAS = [b"-1", b"abc", b"18446744073709551616", b"1x", b"1.5", b"",
              b"99999999999999999999", b"0x10", b"\t2", b"2\t"]
NUMBERS = [b"0", b"1", b"00042", b"9", b"10", b"99", b"100",
           b"18446744073709551615", b"18446744073709551614",
           b"18446744073709551616", b"-5", b"12 34", b"  7", b"+3", b"5abc",
           b"abc", b"1x", b"000000000000000000001", b"4294967296"]
NOREPLY_VARIANTS = [b" noreply", b" noreply", b" noreply", b" NOREPLY",
                    b" norepl", b" noreplyx", b" noreply noreply"]
JUNK_LINES = [b"foo", b"GET k", b"Set k 0 0 1", b"sett k 0 0 1", b"getx k",
              b"gets", b"get", b"incrr k 1", b"deletee k", b"x", b"", b" ",
              b"\t", b"version\t", b"stats nonsense-sub", b"SHUTDOWN",
              b"touch", b"flush_all 0 0 0", b"cas", b"bget"]
CACHE_MEMLIMITS = [b"256", b"1024", b"7", b"0", b"abc", b"-5",
                   b"2000000000", b"256 noreply", b"", b"300 300"]
# flush_all arguments that flush at once, that do not flush now (a delay, an
# absolute time in the future or, a memcached quirk, in the past), and that
# are rejected.
FLUSH_NOW = [b"", b" 0", b" -1", b" noreply", b" 0 noreply", b" -1 noreply",
             b" 0 0", b"  "]
FLUSH_LATER = [b" 100000", b" 100000 noreply", b" 2000000000",
               b" 1000000000", b" 2592000"]
FLUSH_BAD = [b" abc", b" abc noreply", b" 1.5", b" 0 noreply extra"]
VERBOSITY_ARGS = [b" 0", b" 1", b" 1 noreply", b" 0 noreply", b"",
                  b" abc", b" -1", b" 1 2", b" 1 2 3", b" noreply"]


class CasRef:
    """A cas unique chosen per server when the command is rendered."""

    def __init__(self, key, kind):
        self.key, self.kind = key, kind


class Cmd:
    """One command: byte pieces, some of which may be CasRefs."""

    def __init__(self, *parts, closes=False, is_version=False):
        self.parts = parts
        self.closes = closes
        self.is_version = is_version

    def render(self, side):
        out = bytearray()
        for p in self.parts:
            out += side.cas_for(p) if isinstance(p, CasRef) else p
        return bytes(out)


class Generator:
    """Builds sequences of steps; each step is a list of Cmds."""

    def __init__(self, seed, seq_no):
        self.r = random.Random(seed * 1000003 + seq_no)
        self.flushed = False
        prefix = b"d%d.%d-" % (seed % 100000, seq_no)
        self.prefix = prefix
        self.keys = [prefix + b"k%d" % i for i in range(4)]
        self.nkeys = [prefix + b"n%d" % i for i in range(2)]
        self.special = [
            prefix + b"x" * (250 - len(prefix)),          # exactly 250
            prefix + b"y" * (251 - len(prefix)),          # 251: too long
            prefix + b"".join(self.r.sample(CTL_BYTES, 3)) + b"e",
            prefix + "ключ-é".encode(),
        ]

    # -- pieces

    def key(self):
        r = self.r.random()
        if r < 0.8:
            return self.r.choice(self.keys)
        if r < 0.85:
            return self.r.choice(self.nkeys)
        return self.r.choice(self.special)

    def sp(self):
        """Token separator: mostly one space, sometimes more."""
        return b" " if self.r.random() < 0.93 else b" " * self.r.randint(2, 4)

    def eol(self):
        r = self.r.random()
        if r < 0.9:
            return b"\r\n"
        if r < 0.97:
            return b"\n"
        return b" \r\n"  # trailing space

    def noreply(self, p=0.2):
        if self.r.random() >= p:
            return b""
        return self.r.choice(NOREPLY_VARIANTS)

    def data(self):
        """A value of alphabet bytes.  Runs between CRLFs are at most
        1000 bytes, so when a rejected command's data block is read as
        command lines, no line is long enough (> 2048 bytes) to make
        memcached close the connection at a point that depends on how the
        bytes were split into reads."""
        r = self.r.random()
        if r < 0.5:
            n = self.r.randint(0, 20)
        elif r < 0.9:
            n = self.r.randint(21, 2000)
        elif r < 0.99:
            n = self.r.randint(2001, 70000)
        else:
            n = self.r.randint(MAX_ITEM // 2, MAX_ITEM - 4096)
        out = bytearray()
        while len(out) < n:
            run = self.r.randint(1, 1000)
            start = self.r.randrange(len(DATA_POOL) - run)
            out += DATA_POOL[start:start + run]
            if n > 1000 or self.r.random() < 0.1:
                out += b"\r\n"
        return bytes(out[:n])

    def flags(self):
        r = self.r.random()
        if r < 0.75:
            return b"0"
        if r < 0.9:
            return self.r.choice(U32_EDGE)
        return self.r.choice(BAD_FLAGS)

    def exptime(self):
        r = self.r.random()
        if r < 0.8:
            return self.r.choice(GOOD_EXPTIMES)
        if r < 0.93:
            return self.r.choice(EXPIRED_EXPTIMES)
        return self.r.choice(BAD_EXPTIMES)

    # -- commands

    def storage(self, numeric_ok=True):
        verb = self.r.choice([b"set", b"set", b"set", b"add", b"replace",
                              b"append", b"prepend", b"cas", b"cas"])
        numeric_key = self.r.random() < 0.15
        key = self.r.choice(self.nkeys) if numeric_key else self.key()
        if numeric_key:
            data = self.r.choice(NUMBERS) if verb not in (b"append",
                                                         b"prepend") \
                else self.r.choice([b"0", b"5", b"x", b" 9"])
        else:
            data = self.data()
        flags = self.flags()
        exptime = self.exptime()
        nbytes = b"%d" % len(data)
        term = b"\r\n"
        malformed = (not numeric_key) and self.r.random() < 0.15
        if malformed:
            kind = self.r.choice(["bytes", "bytes", "len", "len", "term",
                                  "term", "tokens", "tokens"] * 3 +
                                 ["toolarge"])
            if kind == "bytes":
                nbytes = self.r.choice(BAD_BYTES)
            elif kind == "len":
                nbytes = b"%d" % max(0, len(data) + self.r.choice(
                    [-3, -1, 1, 2, 5]))
            elif kind == "term":
                term = self.r.choice([b"\n", b"\r", b"", b"xx", b"\n\r",
                                      b"\r\r\n"])
            elif kind == "toolarge":
                n = self.r.randint(MAX_ITEM + 4096, MAX_ITEM + 70000)
                data = ((b"z" * 999 + b"\r\n") * (n // 1001 + 1))[:n]
                nbytes = b"%d" % len(data)
        parts = [verb, self.sp(), key, self.sp(), flags, self.sp(), exptime,
                 self.sp(), nbytes]
        if verb == b"cas":
            kind = self.r.choice(["right", "right", "right", "stale", "wrong",
                                  "bad", "missing"])
            if kind == "bad":
                parts += [b" ", self.r.choice([b"abc", b"-1", b"1.5",
                                               b"18446744073709551616"])]
            elif kind != "missing":
                parts += [b" ", CasRef(key, kind)]
        if malformed and kind == "tokens":
            parts += self.r.choice([[b" extra"], [b" 1 2"]])
            if self.r.random() < 0.5:
                parts = parts[:4]  # too few tokens
        parts.append(self.noreply(0.25))
        parts.append(self.eol())
        parts += [data, term]
        # If the server reads a data block shorter than the one declared, it
        # would eat the commands that follow: pad with empty lines (which it
        # answers with ERROR) so the sentinel always survives.
        need = self._declared(nbytes)
        have = len(data) + len(term)
        if need is not None and need > have:
            parts.append(b"\r\n" * ((need - have) // 2 + 1))
        # A bad terminator must not glue its leftovers onto the next command.
        if not parts[-1].endswith(b"\n"):
            parts.append(b"\r\n")
        return Cmd(*parts)

    @staticmethod
    def _declared(nbytes):
        """Bytes memcached would read for this <bytes> token, if any."""
        try:
            v = int(nbytes, 10)
        except ValueError:
            return None
        v = (v + 2**31) % 2**32 - 2**31  # int32 truncation, as memcached
        if 0 <= v <= 2 * MAX_ITEM:
            return v + 2
        return None

    def retrieval(self, first_in_step):
        verb = self.r.choice([b"get", b"get", b"get", b"gets", b"gets",
                              b"gat", b"gats"])
        r = self.r.random()
        if r < 0.6:
            keys = [self.key()]
        elif r < 0.9:
            keys = [self.key() for _ in range(self.r.randint(2, 6))]
        else:
            keys = [self.key() for _ in range(self.r.randint(20, 30))]
        if not first_in_step:
            # memcached 1.6.18 answers a get/gets/gat/gats with a key over 250
            # bytes by dropping every reply not yet sent on the connection,
            # those of earlier pipelined commands included, so what is lost
            # depends on how the requests were split into reads.  Only
            # generate that case where nothing can be pending: first in the
            # step (the previous step's replies have all been read).
            keys = [self.special[0] if len(k) > 250 else k for k in keys]
        parts = [verb]
        if verb in (b"gat", b"gats"):
            rr = self.r.random()
            if rr < 0.8:
                parts += [self.sp(), self.r.choice(GOOD_EXPTIMES +
                                                   EXPIRED_EXPTIMES[:3])]
            elif rr < 0.9:
                parts += [self.sp(), self.r.choice(BAD_EXPTIMES)]
            elif rr < 0.95:
                keys = []  # "gat 1000": no keys
                parts += [b" 1000"]
            # else: no exptime at all, the first key is read as one
        if verb in (b"gat", b"gats"):
            # only get/gets lines may exceed 2048 bytes (see data())
            while keys and sum(len(k) + 4 for k in keys) > 1800:
                keys.pop()
        for k in keys:
            parts += [self.sp(), k]
        parts.append(self.eol())
        return Cmd(*parts)

    def delete(self):
        key = self.key()
        tail = self.r.choice([b"", b"", b"", b" noreply", b" 0", b" 0 noreply",
                              b" 1", b" x noreply", b" 0 noreply extra",
                              b" noreply 0"])
        if self.r.random() < 0.05:
            return Cmd(b"delete", self.eol())
        return Cmd(b"delete", self.sp(), key, tail, self.eol())

    def arith(self):
        verb = self.r.choice([b"incr", b"decr"])
        r = self.r.random()
        if r < 0.75:
            key = self.r.choice(self.nkeys)
        elif r < 0.9:
            key = self.r.choice(self.keys)   # non-numeric or missing
        else:
            key = self.r.choice(self.special)
        if self.r.random() < 0.85:
            delta = self.r.choice(DELTAS)
            if self.r.random() < 0.2:
                delta = b"%d" % self.r.randrange(2**64)
        else:
            delta = self.r.choice(BAD_DELTAS)
        parts = [verb, self.sp(), key]
        if delta:
            parts += [self.sp(), delta]
        parts += [self.noreply(0.2), self.eol()]
        if self.r.random() < 0.03:
            parts = [verb, b" ", key, b" 1 2 3", self.eol()]
        return Cmd(*parts)

    def touch(self):
        key = self.key()
        r = self.r.random()
        if r < 0.7:
            arg = b" " + self.r.choice(GOOD_EXPTIMES + EXPIRED_EXPTIMES[:2])
        elif r < 0.85:
            arg = b" " + self.r.choice(BAD_EXPTIMES)
        else:
            arg = b""
        return Cmd(b"touch", self.sp(), key, arg, self.noreply(0.2),
                   self.eol())

    def misc(self):
        r = self.r.random()
        if r < 0.3:
            # memcached 1.6.18 brings items flushed by an immediate flush_all
            # back to life when a later flush_all sets a delay (or a time in
            # the past) before they were touched; strata must not (see
            # test_protocol.py).  So once a sequence has flushed, it only
            # flushes at once again.
            choices = FLUSH_NOW + FLUSH_BAD
            if not self.flushed:
                choices = choices + FLUSH_LATER
            arg = self.r.choice(choices)
            if arg in FLUSH_NOW:
                self.flushed = True
            return Cmd(b"flush_all", arg, self.eol())
        if r < 0.5:
            return Cmd(b"verbosity", self.r.choice(VERBOSITY_ARGS), self.eol())
        if r < 0.6:
            arg = self.r.choice(CACHE_MEMLIMITS)
            return Cmd(b"cache_memlimit", b" " + arg if arg else b"",
                       self.eol())
        if r < 0.7:
            return Cmd(self.r.choice([b"shutdown", b"shutdown graceful",
                                      b"shutdown now"]), self.eol())
        return Cmd(self.r.choice(JUNK_LINES), self.eol())

    def command(self, first_in_step=False):
        r = self.r.random()
        if r < 0.38:
            return self.storage()
        if r < 0.64:
            return self.retrieval(first_in_step)
        if r < 0.72:
            return self.delete()
        if r < 0.86:
            return self.arith()
        if r < 0.92:
            return self.touch()
        return self.misc()

    def sequence(self):
        steps = []
        for _ in range(self.r.randint(2, 7)):
            step = [self.command(i == 0)
                    for i in range(self.r.randint(1, 8))]
            if self.r.random() < 0.1:   # a version of our own ends the step
                step.append(Cmd(self.r.choice([b"version", b"version x y"]),
                                self.eol(), is_version=True))
            steps.append(step)
        r = self.r.random()
        if r < 0.04:
            # quit: the replies before it are flushed, then the server closes
            steps.append([self.command(),
                          Cmd(self.r.choice([b"quit", b"quit extra"]),
                              self.eol(), closes=True)])
        elif r < 0.06:
            # a line ending in "HTTP/..." closes at once, dropping replies
            # still queued in the same read batch, so it goes alone
            steps.append([Cmd(b"GET / HTTP/1.1\r\n", closes=True)])
        return steps


class Side:
    """One server's connection plus its CAS mapping."""

    def __init__(self, name, server, split_seed=None):
        self.name = name
        self.server = server
        # With a seed, requests go out in random-size pieces with short
        # pauses, so the server sees arbitrary read boundaries.
        self.split = random.Random(split_seed) if split_seed is not None \
            else None
        self.conn = None
        self.cas_ids = {}      # unique -> n (order first seen)
        self.seen = {}         # key -> [uniques in order seen]

    def connect(self):
        self.close()
        self.conn = Conn.to(self.server, timeout=STEP_TIMEOUT_S)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def cas_for(self, ref):
        seen = self.seen.get(ref.key, [])
        if ref.kind == "right" and seen:
            return b"%d" % seen[-1]
        if ref.kind == "stale" and len(seen) >= 2:
            return b"%d" % seen[-2]
        return b"18446744073709551615"   # never handed out by either server

    def run_step(self, payload, add_sentinel):
        data = payload + (b"version\r\n" if add_sentinel else b"")
        try:
            if self.split is None:
                self.conn.send(data)
            else:
                pos = 0
                while pos < len(data):
                    n = self.split.choice([1, 2, 3, 7, 64, 1500, 5000, 70000])
                    self.conn.send(data[pos:pos + n])
                    pos += n
                    if self.split.random() < 0.03:
                        time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass  # closed by the server: read what it sent before that
        raw, status = self.conn.read_until_version()
        return self.normalize(raw), status

    def normalize(self, raw):
        """Maps cas uniques to <cas#n> and the version string to <v>."""
        out = bytearray()
        pos = 0
        while pos < len(raw):
            i = raw.find(b"\n", pos)
            if i < 0:
                out += raw[pos:]
                break
            line = raw[pos:i + 1]
            pos = i + 1
            if line.startswith(b"VALUE ") and line.endswith(b"\r\n"):
                toks = line[:-2].split(b" ")
                if len(toks) == 5 and toks[4].isdigit():
                    cas = int(toks[4])
                    n = self.cas_ids.setdefault(cas, len(self.cas_ids))
                    self.seen.setdefault(toks[1], []).append(cas)
                    line = b" ".join(toks[:4]) + b" <cas#%d>\r\n" % n
                out += line
                try:
                    size = int(toks[3])
                except (IndexError, ValueError):
                    continue
                out += raw[pos:pos + size + 2]
                pos += size + 2
            elif line.startswith(b"VERSION "):
                out += b"VERSION <v>\r\n"
            else:
                out += line
        return bytes(out)


def _show(b, limit=400):
    r = repr(b)
    return r if len(r) <= limit else r[:limit] + f"...<{len(b)} bytes>"


def _diff(ref, dut):
    a = [_show(line) for line in ref.splitlines(keepends=True)]
    b = [_show(line) for line in dut.splitlines(keepends=True)]
    return "\n".join(difflib.unified_diff(a, b, "memcached-1.6.18",
                                          "server-under-test", lineterm="",
                                          n=3))


@pytest.fixture(scope="module")
def pair(strata_bin):
    """A reference memcached and the server under test, same flags."""
    from conftest import Server
    ref = Server("/usr/bin/memcached", memory_mb=256, threads=2,
                 item_size="1m")
    dut = Server(strata_bin, memory_mb=256, threads=2, item_size="1m")
    try:
        ref.start()
        dut.start()
        yield ref, dut
    finally:
        for s in (dut, ref):
            s.stop()
            s.close_log()


@pytest.fixture(scope="module")
def sides(pair):
    ref, dut = pair
    # memcached gets each step in one write; the server under test gets it
    # split at random points: replies must not depend on read boundaries.
    a = Side("memcached", ref)
    b = Side("server-under-test", dut, split_seed=0x5B117)
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_differential(sides, chunk):
    ref, dut = sides
    seed = 0x5EED0000 + chunk
    for seq_no in range(SEQS_PER_CHUNK):
        gen = Generator(seed, seq_no)
        steps = gen.sequence()
        ref.connect()
        dut.connect()
        history = []
        for step_no, step in enumerate(steps):
            add_sentinel = not (step[-1].is_version or step[-1].closes)
            pa = b"".join(c.render(ref) for c in step)
            pb = b"".join(c.render(dut) for c in step)
            history.append(pa)
            ra, sa = ref.run_step(pa, add_sentinel)
            rb, sb = dut.run_step(pb, add_sentinel)
            assert sa != "timeout", (
                f"reference memcached timed out (generator bug) on seed "
                f"{seed:#x} sequence {seq_no} step {step_no}: {_show(pa)}")
            if (ra, sa) != (rb, sb):
                sent = "\n".join(f"  step {i}: {_show(h, 2000)}"
                                 for i, h in enumerate(history))
                pytest.fail(
                    f"replies differ: seed {seed:#x} sequence {seq_no} step "
                    f"{step_no}\nsent (memcached's rendering; cas uniques "
                    f"are per server):\n{sent}\n"
                    f"memcached ended: {sa}; server under test ended: {sb}\n"
                    f"diff of replies (- memcached, + server under test):\n"
                    f"{_diff(ra, rb)}", pytrace=False)
            if sa == "closed":
                break
        # leave the servers in a plain state for the next sequence
        for side in (ref, dut):
            if side.conn is not None and not side.conn.closed_by_peer:
                side.run_step(b"verbosity 0 noreply\r\n", True)
    ref.close()
    dut.close()


def test_differential_detects_differences(pair):
    """Self-check: the harness does see a difference when there is one."""
    ref, _ = pair
    a, b = Side("a", ref), Side("b", ref)
    a.connect()
    b.connect()
    try:
        ra, _ = a.run_step(b"set selfcheck 0 0 1\r\nx\r\nget selfcheck\r\n",
                           True)
        rb, _ = b.run_step(b"set selfcheck 0 0 1\r\ny\r\nget selfcheck\r\n",
                           True)
        assert ra != rb
        # and cas mapping hides only the unique's value, not its presence
        ra, _ = a.run_step(b"gets selfcheck\r\n", True)
        rb, _ = b.run_step(b"gets selfcheck\r\n", True)
        assert ra == rb and b"<cas#0>" in ra, (ra, rb)
    finally:
        a.close()
        b.close()


# ------------------------------------------------------------ long lines
# memcached reads into a 16 KiB buffer and closes a connection whose buffer
# holds more than 2048 bytes without a newline after a read, unless it is a
# get/gets line. Each case goes to both servers on a fresh connection, as
# the same pieces with the same pauses, then "version" shows whether the
# connection lives on.

KEYS_100K = b" ".join(b"key%06d" % i for i in range(10000))  # 100 KB of keys
LONG_LINE_CASES = {
    "5000 bytes whole": [b"x" * 5000 + b"\r\n"],
    "15000 bytes whole": [b"x" * 15000 + b"\r\n"],
    "16383 bytes and LF whole": [b"x" * 16383 + b"\n"],
    "16384 bytes and LF whole": [b"x" * 16384 + b"\n"],
    "20000 bytes whole": [b"x" * 20000 + b"\r\n"],
    "5000 bytes, no newline": [b"y" * 5000],
    "3000 bytes as 2500 + pause + 500": [b"x" * 2500, b"x" * 500 + b"\r\n"],
    "3000 bytes as 1500 + pause + 1500": [b"x" * 1500, b"x" * 1500 + b"\r\n"],
    "3000 bytes as 2048 + pause + 952": [b"x" * 2048, b"x" * 952 + b"\r\n"],
    "3000 bytes as 2049 + pause + 951": [b"x" * 2049, b"x" * 951 + b"\r\n"],
    "set with a 5000-byte key": [b"set " + b"k" * 5000 + b" 0 0 1\r\nx\r\n"],
    "get of a 5000-byte key": [b"get " + b"k" * 5000 + b"\r\n"],
    "5000 bytes after a command": [b"version\r\n" + b"x" * 5000 + b"\r\n"],
    "get of 100 KB of keys whole": [b"get " + KEYS_100K + b"\r\n"],
    "get of 100 KB of keys in 3 pieces": [
        b"get " + KEYS_100K[:30000], KEYS_100K[30000:70000],
        KEYS_100K[70000:] + b"\r\n"],
    "gets of 100 KB of keys": [b"gets " + KEYS_100K + b"\r\n"],
    "gat of 100 KB of keys, no newline": [b"gat 0 " + KEYS_100K],
    "100 spaces then get": [b" " * 100 + b"get " + b"a" * 3000, b"\r\n"],
    "101 spaces then get": [b" " * 101 + b"get " + b"a" * 3000],
}


def _exchange_pieces(server, pieces, pause=0.3, settle=0.3):
    """Sends the pieces with pauses, then "version"; returns (replies with
    the version string normalized, whether the connection stayed open)."""
    c = Conn.to(server, timeout=5)
    try:
        for i, piece in enumerate(pieces):
            try:
                c.send(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            if i + 1 < len(pieces):
                time.sleep(pause)
        time.sleep(settle)
        try:
            c.send(b"version\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw, status = c.read_until_version()
        return raw.replace(b"-strata-0.1.0", b""), status
    finally:
        c.close()


@pytest.mark.parametrize("case", sorted(LONG_LINE_CASES))
def test_long_lines(pair, case):
    ref, dut = pair
    pieces = LONG_LINE_CASES[case]
    want = _exchange_pieces(ref, pieces)
    got = _exchange_pieces(dut, pieces)
    assert got == want, f"{case}: memcached {want!r:.300}, server {got!r:.300}"


def test_long_line_cases_tell_the_rules_apart(pair):
    """Self-check on memcached: some cases close, some answer ERROR."""
    ref, _ = pair
    closed = _exchange_pieces(ref, LONG_LINE_CASES["20000 bytes whole"])
    parsed = _exchange_pieces(ref, LONG_LINE_CASES["15000 bytes whole"])
    assert closed[1] == "closed" and parsed == (
        b"ERROR\r\nVERSION 1.6.18\r\n", "ok"), (closed, parsed)


# -------------------------------------------------------- admin commands
# memcached 1.6.18's protocol.txt admin commands, on servers of their own
# (their state changes): every deterministic reply byte for byte. A
# memcached started with -W (no watchers) answers `watch`, as strata does.

@pytest.fixture(scope="module")
def admin_servers(strata_bin):
    from conftest import Server
    ref = Server("/usr/bin/memcached", memory_mb=64, threads=2)
    nowatch = Server("/usr/bin/memcached", memory_mb=64, threads=2,
                     extra_args=["-W"])
    dut = Server(strata_bin, memory_mb=64, threads=2)
    try:
        for s in (ref, nowatch, dut):
            s.start()
        yield ref, nowatch, dut
    finally:
        for s in (dut, nowatch, ref):
            s.stop()
            s.close_log()


def _ask(server, payload, busy_retries=0, metadump=False):
    """Sends payload + "version" on a fresh connection; returns the replies
    (version string normalized) and the status. memcached answers BUSY while
    its crawler runs (it also crawls on its own): with busy_retries, such a
    reply is asked again. A metadump is read up to its END line instead:
    memcached runs nothing sent behind one until more bytes arrive."""
    for _ in range(busy_retries + 1):
        c = Conn.to(server, timeout=STEP_TIMEOUT_S)
        try:
            if metadump:
                c.send(payload)
                raw, status = bytearray(), "ok"
                while True:
                    line = c.readline()
                    raw += line
                    if line == b"END\r\n" or not line.endswith(b"\n") or \
                            line.startswith((b"BUSY ", b"BADCLASS ", b"ERROR",
                                             b"CLIENT_ERROR ")):
                        break
                raw = bytes(raw)
            else:
                c.send(payload + b"version\r\n")
                raw, status = c.read_until_version()
        finally:
            c.close()
        raw = raw.replace(b"-strata-0.1.0", b"")
        if not raw.startswith(b"BUSY "):
            break
        time.sleep(0.05)
    return raw, status


ADMIN_LINES = [
    b"slabs", b"slabs automove", b"slabs automove 0", b"slabs automove 1",
    b"slabs automove 2", b"slabs automove 3", b"slabs automove invalid",
    b"slabs automove 1 noreply", b"slabs automove invalid noreply",
    b"slabs automove noreply", b"slabs automove 4294967297",
    b"slabs automove ratio", b"slabs automove ratio 0.5",
    b"slabs automove ratio 0.5 x", b"slabs automove ratio abc",
    b"slabs automove ratio 1e999", b"slabs automove ratio 0.5 noreply",
    b"slabs automove 1 2 3", b"slabs reassign 1 1", b"slabs reassign 1 0",
    b"slabs reassign 0 1", b"slabs reassign -1 2", b"slabs reassign 1 200",
    b"slabs reassign a b", b"slabs reassign 1", b"slabs reassign 1 2 noreply",
    b"slabs foo 1 2", b"lru", b"lru tune", b"lru tune 10 10 0.1 2.0",
    b"lru tune 10 25 0.1 2.0 noreply", b"lru tune 50 50 0.1 2.0",
    b"lru tune 4294967295 2 0.1 2.0", b"lru tune 10 10 0 2.0",
    b"lru tune 10 10 0.1 -1", b"lru tune a 10 0.1 2.0",
    b"lru tune 10 10 0.1 noreply", b"lru mode flat", b"lru mode segmented",
    b"lru mode foo", b"lru mode", b"lru temp_ttl 100", b"lru temp_ttl -1",
    b"lru temp_ttl abc", b"lru foo", b"lru noreply", b"lru_crawler",
    b"lru_crawler crawl", b"lru_crawler crawl 0", b"lru_crawler crawl 64",
    b"lru_crawler crawl abc", b"lru_crawler crawl 1,x",
    b"lru_crawler crawl hash", b"lru_crawler crawl ,,,",
    b"lru_crawler crawl all noreply", b"lru_crawler metadump",
    b"lru_crawler metadump abc", b"lru_crawler metadump 0",
    b"lru_crawler tocrawl 100", b"lru_crawler tocrawl abc",
    b"lru_crawler sleep 100", b"lru_crawler sleep 1000000",
    b"lru_crawler sleep 2000000", b"lru_crawler sleep abc",
    b"lru_crawler enable", b"lru_crawler foo", b"lru_crawler foo bar",
    b"stats cachedump", b"stats cachedump 1", b"stats cachedump 100 1",
    b"stats cachedump 64 1", b"stats cachedump 63 1",
    b"stats cachedump 2 0", b"stats cachedump a b",
    b"stats cachedump -1 1", b"stats cachedump 4294967296 1",
    b"stats detail", b"stats detail foo", b"stats detail dump",
    b"stats sizes", b"stats extstore", b"stats foo", b"stats reset extra",
    b"verbosity 1", b"verbosity 0 noreply", b"verbosity",
]
# Answered OK (or a dump), or BUSY while memcached's crawler runs.
CRAWL_LINES = [b"lru_crawler crawl all", b"lru_crawler crawl 1",
               b"lru_crawler crawl 1,2,63"]
# ("metadump hash" is left out: memcached's crawler thread can miss the
# signal that starts a hash walk, and the client then waits for ever.)
DUMP_LINES = [b"lru_crawler metadump 2", b"lru_crawler metadump 2,3",
              b"lru_crawler metadump 1", b"lru_crawler metadump all"]


def test_admin_commands(admin_servers):
    ref, _, dut = admin_servers
    for line in ADMIN_LINES:
        want = _ask(ref, line + b"\r\n")
        got = _ask(dut, line + b"\r\n")
        assert got == want, f"{line!r}: memcached {want!r}, server {got!r}"
    for line in CRAWL_LINES:
        want = _ask(ref, line + b"\r\n", busy_retries=40)
        got = _ask(dut, line + b"\r\n")
        assert got == want, f"{line!r}: memcached {want!r}, server {got!r}"
    # on an empty cache
    for line in DUMP_LINES:
        want = _ask(ref, line + b"\r\n", busy_retries=40, metadump=True)
        got = _ask(dut, line + b"\r\n", metadump=True)
        assert got == want == (b"END\r\n", "ok"), \
            f"{line!r}: memcached {want!r}, server {got!r}"


@pytest.mark.strata_only  # memcached itself runs watchers
def test_watch_as_memcached_without_watchers(admin_servers):
    _, nowatch, dut = admin_servers
    for line in [b"watch", b"watch fetchers", b"watch fetchers mutations",
                 b"watch foo", b"watch noreply", b"watch fetchers noreply"]:
        want = _ask(nowatch, line + b"\r\n")
        got = _ask(dut, line + b"\r\n")
        assert got == want, f"{line!r}: memcached -W {want!r}, server {got!r}"


def _settings(server, *names):
    raw, _ = _ask(server, b"stats settings\r\n")
    values = dict(line.split(b" ")[1:3] for line in raw.split(b"\r\n")
                  if line.startswith(b"STAT "))
    return [values.get(n.encode()) for n in names]


def test_admin_state_changes(admin_servers):
    """The crawler switch, stats detail and stats sizes, step by step."""
    ref, _, dut = admin_servers
    steps = [
        # lru_crawler enable|disable (memcached stops its thread
        # asynchronously: each step is given time).
        b"lru_crawler enable\r\n",
        b"lru_crawler disable\r\n",
        b"lru_crawler crawl all\r\nlru_crawler metadump all\r\n"
        b"lru_crawler crawl 0\r\nlru_crawler disable\r\n",
        b"lru_crawler enable\r\n",
        b"lru_crawler enable\r\n",
        # stats detail: prefixes in memcached's dump order
        b"stats detail dump\r\nstats detail on\r\n",
        b"set foo:1 0 0 1\r\nx\r\nset user:1 0 0 1\r\nx\r\n"
        b"set session:9 0 0 2\r\nxy\r\nget foo:1 foo:2 user:1 nocolon\r\n"
        b"delete foo:3\r\ndelete session:9\r\ngat 0 user:1\r\n"
        b"add foo:1 0 0 1\r\nx\r\nincr user:2 1\r\nset :empty 0 0 1\r\nx\r\n"
        b"stats detail dump\r\n",
        b"stats reset\r\nstats detail dump\r\nget foo:1\r\n"
        b"stats detail dump\r\nstats detail off\r\nget foo:1\r\n"
        b"stats detail dump\r\nstats reset\r\n",
        # stats sizes: the items stored since sizes_enable (no END after
        # the switches)
        b"stats sizes\r\nstats sizes_enable\r\n",
        b"set sz-a 0 0 3\r\nabc\r\nset sz-b 1 0 100\r\n" + b"b" * 100 +
        b"\r\nset sz-c 0 0 5000\r\n" + b"c" * 5000 + b"\r\n"
        b"set sz-d 0 0 40\r\n" + b"d" * 40 + b"\r\nstats sizes\r\n",
        b"stats sizes_enable\r\nstats sizes_disable\r\nstats sizes\r\n",
        # metadump behind other replies is refused
        b"set md-p 0 0 1\r\nx\r\nlru_crawler metadump all\r\n",
    ]
    for i, step in enumerate(steps):
        want = _ask(ref, step)
        got = _ask(dut, step)
        assert got == want, \
            f"step {i} {step!r:.200}: memcached {want!r}, server {got!r}"
        time.sleep(0.3)
        if i == 1:  # disabled
            assert _settings(ref, "lru_crawler") == [b"no"]
            assert _settings(dut, "lru_crawler") == [b"no"]
    names = ("lru_crawler", "detail_enabled", "track_sizes", "dump_enabled")
    assert _settings(dut, *names) == _settings(ref, *names)


def _dump_lines(server, request, keys):
    metadump = request.startswith(b"lru_crawler metadump")
    raw, status = _ask(server, request, busy_retries=40, metadump=metadump)
    end = b"END\r\n" if metadump else b"END\r\nVERSION 1.6.18\r\n"
    assert status == "ok" and raw.endswith(end), raw
    return [line for line in raw.split(b"\n")
            if any(k in line for k in keys)]


def test_stats_cachedump_lists_items(admin_servers):
    """memcached lists the items of a class's COLD LRU, where its
    maintainer moves new items in its own time: its listing is awaited."""
    ref, _, dut = admin_servers
    keys = [b"cd-%d" % i for i in range(20)]
    store = b"".join(b"set %s 0 0 3\r\nabc\r\n" % k for k in keys[:10]) + \
        b"".join(b"set %s 0 100000 3\r\nabc\r\n" % k for k in keys[10:])
    for s in (ref, dut):
        assert _ask(s, store)[0].count(b"STORED") == 20
    deadline = time.monotonic() + 10
    while True:
        want = sorted(_dump_lines(ref, b"stats cachedump 1 0\r\n", keys))
        if len(want) == 20 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    got = sorted(_dump_lines(dut, b"stats cachedump 1 0\r\n", keys))

    def expiry_free(lines):  # "ITEM k [3 b; <abs time> s]": +-1 s apart
        return [re.sub(rb"; \d{6,} s\]", b"; <t> s]", line) for line in lines]
    assert expiry_free(got) == expiry_free(want), (got, want)
    assert len(got) == 20 and got[0].startswith(b"ITEM cd-0 [3 b; 0 s]")
    # a limit, and another class
    raw, _ = _ask(dut, b"stats cachedump 1 5\r\n")
    assert raw.count(b"ITEM ") == 5
    for s in (ref, dut):
        assert _ask(s, b"stats cachedump 5 0\r\n")[0] == \
            b"END\r\nVERSION 1.6.18\r\n"


def test_lru_crawler_metadump_lists_items(admin_servers):
    ref, _, dut = admin_servers
    keys = [b"md-a", b"md-b", b"md%c:d", b"md-e"]
    store = (b"set md-a 0 0 3\r\nabc\r\nset md-b 7 0 10\r\n0123456789\r\n"
             b"set md%c:d 0 100000 1\r\nx\r\nset md-e 0 0 2\r\nxy\r\n"
             b"get md-b\r\n")
    for s in (ref, dut):
        _ask(s, store)

    def parse(server):
        out = {}
        for line in _dump_lines(server, b"lru_crawler metadump all\r\n", [
                b"key=md-a ", b"key=md-b ", b"key=md%25c%3Ad ",
                b"key=md-e "]):
            fields = dict(f.split(b"=", 1) for f in line.split(b" "))
            out[fields.pop(b"key")] = fields
        return out
    want, got = parse(ref), parse(dut)
    assert set(got) == set(want) == {b"md-a", b"md-b", b"md%25c%3Ad",
                                     b"md-e"}, (got, want)
    for key in want:
        w, g = want[key], got[key]
        # la= is the last access (strata: the dump's time), cas is each
        # server's own: compared with what gets shows; exp within a second.
        for f in (b"fetch", b"cls", b"size"):
            assert g[f] == w[f], (key, f, g, w)
        if w[b"exp"] == b"-1":
            assert g[b"exp"] == b"-1", (key, g, w)
        else:
            assert abs(int(g[b"exp"]) - int(w[b"exp"])) <= 1, (key, g, w)
        plain = key.replace(b"%25", b"%").replace(b"%3A", b":")
        for server, fields in ((ref, w), (dut, g)):
            raw, _ = _ask(server, b"gets " + plain + b"\r\n")
            assert raw.split(b"\r\n")[0].split(b" ")[4] == fields[b"cas"]
    assert got[b"md-b"][b"fetch"] == b"yes" and got[b"md-a"][b"fetch"] == b"no"


def _conns_states(server):
    """`stats conns` with four other clients: idle, half a line, half a
    data block, half a rejected (too large) one. Returns the states of the
    clients' lines (the asking one included) and of the listeners'."""
    others = [Conn.to(server) for _ in range(4)]
    try:
        others[0].send(b"version\r\n")
        others[0].readline()
        others[1].send(b"get abc")
        others[2].send(b"set k 0 0 10\r\nab")
        others[3].send(b"set big 0 0 2000000\r\nab")
        time.sleep(0.3)
        raw, _ = _ask(server, b"stats conns\r\n")
    finally:
        for c in others:
            c.close()
    fields = {}
    for line in raw.split(b"\r\n"):
        if line.startswith(b"STAT "):
            name, value = line[5:].split(b" ", 1)
            fd, field = name.split(b":", 1)
            fields.setdefault(fd, {})[field] = value
    clients = sorted(f[b"state"] for f in fields.values()
                     if b"listen_addr" in f)
    listeners = {f[b"state"] for f in fields.values()
                 if b"listen_addr" not in f}
    assert all(set(f) in ({b"addr", b"listen_addr", b"state",
                           b"secs_since_last_cmd"},
                          {b"addr", b"state", b"secs_since_last_cmd"})
               for f in fields.values()), fields
    return clients, listeners


def test_stats_conns_states(admin_servers):
    """memcached's state names for each kind of connection (strata lists
    one listener per worker, memcached one)."""
    ref, _, dut = admin_servers
    want = _conns_states(ref)
    assert want == ([b"conn_nread", b"conn_parse_cmd", b"conn_read",
                     b"conn_read", b"conn_swallow"], {b"conn_listening"})
    assert _conns_states(dut) == want
