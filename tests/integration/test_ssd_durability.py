"""Durability of the SSD tier (issue 21), on the real binary and real files.

1. kill -9 loop: 20 rounds of a set/delete/flush_all load on SSD-resident keys
   through one pipelining connection, killed at random moments (half the
   rounds within a millisecond of a reply), restarted on the same file:
   every hit is the newest acknowledged value or one still unacknowledged at
   the kill, and no acknowledged delete or flush comes back.
2. Damage, after a SIGTERM (everything on SSD): 200 flipped bits within the
   first 64 MiB of data, a zeroed 4 KiB block, damaged region headers, a
   damaged tombstone, a truncated file; each has its bound on items lost,
   never a wrong or resurrected value, and the damage is counted
   (`ssd_corrupt_records`, the startup log line).
3. A cache file in an older on-device format is discarded with one log line
   and the tier works on.
4. CAS uniques across restarts: a unique issued before a SIGTERM or a kill -9
   (right after its reply), to a version since deleted or overwritten, is
   never issued again, so a client's `cas` holding it never passes.

Every test runs in both I/O modes (the `ssd` fixture of test_ssd.py).
About 2-3 minutes in all.
"""

import os
import random
import re
import signal
import struct
import threading
import time

import pytest

from test_ssd import (MiB, Client, check_hits, make_value, read_all, ssd,  # noqa: F401
                      ssd_stats, value_version)

pytestmark = pytest.mark.strata_only

KILL_ROUNDS = int(os.environ.get("STRATA_KILL_ROUNDS", "20"))
REGION = 16 * MiB
DAMAGE_RE = re.compile(
    rb"(\d+) items recovered in [0-9.]+ s; damage: (\d+) records, (\d+) region headers, "
    rb"(\d+) regions lost, (\d+) invalidations taken from mirrors, (\d+) refusals")


def damage_line(ssd, srv):
    lines = DAMAGE_RE.findall(ssd.log(srv))
    assert lines, ssd.log(srv)[-2000:]
    items, records, headers, lost, mirrored, refusals = (int(x) for x in lines[-1])
    return dict(items=items, records=records, headers=headers, lost=lost,
                mirrored=mirrored, refusals=refusals)


# --------------------------------------------------------------------------
# the on-device format, read from the file (format 4: see tiers/ssd/ssd_format.h)

MAGIC = 0x0100415441525453
FORMAT = 4


def regions_of(path):
    """[(index, seq, state)] of the regions whose header has strata's magic."""
    out = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for r in range(size // REGION):
            f.seek(r * REGION)
            h = f.read(64)
            magic, version = struct.unpack_from("<QI", h, 0)
            if magic != MAGIC or version != FORMAT:
                continue
            seq, = struct.unpack_from("<Q", h, 16)
            state, = struct.unpack_from("<I", h, 28)
            out.append((r, seq, state))
    return out


def records_of(path, region):
    """[(offset, type, key)] of a region's records, walked by their lengths."""
    out = []
    with open(path, "rb") as f:
        f.seek(region * REGION)
        data = f.read(REGION)
    off = 4096
    while off + 40 <= REGION:
        rtype, codec, key_len, bits = struct.unpack_from("<BBBB", data, off + 8)
        stored_len, = struct.unpack_from("<I", data, off + 20)
        # byte 11: an item's (or large head's) bits (stale, win sent, base64
        # key, fetched); 8 and 9 are a large item's pieces and head
        if rtype not in range(1, 10) or bits & ~0x0F or (bits and rtype not in (1, 9)):
            break
        out.append((off, rtype, bytes(data[off + 40:off + 40 + key_len])))
        off += (40 + key_len + stored_len + 7) // 8 * 8
    return out


def patch(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def flip_bit(path, offset, bit):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ (1 << bit)]))


# --------------------------------------------------------------------------
# 1. kill -9 loop


