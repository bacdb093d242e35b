# strata's container image: a memcached-compatible tiered cache, run as a
# sidecar. See docs/container.md.
#
#   docker build -t strata .
#   podman build -t strata .
#   scripts/image-test.sh    builds it with podman on a locally made Debian
#                            base image and tests the container end to end
#
# BASE_IMAGE is Debian 12 (bookworm); both stages use it. The test passes a
# base image made with mmdebstrap (--build-arg BASE_IMAGE=localhost/...).
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim

# ---------------------------------------------------------------- build stage
# Builds the release binary and runs the unit tests. The integration tests
# need memcached and Python clients: scripts/test.sh runs them, and
# scripts/image-test.sh checks the finished container from the host.
FROM ${BASE_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/deps.sh scripts/deps.sh
RUN scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY common common
COPY config config
COPY metrics metrics
COPY tiers tiers
COPY proxy proxy
COPY bench bench
COPY tests tests
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null \
 && cmake --build build -j "$(nproc)"
# Where the builder's seccomp profile denies io_uring (Docker 25+, podman's
# default), the device tests that demand io_uring skip themselves (and say
# so); strata's thread-pool mode is still tested.
RUN cd build && ctest -L unit --output-on-failure -j "$(nproc)" --timeout 900

# -------------------------------------------------------------- runtime stage
FROM ${BASE_IMAGE} AS runtime
# The shared libraries build/proxy/strata needs (ldd, dpkg -S). xxHash is
# header-only here; prometheus-cpp's HTTP side is civetweb, not -pull; libmd0
# (MD5) and zlib1g (CRC-32) serve the upstream pool's key placement, libc-ares2
# its DNS membership sources.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libuv1 liburing2 liblz4-1 libprometheus-cpp-core1.0 libcivetweb1 \
      libyaml-cpp0.7 libisal2 libmd0 zlib1g libc-ares2 libstdc++6 >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old \
      /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
# A fixed numeric user (Kubernetes' runAsNonRoot checks the number), and the
# cache volume it owns: the only place strata writes (plus /tmp, unused
# today), so the root file system can be read-only.
RUN groupadd --system --gid 10001 strata \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/cache/strata --shell /usr/sbin/nologin strata \
 && install -d -o 10001 -g 10001 -m 0750 /var/cache/strata \
 && rm -f /var/log/faillog /var/log/lastlog
COPY --from=build /src/build/proxy/strata /usr/local/bin/strata
COPY config/strata-container.yaml /etc/strata/strata.yaml
# Fails the build if a shared library is missing from the list above.
RUN if ldd /usr/local/bin/strata | grep 'not found'; then exit 1; fi \
 && /usr/local/bin/strata --version

LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="memcached-compatible tiered cache (RAM + SSD), run as a sidecar" \
      org.opencontainers.image.documentation="docs/container.md"
USER 10001:10001
WORKDIR /var/cache/strata
VOLUME ["/var/cache/strata"]
# memcached text protocol (on 127.0.0.1 unless -l is given); metrics and
# health checks (/metrics, /healthz, /readyz).
EXPOSE 11211 9150
# SIGTERM: stop accepting, drain replies (server.drain_timeout), write RAM
# items to the SSD tier, exit 0. Give it a grace period longer than that.
STOPSIGNAL SIGTERM
# Arguments after the image name are strata's flags; they override the file.
ENTRYPOINT ["/usr/local/bin/strata", "--config", "/etc/strata/strata.yaml"]
CMD []
