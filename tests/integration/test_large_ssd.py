"""Values larger than an SSD region on the SSD tier (issue 26), end to end.

The real binary, a real cache file read and written through io_uring, real
LZ4. 1, 32, 100 and 200 MiB values (16 MiB regions) are set, pushed to SSD
by a SIGTERM (the shutdown demotes RAM), and read back byte-exact from SSD
after the restart (the large read path: `ssd_large_piece_reads` grows);
values over tiers.ssd.large_item_percent (10) of the RAM tier go straight
to SSD at the set, and a 200 MiB set leaves RAM's items where they are;
then overwritten and deleted, killed with SIGKILL right after the delete's
reply: the delete holds and the old value never returns. A flipped byte in
one piece of the 200 MiB record costs that record only: the others,
neighbours on the device, read back intact. A burst of concurrent 32 MiB
sets into a RAM tier smaller than the burst answers STORED or memcached's
`SERVER_ERROR out of memory storing object`, never crashes, and RSS stays
under the memory formula's bound. The reply lines of set/get/delete of a
32 MiB value match memcached 1.6.18 (-I 256m).

About a minute (io_uring only; the thread-pool path is the same code above
the device, tested by test_ssd.py).
"""

import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import free_port, wait_listening
from memory_formula import memory_limit
from test_ssd import Client, ssd_env
from test_ssd_durability import REGION, records_of, regions_of, flip_bit

pytestmark = pytest.mark.strata_only

MiB = 1 << 20
SIZES_MIB = (1, 32, 100, 200)
RAM_YAML = "  ram:\n    max_item_size: 256MiB\n"
OOM = b"SERVER_ERROR out of memory storing object"


def big_value(size_mib, version):
    rng = random.Random(size_mib * 1000 + version)
    head = b"%d:%d|" % (size_mib, version)
    return head + rng.randbytes(size_mib * MiB - len(head))


def key_of(size_mib):
    return b"large:%d" % size_mib


@pytest.fixture
def env(strata_bin):
    with ssd_env(strata_bin, "io_uring") as e:
        yield e


def start(env, ram_mb=600):
    return env.start(ram_mb=ram_mb, ssd_size="2GiB", extra_yaml=RAM_YAML)


def raw_call(srv, payload, timeout=120):
    """Sends `payload`, returns the reply lines (values skipped by length)."""
    with socket.create_connection(srv.address, timeout=timeout) as s:
        s.sendall(payload)
        f = s.makefile("rb")
        line = f.readline()
        if line.startswith(b"VALUE "):
            n = int(line.split()[3])
            body = f.read(n + 2)
            end = f.readline()
            return line, body[:-2], end
        return (line,)


def set_big(c, key, value):
    return c.store(b"set", key, value, flags=5)


def getv(c, key):
    """The value of `key`, or None."""
    hit = c.get(key)
    return None if hit is None else hit[1]


def test_large_values_set_pushed_read_back_overwritten_deleted_killed(env):
    srv = start(env)
    values = {s: big_value(s, 1) for s in SIZES_MIB}
    with Client(srv) as c:
        for s, v in values.items():
            assert set_big(c, key_of(s), v) == b"STORED"
        assert getv(c, key_of(32)) == values[32]
    env.stop(srv)  # SIGTERM: RAM is demoted to SSD

    srv = start(env)
    with Client(srv) as c:
        st = c.stats()
        assert int(st["ssd_large_items"]) == 3, st  # 1 MiB fits in a region
        for s, v in values.items():
            got = getv(c, key_of(s))
            assert got is not None and len(got) == len(v), s
            assert got == v, s
        st = c.stats()
        assert int(st["ssd_large_piece_reads"]) > 300, st
        assert int(st["ssd_corrupt_records"]) == 0, st
        # Overwrite and delete SSD-resident large values.
        values[32] = big_value(32, 2)
        assert set_big(c, key_of(32), values[32]) == b"STORED"
        assert c.call(b"delete %s" % key_of(100)) == b"DELETED"
    # kill -9 right after the delete's reply.
    env.stop(srv, sig=signal.SIGKILL)

    srv = start(env)
    with Client(srv) as c:
        assert getv(c, key_of(100)) is None  # the delete holds
        got = getv(c, key_of(32))
        # The new value was in RAM only at the kill: a miss, never the old.
        assert got is None or got == values[32]
        assert getv(c, key_of(200)) == values[200]
        assert getv(c, key_of(1)) == values[1]
    env.stop(srv)

    srv = start(env)
    with Client(srv) as c:
        assert getv(c, key_of(100)) is None
        assert getv(c, key_of(200)) == values[200]
    env.stop(srv)


