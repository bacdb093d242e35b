#!/usr/bin/env python3
"""The request streams of dispatch_ssd_test.cc, sent to a real memcached.

The SSD tier is invisible to clients, so each stream of that test without
its evictions, seals and faults is what memcached 1.6.18 must answer with
the bytes the test expects. This script replays them, each test against a
fresh `memcached -p PORT -U 0 -l 127.0.0.1` (so CAS uniques count from 1, as
in the test's fresh cache), and reports every reply that differs. Where a
test runs another connection's write while a read is in flight, the write
comes first here: that is the order the test's replies show. Clock
advances and the bounded-retry case have no counterpart and are left out.

Usage: python3 tests/proxy/dispatch_ssd_replies.py   (memcached on PATH)
Exit status 0 when every reply matches.
"""
import os
import socket
import subprocess
import sys
import time

PORT = 21877
proc = None


def fresh():
    global proc, PORT
    if proc:
        proc.kill()
        proc.wait()
    PORT += 1
    cmd = ["memcached", "-p", str(PORT), "-U", "0", "-l", "127.0.0.1", "-m", "256"]
    if os.geteuid() == 0:
        cmd += ["-u", "root"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", PORT)).close()
            return
        except OSError:
            time.sleep(0.05)


def run(req):
    s = socket.create_connection(("127.0.0.1", PORT))
    s.sendall(req.encode('latin1') + b"mn\r\n")
    data = b""
    while not data.endswith(b"MN\r\n"):
        c = s.recv(1 << 20)
        if not c: break
        data += c
    s.close()
    return data[:-4].decode('latin1')

fails = 0
def check(req, want, what=""):
    global fails
    got = run(req)
    if got != want:
        fails += 1
        print("MISMATCH", what, repr(req[:120]), "\n  want", repr(want[:300]), "\n  got ", repr(got[:300]))

# GetWaitsForTheDeviceAndAnswersInRequestOrder
fresh()
check("set r 1 0 3\r\nram\r\nset d 2 0 4\r\ndisk\r\nset b 3 0 6\r\nbuffer\r\n", "STORED\r\n"*3)
check("get r d missing b d\r\n", "VALUE r 1 3\r\nram\r\nVALUE d 2 4\r\ndisk\r\nVALUE b 3 6\r\nbuffer\r\nVALUE d 2 4\r\ndisk\r\nEND\r\n")
check("gets d b r\r\n", "VALUE d 2 4 2\r\ndisk\r\nVALUE b 3 6 3\r\nbuffer\r\nVALUE r 1 3 1\r\nram\r\nEND\r\n")
check("gets d\r\n", "VALUE d 2 4 2\r\ndisk\r\nEND\r\n")

# MultiGetWaitsOncePerBatch
fresh()
request = "get"; reply = ""
for i in range(150):
    key = "k%d" % i
    request += " " + key
    if i % 3 == 2: continue
    value = chr(ord('a') + i % 26) * (10 + i)
    check("set %s %d 0 %d\r\n%s\r\n" % (key, i, len(value), value), "STORED\r\n")
    reply += "VALUE %s %d %d\r\n%s\r\n" % (key, i, len(value), value)
check(request + "\r\n", reply + "END\r\n", "multiget")

# GatOnTheSsdAppliesTheNewExpiry (up to the clock's advance)
fresh()
check("set g 0 100 5\r\nhello\r\nset h 7 0 5\r\nworld\r\n", "STORED\r\nSTORED\r\n")
check("gat 1000 g missing h\r\n", "VALUE g 0 5\r\nhello\r\nVALUE h 7 5\r\nworld\r\nEND\r\n")
check("get g\r\n", "VALUE g 0 5\r\nhello\r\nEND\r\n")
check("gets g h\r\n", "VALUE g 0 5 1\r\nhello\r\nVALUE h 7 5 2\r\nworld\r\nEND\r\n")

# GatThatExpiresAnSsdKeyLeavesNothingBehind
fresh()
check("set k 0 0 5\r\nhello\r\n", "STORED\r\n")
check("gat -1 k\r\nget k\r\n", "VALUE k 0 5\r\nhello\r\nEND\r\nEND\r\n")

# GatRacingAReadAheadDropsTheOldRecord
fresh()
check("set k 0 0 5\r\nhello\r\nset j 0 0 5\r\nworld\r\n", "STORED\r\nSTORED\r\n")
check("gat -1 k\r\nget k\r\n", "VALUE k 0 5\r\nhello\r\nEND\r\nEND\r\n")
check("gat 100 j\r\n", "VALUE j 0 5\r\nworld\r\nEND\r\n")

# CommandsOnSsdKeysPromoteFirst
fresh()
cases = [
    ("add K 0 0 2\r\n42\r\n", "NOT_STORED", "VALUE K 5 2\r\n10\r\n"),
    ("replace K 0 0 2\r\n42\r\n", "STORED", "VALUE K 0 2\r\n42\r\n"),
    ("append K 0 0 2\r\n42\r\n", "STORED", "VALUE K 5 4\r\n1042\r\n"),
    ("prepend K 0 0 2\r\n42\r\n", "STORED", "VALUE K 5 4\r\n4210\r\n"),
    ("cas K 0 0 2 CAS\r\n42\r\n", "STORED", "VALUE K 0 2\r\n42\r\n"),
    ("cas K 0 0 2 999999\r\n42\r\n", "EXISTS", "VALUE K 5 2\r\n10\r\n"),
    ("incr K 5\r\n", "15", "VALUE K 5 2\r\n15\r\n"),
    ("decr K 3\r\n", "7", "VALUE K 5 2\r\n7 \r\n"),
    ("decr K 30\r\n", "0", "VALUE K 5 2\r\n0 \r\n"),
    ("incr K 18446744073709551615\r\n", "9", "VALUE K 5 2\r\n9 \r\n"),
    ("incr K x\r\n", "CLIENT_ERROR invalid numeric delta argument", "VALUE K 5 2\r\n10\r\n"),
    ("touch K 100\r\n", "TOUCHED", "VALUE K 5 2\r\n10\r\n"),
    ("touch K -1\r\n", "TOUCHED", ""),
    ("delete K\r\n", "DELETED", ""),
    ("set K 0 0 2\r\n42\r\n", "STORED", "VALUE K 0 2\r\n42\r\n"),
]
rnd = 0
for on_device in (True, False):
    for noreply in (False, True):
        rnd += 1
        keys = []; cas = []
        for i in range(len(cases)):
            keys.append("r%dc%d" % (rnd, i))
            check("set %s 5 0 2\r\n10\r\n" % keys[i], "STORED\r\n")
            g = run("gets %s\r\n" % keys[i]); cas.append(g.split("\r\n")[0].split()[4])
        for i, (req, rep, val) in enumerate(cases):
            r = req.replace("K", keys[i]).replace("CAS", cas[i])
            if noreply:
                at = r.find("\r\n"); r = r[:at] + " noreply" + r[at:]
            check(r, "" if noreply else rep + "\r\n", r)
            check("get %s\r\n" % keys[i], val.replace("K", keys[i]) + "END\r\n", "get after " + r)

# EveryCommandOfAPipelinePromotesItsKey
fresh()
commands = [
    ("incr K 5\r\n", "15", "15"), ("decr K 3\r\n", "7", "7 "), ("touch K 100\r\n", "TOUCHED", "10"),
    ("append K 0 0 2\r\n42\r\n", "STORED", "1042"), ("prepend K 0 0 2\r\n42\r\n", "STORED", "4210"),
    ("add K 0 0 2\r\n42\r\n", "NOT_STORED", "10"), ("replace K 0 0 2\r\n42\r\n", "STORED", "42"),
    ("cas K 0 0 2 CAS\r\n42\r\n", "STORED", "42"),
]
for second_on_device in (False, True):
    prefix = "dev" if second_on_device else "buf"
    request = ""; reply = ""; get = "get"; values = ""; pair = 0
    def add(c, key, noreply):
        global request, reply, get, values
        check("set %s 0 0 2\r\n10\r\n" % key, "STORED\r\n")
        r = c[0].replace("K", key, 1)
        if "CAS" in r:
            g = run("gets %s\r\n" % key); r = r.replace("CAS", g.split("\r\n")[0].split()[4])
        if noreply:
            at = r.find("\r\n"); r = r[:at] + " noreply" + r[at:]
        request += r
        if not noreply: reply += c[1] + "\r\n"
        get += " " + key
        values += "VALUE %s 0 %d\r\n%s\r\n" % (key, len(c[2]), c[2])
    for first in commands:
        for second in commands:
            key = prefix + str(pair)
            add(first, key + "a", pair % 2 == 1)
            add(second, key + "b", False)
            pair += 1
    check(request, reply, "pipeline " + prefix)
    check(get + "\r\n", values + "END\r\n", "pipeline values " + prefix)

# TheIssuesPipelines
fresh()
check("set a 0 0 5\r\naaaaa\r\nset b 0 0 5\r\nbbbbb\r\nset x 0 0 2\r\n10\r\n", "STORED\r\n"*3)
check("touch a -1\r\nappend b 0 0 4\r\ntail\r\n", "TOUCHED\r\nSTORED\r\n")
check("get b\r\n", "VALUE b 0 9\r\nbbbbbtail\r\nEND\r\n")
check("set a 0 0 5\r\naaaaa\r\n", "STORED\r\n")
check("decr x 5 noreply\r\ntouch a -1\r\nget x a\r\n", "TOUCHED\r\nVALUE x 0 2\r\n5 \r\nEND\r\n")

# IncrDecrAfterAPromotionFollowMemcachedsPadding
fresh()
check("set n 0 0 3\r\n100\r\nset m 0 0 2\r\n99\r\nset p 0 0 3\r\n100\r\nset q 0 0 3\r\n100\r\n", "STORED\r\n"*4)
check("decr n 95\r\nget n\r\n", "5\r\nVALUE n 0 3\r\n5  \r\nEND\r\n")
check("incr m 1\r\nget m\r\n", "100\r\nVALUE m 0 3\r\n100\r\nEND\r\n")
check("decr p 95\r\nget p\r\n", "5\r\nVALUE p 0 3\r\n5  \r\nEND\r\n")
check("get q\r\ndecr q 95\r\nget q\r\n", "VALUE q 0 3\r\n100\r\nEND\r\n5\r\nVALUE q 0 3\r\n5  \r\nEND\r\n")
check("incr q 1000\r\nget q\r\n", "1005\r\nVALUE q 0 4\r\n1005\r\nEND\r\n")

# KeyEvictedAgainBeforeItsCommandIsPromotedAgain (not the bounded case)
fresh()
check("set k 0 0 2\r\n10\r\nset j 0 0 2\r\n10\r\n", "STORED\r\nSTORED\r\n")
check("incr k 1\r\n", "11\r\n")
check("touch j 0\r\nincr j 5\r\n", "TOUCHED\r\n15\r\n")

# ReadAheadPromotesAndTheGetCountsAnSsdHit
fresh()
check("set k 3 0 5\r\nhello\r\nset r 0 0 1\r\nx\r\n", "STORED\r\nSTORED\r\n")
check("gets k\r\n", "VALUE k 3 5 1\r\nhello\r\nEND\r\n")
check("get k\r\n", "VALUE k 3 5\r\nhello\r\nEND\r\n")

# DeleteOrSetBetweenReadAheadAndGetWins
fresh()
check("set a 0 0 3\r\nold\r\nset b 0 0 3\r\nold\r\nset c 0 0 3\r\nold\r\nset d 0 0 3\r\nold\r\n", "STORED\r\n"*4)
check("delete a\r\nset c 0 0 3\r\nnew\r\n", "DELETED\r\nSTORED\r\n")
check("delete b\r\n", "DELETED\r\n")
check("set d 0 0 3\r\nnew\r\n", "STORED\r\n")
check("get a b c d\r\n", "VALUE c 0 3\r\nnew\r\nVALUE d 0 3\r\nnew\r\nEND\r\n")

# WriteDuringAnSsdReadWins (the other connection's write first)
fresh()
check("".join("set %s 0 0 3\r\nold\r\n" % k for k in "abcdefgh"), "STORED\r\n"*8)
check("delete a\r\n", "DELETED\r\n"); check("get a\r\n", "END\r\n")
check("set b 0 0 3\r\nnew\r\n", "STORED\r\n"); check("gets b\r\n", "VALUE b 0 3 9\r\nnew\r\nEND\r\n")
check("get c\r\nget c\r\n", "VALUE c 0 3\r\nold\r\nEND\r\nVALUE c 0 3\r\nold\r\nEND\r\n")
check("delete c\r\n", "DELETED\r\n"); check("get c\r\n", "END\r\n")
check("delete d\r\n", "DELETED\r\n"); check("gat 0 d\r\n", "END\r\n")
check("set e 0 0 3\r\nnew\r\n", "STORED\r\n"); check("gats 0 e\r\n", "VALUE e 0 3 10\r\nnew\r\nEND\r\n")
check("delete f\r\n", "DELETED\r\n"); check("append f 0 0 1\r\n!\r\n", "NOT_STORED\r\n")
check("set g 0 0 2\r\n20\r\n", "STORED\r\n"); check("incr g 1\r\n", "21\r\n")
check("delete h\r\n", "DELETED\r\n"); check("touch h 0\r\n", "NOT_FOUND\r\n")
check("get a b c d e f g h\r\n", "VALUE b 0 3\r\nnew\r\nVALUE e 0 3\r\nnew\r\nVALUE g 0 2\r\n21\r\nEND\r\n")

# FlushAllDuringAnSsdReadWins (the flush first)
fresh()
check("set a 0 0 3\r\nold\r\nset b 0 0 3\r\nold\r\nset c 0 0 2\r\n10\r\n", "STORED\r\n" * 3)
check("flush_all\r\n", "OK\r\n")
check("get a b\r\n", "END\r\n")
check("set a 0 0 3\r\nold\r\nset b 0 0 3\r\nold\r\n", "STORED\r\nSTORED\r\n")
check("flush_all\r\n", "OK\r\n")
check("append a 0 0 1\r\n!\r\n", "NOT_STORED\r\n")
check("get a b c\r\n", "END\r\n")

# WritesOfSsdKeysWaitForTheirInvalidation
fresh()
writes = [("delete K\r\n", "DELETED\r\n"), ("set K 0 0 1\r\nx\r\n", "STORED\r\n"),
          ("touch K 100\r\n", "TOUCHED\r\n"), ("incr K 1\r\n", "11\r\n"), ("decr K 1 noreply\r\n", ""),
          ("append K 0 0 1\r\nx\r\n", "STORED\r\n"), ("gat 100 K\r\n", "VALUE K 0 2\r\n10\r\nEND\r\n")]
for i in range(len(writes)):
    for key in ("s%d" % i, "r%d" % i):
        check("set %s 0 0 2\r\n10\r\n" % key, "STORED\r\n")
for prefix in ("s", "r"):
    for i, (req, rep) in enumerate(writes):
        key = prefix + str(i)
        check(req.replace("K", key, 1), rep.replace("K", key, 1))

proc.kill()
proc.wait()
print("mismatches:", fails)
sys.exit(1 if fails else 0)