class Loader(threading.Thread):
    """One pipelining connection: sets (new versions), deletes, gets and now
    and then a flush_all of the keys, until the server goes away. Records
    what was acknowledged and what was sent without a reply."""

    def __init__(self, srv, keys, rng, version, replies_before_signal, flush_share):
        super().__init__(daemon=True)
        self.flush_share = flush_share
        self.srv, self.keys, self.rng = srv, keys, rng
        self.version = version
        self.acked = {}          # key -> version or None, in reply order
        self.flushed_at = None   # index into `log` of the newest acked flush
        self.log = []            # acked effects in order: (key|None, version|None)
        self.unacked = []        # (key|None, version|None) sent, never answered
        self.error = None
        self.replies = 0
        self.signal_at = replies_before_signal
        self.reached = threading.Event()

    def run(self):
        inflight = []  # effects of the commands in flight, in order
        try:
            with Client(self.srv, timeout=30) as c:
                while True:
                    reqs = []
                    for _ in range(self.rng.randint(1, 8)):
                        x = self.rng.random()
                        k = self.rng.choice(self.keys)
                        if x < 0.6:
                            self.version += 1
                            v = make_value(k, self.version, self.rng.choice([200, 3000, 9000]))
                            reqs.append(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v))
                            inflight.append(("set", k, self.version))
                        elif x < 0.85:
                            reqs.append(b"delete %s\r\n" % k)
                            inflight.append(("delete", k, None))
                        elif x < 1 - self.flush_share:
                            reqs.append(b"get %s\r\n" % k)
                            inflight.append(("get", k, None))
                        else:
                            reqs.append(b"flush_all\r\n")
                            inflight.append(("flush", None, None))
                    c.sock.sendall(b"".join(reqs))
                    while inflight:
                        kind, k, v = inflight[0]
                        if kind == "get":
                            c._read_values({})  # the reply, up to END
                        else:
                            line = c.readline()
                            if kind == "set":
                                assert line == b"STORED\r\n", line
                                self.log.append((k, v))
                            elif kind == "delete":
                                assert line in (b"DELETED\r\n", b"NOT_FOUND\r\n"), line
                                self.log.append((k, None))
                            else:
                                assert line == b"OK\r\n", line
                                self.log.append((None, None))
                        inflight.pop(0)
                        self.replies += 1
                        if self.replies == self.signal_at:
                            self.reached.set()
        except (ConnectionError, OSError):
            pass  # killed
        except BaseException as e:  # noqa: BLE001 - checked by the test
            self.error = e
        finally:
            self.unacked = [(k, v) for kind, k, v in inflight if kind != "get"]
            self.reached.set()


