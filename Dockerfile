# dns-tool container image: build with dev dependencies, ship only dist, schemas and production deps.
FROM node:24-slim AS build
WORKDIR /app
# lockfile first, so the dependency layer is reused while only sources change
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY schemas ./schemas
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/schemas ./schemas
# owned by root and read-only for the node user: the gateway reads and watches it, never writes it
COPY deploy/docker-config.yaml /etc/dns-tool/config.yaml
USER node
# port 53 needs no capability: Docker's network namespace sets ip_unprivileged_port_start=0
EXPOSE 53/udp 53/tcp 9153
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9153/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["--config", "/etc/dns-tool/config.yaml"]
