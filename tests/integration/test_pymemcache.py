"""pymemcache (Debian's python3-pymemcache) over its whole base-client API,
with its default noreply (default_noreply=True) and with explicit
noreply=False, plus a pylibmc (libmemcached) smoke test.

Values verify themselves: value = sha256(seed + key) repeated to the chosen
length, so any corruption, truncation or mix-up between keys is detected on
read.  The module's server runs with -I 2m so values up to 1 MiB fit.
"""

import random

import pytest
from pymemcache.client.base import Client

from mcraw import value_for

SEED = b"pymemcache-v1"
SIZES = [0, 1, 2, 100, 1000, 4096, 10_000, 65_536, 100_000, 500_000,
         1024 * 1024 - 512]
TIMEOUT_S = 10


def check(key, value, length=None, seed=SEED):
    assert value is not None, f"miss for {key!r}"
    if length is not None:
        assert len(value) == length, f"{key!r}: length {len(value)} != {length}"
    assert value == value_for(key if isinstance(key, bytes) else key.encode(),
                              len(value), seed), f"corrupt value for {key!r}"


@pytest.fixture
def client(server):
    c = Client(server.address, connect_timeout=TIMEOUT_S, timeout=TIMEOUT_S,
               no_delay=True, allow_unicode_keys=True)
    assert c.default_noreply is True  # the library's default
    c.flush_all(noreply=False)
    yield c
    c.close()


class FlagsSerde:
    """Hands back (value, flags) so tests can check flags round-trip."""

    def serialize(self, key, value):
        return value, 0

    def deserialize(self, key, value, flags):
        return value, flags


def test_set_get_every_size_default_noreply(client):
    for size in SIZES:
        key = f"size-{size}".encode()
        assert client.set(key, value_for(key, size, SEED)) is True
        check(key, client.get(key), size)


def test_set_get_every_size_explicit_reply(client):
    for size in SIZES:
        key = f"reply-size-{size}".encode()
        assert client.set(key, value_for(key, size, SEED), noreply=False) is True
        check(key, client.get(key), size)


def test_overwrite_changes_value_and_size(client):
    key = b"overwrite"
    for size in [10, 100_000, 3, 1024 * 1024 - 512, 0, 77]:
        client.set(key, value_for(key, size, b"o" + str(size).encode()))
        assert client.get(key) == value_for(key, size, b"o" + str(size).encode())


def test_get_many_set_many_delete_many(client):
    rng = random.Random(1234)
    values = {}
    for i in range(300):
        key = f"many-{i}".encode()
        values[key] = value_for(key, rng.choice([0, 1, 50, 700, 5000, 40_000]),
                                SEED)
    assert client.set_many(values) == []          # default noreply
    got = client.get_many(list(values) + [b"many-missing"])
    assert set(got) == set(values)
    for key, value in got.items():
        check(key, value, len(values[key]))
    assert client.set_many(values, noreply=False) == []
    doomed = list(values)[:150]
    assert client.delete_many(doomed) is True     # default noreply
    got = client.get_many(list(values))
    assert set(got) == set(list(values)[150:])
    assert client.delete_many(list(values)[150:], noreply=False) is True
    assert client.get_many(list(values)) == {}


def test_gets_and_cas(client):
    key = b"cas-key"
    client.set(key, value_for(key, 100, SEED))
    value, cas = client.gets(key)
    check(key, value, 100)
    assert isinstance(cas, bytes) and cas.isdigit()
    # stale unique after a write: EXISTS -> False
    client.set(key, value_for(key, 200, SEED))
    assert client.cas(key, b"lost", cas) is False
    value, cas2 = client.gets(key)
    check(key, value, 200)
    assert cas2 != cas
    # right unique: STORED -> True, and the unique changes again
    assert client.cas(key, value_for(key, 300, SEED), cas2) is True
    value, cas3 = client.gets(key)
    check(key, value, 300)
    assert cas3 not in (cas, cas2)
    # missing key: NOT_FOUND -> None
    assert client.cas(b"cas-missing", b"x", cas3) is None
    assert client.gets(b"cas-missing") == (None, None)
    # cas with noreply returns True without waiting; the value must land
    assert client.cas(key, value_for(key, 400, SEED), cas3, noreply=True) is True
    check(key, client.get(key), 400)