def test_kill9_loop_never_undoes_an_acknowledged_write(ssd):
    rng = random.Random(0xC0FFEE)
    keys = [b"kl:%05d" % i for i in range(6000)]
    # What the cache may hold per key: the acknowledged state, plus versions
    # written but not acknowledged when the process died (either may win).
    state = {}
    srv = ssd.start(ram_mb=8, ssd_size="512MiB", admission="reaccessed")
    with Client(srv) as c:
        assert all(r == b"STORED" for r in c.set_many(
            (k, make_value(k, 1, 3000), 0) for k in keys))
    state = {k: 1 for k in keys}
    history = {k: [("set", 1)] for k in keys}  # for the failure message
    version = 10
    rounds_quick = 0
    hits_checked = 0
    acked_writes = 0
    for rnd in range(KILL_ROUNDS):
        # Push most keys' newest versions out of RAM: writes then meet SSD
        # copies.
        with Client(srv) as c:
            fill = [b"kl-fill:%d:%05d" % (rnd, i) for i in range(800)]
            assert all(r == b"STORED" for r in c.set_many(
                (k, make_value(k, 1, 16 * 1024), 0) for k in fill))
        quick = rnd % 2 == 0
        # One round in four may flush_all (rarely: it empties the cache).
        loader = Loader(srv, keys, random.Random(rnd), version,
                        rng.randint(50, 3000) if quick else 10 ** 9,
                        0.0005 if rnd % 4 == 1 else 0.0)
        loader.start()
        if quick:
            loader.reached.wait(30)   # killed right after that reply
            rounds_quick += 1
        else:
            time.sleep(rng.uniform(0.02, 0.4))
        os.kill(srv.pid, signal.SIGKILL)
        loader.join(30)
        assert not loader.is_alive()
        assert loader.error is None, f"round {rnd}: {loader.error!r}"
        srv.stop(sig=signal.SIGKILL)
        srv.close_log()
        version = loader.version + 1
        acked_writes += len(loader.log)
        # Apply what was acknowledged, in order.
        for k, v in loader.log:
            if k is None:
                state = {key: None for key in keys}
                for key in keys:
                    history[key].append((rnd, "flush"))
            else:
                state[k] = v
                history[k].append((rnd, "ack", v))
        for k, v in loader.unacked:
            if k is not None:
                history[k].append((rnd, "unacked", v))
        maybe = {}
        flush_pending = False
        for k, v in loader.unacked:
            if k is None:
                flush_pending = True
            else:
                maybe.setdefault(k, set()).add(v)

        srv = ssd.start(ram_mb=8, ssd_size="512MiB", admission="reaccessed")
        # One connection: a miss then means the key is in neither tier (with
        # several, another connection's promotion may evict a key, which is
        # in neither tier until its demotion is appended).
        found = read_all(srv, keys, conns=1)
        for k in keys:
            got = found.get(k)
            if got is None:
                if state[k] is not None:
                    history[k].append((rnd, "miss"))
                state[k] = None  # absent from now on (evicted, lost, deleted)
                continue
            v = value_version(k, got[1])
            allowed = ({state[k]} | maybe.get(k, set())) - {None}
            assert v in allowed, (
                f"round {rnd}: {k!r} has version {v}; acknowledged "
                f"{state[k]}, unacknowledged {sorted(x for x in maybe.get(k, ()) if x)}"
                f"{' (an acknowledged delete or flush came back)' if state[k] is None else ''}"
                f"; history {history[k][-12:]}")
            state[k] = v
            history[k].append((rnd, "hit", v))
            hits_checked += 1
        del flush_pending
        st = ssd_stats(srv)
        if int(st["ssd_corrupt_records"]) != 0 and os.environ.get("KEEP_FILE"):
            import shutil
            shutil.copy(ssd.device, os.environ["KEEP_FILE"])
            with open(os.environ["KEEP_FILE"] + ".log", "wb") as lf:
                for i, sv in enumerate(ssd.servers):
                    lf.write(b"=== server %d\n" % i + ssd.log(sv))
        if os.environ.get("KEEP_FILE"):
            with open(os.environ["KEEP_FILE"] + ".log", "wb") as lf:
                for i, sv in enumerate(ssd.servers):
                    lf.write(b"=== server %d\n" % i + ssd.log(sv))
        assert int(st["ssd_corrupt_records"]) == 0, \
            f"round {rnd}: {damage_line(ssd, srv)} {ssd.log(srv)[-1500:]!r}"
    assert rounds_quick >= KILL_ROUNDS // 2
    print(f"\n[ssd {ssd.io_mode}] kill -9 loop: {KILL_ROUNDS} rounds, {acked_writes} "
          f"acknowledged writes, {hits_checked} hits checked, "
          f"{sum(1 for v in state.values() if v is not None)} keys live at the end")
    assert hits_checked > KILL_ROUNDS * 200


# --------------------------------------------------------------------------
# 2. damage


N_DAMAGE = 20000


