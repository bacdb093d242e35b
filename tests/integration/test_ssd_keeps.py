"""The SSD tier keeps what it has room for (issue 28), with the default
configuration (admission `reaccessed`) and a 16 MiB RAM tier over 1 GiB.

20,000 keys of 2,000-8,000 compressible bytes, then 200 MB of 4 KB filler;
then for every fifth key in turn: overwrite it, delete it, touch it with -1,
append 4 bytes, or leave it; then 200 MB more filler (about 500 MB written:
half the SSD). Of the 12,000 keys still live (overwritten, appended,
untouched), at least 95 % must hit with their exact value, and at least
90 % after a SIGTERM restart; deleted and expired keys must miss. Written
once and never read, these keys are what a one-hit-wonder filter drops: the
SSD must keep them while it has room. Both I/O modes; about a minute.
"""

import random

import pytest

from test_ssd import MiB, Client, ssd  # noqa: F401

pytestmark = pytest.mark.strata_only

N = 20000


def value(key, version, size):
    unit = b"%s/%d|" % (key, version)
    return (unit * (size // len(unit) + 1))[:size]


def filler(srv, tag, total):
    keys = [b"fill:%s:%06d" % (tag, i) for i in range(total // 4096)]
    with Client(srv) as c:
        replies = c.set_many((k, value(k, 0, 4096), 0) for k in keys)
    assert all(r == b"STORED" for r in replies)


def read_all(srv, keys):
    with Client(srv) as c:
        return c.get_many(keys)


def test_the_ssd_keeps_what_it_has_room_for(ssd):
    srv = ssd.start(ram_mb=16, ssd_size="1GiB", admission="reaccessed")
    rng = random.Random(28)
    keys = [b"keep:%05d" % i for i in range(N)]
    sizes = {k: rng.randint(2000, 8000) for k in keys}
    expect = {k: value(k, 1, sizes[k]) for k in keys}
    with Client(srv) as c:
        assert all(r == b"STORED" for r in c.set_many((k, expect[k], 0) for k in keys))
    filler(srv, b"a", 200 * MiB)
    with Client(srv) as c:
        for i, k in enumerate(keys):
            kind = i % 5
            if kind == 0:
                expect[k] = value(k, 2, sizes[k])
                assert c.store(b"set", k, expect[k]) == b"STORED"
            elif kind == 1:
                assert c.call(b"delete " + k) == b"DELETED"
                expect[k] = None
            elif kind == 2:
                assert c.call(b"touch %s -1" % k) == b"TOUCHED"
                expect[k] = None
            elif kind == 3:
                assert c.store(b"append", k, b"tail") == b"STORED"
                expect[k] = expect[k] + b"tail"
    filler(srv, b"b", 200 * MiB)
    live = [k for k in keys if expect[k] is not None]

    def check(when):
        found = read_all(srv, keys)
        hits = 0
        for k in keys:
            got = found.get(k)
            if expect[k] is None:
                assert got is None, f"{when}: {k!r} should be gone"
            elif got is not None:
                assert got[1] == expect[k], f"{when}: {k!r} has a wrong value"
                hits += 1
        return hits / len(live)

    share = check("before the restart")
    with Client(srv) as c:
        st = c.stats()
    ssd.stop(srv)
    srv = ssd.start(ram_mb=16, ssd_size="1GiB", admission="reaccessed")
    after = check("after a SIGTERM restart")
    written = int(st["ssd_device_bytes_written"])
    demoted = int(st["ssd_demoted_record_bytes"])
    raw = int(st["ssd_demoted_bytes"])
    print(f"\n[ssd {ssd.io_mode}] live keys hit: {share:.4f}, after a restart "
          f"{after:.4f}; rejected {st['ssd_admissions_rejected']}; device bytes "
          f"written per record byte demoted {written / max(1, demoted):.3f}, per "
          f"value byte demoted {written / max(1, raw):.3f}")
    assert share >= 0.95
    assert after >= 0.90
