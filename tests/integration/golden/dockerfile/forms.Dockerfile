# syntax=docker/dockerfile:1
# check=skip=JSONArgsRecommended
# Every form `dockerfile pin` must keep: directives, comments, continuations, heredocs.
ARG REGISTRY={REG}
ARG BASE_IMAGE="{REG}/debian:bookworm"
ARG SUITE=bookworm

# A base built from two ARGs cannot be pinned in place: reported, left alone.
FROM ${REGISTRY}/debian:${SUITE} AS tools
RUN <<EOF
# a script whose lines look like instructions
FROM {REG}/debian:trixie
EOF

# One ARG holding the whole reference: pinned through its default.
FROM ${BASE_IMAGE} AS build
RUN apt-get update && \
    # a comment inside a continuation
    apt-get install -y gcc

FROM --platform=linux/arm64 \
     {REG}/multi:bookworm AS cross
LABEL org.opencontainers.image.base.digest="sha256:0000000000000000000000000000000000000000000000000000000000000000"

FROM scratch AS empty
LABEL org.opencontainers.image.base.name="{REG}/debian:bookworm" maintainer="hpc@example.org"

FROM build AS again
COPY --from=tools /etc/os-release /etc/tools-release

from {REG}/debian:bookworm
COPY --from=again /etc/os-release /tmp/
COPY --from=cross /etc/debian_version /tmp/
