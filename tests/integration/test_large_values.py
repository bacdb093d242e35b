"""Large values stream from the item's memory (issue 24, part 1).

A value of up to max_item_size is fetched whole by a client that reads,
whatever server.max_output_buffer (64 MiB) and server.max_connection_memory
(auto: 64 MiB here) say, and while it streams, other clients' small requests
on the same worker are answered. A client that stops reading a reply larger
than the cap is cut off, and the others go on. The first test runs against
memcached 1.6.18 (-I 128m) too; the cut-off is strata's own.
"""

import socket
import threading
import time

import pytest
from pymemcache.client.base import Client

MIB = 1 << 20
SIZES_MIB = (1, 32, 64, 100)


def big_value(size, tag):
    unit = (b"%d:%s|" % (size, tag)) + bytes(range(256))
    return (unit * (size // len(unit) + 1))[:size]


def start(server_factory):
    # One worker: the streaming connection and the small requests share it.
    return server_factory(memory_mb=512, threads=1, item_size="128m")


def set_value(srv, key, value):
    c = Client(srv.address, connect_timeout=10, timeout=60)
    try:
        assert c.set(key, value, noreply=False)
    finally:
        c.close()


def slow_get(srv, key):
    """A connection with a small receive buffer that has sent `get key`."""
    s = socket.create_connection(srv.address, timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"get %s\r\n" % key)
    return s


def small_requests(srv, n, errors, done_at):
    try:
        with socket.create_connection(srv.address, timeout=10) as s:
            f = s.makefile("rb")
            for i in range(n):
                v = b"v%06d" % i
                s.sendall(b"set small%d 0 0 %d\r\n%s\r\nget small%d\r\n" % (i, len(v), v, i))
                if f.readline() != b"STORED\r\n":
                    errors.append(f"small set {i}")
                    return
                head = f.readline()
                body = f.readline()
                end = f.readline()
                if (head != b"VALUE small%d 0 %d\r\n" % (i, len(v)) or body != v + b"\r\n"
                        or end != b"END\r\n"):
                    errors.append(f"small get {i}: {head!r} {body!r} {end!r}")
                    return
        done_at.append(time.monotonic())
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(repr(e))


def test_values_up_to_max_item_size_are_fetched_whole(server_factory):
    srv = start(server_factory)
    c = Client(srv.address, connect_timeout=10, timeout=60)
    try:
        for size in SIZES_MIB:
            value = big_value(size * MIB, b"whole")
            assert c.set(b"big%d" % size, value, noreply=False), size
        for size in SIZES_MIB:
            got = c.get(b"big%d" % size)
            assert got is not None, f"{size} MiB: a miss"
            assert got == big_value(size * MIB, b"whole"), f"{size} MiB: wrong bytes"
        # Several in one multi-get, too.
        got = c.get_many([b"big1", b"big32", b"big64"])
        assert sorted(got) == [b"big1", b"big32", b"big64"]
    finally:
        c.close()
    assert srv.alive()


def test_small_requests_are_answered_while_a_large_value_streams(server_factory):
    srv = start(server_factory)
    value = big_value(100 * MIB, b"stream")
    set_value(srv, b"big", value)
    reader = slow_get(srv, b"big")
    try:
        want = len(b"VALUE big 0 %d\r\n" % len(value)) + len(value) + len(b"\r\nEND\r\n")
        got = bytearray()
        # A slow reader: 256 KiB every 10 ms, about 25 MB/s.
        errors, done_at = [], []
        t = threading.Thread(target=small_requests, args=(srv, 300, errors, done_at))
        started = False
        while len(got) < want:
            chunk = reader.recv(256 * 1024)
            if not chunk:
                break
            got += chunk
            if not started and len(got) >= 8 * MIB:
                t.start()
                started = True
            time.sleep(0.01)
        finished = time.monotonic()
        t.join(30)
        assert not errors, errors
        assert done_at, "the small requests did not finish"
        assert done_at[0] < finished, "the small requests waited for the stream to end"
        assert bytes(got) == b"VALUE big 0 %d\r\n" % len(value) + value + b"\r\nEND\r\n"
    finally:
        reader.close()
    assert srv.alive()


@pytest.mark.strata_only
def test_a_client_that_stops_reading_a_large_reply_is_cut_off(server_factory):
    srv = start(server_factory)
    value = big_value(100 * MIB, b"stall")
    set_value(srv, b"big", value)
    stalled = slow_get(srv, b"big")
    try:
        t0 = time.monotonic()
        # Others are answered while it stalls (and after it is cut off).
        errors, done_at = [], []
        small_requests(srv, 200, errors, done_at)
        assert not errors, errors
        # Cut off after 2 s of reading nothing: what it can still read ends
        # (EOF or a reset) well short of the reply.
        time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
        got = 0
        stalled.settimeout(10)
        try:
            while True:
                chunk = stalled.recv(1 << 20)
                if not chunk:
                    break
                got += len(chunk)
        except ConnectionResetError:
            pass
        assert got < len(value), f"the stalled client got {got} bytes: it was not cut off"
        assert "the client read nothing for 2000 ms" in srv.output()
        errors, done_at = [], []
        small_requests(srv, 50, errors, done_at)
        assert not errors, errors
    finally:
        stalled.close()
    assert srv.alive()
    c = Client(srv.address, connect_timeout=10, timeout=60)
    try:
        assert c.get(b"big") == value  # the item itself is untouched
    finally:
        c.close()
