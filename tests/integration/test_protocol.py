"""Raw-socket tests of the text-protocol behaviours clients depend on.

Expected bytes are memcached 1.6.18's (`memcached -B ascii`), checked against
the real binary; where its docs (doc/protocol.txt) and the binary differ, the
binary wins.  Tests marked strata_only pin strata's own guarantees and are
skipped when STRATA_BIN is memcached.
"""

import os
import random
import signal
import socket
import stat
import struct
import tempfile
import time

import pytest

from mcraw import CRLF, Conn, stats, value_for

# A client that never reads its replies may cost the server at most this much
# extra RSS (strata: back-pressure, then the connection is closed).
SLOW_READER_RSS_BOUND = 64 * 1024 * 1024


@pytest.fixture
def conn(server):
    c = Conn.to(server)
    yield c
    c.close()


def version_line(conn):
    line = conn.call(b"version\r\n")
    assert line.startswith(b"VERSION ") and line.endswith(CRLF), line
    return line


# ---------------------------------------------------------------- pipelining


def test_pipeline_many_mixed_commands_replies_in_order(conn):
    """2000 mixed commands in one send; replies byte-exact and in order."""
    rng = random.Random(20240601)
    model = {}
    req = bytearray()
    exp = bytearray()
    keys = [b"pipe-%d" % i for i in range(40)]
    nkeys = [b"pipe-n-%d" % i for i in range(5)]
    for k in keys + nkeys:
        req += b"delete " + k + b" noreply\r\n"
    for _ in range(2000):
        op = rng.choice(["set", "get", "mget", "delete", "add", "replace",
                         "append", "prepend", "incr", "decr", "touch",
                         "set_noreply", "version"])
        k = rng.choice(keys)
        v = value_for(k, rng.choice([0, 1, 10, 100, 1000, 20000]),
                      b"%d" % rng.randrange(1000))
        if op in ("set", "set_noreply", "add", "replace", "append", "prepend"):
            cmd = b"set" if op == "set_noreply" else op.encode()
            noreply = b" noreply" if op == "set_noreply" else b""
            req += b"%s %s 0 0 %d%s\r\n%s\r\n" % (cmd, k, len(v), noreply, v)
            present = k in model
            if op in ("set", "set_noreply"):
                model[k] = v
                stored = True
            elif op == "add":
                stored = not present
                if stored:
                    model[k] = v
            elif op == "replace":
                stored = present
                if stored:
                    model[k] = v
            elif op == "append":
                stored = present
                if stored:
                    model[k] += v
            else:
                stored = present
                if stored:
                    model[k] = v + model[k]
            if not noreply:
                exp += b"STORED\r\n" if stored else b"NOT_STORED\r\n"
        elif op in ("get", "mget"):
            ks = [k] if op == "get" else rng.sample(keys, rng.randrange(1, 8))
            req += b"get " + b" ".join(ks) + b"\r\n"
            for kk in ks:
                if kk in model:
                    exp += b"VALUE %s 0 %d\r\n%s\r\n" % (kk, len(model[kk]),
                                                        model[kk])
            exp += b"END\r\n"
        elif op == "delete":
            req += b"delete " + k + b"\r\n"
            exp += b"DELETED\r\n" if model.pop(k, None) is not None \
                else b"NOT_FOUND\r\n"
        elif op == "touch":
            req += b"touch " + k + b" 1000\r\n"
            exp += b"TOUCHED\r\n" if k in model else b"NOT_FOUND\r\n"
        elif op in ("incr", "decr"):
            nk = rng.choice(nkeys)
            if nk not in model or rng.random() < 0.2:
                n = str(rng.randrange(0, 10**rng.randrange(1, 20))).encode()
                req += b"set %s 0 0 %d\r\n%s\r\n" % (nk, len(n), n)
                exp += b"STORED\r\n"
                model[nk] = n
            delta = rng.choice([0, 1, 7, 1000, 2**32, 2**63])
            req += b"%s %s %d\r\n" % (op.encode(), nk, delta)
            old = int(model[nk])
            new = (old + delta) % 2**64 if op == "incr" else max(0, old - delta)
            s = str(new).encode()
            exp += s + b"\r\n"
            # memcached rewrites in place, space-padded, when the number fits
            model[nk] = s if len(s) > len(model[nk]) else s.ljust(len(model[nk]))
        else:
            req += b"version\r\n"
            exp += b"VERSION "  # the rest of the line is checked separately
    conn.send(bytes(req))
    # Compare piecewise so the VERSION lines can carry any version string.
    pieces = bytes(exp).split(b"VERSION ")
    for i, piece in enumerate(pieces):
        conn.expect(piece, timeout=30)
        if i != len(pieces) - 1:
            conn.expect(b"VERSION ")
            assert conn.readline().endswith(CRLF)
    version_line(conn)