def test_gets_many_uniques_differ(client):
    keys = [f"uniq-{i}".encode() for i in range(20)]
    for k in keys:
        client.set(k, value_for(k, 10, SEED))
    got = client.gets_many(keys)
    assert set(got) == set(keys)
    uniques = [cas for (_, cas) in got.values()]
    assert len(set(uniques)) == len(uniques), "cas uniques must differ"


def test_add_replace(client):
    key = b"add-key"
    assert client.add(key, b"first") is True                 # noreply: True
    assert client.add(key, b"second") is True                # noreply hides NOT_STORED
    assert client.get(key) == b"first"
    assert client.add(key, b"third", noreply=False) is False
    assert client.get(key) == b"first"
    assert client.replace(key, b"replaced", noreply=False) is True
    assert client.get(key) == b"replaced"
    assert client.replace(b"replace-missing", b"x", noreply=False) is False
    assert client.replace(b"replace-missing", b"x") is True  # noreply
    assert client.get(b"replace-missing") is None
    assert client.add(b"add-new", b"v", noreply=False) is True
    assert client.get(b"add-new") == b"v"


def test_append_prepend(client):
    key = b"ap-key"
    client.set(key, b"middle")
    assert client.append(key, b"-end") is True
    assert client.prepend(key, b"start-") is True
    assert client.get(key) == b"start-middle-end"
    assert client.append(key, b"!", noreply=False) is True
    assert client.prepend(key, b"!", noreply=False) is True
    assert client.get(key) == b"!start-middle-end!"
    assert client.append(b"ap-missing", b"x", noreply=False) is False
    assert client.prepend(b"ap-missing", b"x", noreply=False) is False
    assert client.get(b"ap-missing") is None
    # large append
    big = value_for(b"big-append", 300_000, SEED)
    client.set(b"big-append", big[:100_000])
    client.append(b"big-append", big[100_000:])
    assert client.get(b"big-append") == big


def test_incr_decr(client):
    client.set(b"n", b"10")
    assert client.incr(b"n", 5) == 15
    assert client.decr(b"n", 3) == 12
    assert client.decr(b"n", 100) == 0                     # clamps at 0
    assert client.incr(b"n", 2**64 - 1) == 2**64 - 1
    assert client.incr(b"n", 1) == 0                       # wraps at 2^64
    assert client.incr(b"n-missing", 1) is None
    assert client.decr(b"n-missing", 1) is None
    assert client.incr(b"n", 7, noreply=True) is None
    # incr/decr rewrite the number in place when it fits, padding with
    # spaces to the old length (memcached 1.6.18 behaviour)
    assert client.get(b"n") == b"7".ljust(20)
    client.set(b"n2", b"100")
    assert client.decr(b"n2", 1) == 99
    # memcached keeps the length on decr and pads with spaces
    assert client.get(b"n2") == b"99 "
    assert client.incr(b"n2", 1) == 100
    assert client.get(b"n2") == b"100"


def test_touch(client):
    client.set(b"touch-key", b"v", expire=100)
    assert client.touch(b"touch-key", 200, noreply=False) is True
    assert client.touch(b"touch-missing", 10, noreply=False) is False
    assert client.touch(b"touch-key", 300) is True  # noreply
    assert client.get(b"touch-key") == b"v"
    # touch to an already-expired time removes the item
    assert client.touch(b"touch-key", -1, noreply=False) is True
    assert client.get(b"touch-key") is None


def test_expire_negative_means_expired(client):
    client.set(b"neg", b"v", expire=-1, noreply=False)
    assert client.get(b"neg") is None


def test_flush_all(client):
    for i in range(50):
        client.set(f"flush-{i}".encode(), b"x")
    assert client.flush_all() is True                      # noreply
    assert client.get_many([f"flush-{i}".encode() for i in range(50)]) == {}
    client.set(b"after", b"y")
    assert client.get(b"after") == b"y"
    assert client.flush_all(noreply=False) is True
    assert client.get(b"after") is None


def test_delete(client):
    client.set(b"del", b"v")
    assert client.delete(b"del", noreply=False) is True
    assert client.delete(b"del", noreply=False) is False
    client.set(b"del", b"v")
    assert client.delete(b"del") is True                   # noreply
    assert client.get(b"del") is None


