"""The keys every golden vector file places, shared by all generators.

Deterministic (no randomness beyond a fixed seed), and every key is a valid
memcached text-protocol key: 1..250 bytes, no whitespace or control bytes.
Writes keys.txt (one key per line, hex of its bytes) when run as a script;
the Go generator reads that file.
"""
import random
import sys


def keys():
    out = []
    out += ["key:%d" % i for i in range(200)]
    out += ["user:%d:profile" % (i * 7919) for i in range(40)]
    out += ["emb/%08x" % (i * 2654435761 & 0xFFFFFFFF) for i in range(40)]
    # Keys that differ from each other in exactly one character.
    base = "abcdefghijklmnop"
    for i in range(len(base)):
        out.append(base[:i] + "Z" + base[i + 1:])
    out.append(base)
    # One-byte keys.
    out += list("abcdefghijklmnopqrstuvwxyz0123456789")
    # Long keys, up to memcached's 250-byte limit.
    rng = random.Random(23)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:_-./"
    out.append("k" * 250)
    out.append("k" * 249 + "l")
    out.append("l" + "k" * 249)
    for n in (64, 128, 200, 249, 250, 250, 250):
        out.append("".join(rng.choice(alphabet) for _ in range(n)))
    # UTF-8: 2-, 3- and 4-byte sequences, and a 250-byte one.
    out += ["ключ:%d" % i for i in range(10)]
    out += ["键%d" % i for i in range(10)]
    out += ["café", "cafe", "naïve", "Ωmega", "\U0001F511%d" % 1, "\U0001F511%d" % 2,
            "x\u00ffy", "\u0100\u0101", "日本語のキー", "é" * 125, "€" * 83]
    seen = set()
    result = []
    for k in out:
        b = k.encode("utf-8")
        assert 1 <= len(b) <= 250, k
        assert not any(c <= 0x20 or c == 0x7F for c in b), k
        if b not in seen:
            seen.add(b)
            result.append(b)
    return result


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "keys.txt"
    with open(path, "w") as f:
        for k in keys():
            f.write(k.hex() + "\n")
