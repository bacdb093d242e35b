"""A stand-in inference server for the strata chart's demo Deployment.

It "embeds" prompts (a deliberately slow hash) and caches the results in the
strata sidecar (its unix socket STRATA_SOCKET, else STRATA_ADDR) with
memcached's text protocol, so the cache's
effect shows in its log and in strata's metrics. Prompts are drawn from a
skewed distribution, as real traffic is. Standard library only.

Environment: STRATA_SOCKET (the sidecar's unix socket, used when set; with
pymemcache that is Client(os.environ["STRATA_SOCKET"])), STRATA_ADDR
(host:port, default 127.0.0.1:11211), DEMO_PROMPTS
(distinct prompts), DEMO_VALUE_SIZE (bytes per embedding), DEMO_INTERVAL
(seconds between requests), DEMO_ITERATIONS (stop after this many requests;
0 = run forever), DEMO_REPORT_EVERY (requests between two log lines).
"""

import hashlib
import os
import random
import signal
import socket
import sys
import time


class Memcache:
    """A minimal memcached text-protocol client that reconnects on errors."""

    def __init__(self, addr):
        if addr.startswith("/"):  # a unix socket
            self.addr = addr
        else:
            host, _, port = addr.rpartition(":")
            self.addr = (host or "127.0.0.1", int(port))
        self.sock = None
        self.buf = b""

    def _connect(self):
        if self.sock is None:
            if isinstance(self.addr, str):
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(5)
                try:
                    sock.connect(self.addr)
                except OSError:
                    sock.close()
                    raise
                self.sock = sock
            else:
                self.sock = socket.create_connection(self.addr, timeout=5)
            self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("strata closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("strata closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def _call(self, fn):
        try:
            self._connect()
            return fn()
        except OSError as err:
            if self.sock is not None:
                self.sock.close()
            self.sock = None
            raise ConnectionError(str(err)) from err

    def get(self, key):
        def run():
            self.sock.sendall(b"get " + key + b"\r\n")
            line = self._line()
            if line == b"END":
                return None
            parts = line.split()
            if len(parts) < 4 or parts[0] != b"VALUE":
                raise ConnectionError("unexpected reply %r" % line)
            value = self._exactly(int(parts[3]) + 2)[:-2]
            if self._line() != b"END":
                raise ConnectionError("missing END")
            return value
        return self._call(run)

    def set(self, key, value, ttl=3600):
        def run():
            self.sock.sendall(b"set %s 0 %d %d\r\n%s\r\n" % (key, ttl, len(value), value))
            return self._line() == b"STORED"
        return self._call(run)


def embed(prompt, size):
    """The "model": slow on purpose, deterministic."""
    out = b""
    seed = prompt.encode()
    while len(out) < size:
        seed = hashlib.sha256(seed).digest()
        for _ in range(200):
            seed = hashlib.sha256(seed).digest()
        out += seed
    return out[:size]


def main():
    cache = Memcache(os.environ.get("STRATA_SOCKET") or
                     os.environ.get("STRATA_ADDR", "127.0.0.1:11211"))
    prompts = int(os.environ.get("DEMO_PROMPTS", "5000"))
    size = int(os.environ.get("DEMO_VALUE_SIZE", "4096"))
    interval = float(os.environ.get("DEMO_INTERVAL", "0.05"))
    iterations = int(os.environ.get("DEMO_ITERATIONS", "0"))
    report_every = int(os.environ.get("DEMO_REPORT_EVERY", "200"))
    rng = random.Random(42)
    hits = misses = errors = done = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    while iterations == 0 or done < iterations:
        prompt = "prompt-%d" % min(int(rng.paretovariate(1.2)) - 1, prompts - 1)
        key = b"emb:" + hashlib.sha1(prompt.encode()).hexdigest().encode()
        try:
            value = cache.get(key)
            if value is None:
                misses += 1
                value = embed(prompt, size)
                cache.set(key, value)
            else:
                hits += 1
        except ConnectionError as err:
            errors += 1
            print("strata unavailable (%s); serving uncached" % err, flush=True)
            embed(prompt, size)
            time.sleep(1)
        done += 1
        if done % report_every == 0:
            total = hits + misses
            print("requests=%d hits=%d misses=%d errors=%d hit_ratio=%.3f"
                  % (done, hits, misses, errors, hits / total if total else 0.0), flush=True)
        time.sleep(interval)
    print("done: requests=%d hits=%d misses=%d errors=%d" % (done, hits, misses, errors), flush=True)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