def test_a_200_mib_set_does_not_empty_the_ram_tier(env):
    # RAM 256 MiB, large_item_percent 10 (the default): items over 25.6 MiB
    # go straight to SSD and are served from it.
    srv = env.start(ram_mb=256, ssd_size="1GiB", extra_yaml=RAM_YAML)
    small = {b"s:%04d" % i: random.Random(i).randbytes(100 * 1024)
             for i in range(1800)}  # about 180 MiB in RAM
    value = big_value(200, 7)
    with Client(srv) as c:
        assert all(r == b"STORED" for r in c.set_many(
            (k, v, 0) for k, v in small.items()))
        assert set_big(c, b"huge", value) == b"STORED"
        for _ in range(3):
            assert getv(c, b"huge") == value
        st = c.stats()
        assert int(st["ssd_large_sets"]) == 1, st
        assert int(st["evictions"]) == 0, st
        assert int(st["ssd_promotions"]) == 0, st
        got = c.get_many(list(small))
        assert len(got) == len(small)
        assert all(got[k][1] == v for k, v in small.items())
        assert int(c.stats()["ssd_hits"]) == 3  # the small ones came from RAM
        # Overwritten by a small value, then the large one again, deleted.
        assert c.store(b"set", b"huge", b"tiny") == b"STORED"
        assert getv(c, b"huge") == b"tiny"
        assert set_big(c, b"huge", value) == b"STORED"
        assert c.call(b"delete huge") == b"DELETED"
        assert getv(c, b"huge") is None
    env.stop(srv, sig=signal.SIGKILL)
    srv = env.start(ram_mb=256, ssd_size="1GiB", extra_yaml=RAM_YAML)
    with Client(srv) as c:
        assert getv(c, b"huge") is None
    env.stop(srv)