def test_noreply_suppresses_every_reply_including_errors(conn):
    big = 3 * 1024 * 1024  # larger than the server's -I 2m
    req = b"".join([
        b"set nr-a 0 0 1 noreply\r\na\r\n",                    # STORED
        b"add nr-a 0 0 1 noreply\r\nb\r\n",                    # NOT_STORED
        b"replace nr-missing 0 0 1 noreply\r\nc\r\n",          # NOT_STORED
        b"append nr-missing 0 0 1 noreply\r\nd\r\n",           # NOT_STORED
        b"prepend nr-missing 0 0 1 noreply\r\ne\r\n",          # NOT_STORED
        b"cas nr-a 0 0 1 18446744073709551615 noreply\r\nf\r\n",  # EXISTS
        b"cas nr-missing 0 0 1 1 noreply\r\ng\r\n",            # NOT_FOUND
        b"incr nr-a 1 noreply\r\n",                            # CLIENT_ERROR
        b"incr nr-a abc noreply\r\n",                          # CLIENT_ERROR
        b"incr nr-missing 1 noreply\r\n",                      # NOT_FOUND
        b"set nr-n 0 0 2 noreply\r\n10\r\n",
        b"decr nr-n 3 noreply\r\n",                            # 7
        b"incr nr-n 5 noreply\r\n",                            # 12
        b"touch nr-missing 10 noreply\r\n",                    # NOT_FOUND
        b"touch nr-a abc noreply\r\n",                         # CLIENT_ERROR
        b"touch nr-a 1000 noreply\r\n",                        # TOUCHED
        b"delete nr-missing noreply\r\n",                      # NOT_FOUND
        b"set nr-b 0 0 1 noreply\r\nb\r\n",
        b"delete nr-b noreply\r\n",                            # DELETED
        b"delete nr-b 0 noreply\r\n",                          # NOT_FOUND
        b"delete nr-b x noreply\r\n",                          # CLIENT_ERROR
        b"set nr-c 0 0 abc noreply\r\n",                       # CLIENT_ERROR
        b"set nr-c 0 0 -1 noreply\r\n",                        # CLIENT_ERROR
        b"set nr-big 0 0 %d noreply\r\n" % big,                # SERVER_ERROR
        b"x" * big + b"\r\n",                                  # ...swallowed
        b"set nr-d 0 0 1 noreply\r\nxyz\r\n",                  # bad data chunk
        # (the leftover "\r\n" of that bad chunk is its own line; memcached
        # answers it with ERROR, so it is not part of this test)
    ])
    conn.send(req)
    conn.expect(b"ERROR\r\n")  # the empty line left over by the bad chunk
    more = b"".join([
        b"verbosity 0 noreply\r\n",                            # OK
        b"verbosity abc noreply\r\n",                          # CLIENT_ERROR
        b"cache_memlimit 64 noreply\r\n",                      # OK
        b"flush_all 100000 noreply\r\n",                       # OK (delayed)
        b"flush_all 1000000000 noreply\r\n",                   # OK (cancels)
        b"get nr-a nr-n nr-b nr-big\r\n",
    ])
    conn.send(more)
    conn.expect(b"VALUE nr-a 0 1\r\na\r\nVALUE nr-n 0 2\r\n12\r\nEND\r\n")
    version_line(conn)


# ------------------------------------------------------ rejected stores, keys


