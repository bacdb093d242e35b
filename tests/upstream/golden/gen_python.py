#!/usr/bin/python3
"""Golden placement vectors made by the real client libraries (Debian's).

  gen_python.py pymemcache OUT   pymemcache HashClient (rendezvous), str keys
  gen_python.py pylibmc OUT      pylibmc/libmemcached, ketama_weighted
  gen_python.py nutcracker OUT   nutcracker (twemproxy), hash md5, ketama

pymemcache exposes its choice (HashClient._get_client(key).server), so no
server runs. pylibmc and nutcracker do not: the generator starts one real
memcached per address of the case (fixed addresses on 127.0.1.x, so the
vectors are reproducible; a busy address is an error), stores every key
through the client (or through nutcracker), then asks each memcached which
keys it holds; each key must be on exactly one server. Every process started
here is stopped by its PID.

Output (see README.md): '#' comment lines, then per case
  case NAME / distribution D / server SPEC (config order) /
  key HEX INDEX (index into the case's servers) / end
strata's code plays no part.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keys as keyset  # noqa: E402

KEYS = keyset.keys()

# Rendezvous: pymemcache has no weights; addresses are never dialled.
RENDEZVOUS_CASES = [
    ("one", ["127.0.1.1:11211"]),
    ("two", ["127.0.1.1:11211", "127.0.1.2:22122"]),
    ("three", ["127.0.1.1:11212", "127.0.1.1:11213", "127.0.1.1:11214"]),
    ("five", ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.10:11211",
              "memcached-0.memcached.default.svc:11211", "[::1]:22122"]),
]

# Ketama: "host:port:weight", twemproxy's "host:port:weight name". Every
# address is started as a real memcached, so it must be local.
KETAMA_CASES = [
    ("one", ["127.0.1.1:11211:1"]),
    ("two", ["127.0.1.1:11211:1", "127.0.1.2:22122:1"]),
    ("three", ["127.0.1.1:11212:1", "127.0.1.1:11213:1", "127.0.1.1:11214:1"]),
    ("three-weighted", ["127.0.1.1:11212:1", "127.0.1.1:11213:1", "127.0.1.1:11214:2"]),
    ("five-weighted", ["127.0.1.1:11211:1", "127.0.1.2:11211:2", "127.0.1.3:22122:3",
                       "127.0.1.4:9000:1", "127.0.1.5:11215:5"]),
    ("five-odd-weights", ["127.0.1.1:11212:7", "127.0.1.2:11212:3", "127.0.1.3:11212:1",
                          "127.0.1.4:11212:10", "127.0.1.5:11212:100"]),
    # 25 servers of equal weight get 156 points each, not 160: the float
    # arithmetic of the weighted point count lands just under 39 x 4.
    ("twenty-five", ["127.0.1.%d:11216:1" % i for i in range(1, 26)]),
]
NAMED_CASES = [
    ("three-named", ["127.0.1.1:11212:1 alpha", "127.0.1.2:11212:2 beta",
                     "127.0.1.3:11212:1 gamma"]),
    ("five-mixed-names", ["127.0.1.1:11211:1 cache-a", "127.0.1.2:11211:1",
                          "127.0.1.3:22122:2 cache-c", "127.0.1.4:9000:1",
                          "127.0.1.5:11215:3 e"]),
]


def version(pkg):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                          capture_output=True, text=True, check=True).stdout


def write(out, header, cases):
    with open(out, "w") as f:
        f.write("# Golden placement vectors: do not edit, regenerate (README.md).\n")
        for line in header:
            f.write("# " + line + "\n")
        for name, distribution, servers, picks in cases:
            f.write("case %s\ndistribution %s\n" % (name, distribution))
            for s in servers:
                f.write("server %s\n" % s)
            for k, i in picks:
                f.write("key %s %d\n" % (k.hex(), i))
            f.write("end\n")


def address(spec):
    """(host, port) of a "host:port:weight[ name]" spec."""
    addr = spec.split(" ")[0]
    host, port, _weight = addr.rsplit(":", 2)
    return host, int(port)


def gen_pymemcache(out):
    from pymemcache.client.hash import HashClient
    cases = []
    for name, servers in RENDEZVOUS_CASES:
        client = HashClient(servers, allow_unicode_keys=True, use_pooling=False)
        # The contract is str keys: the application passes text.
        picks = []
        for k in KEYS:
            server = client._get_client(k.decode("utf-8")).server
            spec = "%s:%s" % server
            index = [s.replace("[", "").replace("]", "") for s in servers].index(spec)
            picks.append((k, index))
        cases.append((name, "rendezvous", servers, picks))
    write(out, ["generator: tests/upstream/golden/gen_python.py pymemcache",
                "library: python3-pymemcache " + version("python3-pymemcache"),
                "HashClient(servers, allow_unicode_keys=True)._get_client(str key)"], cases)


class Memcached:
    """Real memcached processes, one per address, stopped by PID."""

    def __init__(self, addrs):
        self.procs = {}
        for host, port in addrs:
            probe = socket.socket()
            # memcached binds with SO_REUSEADDR too: a TIME_WAIT left by an
            # earlier run is no conflict.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as e:
                self.stop()
                sys.exit("gen_python.py: %s:%d is busy (%s)" % (host, port, e))
            finally:
                probe.close()
            args = ["memcached", "-l", host, "-p", str(port), "-U", "0", "-m", "16", "-t", "1"]
            if os.getuid() == 0:
                args += ["-u", "root"]
            self.procs[(host, port)] = subprocess.Popen(args)
        for host, port in addrs:
            wait_listening(host, port)

    def stop(self):
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            p.wait()
        self.procs = {}

    def holders(self, addrs, keys):
        """key -> index into addrs of the one server holding it."""
        from pymemcache.client.base import Client
        found = {}
        for index, (host, port) in enumerate(addrs):
            c = Client((host, port))
            for k in keys:
                if c.get(k) is not None:
                    if k in found:
                        sys.exit("gen_python.py: key %r on two servers" % k)
                    found[k] = index
            c.close()
        missing = [k for k in keys if k not in found]
        if missing:
            sys.exit("gen_python.py: %d keys on no server, e.g. %r" % (len(missing), missing[0]))
        return found

    def flush(self):
        from pymemcache.client.base import Client
        for host, port in self.procs:
            c = Client((host, port))
            c.flush_all()
            c.close()


def wait_listening(host, port):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("gen_python.py: nothing listens on %s:%d" % (host, port))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def all_addresses(cases):
    out = []
    for _, servers in cases:
        for s in servers:
            if address(s) not in out:
                out.append(address(s))
    return out


def gen_pylibmc(out):
    import pylibmc
    mc = Memcached(all_addresses(KETAMA_CASES))
    cases = []
    try:
        for name, servers in KETAMA_CASES:
            mc.flush()
            client = pylibmc.Client(servers, binary=False, behaviors={"ketama_weighted": True})
            for k in KEYS:
                if not client.set(k, b"1"):
                    sys.exit("gen_python.py: pylibmc could not set %r" % k)
            client.disconnect_all()
            addrs = [address(s) for s in servers]
            found = mc.holders(addrs, KEYS)
            cases.append((name, "ketama", servers, [(k, found[k]) for k in KEYS]))
    finally:
        mc.stop()
    write(out, ["generator: tests/upstream/golden/gen_python.py pylibmc",
                "library: python3-pylibmc " + version("python3-pylibmc") +
                ", libmemcached11 " + version("libmemcached11"),
                "pylibmc.Client(servers, behaviors={'ketama_weighted': True}); each key",
                "stored through it, then found by asking each memcached"], cases)


def gen_nutcracker(out):
    from pymemcache.client.base import Client
    cases_in = KETAMA_CASES + NAMED_CASES
    mc = Memcached(all_addresses(cases_in))
    cases = []
    tmp = tempfile.mkdtemp(prefix="strata-golden-")
    try:
        for name, servers in cases_in:
            mc.flush()
            port = free_port()
            conf = os.path.join(tmp, "nutcracker.yml")
            with open(conf, "w") as f:
                f.write("pool:\n  listen: 127.0.0.1:%d\n  hash: md5\n"
                        "  distribution: ketama\n  auto_eject_hosts: false\n"
                        "  servers:\n" % port)
                for s in servers:
                    f.write("    - %s\n" % s)
            proc = subprocess.Popen(["nutcracker", "-c", conf, "-s", str(free_port()),
                                     "-a", "127.0.0.1", "-o", os.path.join(tmp, "log"),
                                     "-p", os.path.join(tmp, "pid")])
            try:
                wait_listening("127.0.0.1", port)
                client = Client(("127.0.0.1", port))
                for k in KEYS:
                    if not client.set(k, b"1", noreply=False):
                        sys.exit("gen_python.py: nutcracker could not set %r" % k)
                client.close()
            finally:
                proc.terminate()
                proc.wait()
            addrs = [address(s) for s in servers]
            found = mc.holders(addrs, KEYS)
            cases.append((name, "ketama", servers, [(k, found[k]) for k in KEYS]))
    finally:
        mc.stop()
    write(out, ["generator: tests/upstream/golden/gen_python.py nutcracker",
                "library: nutcracker " + version("nutcracker"),
                "pool with hash: md5, distribution: ketama; each key stored through",
                "nutcracker, then found by asking each memcached"], cases)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("pymemcache", "pylibmc", "nutcracker"):
        sys.exit(__doc__)
    globals()["gen_" + sys.argv[1]](sys.argv[2])
