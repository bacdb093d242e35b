"""The container memory strata needs for a config: the formula the Helm
chart computes (helm/strata/templates/_helpers.tpl, strata.memoryBytes) and
the README states, written once more for the tests that hold strata to it
(test_memory.py measures RSS against it; tests/helm/test_chart.py checks
that the chart renders the same numbers).

    24 MiB                                   binary, threads, per-worker pools
  + 1.2 x tiers.ram.size                     items, index share, allocator slack
  + server.max_connection_memory             what connections hold (capped)
  + 2 x workers x tiers.ram.max_item_size    one step per worker past the cap,
                                             and one value it streams uncharged
  + 2 KiB x server.max_connections           a connection's own structures
  + with an SSD tier:
    3 x tiers.ssd.region_size                two region buffers, a reclaim's read-back
  + tiers.ssd.size / avg item x 14 B         the SSD index
  + 2 x tiers.ram.max_item_size              large items queued for the SSD
"""

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

FIXED = 24 * MIB
RAM_FACTOR_NUM, RAM_FACTOR_DEN = 6, 5       # 1.2
PER_CONNECTION = 2 * KIB
REGION_BUFFERS = 3
LARGE_QUEUED_ITEMS = 2  # SsdLogOptions::large_pending_bytes = 2 x max_item_size
INDEX_BYTES_PER_ITEM = 14
DEFAULT_REGION = 16 * MIB


def default_connection_memory(ram):
    """server.max_connection_memory: auto (proxy::DefaultConnectionMemory)."""
    return min(max(ram // 8, 32 * MIB), GIB)


def memory_limit(ram=256 * MIB, workers=2, max_item=MIB, max_connections=4096,
                 connection_memory=None, ssd=0, region=DEFAULT_REGION,
                 avg_item=4 * KIB):
    """Bytes of memory strata needs (the chart's limits.memory)."""
    if connection_memory is None:
        connection_memory = default_connection_memory(ram)
    total = (FIXED + ram * RAM_FACTOR_NUM // RAM_FACTOR_DEN + connection_memory +
             2 * workers * max_item + max_connections * PER_CONNECTION)
    if ssd:
        total += (REGION_BUFFERS * region + ssd // avg_item * INDEX_BYTES_PER_ITEM +
                  LARGE_QUEUED_ITEMS * max_item)
    return total


def as_mi(total):
    """The chart's rounding: whole MiB, up, as a quantity."""
    return f"{(total + MIB - 1) // MIB}Mi"