def test_too_large_set_swallows_its_data_block(conn):
    size = 3 * 1024 * 1024
    # The data block looks like commands; none of it may be executed.
    data = (b"set evil 0 0 1\r\nx\r\n" * (size // 19 + 1))[:size]
    conn.send(b"set tl-key 0 0 5\r\nhello\r\n")
    conn.expect(b"STORED\r\n")
    conn.send(b"set tl-key 0 0 %d\r\n%s\r\nget tl-key evil\r\n" % (size, data))
    # memcached also unlinks the old value of a key whose set failed, so a
    # failed overwrite never leaves stale data behind.
    conn.expect(b"SERVER_ERROR object too large for cache\r\nEND\r\n")
    conn.send(b"set tl-key 0 0 5\r\nhello\r\n")
    conn.expect(b"STORED\r\n")
    # a too-large append keeps the old value
    conn.send(b"append tl-key 0 0 %d\r\n%s\r\nget tl-key\r\n" % (size, data))
    conn.expect(b"SERVER_ERROR object too large for cache\r\n"
                b"VALUE tl-key 0 5\r\nhello\r\nEND\r\n")
    version_line(conn)


def test_key_length_250_ok_251_client_error(conn):
    k250 = b"k" * 250
    k251 = b"k" * 251
    conn.send(b"set %s 0 0 2\r\nok\r\nget %s\r\n" % (k250, k250))
    conn.expect(b"STORED\r\nVALUE %s 0 2\r\nok\r\nEND\r\n" % k250)
    # memcached does not swallow the data block of a bad command line: the
    # data line is then read as a command and answered with ERROR.
    conn.send(b"set %s 0 0 2\r\nok\r\n" % k251)
    conn.expect(b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    for cmd in [b"get " + k251, b"gets " + k251, b"get " + k250 + b" " + k251,
                b"delete " + k251, b"incr " + k251 + b" 1",
                b"decr " + k251 + b" 1", b"touch " + k251 + b" 10",
                b"gat 10 " + k251]:
        conn.send(cmd + b"\r\n")
        conn.expect(b"CLIENT_ERROR bad command line format\r\n")
    version_line(conn)


@pytest.mark.strata_only
def test_long_key_in_get_keeps_earlier_pipelined_replies(conn):
    """memcached 1.6.18 answers a get with a key over 250 bytes by dropping
    every reply not yet sent on the connection, those of earlier pipelined
    commands included (here: the STORED), so what is lost depends on how the
    requests were split into reads.  strata keeps every reply, in order."""
    k251 = b"k" * 251
    conn.send(b"set lk-a 0 0 1\r\nx\r\ndelete lk-none\r\nget lk-a %s\r\n"
              b"get lk-a\r\n" % k251)
    conn.expect(b"STORED\r\nNOT_FOUND\r\n"
                b"CLIENT_ERROR bad command line format\r\n"
                b"VALUE lk-a 0 1\r\nx\r\nEND\r\n")
    version_line(conn)


@pytest.mark.strata_only
def test_stats_reports_the_network_io_mode(conn):
    """`stats` says how sockets are read and written: the mode asked for with
    --network-io, or what `auto` found (io_uring unless it is refused)."""
    mode = dict(stats(conn)).get(b"network_io_mode")
    asked = os.environ.get("STRATA_NETWORK_IO", "")
    if asked in ("io_uring", "syscalls"):
        assert mode == asked.encode()
    else:
        assert mode in (b"io_uring", b"syscalls")


def test_keys_with_control_and_high_bytes(conn):
    # memcached 1.6.18 splits only on ' ' (and the line end); other bytes,
    # control bytes included, are part of the key.
    for key in [b"a\x01b", b"tab\there", b"del\x7f", b"esc\x1b[0m",
                b"hi\x80\xff", "ключ".encode(), b"cr\rmid"]:
        conn.send(b"set %s 0 0 3\r\nabc\r\nget %s\r\n" % (key, key))
        conn.expect(b"STORED\r\nVALUE %s 0 3\r\nabc\r\nEND\r\n" % key)
    version_line(conn)


def test_trailing_spaces_and_bare_newlines(conn):
    conn.send(b"set ts 0 0 1 \r\nx\r\n")
    conn.expect(b"STORED\r\n")
    conn.send(b"set  ts  0  0  1  \nx\r\n")
    conn.expect(b"STORED\r\n")
    conn.send(b"get ts   \r\n")
    conn.expect(b"VALUE ts 0 1\r\nx\r\nEND\r\n")
    conn.send(b"   get ts\n")
    conn.expect(b"VALUE ts 0 1\r\nx\r\nEND\r\n")
    conn.send(b"delete ts \r\n")
    conn.expect(b"DELETED\r\n")
    # the data block must end in \r\n exactly
    conn.send(b"set ts 0 0 1\r\nx\n\r\n")
    conn.expect(b"CLIENT_ERROR bad data chunk\r\nERROR\r\n")
    conn.send(b"\r\n \r\n\n")
    conn.expect(b"ERROR\r\nERROR\r\nERROR\r\n")
    version_line(conn)


def test_long_line_without_newline_closes_connection(server):
    # memcached: more than 2048 bytes without a newline that is not a
    # get/gets closes the connection (no reply).
    with Conn.to(server) as c:
        c.send(b"set " + b"k" * 3000)
        assert c.wait_closed(timeout=5) == b""
    with Conn.to(server) as c:  # server still fine
        version_line(c)


# ----------------------------------------------------------- multi-get, flags


def _store_many(conn, keys, size):
    req = bytearray()
    for k in keys:
        req += b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, size,
                                                     value_for(k, size))
    conn.send(bytes(req))
    version_line(conn)


@pytest.mark.parametrize("slow", [False, True], ids=["fast", "slow-reader"])
def test_get_5000_keys_in_one_request(server, slow):
    keys = [b"mg-%05d" % i for i in range(5000)]
    stored = keys[::2]
    size = 2000
    with Conn.to(server) as c:
        _store_many(c, stored, size)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if slow:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(server.address)
    c = Conn(sock, timeout=30)
    try:
        c.send(b"get " + b" ".join(keys) + b"\r\n")
        if slow:
            # Read a little at a time, pausing: the server must neither drop
            # nor reorder anything while the client lags.
            got = bytearray()
            expected_len = sum(len(b"VALUE %s 0 %d\r\n" % (k, size)) + size + 2
                               for k in stored) + 5
            deadline = time.monotonic() + 60
            while len(got) < expected_len and time.monotonic() < deadline:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
                if len(got) % 16 == 0:
                    time.sleep(0.001)
            c.buf[:0] = got
        values = c.read_values()
        assert [v[0] for v in values] == stored
        for key, flags, data, cas in values:
            assert flags == 0 and cas is None
            assert data == value_for(key, size), f"corrupt value for {key!r}"
        # same with gets: every item carries a unique
        c.send(b"gets " + b" ".join(keys) + b"\r\n")
        values = c.read_values()
        assert [v[0] for v in values] == stored
        assert all(v[3] is not None for v in values)
        assert len({v[3] for v in values}) == len(values)
        version_line(c)
    finally:
        c.close()


def test_flags_full_32_bits_untouched(conn):
    for flags in [0, 1, 255, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 2,
                  2**32 - 1]:
        conn.send(b"set fl 0 0 1\r\nx\r\n".replace(b" 0 0", b" %d 0" % flags))
        conn.expect(b"STORED\r\n")
        conn.send(b"get fl\r\ngets fl\r\n")
        conn.expect(b"VALUE fl %d 1\r\nx\r\nEND\r\n" % flags)
        values = conn.read_values()
        assert values[0][1] == flags
    # not a number / negative / beyond 64 bits: rejected, data block not
    # swallowed (it is answered as a command line)
    for bad in [b"-1", b"abc", b"99999999999999999999", b"0x10", b"1.5"]:
        conn.send(b"set fl %s 0 1\r\nx\r\n" % bad)
        conn.expect(b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    version_line(conn)


# ------------------------------------------------------------------- expiry


def test_exptime_negative_and_absolute_past_are_expired(conn):
    now = int(time.time())
    for exptime in [-1, -100, -2147483648, 2592001, 1000000000, now - 10]:
        conn.send(b"set ex 0 %d 1\r\nx\r\nget ex\r\n" % exptime)
        conn.expect(b"STORED\r\nEND\r\n")
    for exptime in [0, 1000, 2592000, now + 1000, 2147483647]:
        conn.send(b"set ex 0 %d 1\r\nx\r\nget ex\r\n" % exptime)
        conn.expect(b"STORED\r\nVALUE ex 0 1\r\nx\r\nEND\r\n")
    conn.send(b"set ex 0 abc 1\r\nx\r\n")
    conn.expect(b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    # touch / gat to an expired time removes the item
    conn.send(b"set ex 0 0 1\r\nx\r\ntouch ex -1\r\nget ex\r\n")
    conn.expect(b"STORED\r\nTOUCHED\r\nEND\r\n")
    conn.send(b"set ex 0 0 1\r\nx\r\ngat -1 ex\r\nget ex\r\n")
    conn.expect(b"STORED\r\nVALUE ex 0 1\r\nx\r\nEND\r\nEND\r\n")
    version_line(conn)


def test_relative_and_absolute_ttls_expire(conn):
    """Short TTLs (2 s) with one bounded sleep; touch/gat/gats extend or
    shorten them."""
    now = int(time.time())
    conn.send(b"".join([
        b"set ttl-a 0 2 1\r\na\r\n",          # expires
        b"set ttl-b 0 2 1\r\nb\r\n",          # touched to 1000: stays
        b"touch ttl-b 1000\r\n",
        b"set ttl-c 0 2 1\r\nc\r\n",          # gat 1000: stays
        b"gat 1000 ttl-c\r\n",
        b"set ttl-d 0 1000 1\r\nd\r\n",       # touched down to 2: expires
        b"touch ttl-d 2\r\n",
        b"set ttl-e 0 2 1\r\ne\r\n",          # gats 1000: stays
        b"gats 1000 ttl-e\r\n",
        b"set ttl-f 0 %d 1\r\nf\r\n" % (now + 2),     # absolute: expires
        b"set ttl-g 0 %d 1\r\ng\r\n" % (now + 1000),  # absolute: stays
        b"get ttl-a ttl-b ttl-c ttl-d ttl-e ttl-f ttl-g\r\n",
    ]))
    conn.expect(b"STORED\r\nSTORED\r\nTOUCHED\r\nSTORED\r\n"
                b"VALUE ttl-c 0 1\r\nc\r\nEND\r\nSTORED\r\nTOUCHED\r\nSTORED\r\n")
    values = conn.read_values()   # gats
    assert [v[0] for v in values] == [b"ttl-e"] and values[0][3] is not None
    conn.expect(b"STORED\r\nSTORED\r\n")
    values = conn.read_values()
    assert [v[0] for v in values] == [b"ttl-a", b"ttl-b", b"ttl-c", b"ttl-d",
                                      b"ttl-e", b"ttl-f", b"ttl-g"]
    time.sleep(3.5)
    conn.send(b"get ttl-a ttl-b ttl-c ttl-d ttl-e ttl-f ttl-g\r\n")
    values = conn.read_values()
    assert [v[0] for v in values] == [b"ttl-b", b"ttl-c", b"ttl-e", b"ttl-g"]


@pytest.mark.strata_only
@pytest.mark.parametrize("later", [b"100000", b"2000000000", b"1000000000",
                                   b"2592000"])
def test_flushed_items_stay_flushed(conn, later):
    """memcached 1.6.18 brings items flushed by `flush_all` back to life when
    a later `flush_all <delay>` (or an absolute time in the past) comes before
    they were touched: the flush check is lazy and only the newest deadline
    is kept.  A flushed item must never be returned again."""
    conn.send(b"set fl-a 0 0 1\r\na\r\nflush_all\r\nflush_all %s\r\n"
              b"get fl-a\r\n" % later)
    conn.expect(b"STORED\r\nOK\r\nOK\r\nEND\r\n")
    # items stored after it are there until the new deadline
    conn.send(b"set fl-b 0 0 1\r\nb\r\nget fl-b\r\nflush_all\r\nget fl-b\r\n")
    conn.expect(b"STORED\r\nVALUE fl-b 0 1\r\nb\r\nEND\r\nOK\r\nEND\r\n")
    version_line(conn)


# ---------------------------------------------------------------- incr/decr


def test_incr_decr_wrap_clamp_and_errors(conn):
    max64 = b"18446744073709551615"
    conn.send(b"set n 0 0 20\r\n%s\r\nincr n 1\r\n" % max64)
    conn.expect(b"STORED\r\n0\r\n")                      # wraps at 2^64
    conn.send(b"get n\r\n")                              # in place, padded
    conn.expect(b"VALUE n 0 20\r\n0" + b" " * 19 + b"\r\nEND\r\n")
    conn.send(b"incr n 18446744073709551615\r\n")
    conn.expect(max64 + b"\r\n")
    conn.send(b"incr n 2\r\n")
    conn.expect(b"1\r\n")
    for bad in [b"18446744073709551616", b"-1", b"abc", b"1x", b"1.5"]:
        conn.send(b"incr n %s\r\n" % bad)
        conn.expect(b"CLIENT_ERROR invalid numeric delta argument\r\n")
        conn.send(b"decr n %s\r\n" % bad)
        conn.expect(b"CLIENT_ERROR invalid numeric delta argument\r\n")
    conn.send(b"set n 0 0 2\r\n10\r\ndecr n 3\r\ndecr n 100\r\nget n\r\n")
    conn.expect(b"STORED\r\n7\r\n0\r\nVALUE n 0 2\r\n0 \r\nEND\r\n")
    conn.send(b"incr n 12345\r\nget n\r\n")              # grows past length
    conn.expect(b"12345\r\nVALUE n 0 5\r\n12345\r\nEND\r\n")
    # (not a whitespace-only value: memcached's strtoull then reads past the
    # value's "\r\n" into neighbouring memory)
    for value in [b"abc", b"", b"-5", b"1x2", b"18446744073709551616",
                  b"+", b"x "]:
        conn.send(b"set s 0 0 %d\r\n%s\r\nincr s 1\r\ndecr s 1\r\n"
                  % (len(value), value))
        conn.expect(b"STORED\r\n" + b"CLIENT_ERROR cannot increment or "
                    b"decrement non-numeric value\r\n" * 2)
    # the number is parsed like strtoull: leading spaces, a '+' and anything
    # after a space are accepted ("12 34" counts as 12)
    conn.send(b"set s 0 0 5\r\n12 34\r\nincr s 1\r\nget s\r\n")
    conn.expect(b"STORED\r\n13\r\nVALUE s 0 5\r\n13   \r\nEND\r\n")
    conn.send(b"set s 0 0 4\r\n  +9\r\nincr s 1\r\n")
    conn.expect(b"STORED\r\n10\r\n")
    conn.send(b"incr missing-n 1\r\ndecr missing-n 1\r\n")
    conn.expect(b"NOT_FOUND\r\nNOT_FOUND\r\n")
    conn.send(b"incr n\r\nincr\r\nincr n 1 2 3\r\n")
    conn.expect(b"ERROR\r\nERROR\r\nERROR\r\n")
    version_line(conn)


# ---------------------------------------------------------------------- cas


def test_cas_uniques(conn):
    conn.send(b"set cas-a 0 0 1\r\na\r\nset cas-b 0 0 1\r\nb\r\n"
              b"gets cas-a cas-b\r\n")
    conn.expect(b"STORED\r\nSTORED\r\n")
    (ka, _, _, ua), (kb, _, _, ub) = conn.read_values()
    assert (ka, kb) == (b"cas-a", b"cas-b")
    assert ua != ub, "cas uniques must differ between keys"
    conn.send(b"set cas-a 0 0 1\r\nA\r\ngets cas-a\r\n")
    conn.expect(b"STORED\r\n")
    [(_, _, _, ua2)] = conn.read_values()
    assert ua2 not in (ua, ub), "a write must give a new unique"
    conn.send(b"cas cas-a 0 0 1 %d\r\nX\r\n" % ua)       # stale
    conn.expect(b"EXISTS\r\n")
    conn.send(b"cas cas-a 7 0 1 %d\r\nY\r\n" % ua2)      # right
    conn.expect(b"STORED\r\n")
    conn.send(b"cas cas-a 0 0 1 %d\r\nZ\r\n" % ua2)      # used up
    conn.expect(b"EXISTS\r\n")
    conn.send(b"cas cas-missing 0 0 1 %d\r\nZ\r\n" % ua2)
    conn.expect(b"NOT_FOUND\r\n")
    conn.send(b"get cas-a\r\n")
    conn.expect(b"VALUE cas-a 7 1\r\nY\r\nEND\r\n")
    conn.send(b"cas cas-a 0 0 1\r\nZ\r\n")               # missing unique
    conn.expect(b"ERROR\r\nERROR\r\n")
    conn.send(b"cas cas-a 0 0 1 abc\r\nZ\r\n")
    conn.expect(b"CLIENT_ERROR bad command line format\r\nERROR\r\n")
    version_line(conn)


# ------------------------------------------- misc commands, stats, settings


def test_verbosity_version_unknown_and_quit(server):
    with Conn.to(server) as c:
        c.send(b"verbosity 1\r\nverbosity 0\r\nverbosity\r\n"
               b"verbosity 0 noreply\r\nverbosity x\r\n")
        c.expect(b"OK\r\nOK\r\nERROR\r\n"
                 b"CLIENT_ERROR bad command line format\r\n")
        version_line(c)
        for cmd in [b"foo", b"GET x", b"sets x 0 0 1", b"x", b"getx k",
                    b"gets", b"get", b"set", b"delete", b"touch x",
                    b"stats nonsense-subcommand"]:
            c.send(cmd + b"\r\n")
            c.expect(b"ERROR\r\n")
        version_line(c)
        c.send(b"quit\r\nset after-quit 0 0 1\r\nx\r\n")
        assert c.wait_closed(timeout=5) == b""
    with Conn.to(server) as c:
        c.send(b"get after-quit\r\n")
        c.expect(b"END\r\n")


def _stats_dict(conn, sub=b""):
    return dict(stats(conn, sub))


# The fields prometheus/memcached_exporter (pkg/exporter/exporter.go) reads.
# It sends "stats", "stats slabs", "stats items" and "stats settings";
# cmd_set and cas_hits/cas_misses/cas_badval are required (without them it
# reports memcached_up 0); the others it exports when present, all parsed as
# floats (rusage_* as "seconds.microseconds").  We require every one that
# memcached 1.6.18 sends.
EXPORTER_STATS = [
    "uptime", "time", "version", "rusage_user", "rusage_system",
    "curr_connections", "total_connections", "rejected_connections",
    "conn_yields", "listen_disabled_num", "accepting_conns",
    "bytes", "limit_maxbytes", "curr_items", "total_items",
    "bytes_read", "bytes_written", "evictions", "reclaimed",
    "store_too_large", "store_no_memory", "cmd_set", "cmd_flush",
    "get_hits", "get_misses", "delete_hits", "delete_misses",
    "incr_hits", "incr_misses", "decr_hits", "decr_misses",
    "cas_hits", "cas_misses", "cas_badval", "touch_hits", "touch_misses",
    "lru_crawler_starts", "direct_reclaims", "crawler_items_checked",
    "crawler_reclaimed", "moves_to_cold", "moves_to_warm", "moves_within_lru",
]
EXPORTER_SETTINGS = ["maxconns"]
EXPORTER_SETTINGS_IF_LRU_CRAWLER = [
    "lru_crawler_sleep", "lru_crawler_tocrawl", "hot_lru_pct", "warm_lru_pct",
    "hot_max_factor", "warm_max_factor"]
EXPORTER_SETTINGS_BOOL_IF_LRU_CRAWLER = ["lru_crawler", "lru_maintainer_thread"]
EXPORTER_ITEMS = [  # per slab class: "STAT items:<class>:<field> <value>"
    "number", "age", "hits_to_hot", "hits_to_warm", "hits_to_cold",
    "hits_to_temp", "evicted", "evicted_nonzero", "evicted_time",
    "evicted_unfetched", "expired_unfetched", "outofmemory", "reclaimed",
    "tailrepairs", "crawler_reclaimed", "mem_requested", "moves_to_cold",
    "moves_to_warm", "moves_within_lru", "number_hot", "number_warm",
    "number_cold", "age_hot", "age_warm"]
EXPORTER_SLABS = [  # per slab class: "STAT <class>:<field> <value>"
    "chunk_size", "chunks_per_page", "total_pages", "total_chunks",
    "used_chunks", "free_chunks", "free_chunks_end", "get_hits", "cmd_set",
    "delete_hits", "incr_hits", "decr_hits", "cas_hits", "cas_badval",
    "touch_hits"]
EXPORTER_SLABS_GLOBAL = ["active_slabs", "total_malloced"]


def _is_number(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def test_stats_fields_memcached_exporter_reads(server):
    with Conn.to(server) as c:
        c.send(b"set st-a 0 0 5\r\nhello\r\nget st-a\r\n")
        c.expect(b"STORED\r\nVALUE st-a 0 5\r\nhello\r\nEND\r\n")
        s = {k.decode(): v.decode() for k, v in stats(c)}
        missing = [f for f in EXPORTER_STATS if f not in s]
        assert not missing, f"stats lacks {missing}"
        for f in EXPORTER_STATS:
            if f == "version":
                continue
            assert _is_number(s[f]), f"stats {f}={s[f]!r} is not a number"
        for f in ("rusage_user", "rusage_system"):
            sec, _, usec = s[f].partition(".")
            assert sec.isdigit() and usec.isdigit(), f"{f}={s[f]!r}"
        assert int(s["limit_maxbytes"]) == 64 * 1024 * 1024
        assert int(s["curr_connections"]) >= 1
        assert int(s["curr_items"]) >= 1

        st = {k.decode(): v.decode() for k, v in stats(c, b"settings")}
        for f in EXPORTER_SETTINGS:
            assert f in st and _is_number(st[f]), f"stats settings {f}"
        assert st.get("lru_crawler") in ("yes", "no"), st.get("lru_crawler")
        if st["lru_crawler"] == "yes":
            for f in EXPORTER_SETTINGS_IF_LRU_CRAWLER:
                assert f in st and _is_number(st[f]), f"stats settings {f}"
            for f in EXPORTER_SETTINGS_BOOL_IF_LRU_CRAWLER:
                assert st.get(f) in ("yes", "no"), f"stats settings {f}"

        items = stats(c, b"items")
        per_class = {}
        for k, v in items:
            parts = k.decode().split(":")
            assert len(parts) == 3 and parts[0] == "items" \
                and parts[1].isdigit(), f"bad stats items name {k!r}"
            assert _is_number(v.decode()), f"{k!r}={v!r}"
            per_class.setdefault(parts[1], set()).add(parts[2])
        assert per_class, "stats items has no slab class after a set"
        for cls, fields in per_class.items():
            missing = [f for f in EXPORTER_ITEMS if f not in fields]
            assert not missing, f"stats items class {cls} lacks {missing}"

        slabs = stats(c, b"slabs")
        per_class = {}
        glob = {}
        for k, v in slabs:
            parts = k.decode().split(":")
            assert _is_number(v.decode()), f"{k!r}={v!r}"
            if len(parts) == 1:
                glob[parts[0]] = v
            else:
                assert len(parts) == 2 and parts[0].isdigit(), k
                per_class.setdefault(parts[0], set()).add(parts[1])
        assert per_class, "stats slabs has no slab class after a set"
        for cls, fields in per_class.items():
            missing = [f for f in EXPORTER_SLABS if f not in fields]
            assert not missing, f"stats slabs class {cls} lacks {missing}"
        for f in EXPORTER_SLABS_GLOBAL:
            assert f in glob, f"stats slabs lacks {f}"


def test_stats_conns_and_end(server):
    with Conn.to(server) as c:
        version_line(c)
        my_port = c.sock.getsockname()[1]
        conns = stats(c, b"conns")
        assert conns, "stats conns is empty"
        for k, _ in conns:
            fd, _, field = k.decode().partition(":")
            assert fd.isdigit() and field, f"bad stats conns name {k!r}"
        addrs = [v.decode() for k, v in conns if k.endswith(b":addr")]
        assert any(a.endswith(f":{my_port}") for a in addrs), addrs
        # every stats variant is terminated by END (checked by stats())
        for sub in [b"", b"settings", b"items", b"slabs", b"conns"]:
            stats(c, sub)
        c.send(b"stats  \r\n")   # trailing spaces: plain stats
        while c.readline() != b"END\r\n":
            pass
        version_line(c)


def test_stats_counters_move(server_factory):
    srv = server_factory(memory_mb=64)
    with Conn.to(srv) as c:
        before = _stats_dict(c)
        c.send(b"".join([
            b"set a 0 0 1\r\n1\r\n", b"get a\r\n", b"get nope\r\n",
            b"incr a 1\r\n", b"incr nope 1\r\n", b"decr a 1\r\n",
            b"decr nope 1\r\n", b"touch a 100\r\n", b"touch nope 1\r\n",
            b"cas a 0 0 1 18446744073709551615\r\nx\r\n",
            b"cas nope 0 0 1 1\r\nx\r\n", b"delete a\r\n", b"delete a\r\n",
            b"flush_all\r\n"]))
        c.expect(b"STORED\r\nVALUE a 0 1\r\n1\r\nEND\r\nEND\r\n2\r\nNOT_FOUND"
                 b"\r\n1\r\nNOT_FOUND\r\nTOUCHED\r\nNOT_FOUND\r\nEXISTS\r\n"
                 b"NOT_FOUND\r\nDELETED\r\nNOT_FOUND\r\nOK\r\n")
        after = _stats_dict(c)
        delta = {k.decode(): int(after[k]) - int(before[k])
                 for k in [b"get_hits", b"get_misses", b"incr_hits",
                           b"incr_misses", b"decr_hits", b"decr_misses",
                           b"touch_hits", b"touch_misses", b"cas_badval",
                           b"cas_misses", b"delete_hits", b"delete_misses",
                           b"cmd_flush", b"total_items"]}
        assert delta == {"get_hits": 1, "get_misses": 1, "incr_hits": 1,
                         "incr_misses": 1, "decr_hits": 1, "decr_misses": 1,
                         "touch_hits": 1, "touch_misses": 1, "cas_badval": 1,
                         "cas_misses": 1, "delete_hits": 1,
                         "delete_misses": 1, "cmd_flush": 1,
                         "total_items": delta["total_items"]}
        assert delta["total_items"] >= 1
        assert int(after[b"cmd_set"]) - int(before[b"cmd_set"]) >= 3


def test_cache_memlimit(server_factory):
    srv = server_factory(memory_mb=64)
    with Conn.to(srv) as c:
        c.send(b"cache_memlimit 100\r\n")
        c.expect(b"OK\r\n")
        assert _stats_dict(c)[b"limit_maxbytes"] == b"%d" % (100 << 20)
        c.send(b"cache_memlimit 0\r\ncache_memlimit 7\r\n")
        c.expect(b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
                 * 2)
        c.send(b"cache_memlimit abc\r\ncache_memlimit -5\r\ncache_memlimit\r\n")
        c.expect(b"ERROR\r\nERROR\r\nERROR\r\n")
        c.send(b"cache_memlimit 2000000000\r\n")
        c.expect(b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
                 b"\r\n")
        c.send(b"cache_memlimit 80 noreply\r\n")
        assert _stats_dict(c)[b"limit_maxbytes"] == b"%d" % (80 << 20)


def test_shutdown_disabled_by_default(server):
    with Conn.to(server) as c:
        c.send(b"shutdown\r\nshutdown graceful\r\n")
        c.expect(b"ERROR: shutdown not enabled\r\n" * 2)
        version_line(c)
    assert server.alive()


def test_shutdown_enabled_with_A(server_factory):
    srv = server_factory(enable_shutdown=True)
    with Conn.to(srv) as c:
        c.send(b"shutdown bogus\r\n")
        c.expect(b"CLIENT_ERROR invalid shutdown mode\r\n")
        c.send(b"shutdown\r\n")
        assert c.wait_closed(timeout=5) == b""
    srv.process.wait(10)
    assert srv.process.returncode == 0


# ------------------------------------------------ admin commands (strata's)
# test_differential.py compares the admin commands with memcached; these pin
# where strata answers differently, on purpose.


@pytest.mark.strata_only
def test_slabs_reassign_knows_one_class(conn):
    """strata reports one slab class, 1 (and memcached's page pool, 0): a
    page move to another class is BADCLASS, where memcached, with its ~40
    classes, answers NOSPARE."""
    assert conn.call(b"slabs reassign 1 2\r\n") == \
        b"BADCLASS invalid src or dst class id\r\n"
    assert conn.call(b"slabs reassign 1 0\r\n") == \
        b"NOSPARE source class has no spare pages\r\n"


def _read_metadump(conn, prefix):
    """The metadump lines of keys starting with `prefix`, up to END."""
    lines = []
    while True:
        line = conn.readline()
        if line == b"END\r\n":
            return lines
        assert line.startswith(b"key=") and line.endswith(b"\n") and \
            not line.endswith(b"\r\n"), line
        if line.startswith(b"key=" + prefix):
            lines.append(line)


@pytest.mark.strata_only
def test_metadump_streams_every_item_and_goes_on(server):
    """A metadump of many items is streamed (the connection pauses at its
    output watermark, so a slow reader costs no more), lists each item once,
    and the commands pipelined behind it are answered at once: memcached
    runs them only when more bytes arrive, and a "hash" walk of its can
    miss its start signal and never answer."""
    keys = [b"mdstream-%06d" % i for i in range(60000)]  # 5 MB of lines
    with Conn.to(server, timeout=30) as c:
        for i in range(0, len(keys), 1000):
            c.send(b"".join(b"set %s 0 0 100 noreply\r\n%s\r\n" %
                            (k, b"v" * 100) for k in keys[i:i + 1000]))
        version_line(c)
        for walk in (b"all", b"hash"):
            c.send(b"lru_crawler metadump %s\r\nversion\r\n" % walk)
            time.sleep(0.5)  # the client reads late
            lines = _read_metadump(c, b"mdstream-")
            assert len(lines) == len(keys)
            assert sorted(line.split(b" ")[0][4:] for line in lines) == keys
            assert c.readline().startswith(b"VERSION ")


# -------------------------------------------------------- connection limits


def _open_until_rejected(srv, limit):
    accepted, rejected_reply = [], None
    for _ in range(limit + 10):
        c = Conn.to(srv, timeout=5)
        c.send(b"version\r\n")
        try:
            line = c.readline()
        except AssertionError:
            line = bytes(c.buf)
        if line.startswith(b"VERSION "):
            accepted.append(c)
            continue
        rest = b""
        try:
            rest = c.wait_closed(timeout=5)
        except AssertionError as e:
            pytest.fail(f"rejected connection not closed: {e}")
        c.close()
        rejected_reply = line + rest
        break
    return accepted, rejected_reply


def test_max_connections_exceeded(server_factory, is_memcached):
    limit = 30
    srv = server_factory(max_conns=limit)
    accepted, rejected = _open_until_rejected(srv, limit)
    try:
        assert rejected is not None, \
            f"{len(accepted)} connections accepted with -c {limit}"
        # memcached (maxconns_fast): accept, send this line, close.
        assert rejected == b"ERROR Too many open connections\r\n"
        assert 1 <= len(accepted) <= limit
        for c in accepted:  # the accepted ones are unharmed
            version_line(c)
        s = _stats_dict(accepted[0])
        assert int(s[b"rejected_connections"]) >= 1
        assert s[b"max_connections"] == b"%d" % limit
        assert _stats_dict(accepted[0], b"settings")[b"maxconns"] == \
            b"%d" % limit
        # closing one makes room again (bounded wait for the server to notice)
        accepted.pop().close()
        deadline = time.monotonic() + 5
        while True:
            c = Conn.to(srv, timeout=5)
            c.send(b"version\r\n")
            try:
                line = c.readline()
            except AssertionError:
                line = b""
            if line.startswith(b"VERSION "):
                accepted.append(c)
                break
            c.close()
            assert time.monotonic() < deadline, "no room after a close"
            time.sleep(0.1)
        if not is_memcached:
            # strata counts client connections only: -c N admits exactly N.
            # (memcached counts its own listening/reserved fds too: -c 30
            # admits 5 clients.)
            assert len(accepted) == limit
    finally:
        for c in accepted:
            c.close()


# ---------------------------------------------------------------- unix socket


@pytest.mark.parametrize("mask", ["0600", "0640"])
def test_unix_socket_permissions_and_traffic(server_factory, mask):
    d = tempfile.mkdtemp(prefix="strata-it-")
    path = os.path.join(d, "s.sock")
    try:
        srv = server_factory(unix_socket=path, unix_mask=mask)
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == int(mask, 8), oct(st.st_mode)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        with Conn(s) as c:
            big = value_for(b"unix", 100_000)
            c.send(b"set unix 0 0 %d\r\n%s\r\nget unix\r\n" % (len(big), big))
            c.expect(b"STORED\r\nVALUE unix 0 %d\r\n%s\r\nEND\r\n"
                     % (len(big), big))
            version_line(c)
        srv.stop()
    finally:
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(d)


# -------------------------------------------------------------- termination


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_signal_with_connected_clients_exits_0(server_factory, sig):
    srv = server_factory()
    idle = Conn.to(srv)
    version_line(idle)
    mid = Conn.to(srv)
    mid.send(b"set half 0 0 100\r\nonly-part-of-the-data")
    time.sleep(0.2)
    t0 = time.monotonic()
    os.kill(srv.pid, sig)
    try:
        rc = srv.process.wait(5)
    except Exception:
        pytest.fail(f"server still running 5 s after {sig.name}")
    elapsed = time.monotonic() - t0
    assert rc == 0, f"exit code {rc} after {sig.name}; output: {srv.output()}"
    assert elapsed < 5
    assert idle.wait_closed(timeout=5) == b""
    idle.close()
    mid.close()


# ------------------------------------------------------- slow / dead readers


@pytest.mark.rss_bound
def test_client_that_never_reads_cannot_grow_rss(server_factory, is_memcached):
    """Many gets of a 1 MiB value from a client that never reads: the server
    must push back (stop reading that client, or close it), not buffer."""
    srv = server_factory(memory_mb=64, item_size="2m")
    size = 1024 * 1024
    with Conn.to(srv) as c:
        c.send(b"set big 0 0 %d\r\n%s\r\n" % (size, value_for(b"big", size)))
        c.expect(b"STORED\r\n")
        version_line(c)
    base = srv.rss()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(srv.address)
    s.setblocking(False)
    req = b"get big\r\n" * 1000   # ~1 GB of replies per send
    sent = 0
    peak = base
    deadline = time.monotonic() + 4
    closed = False
    while time.monotonic() < deadline and sent < 4000 * len(b"get big\r\n"):
        try:
            sent += s.send(req)
        except BlockingIOError:
            time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        peak = max(peak, srv.rss())
    time.sleep(0.5)
    peak = max(peak, srv.rss())
    # The server keeps serving other clients meanwhile.
    with Conn.to(srv) as other:
        version_line(other)
    s.close()
    growth = peak - base
    print(f"slow reader: sent {sent} bytes of requests, RSS {base >> 20} MiB "
          f"-> peak {peak >> 20} MiB (growth {growth >> 20} MiB), "
          f"closed by server: {closed}")
    assert growth < SLOW_READER_RSS_BOUND, \
        f"RSS grew {growth >> 20} MiB for a client that never reads"
    assert srv.alive()


# ------------------------------------------------------------ binary protocol


def _bin_header(opcode, key=b"", extras=b"", value=b""):
    body = len(extras) + len(key) + len(value)
    return struct.pack(">BBHBBHIIQ", 0x80, opcode, len(key), len(extras), 0,
                       0, body, 0xdeadbeef, 0) + extras + key + value


def test_binary_protocol_is_answered_as_text(conn, server):
    """memcached -B ascii (and strata, which only speaks text) reads the
    binary magic byte 0x80 as the start of a text line."""
    # binary GET "a": no newline in it, so it is one (unknown) text line once
    # a newline arrives: ERROR
    conn.send(_bin_header(0x00, key=b"a") + b"\r\n")
    conn.expect(b"ERROR\r\n")
    version_line(conn)
    # binary NOOP: its opcode 0x0a is '\n', so "\x80\n" is a line (ERROR) and
    # the 22 header bytes after it (starting with NUL) begin the next line,
    # which swallows the "version" sent after it: ERROR again.
    conn.send(_bin_header(0x0a) + b"version\r\n")
    conn.expect(b"ERROR\r\nERROR\r\n")
    version_line(conn)
    # a binary SET with a 3000-byte value and no newline byte: more than 2048
    # bytes without a newline, so the connection is closed without a reply.
    with Conn.to(server) as c:
        c.send(_bin_header(0x01, key=b"k", extras=b"\x00" * 8,
                           value=b"x" * 3000))
        assert c.wait_closed(timeout=5) == b""
