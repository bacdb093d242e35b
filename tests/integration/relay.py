"""A small TCP relay under a test's control, placed between strata and one
upstream memcached: it forwards bytes both ways and can hold back the
server's replies (hold() / release()), to make a fetch or a write stay in
flight for as long as a test needs; delay them (delay()); close every
connection it carries, as a firewall dropping idle connections would
(drop_all()); silently swallow everything on the connections it carries
now, as a firewall that drops them without a reset would (blackhole_all());
or cut the next reply after a number of bytes and close its connection
(cut_after()), to leave a value half sent.

Threads, one pair per connection; bound to 127.0.0.1 on a free port;
stopped by stop() (or the context manager's exit).
"""

import socket
import threading
import time


class Relay:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._stopped = False
        self._lock = threading.Lock()
        self._socks = []
        self.connections = 0
        self._delay = 0.0
        self._cut = None  # bytes of replies still to forward before a cut
        self._dead = set()  # sockets whose traffic is swallowed
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def hold(self):
        """Replies from the server are kept back from now on."""
        self._flowing.clear()

    def release(self):
        """Replies kept back (and later ones) flow again."""
        self._flowing.set()

    def delay(self, seconds):
        """Each chunk of replies waits `seconds` before it is forwarded."""
        self._delay = seconds

    def cut_after(self, nbytes):
        """Forward `nbytes` more bytes of replies, then close that
        connection (both ways); later connections are not cut."""
        with self._lock:
            self._cut = nbytes

    def blackhole_all(self):
        """From now on the connections carried now forward nothing, either
        way, and close nothing; new connections work."""
        with self._lock:
            self._dead.update(self._socks)

    def drop_all(self):
        """Close every connection carried now (both sides)."""
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            for f in (lambda: s.shutdown(socket.SHUT_RDWR), s.close):
                try:
                    f()
                except OSError:
                    pass

    def stop(self):
        self._stopped = True
        self._flowing.set()
        try:
            self._listener.close()
        except OSError:
            pass
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass

    def _accept(self):
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._socks += [client, server]
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, server, False),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True),
                             daemon=True).start()

    def _pump(self, src, dst, replies):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if src in self._dead or dst in self._dead:
                    continue
                if replies:
                    self._flowing.wait()
                    if self._delay:
                        time.sleep(self._delay)
                    with self._lock:
                        cut, left = self._cut is not None, self._cut
                        if cut:
                            self._cut = None if len(data) >= left else left - len(data)
                    if cut and len(data) >= left:
                        dst.sendall(data[:left])
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
