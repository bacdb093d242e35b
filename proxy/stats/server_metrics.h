// The server's side of the Prometheus metrics: fills a metrics::Snapshot
// from the shared ServerContext at scrape time, summing every worker's
// counters and latency histograms (the same counters `stats` reads) and
// reading the tiers' statistics.
//
// Thread safety: FillSnapshot() may run on any thread (the metrics server's)
// once Server::Start() has returned; before that, FillProcessSnapshot()
// is what may be read (the worker list is still being built).
#pragma once

#include "metrics/snapshot.h"
#include "proxy/shared/server_context.h"

namespace strata::proxy {

// Version, uptime, time and CPU usage only.
void FillProcessSnapshot(const ServerContext& ctx, metrics::Snapshot* out);

// Everything: FillProcessSnapshot(), the workers' counters and latency,
// the connections and the tiers.
void FillSnapshot(const ServerContext& ctx, metrics::Snapshot* out);

}  // namespace strata::proxy