def test_stats_and_version(client):
    client.set(b"stat-key", b"v")
    client.get(b"stat-key")
    client.get(b"stat-missing")
    st = client.stats()
    for name in (b"pid", b"uptime", b"curr_items", b"total_items", b"bytes",
                 b"curr_connections", b"total_connections", b"cmd_get",
                 b"cmd_set", b"get_hits", b"get_misses", b"limit_maxbytes",
                 b"threads", b"evictions"):
        assert name in st, f"stats lacks {name!r}"
    assert st[b"curr_items"] >= 1
    assert st[b"get_hits"] >= 1 and st[b"get_misses"] >= 1
    assert st[b"limit_maxbytes"] == 64 * 1024 * 1024
    settings = client.stats("settings")
    assert settings[b"maxconns"] >= 1
    version = client.version()
    assert isinstance(version, bytes) and version


def test_unicode_and_binary_safe_keys(client):
    keys = ["ключ-🔑", "日本語のキー", "emoji-😀-%d" % 7, "café", "a" * 250]
    bkeys = [b"caf\xc3\xa9-bytes", b"\xff\xfe-raw-high-bytes",
             b"ctl-\x01\x02\x7f", "ø".encode() * 125]
    for k in keys:
        kb = k.encode()
        assert len(kb) <= 250
        client.set(k, value_for(kb, 333, SEED), noreply=False)
    for k in bkeys:
        assert len(k) <= 250
        client.set(k, value_for(k, 444, SEED))
    for k in keys:
        check(k, client.get(k), 333)
    for k in bkeys:
        check(k, client.get(k), 444)
    got = client.get_many(keys + bkeys)
    assert len(got) == len(keys) + len(bkeys)


def test_values_with_protocol_bytes(client):
    nasty = b"\r\nEND\r\nVALUE x 0 1\r\nSTORED\r\n\x00\xff" * 100
    client.set(b"nasty", nasty)
    assert client.get(b"nasty") == nasty
    client.set(b"crlf-only", b"\r\n")
    assert client.get(b"crlf-only") == b"\r\n"


def test_flags_round_trip(server):
    c = Client(server.address, serde=FlagsSerde(), timeout=TIMEOUT_S,
               connect_timeout=TIMEOUT_S)
    try:
        for flags in [0, 1, 2**16, 2**31 - 1, 2**31, 2**32 - 1]:
            key = f"flags-{flags}".encode()
            c.set(key, b"v", flags=flags, noreply=False)
            assert c.get(key) == (b"v", flags)
    finally:
        c.close()


def test_noreply_pipeline_then_read(client):
    # Many noreply writes back to back, then one read: the server must have
    # applied all of them in order and sent nothing for them.
    key = b"seq"
    for i in range(500):
        client.set(key, str(i).encode())
    assert client.get(key) == b"499"
    for i in range(200):
        client.incr(key, 1, noreply=True)
    assert client.get(key) == b"699"


def test_pylibmc_smoke(server):
    pylibmc = pytest.importorskip("pylibmc")
    mc = pylibmc.Client([f"{server.host}:{server.port}"], binary=False,
                        behaviors={"tcp_nodelay": True, "cas": True,
                                   "connect_timeout": 10000,
                                   "receive_timeout": 10_000_000,
                                   "send_timeout": 10_000_000})
    try:
        mc.flush_all()
        assert mc.set("plm-a", b"alpha")
        assert mc.get("plm-a") == b"alpha"
        big = value_for(b"plm-big", 500_000, SEED)
        assert mc.set("plm-big", big)
        assert mc.get("plm-big") == big
        assert mc.set_multi({"plm-%d" % i: b"v%d" % i for i in range(100)}) == []
        got = mc.get_multi(["plm-%d" % i for i in range(100)] + ["plm-none"])
        assert got == {"plm-%d" % i: b"v%d" % i for i in range(100)}
        assert mc.add("plm-a", b"x") is False
        assert mc.add("plm-new", b"x") is True
        assert mc.replace("plm-new", b"y") is True
        assert mc.append("plm-new", b"z") is True
        assert mc.prepend("plm-new", b"w") is True
        assert mc.get("plm-new") == b"wyz"
        mc.set("plm-n", 10)
        assert mc.incr("plm-n", 5) == 15
        assert mc.decr("plm-n", 20) == 0
        value, cas = mc.gets("plm-a")
        assert value == b"alpha"
        assert mc.cas("plm-a", b"beta", cas) is True
        assert mc.cas("plm-a", b"gamma", cas) is False
        assert mc.get("plm-a") == b"beta"
        assert mc.touch("plm-a", 100) is True
        assert mc.delete("plm-a") is True
        assert mc.delete("plm-a") is False
        assert mc.get("plm-a") is None
        assert mc.get_stats()
    finally:
        mc.disconnect_all()
