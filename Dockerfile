# Three stages on one base: `deps` installs the locked dependencies and builds the native SQLite
# addon, `build` compiles src/, and the runtime stage gets production dependencies and the
# compiled product only (not src/tools/), run as the unprivileged `node` user (uid 1000).
# Node 24 is the active LTS; Node 20 is end-of-life and light-my-request's cookie (under fastify)
# already wants Node 22.

# ---- deps: dependencies only, so that a change in src/ leaves this layer cached ----
FROM node:24-bookworm-slim AS deps
WORKDIR /app
# better-sqlite3 builds from source when no prebuilt binary can be fetched (no access to GitHub).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile src/, which is not here yet (and must not be: this
# layer would then change with every edit), and the devDependencies' install scripts (anvil,
# embedded-postgres, esbuild) fetch or unpack tools no image build needs. The one addon the
# product needs is rebuilt explicitly, against the base image's own headers (no download).
RUN npm ci --ignore-scripts --no-audit --no-fund \
  && npm rebuild better-sqlite3 --foreground-scripts --nodedir=/usr/local
# The runtime's node_modules: production dependencies only. --omit=optional as well: TypeScript
# stays otherwise (viem names it as an optional peer, and it is a devDependency here), and the
# other optional ones (ws's bufferutil and utf-8-validate accelerators, pg-cloudflare) are not
# needed. Of better-sqlite3 only the compiled addon (its SQLite sources, object files and
# static library are build leftovers), and no source maps or type declarations (~50 MB that
# nothing reads at run time).
RUN mkdir /prod && cp -a package.json package-lock.json node_modules /prod/ \
  && cd /prod && npm prune --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
  && cd node_modules/better-sqlite3 \
  && mv build/Release/better_sqlite3.node /tmp/ && rm -rf build deps src \
  && mkdir -p build/Release && mv /tmp/better_sqlite3.node build/Release/ \
  && cd /prod && rm package-lock.json node_modules/.package-lock.json \
  && find node_modules -type f \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete

# ---- build: compile src/ with the full dependencies (TypeScript) ----
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# No dist/src/tools/ (demo, dev chain and pay need devDependencies; the CLI says so in one line
# when asked for them), and no source maps: nothing runs node with --enable-source-maps.
RUN npm run build && rm -rf dist/src/tools && find dist -name '*.map' -delete

# ---- runtime ----
FROM node:24-bookworm-slim
# The labels' version and source: `docker build --build-arg VERSION=... --build-arg SOURCE=...`
# (the README's command reads the version from package.json; a test keeps this default equal to
# it). SOURCE defaults to the placeholder the Kubernetes manifests' image name uses.
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/example/x402-gateway
LABEL org.opencontainers.image.title="x402-gateway" \
  org.opencontainers.image.description="Reverse-proxy payment gateway: charge for any HTTP API per request in USDC over x402" \
  org.opencontainers.image.source="${SOURCE}" \
  org.opencontainers.image.licenses="Apache-2.0" \
  org.opencontainers.image.version="${VERSION}"
ENV NODE_ENV=production
# Every command (start, receipts, healthcheck) reads this config when --config is not given.
ENV X402_GATEWAY_CONFIG=/etc/x402-gateway/gateway.yaml
WORKDIR /app
COPY --from=deps /prod/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json gateway.example.yaml ./
# The ready configs and the JSON Schema, to copy out and edit.
COPY config ./config
# The ledger lives in /data (mount a volume the uid 1000 can write); relative ledger paths
# resolve there.
RUN mkdir -p /data /etc/x402-gateway && chown node:node /data
USER node
WORKDIR /data
# 8402: the paid proxy; 9402: the admin listener (/healthz, /readyz, /metrics, /dashboard).
EXPOSE 8402 9402
# SIGTERM starts the drain (readiness off, requests in flight and their settlements finish,
# up to shutdown.graceMs, 25 s by default): give the runtime a longer stop timeout than its
# default 10 s (`docker run --stop-timeout 30`, compose `stop_grace_period: 30s`).
STOPSIGNAL SIGTERM
# Follows the config's admin host and port. Docker only: the OCI image format (podman's
# default) drops HEALTHCHECK, and Kubernetes ignores it; there the /healthz and /readyz probes
# on the admin port are the check.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "/app/dist/src/main.js", "healthcheck"]
ENTRYPOINT ["node", "/app/dist/src/main.js"]
CMD ["start", "--config", "/etc/x402-gateway/gateway.yaml"]
