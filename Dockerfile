# tgfront appliance: tgfront (FakeTLS MTProto proxy, owns :443) + Caddy (the
# real website on 127.0.0.1:8443 and :80) under s6, configured by /init from
# the environment (DOMAIN, SECRET, ...; see README).
#
#   docker build -t tgfront .
#
# The builder stage runs build.sh (the same build as on a Debian machine) and
# the final stage is FROM scratch with the assembled root. Where no image
# registry is reachable, make the base with ci/make-base.sh (debootstrap from
# the local apt mirror) and build with --build-arg BASE=tgfront-builder-base:bookworm
# (./build.sh image does both).
#
# Architectures: the builder always runs on the build machine's platform and
# cross-builds for TARGETARCH, so no arm64 code runs in an arm64 build:
#   docker buildx build --platform linux/arm64 -t tgfront:arm64 .
# (out/arm64/tgfront, Debian's arm64 packages; build/image-arch.sh).
# ./build.sh image arm64 does the same with podman or docker.
ARG BASE=debian:bookworm

FROM --platform=$BUILDPLATFORM ${BASE} AS builder
ARG TARGETARCH
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src
# Prerequisites first, in their own layer (cached while build/ is unchanged):
# compilers and BearSSL's source (and the cross compiler), s6/execline/busybox/
# CA certificates (and their TARGETARCH packages), Caddy from Debian testing.
COPY build.sh Makefile ./
COPY build/ build/
RUN IMAGE_ARCH="$TARGETARCH" sh -ec '. build/daemon.sh; daemon_setup; . build/image.sh; image_arch_daemon_prereqs; image_prereqs; mkdir -p out/cache; image_caddy_fetch'
COPY . .
# The root lands in out/rootfs/ whatever the architecture.
RUN IMAGE_ROOT=out/rootfs ./build.sh rootfs "$TARGETARCH"

FROM scratch
COPY --from=builder /src/out/rootfs/ /
ARG REVISION=unknown
ARG VERSION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="tgfront" \
      org.opencontainers.image.description="Telegram FakeTLS proxy and a real HTTPS website (Caddy) sharing one :443" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="MIT AND Apache-2.0 AND ISC AND GPL-2.0-only" \
      org.opencontainers.image.documentation="README.md in the source tree"
ENV PATH=/usr/bin:/bin:/usr/sbin:/sbin
EXPOSE 80 443
VOLUME ["/data"]
# tgfront connects to every address /init wrote (its own HTTPS port, Caddy's
# loopback TLS port and Caddy's HTTP port), and Caddy must hold a
# certificate for DOMAIN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/usr/lib/tgfront/healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/init"]
