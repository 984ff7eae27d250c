# syntax=docker/dockerfile:1
# notifd in a container: the Debian package built from this tree on
# debian:12, installed on debian:12-slim and run as an unprivileged user
# with the packaged config (/etc/notifd/notifd.yaml, every role in one
# process, data in the /var/lib/notifd volume).
#
#   docker build -t notifd .
#   docker run -p 8080:8080 -v notifd-data:/var/lib/notifd notifd
#
# Overrides are the config's variables (-e NOTIFD_REGISTRATION=closed,
# NOTIFD_JWT_SECRET, NOTIFD_SMTP_URL, ...; README "Configuration").
# Not built by the test suite (no container engine on the project's
# machines): tests/integration/dockerfile_lint.sh lints it with hadolint,
# and tests/integration/deb_package.sh tests the package it installs.

FROM debian:12 AS build
# Versions are Debian 12's; pinning each would only break on point releases.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential debhelper meson ninja-build pkg-config python3 python3-yaml \
      libevent-dev libyaml-dev libjansson-dev libsqlite3-dev libssl-dev librdkafka-dev \
      libhiredis-dev libmongoc-dev libbson-dev libcurl4-openssl-dev \
      libargon2-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src/notifd
COPY . .
RUN dpkg-buildpackage -us -uc -b \
 && mkdir /debs \
 && mv ../notifd_*.deb /debs/

FROM debian:12-slim
COPY --from=build /debs/ /tmp/debs/
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates /tmp/debs/notifd_*.deb \
 && rm -rf /var/lib/apt/lists/* /tmp/debs \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/notifd \
      --shell /usr/sbin/nologin notifd \
 && install -d -o notifd -g notifd -m 0700 /var/lib/notifd
# Numeric, so that runAsNonRoot-style checks can see it is not root.
USER 10001:10001
WORKDIR /var/lib/notifd
VOLUME ["/var/lib/notifd"]
EXPOSE 8080
ENV NOTIFD_ADDRESS=0.0.0.0 NOTIFD_PORT=8080
ENTRYPOINT ["/usr/bin/notifd"]
