// NetworkIoMode: how the workers read and write sockets
// (`server.network_io`): io_uring batches, falling back to plain system
// calls where io_uring cannot be had (kAuto), io_uring only (kIoUring), or
// plain calls only (kSyscalls). ServerOptions carries it; NetBatch
// (proxy/net/net_batch.h) acts on it as NetBatch::Mode. It sits here, below
// the network layer, so that the options every worker shares need nothing
// from proxy/net/.
//
// Thread safety: a plain enum; nothing to share.
#pragma once

namespace strata::proxy {

enum class NetworkIoMode { kAuto, kIoUring, kSyscalls };

}  // namespace strata::proxy
