# Switchboard node image.
#
#   docker build -t switchboard .
#   docker run -p 8080:8080 -e SWITCHBOARD_INSECURE=1 switchboard
#
# Every setting is a SWITCHBOARD_<FLAG> environment variable (docs/configuration.md);
# see docs/deploy.md for compose and Kubernetes.

# The image runs the current Node LTS line; package.json's "engines" says
# which versions are supported at all.

# ---- build: compile TypeScript and bundle the browser SDK --------------------
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `prepare` would run the build before the sources are here: skip it now.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json tsconfig.browser.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled code only -------------
FROM node:24-slim AS runtime
ENV NODE_ENV=production
# Listen on every interface of the container, or the published port reaches
# nothing: under --insecure the node would otherwise keep to 127.0.0.1. Who
# reaches the container is decided by `docker run -p` and its network.
ENV SWITCHBOARD_HOST=0.0.0.0
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) needs the dev dependencies left out here.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY web ./web

# The node image ships an unprivileged `node` user (uid 1000).
USER node
EXPOSE 8080
# Liveness only: /healthz answers while the process serves HTTP. Readiness
# (/readyz: 503 while draining or cut off from the broker) is for the load
# balancer, which should stop routing, not restart the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SWITCHBOARD_PORT || 8080) + '/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The node drains on SIGTERM (refuses new clients, closes sessions with 4100
# so they reconnect elsewhere) within --drain-timeout, then exits 0. Give
# `docker stop -t` more than that.
STOPSIGNAL SIGTERM
CMD ["node", "bin/switchboard.js", "start"]
