#!/bin/sh
# Creates the Debian builder base image for the Dockerfile's BASE build-arg
# (default name tgfront-builder-base:bookworm) without any image registry:
# debootstrap --variant=minbase bookworm from this machine's own apt mirror,
# then `import`. About 40 s; does nothing when the image already exists.
#
#   ci/make-base.sh [IMAGE_NAME]
#
# ENGINE=docker|podman overrides the engine choice (default: docker when
# `docker info` works, else podman with ci/containers.conf).
set -eu
cd "$(dirname "$0")/.."
. ./build/image.sh
[ $# -eq 0 ] || IMAGE_BASE=$1
image_engine_setup || image_die "neither a working docker nor podman found"
image_base
echo "make-base: $IMAGE_BASE ready ($ENGINE)"
