"""A sparse cache file is reserved at startup (issue 21, part 3).

A cache file of full length with holes (made with `truncate`) used to be
taken as it was, and region writes then failed with ENOSPC once something
else filled the file system. strata now allocates every block of the file
when it starts, and refuses to start, naming the path and the bytes it could
not get, when the file system does not have them.

The tests run the real binary on a small ext4 file system they make and
mount themselves (an image file, `mkfs.ext4`, `mount -o loop`: tmpfs takes
O_DIRECT only from Linux 6.6 on) and always unmount, also when a test fails.
Where mounting is not allowed (not root, no loop devices, a container
without the capability) they are skipped and say why.
"""

import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import free_port

pytestmark = pytest.mark.strata_only

IMAGE_BYTES = 96 << 20
TIER_BYTES = 48 << 20
REGION = "4MiB"
START_TIMEOUT_S = 30.0


def _run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=60, **kw)


@pytest.fixture
def small_fs(tmp_path):
    """A 96 MiB ext4 file system mounted on tmp_path/mnt; unmounted (and
    its loop device detached) at teardown, whatever the test did."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system needs root")
    for tool in ("mkfs.ext4", "mount", "umount", "losetup", "filefrag"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian: e2fsprogs, mount)")
    if not os.path.exists("/dev/loop-control"):
        pytest.skip("no loop devices here (/dev/loop-control is missing)")
    image = tmp_path / "fs.img"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(IMAGE_BYTES)
    r = _run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-m", "0", str(image)])
    assert r.returncode == 0, r.stdout
    r = _run(["mount", "-o", "loop", str(image), str(mnt)])
    if r.returncode != 0:
        pytest.skip(f"cannot loop-mount a file system here: {r.stdout.decode().strip()}")
    try:
        yield mnt
    finally:
        r = _run(["umount", str(mnt)])
        if r.returncode != 0:
            _run(["umount", "-l", str(mnt)])
        # mount -o loop detaches on umount; make sure, by the image's name.
        r = _run(["losetup", "-j", str(image)])
        for line in r.stdout.decode().splitlines():
            dev = line.split(":", 1)[0]
            if dev.startswith("/dev/loop"):
                _run(["losetup", "-d", dev])


def write_config(tmp_path, cache):
    cfg = tmp_path / "strata.yaml"
    cfg.write_text(
        "tiers:\n"
        "  ram:\n"
        "    size: 8MiB\n"
        "  ssd:\n"
        f"    path: {cache}\n"
        f"    size: {TIER_BYTES}\n"
        f"    region_size: {REGION}\n"
        "    admission: all\n"
        "    demote_on_shutdown: false\n")
    return cfg


def make_sparse(path, length, marker_at=None, marker=b""):
    with open(path, "wb") as f:
        f.truncate(length)
        if marker:
            f.seek(marker_at)
            f.write(marker)
    st = os.stat(path)
    assert st.st_blocks * 512 < length // 2, "the file is not sparse"


def fill(mnt):
    """Fills the file system with a file of zeros; returns the bytes left."""
    fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096):  # then the last partial megabyte
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
        os.fsync(fd)
    finally:
        os.close(fd)
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def allocated_extents(path):
    """(first block, last block) of each extent filefrag reports, and the
    block size."""
    out = _run(["filefrag", "-v", str(path)]).stdout.decode()
    block = int(re.search(r"\((\d+) blocks of (\d+) bytes\)", out).group(2))
    extents = []
    for m in re.finditer(r"^\s*\d+:\s+(\d+)\.\.\s*(\d+):", out, re.M):
        extents.append((int(m.group(1)), int(m.group(2))))
    return extents, block


def assert_no_holes(path, length):
    st = os.stat(path)
    assert st.st_size == length
    assert st.st_blocks * 512 >= length, \
        f"{st.st_blocks * 512} bytes allocated of {length}"
    extents, block = allocated_extents(path)
    covered = 0
    for first, last in sorted(extents):
        assert first == covered, f"hole at block {covered}: extents {extents}"
        covered = last + 1
    assert covered * block >= length, f"extents {extents} end before {length}"


def strata_argv(strata_bin, cfg, port):
    return [strata_bin, "--config", str(cfg), "-p", str(port), "-l", "127.0.0.1",
            "-t", "2", "--metrics-listen", "127.0.0.1:0"]


def test_sparse_file_without_room_is_refused_with_the_bytes_missing(
        strata_bin, small_fs, tmp_path):
    cache = small_fs / "cache.bin"
    marker = b"written before the restart" * 100
    make_sparse(cache, TIER_BYTES, marker_at=1 << 20, marker=marker)
    free = fill(small_fs)
    assert free < TIER_BYTES // 2, f"{free} bytes still free"
    cfg = write_config(tmp_path, cache)
    proc = subprocess.Popen(strata_argv(strata_bin, cfg, free_port()),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=START_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    print(text)
    assert proc.returncode not in (0, None), text
    assert proc.returncode == 1, text  # "cannot start", as other setting errors
    m = re.search(
        r"cannot start: tiers\.ssd\.path: (\S+): cannot reserve the SSD tier's "
        r"48\.0 MiB \(50331648 bytes\): [\d.]+ MiB \((\d+) bytes\) of it could not be "
        r"allocated \(the file system has [\d.]+ MiB \((\d+) bytes\) free\): "
        r"No space left on device", text)
    assert m, text
    assert m.group(1) == str(cache)
    missing, reported_free = int(m.group(2)), int(m.group(3))
    # What it could not get is what the file lacked beyond the free space.
    assert TIER_BYTES - free - (1 << 20) <= missing <= TIER_BYTES, (missing, free)
    assert reported_free <= free + (1 << 20)
    # It did not start serving, and what the file held is intact.
    assert "listening" not in text
    with open(cache, "rb") as f:
        f.seek(1 << 20)
        assert f.read(len(marker)) == marker
    assert os.stat(cache).st_size == TIER_BYTES


def stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            data = s.recv(65536)
            assert data, "closed during stats"
            buf += data
    return {line.split()[1].decode(): line.split()[2].decode()
            for line in buf.split(b"\r\n") if line.startswith(b"STAT ")}


def test_sparse_file_with_room_is_allocated_and_survives_a_full_disk(
        strata_bin, small_fs, tmp_path):
    cache = small_fs / "cache.bin"
    make_sparse(cache, TIER_BYTES)
    cfg = write_config(tmp_path, cache)
    port = free_port()
    log = open(tmp_path / "strata.log", "w+b")
    proc = subprocess.Popen(strata_argv(strata_bin, cfg, port), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            assert proc.poll() is None, open(tmp_path / "strata.log").read()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "strata did not start"
                time.sleep(0.05)
        assert_no_holes(cache, TIER_BYTES)
        text = open(tmp_path / "strata.log").read()
        assert re.search(rf"{re.escape(str(cache))}: allocated 4[78]\.\d MiB the file did "
                         r"not have", text), text
        # Something else fills the file system now: the tier's writes must
        # not notice (issue 21: they failed with ENOSPC).
        left = fill(small_fs)
        assert left < (1 << 20)
        # Every region is written after the disk filled up, and the log
        # wraps: sets (through an 8 MiB RAM tier, admission all) until the
        # device has taken 1.5x the tier (the writer drops demotions while
        # it is a region behind, so the bytes set are not the bytes written).
        want = TIER_BYTES + TIER_BYTES // 2
        value = os.urandom(60 * 1024)
        st = stats(port)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            i = 0
            while int(st["extstore_bytes_written"]) < want and i * len(value) < 20 * TIER_BYTES:
                for _ in range(64):
                    s.sendall(b"set sp:%06d 0 0 %d\r\n%s\r\n" % (i, len(value), value))
                    i += 1
                    reply = b""
                    while not reply.endswith(b"\r\n"):
                        data = s.recv(64)
                        assert data, "closed"
                        reply += data
                    assert reply == b"STORED\r\n", reply
                st = stats(port)
        print({k: v for k, v in st.items() if k.startswith(("ssd_", "extstore"))})
        assert int(st["extstore_bytes_written"]) >= want, st
        assert int(st["ssd_write_errors"]) == 0, st
        assert int(st["ssd_regions_reclaimed"]) > 0, st
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()