@pytest.fixture
def damaged_setup(ssd):
    """20,000 incompressible 3,000-byte values (about 61 MB), 100 of them
    deleted; SIGTERM, so every item is on SSD. Returns (keys, deleted).

    The sets are pipelined faster than a loaded machine may write them to
    SSD: an eviction the writer is a region behind on is dropped (counted in
    ssd_dropped_backlog). The damage tests count from the keys the cache
    kept, so `keys` is those (nearly all)."""
    srv = ssd.start(ram_mb=16, ssd_size="256MiB", compression="none")
    keys = [b"dmg:%05d" % i for i in range(N_DAMAGE)]
    with Client(srv) as c:
        assert all(r == b"STORED" for r in c.set_many(
            (k, make_value(k, 1, 3000), 0) for k in keys))
        if int(c.stats()["ssd_dropped_backlog"]) > 0:
            found = read_all(srv, keys)
            check_hits(found, 1)
            keys = [k for k in keys if k in found]
            assert len(keys) >= 0.9 * N_DAMAGE
        deleted = keys[::200]
        for k in deleted:
            assert c.call(b"delete " + k) == b"DELETED"
    ssd.stop(srv)
    return keys, set(deleted)


def restart_and_count(ssd, keys, deleted):
    srv = ssd.start(ram_mb=16, ssd_size="256MiB", compression="none")
    found = read_all(srv, keys)
    check_hits(found, 1)  # never a wrong value
    for k in deleted:
        assert k not in found, f"deleted {k!r} came back"
    return srv, len(found)


def test_200_flipped_bits_lose_at_most_5_percent(ssd, damaged_setup):
    keys, deleted = damaged_setup
    rng = random.Random(200)
    for _ in range(200):
        flip_bit(ssd.device, rng.randrange(64 * MiB), rng.randrange(8))
    srv, n = restart_and_count(ssd, keys, deleted)
    live = len(keys) - len(deleted)
    d = damage_line(ssd, srv)
    st = ssd_stats(srv)
    print(f"\n[ssd {ssd.io_mode}] 200 flipped bits: {n} of {live} items recovered; {d}")
    assert n >= 0.95 * live
    assert d["records"] + d["headers"] > 0
    assert int(st["ssd_corrupt_records"]) == d["records"]


def test_a_zeroed_block_costs_the_records_in_it(ssd, damaged_setup):
    keys, deleted = damaged_setup
    patch(ssd.device, REGION + 5 * 4096, bytes(4096))   # inside region 1's records
    srv, n = restart_and_count(ssd, keys, deleted)
    d = damage_line(ssd, srv)
    print(f"\n[ssd {ssd.io_mode}] a zeroed block: {n} items recovered; {d}")
    assert n >= len(keys) - len(deleted) - 3  # a 4 KiB block holds parts of 3 records at most
    assert d["records"] >= 1 and d["refusals"] == 0


def test_damaged_region_headers_cost_nothing(ssd, damaged_setup):
    keys, deleted = damaged_setup
    flip_bit(ssd.device, 1 * REGION + 17, 3)      # region 1's sequence number
    patch(ssd.device, 2 * REGION, bytes(4096))    # region 2's header zeroed
    srv, n = restart_and_count(ssd, keys, deleted)
    d = damage_line(ssd, srv)
    print(f"\n[ssd {ssd.io_mode}] damaged region headers: {n} items recovered; {d}")
    assert n == len(keys) - len(deleted)
    assert d["headers"] == 2 and d["lost"] == 0


def test_a_damaged_tombstone_still_hides_its_key(ssd, damaged_setup):
    keys, deleted = damaged_setup
    tombstones = []
    for r, _seq, state in regions_of(ssd.device):
        if state == 1:
            tombstones += [(r, off, key) for off, t, key in records_of(ssd.device, r)
                           if t == 2 and key in deleted]
    assert len(tombstones) >= 50, len(tombstones)
    for r, off, _key in tombstones[:50]:
        flip_bit(ssd.device, r * REGION + off + 12, 0)   # inside its header
    srv, n = restart_and_count(ssd, keys, deleted)
    d = damage_line(ssd, srv)
    print(f"\n[ssd {ssd.io_mode}] 50 damaged tombstones: {n} items recovered; {d}")
    assert n == len(keys) - len(deleted)
    assert d["mirrored"] >= 50 and d["refusals"] == 0