def test_a_flipped_byte_costs_that_record_only(env):
    srv = start(env)
    values = {s: big_value(s, 3) for s in (32, 100, 32 + 1)}
    keys = {s: key_of(s) for s in values}
    with Client(srv) as c:
        for s, v in values.items():
            assert set_big(c, keys[s], v) == b"STORED"
        small = {b"small:%d" % i: b"v%d" % i for i in range(50)}
        for k, v in small.items():
            assert c.store(b"set", k, v) == b"STORED"
    env.stop(srv)
    # A byte in the middle of one piece of the 100 MiB record.
    pieces = []
    for r, _seq, _state in regions_of(env.device):
        for off, rtype, key in records_of(env.device, r):
            if rtype == 8 and key == keys[100]:
                pieces.append(r * REGION + off + 40 + len(key))
    assert len(pieces) == 100, len(pieces)
    flip_bit(env.device, pieces[len(pieces) // 2] + 1000, 3)

    srv = start(env)
    with Client(srv) as c:
        assert getv(c, keys[100]) is None
        assert getv(c, keys[32]) == values[32]
        assert getv(c, keys[33]) == values[33]
        for k, v in small.items():
            assert getv(c, k) == v
        st = c.stats()
        assert int(st["ssd_large_items"]) == 2, st
    env.stop(srv)


def test_a_burst_of_large_sets_over_ram_answers_cleanly(env):
    ram_mb = 128
    srv = env.start(ram_mb=ram_mb, ssd_size="1GiB",
                    extra_yaml="  ram:\n    max_item_size: 64MiB\n")
    value = big_value(32, 9)
    replies = []
    errors = []

    def burst(i):
        try:
            with Client(srv) as c:
                for j in range(3):
                    replies.append(c.store(b"set", b"burst:%d:%d" % (i, j), value))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    peak = [0]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], srv.rss())
            time.sleep(0.02)

    w = threading.Thread(target=watch, daemon=True)
    w.start()
    threads = [threading.Thread(target=burst, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    stop.set()
    w.join()
    assert not errors, errors
    assert srv.alive()
    assert replies and all(r in (b"STORED", OOM) for r in replies), set(replies)
    assert b"STORED" in replies
    limit = memory_limit(ram=ram_mb * MiB, workers=2, max_item=64 * MiB,
                         ssd=1 << 30, region=REGION, avg_item=32 * MiB)
    assert peak[0] < limit, (peak[0], limit)
    with Client(srv) as c:
        hits = 0
        for i in range(8):
            for j in range(3):
                got = getv(c, b"burst:%d:%d" % (i, j))
                assert got is None or got == value
                hits += got is not None
        assert hits > 0
    env.stop(srv)


def start_memcached(mem_mb=1024):
    """memcached 1.6.18 with room for every value here (a Popen, and the
    address to call), or a skip when it is not installed."""
    if not os.path.exists("/usr/bin/memcached"):
        pytest.skip("no /usr/bin/memcached")
    port = free_port()
    mc = subprocess.Popen(["/usr/bin/memcached", "-l", "127.0.0.1", "-p", str(port),
                           "-m", str(mem_mb), "-I", "256m", "-U", "0"] +
                          (["-u", "root"] if os.geteuid() == 0 else []))
    wait_listening(port)

    class Mc:
        address = ("127.0.0.1", port)

    return mc, Mc


def test_large_evictions_are_kept_and_answer_as_memcached(env):
    # RAM 128 MiB with large_item_percent 50: 20 MiB values (more than a
    # 16 MiB region, less than 64 MiB) are set into RAM, and RAM's
    # evictions of them go to the large-append thread. Every reply, while
    # they move, is memcached's (which holds them all in RAM); a delete and
    # an overwrite of SSD-resident ones hold across a kill -9 right after
    # their replies.
    mc, Mc = start_memcached()
    yaml = "    large_item_percent: 50\n  ram:\n    max_item_size: 64MiB\n"
    try:
        srv = env.start(ram_mb=128, ssd_size="1GiB", extra_yaml=yaml)
        values = {b"mid:%d" % i: big_value(20, i) for i in range(12)}  # 240 MiB
        for k, v in values.items():
            step = b"set %s 3 0 %d\r\n%s\r\n" % (k, len(v), v)
            assert raw_call(srv, step) == raw_call(Mc, step) == (b"STORED\r\n",)
            # The first key, evicted early, on every round.
            first = b"get mid:0\r\n"
            assert raw_call(srv, first) == raw_call(Mc, first)
        for k in values:
            step = b"get %s\r\n" % k
            got = raw_call(srv, step)
            assert got == raw_call(Mc, step), k
            assert got[1] == values[k], k
        with Client(srv) as c:
            st = c.stats()
        assert int(st["ssd_large_evictions"]) >= 4, st
        assert int(st["ssd_large_sets"]) == 0, st
        assert int(st["evictions"]) >= 4, st
        # Wait until the large-append thread has written them.
        deadline = time.monotonic() + 120
        while int(st["ssd_large_pending_items"]) > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            with Client(srv) as c:
                st = c.stats()
        assert int(st["ssd_large_demoted"]) >= 4, st
        # mid:0 is on SSD now: delete it; overwrite mid:1; then kill -9.
        for step in (b"delete mid:0\r\n", b"set mid:1 0 0 5\r\nfresh\r\n"):
            assert raw_call(srv, step) == raw_call(Mc, step)
        env.stop(srv, sig=signal.SIGKILL)
        srv = env.start(ram_mb=128, ssd_size="1GiB", extra_yaml=yaml)
        assert raw_call(srv, b"get mid:0\r\n") == (b"END\r\n",)
        # The new mid:1 was in RAM only: a miss, never the old value.
        assert raw_call(srv, b"get mid:1\r\n") in ((b"END\r\n",),
                                                     raw_call(Mc, b"get mid:1\r\n"))
        kept = 0
        for k in list(values)[2:]:
            got = raw_call(srv, b"get %s\r\n" % k)
            if got != (b"END\r\n",):
                assert got == raw_call(Mc, b"get %s\r\n" % k), k
                kept += 1
        assert kept >= 3, kept  # what RAM evicted to SSD came back
        env.stop(srv)
    finally:
        mc.send_signal(signal.SIGTERM)
        mc.wait(10)


def test_reply_lines_match_memcached(env):
    mc, Mc = start_memcached(600)
    try:
        srv = start(env)
        value = big_value(32, 4)
        script = [
            b"set big 5 0 %d\r\n%s\r\n" % (len(value), value),
            b"get big\r\n",
            b"delete big\r\n",
            b"get big\r\n",
            b"set big 0 0 %d noreply\r\n%s\r\nget nothing\r\n" % (len(value), value),
        ]
        for step in script:
            want = raw_call(Mc, step)
            got = raw_call(srv, step)
            assert got == want, (step[:40], got[:1], want[:1])
        # The same from SSD: pushed there by a restart.
        env.stop(srv)
        srv = start(env)
        want = raw_call(Mc, b"get big\r\n")
        got = raw_call(srv, b"get big\r\n")
        assert got == want
        env.stop(srv)
    finally:
        mc.send_signal(signal.SIGTERM)
        mc.wait(10)
