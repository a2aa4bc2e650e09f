# Multi-stage build: compile TypeScript and the native SQLite addon in a full image, ship only
# production dependencies and the compiled product (not src/tools/), run as the unprivileged
# `node` user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 builds from source when no prebuilt binary can be fetched.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# `prepare` compiles src/ to dist/ during the install. Then the image keeps the product only:
# production dependencies, and no dist/src/tools/ (demo, dev chain, pay need devDependencies;
# the CLI says so in one line when asked for them).
RUN npm install --no-audit --no-fund && npm prune --omit=dev && rm -rf dist/src/tools

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json gateway.example.yaml ./
# The ledger lives in /data (mount a volume); relative ledger paths resolve there.
RUN mkdir -p /data /etc/x402-gateway && chown node:node /data
USER node
WORKDIR /data
EXPOSE 8402 9402
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9402/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/main.js"]
CMD ["start", "--config", "/etc/x402-gateway/gateway.yaml"]