def test_a_truncated_file(ssd, damaged_setup):
    keys, deleted = damaged_setup
    newest = max(regions_of(ssd.device), key=lambda x: x[1])[0]
    # Cut after the data: nothing the log wrote is gone.
    os.truncate(ssd.device, (newest + 2) * REGION)
    srv, n = restart_and_count(ssd, keys, deleted)
    assert n == len(keys) - len(deleted)
    ssd.stop(srv)
    # Cut right after the newest region left: what followed it may have been
    # newer, so nothing is trusted (a cold start), and nothing comes back.
    os.truncate(ssd.device, 2 * REGION)
    srv, n = restart_and_count(ssd, keys, deleted)
    print(f"\n[ssd {ssd.io_mode}] truncated into the data: {n} items recovered")
    assert n == 0
    assert b"truncated" in ssd.log(srv)


# --------------------------------------------------------------------------
# 3. an older format


@pytest.mark.parametrize("old_format", [1, 2, 3])
def test_a_file_in_an_older_format_is_discarded_once(ssd, old_format):
    srv = ssd.start(ram_mb=16, ssd_size="256MiB")
    keys = [b"old:%05d" % i for i in range(3000)]
    with Client(srv) as c:
        assert all(r == b"STORED" for r in c.set_many(
            (k, make_value(k, 1, 3000), 0) for k in keys))
    ssd.stop(srv)
    for r, _seq, _state in regions_of(ssd.device):
        patch(ssd.device, r * REGION + 8, struct.pack("<I", old_format))
    srv = ssd.start(ram_mb=16, ssd_size="256MiB")
    log = ssd.log(srv)
    assert log.count(b"on-device format %d" % old_format) == 1, log[-2000:]
    assert b"discarded" in log
    assert not read_all(srv, keys)
    with Client(srv) as c:
        assert c.store(b"set", b"fresh", make_value(b"fresh")) == b"STORED"
    ssd.stop(srv)
    srv = ssd.start(ram_mb=16, ssd_size="256MiB")
    assert b"on-device format" not in ssd.log(srv)
    check_hits(read_all(srv, [b"fresh"]), 1)
    assert read_all(srv, [b"fresh"])


# --------------------------------------------------------------------------
# 4. CAS uniques across restarts


def gets_cas(c, key):
    c.sock.sendall(b"gets %s\r\n" % key)
    line = c.readline()
    assert line.startswith(b"VALUE "), line
    cas = int(line.split()[4])
    c.read_exact(int(line.split()[3]) + 2)
    assert c.readline() == b"END\r\n"
    return cas


@pytest.mark.parametrize("how", ["sigterm", "kill9", "damaged_mark"])
def test_cas_uniques_are_never_issued_again_after_a_restart(ssd, how):
    srv = ssd.start()
    with Client(srv) as c:
        # The newest uniques belong to versions that are gone: overwritten
        # in RAM, deleted; none of them is on the SSD.
        seen = []
        for i in range(50):
            assert c.store(b"set", b"gone", b"x%d" % i) == b"STORED"
            seen.append(gets_cas(c, b"gone"))
        assert c.call(b"delete gone") == b"DELETED"
        highest = max(seen)
    if how == "kill9":
        srv.stop(sig=signal.SIGKILL)
    else:
        assert srv.stop(sig=signal.SIGTERM) == 0
        if how == "damaged_mark":
            with open(ssd.device + ".cas", "r+b") as f:
                f.seek(14)
                f.write(b"\xff")
    srv.close_log()
    srv = ssd.start()
    with Client(srv) as c:
        assert c.store(b"set", b"gone", b"new") == b"STORED"
        cas = gets_cas(c, b"gone")
        assert cas > highest, (cas, highest)
        # A cas with any unique the last process issued fails.
        for old in seen[-3:]:
            assert c.store(b"cas", b"gone", b"stale", cas=old) == b"EXISTS"
    log = ssd.log(srv)
    if how == "damaged_mark":
        assert b"checksum mismatch" in log, log[-2000:]
    if how != "sigterm":
        assert b"no CAS high-water mark from the last stop" in log, log[-2000:]
    assert not os.path.exists(ssd.device + ".cas")
