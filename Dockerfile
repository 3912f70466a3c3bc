# Multi-stage build: a static-stdlib release binary on a slim runtime image.
#
#   docker build -t chat-server .
#   docker run -p 8000:8000 -e CHAT_JWT_SECRET=... -e DATABASE_URL=postgres://... chat-server
#
# The binary carries its SQL migrations and OpenAPI document, so nothing else is copied.

FROM swift:6.3-noble AS build
WORKDIR /build
COPY . .
# The same command CI builds with.
RUN scripts/build-release \
    && mkdir -p /staging \
    && cp "$(swift build -c release --show-bin-path)/chat-server" /staging/

FROM ubuntu:noble
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --create-home chat \
    && install -d -o chat -g chat /app/data
WORKDIR /app
COPY --from=build /staging/chat-server /usr/local/bin/chat-server
USER chat
ENV CHAT_ENV=prod \
    CHAT_HOST=0.0.0.0 \
    CHAT_PORT=8000 \
    CHAT_LOG_FORMAT=json \
    DATABASE_URL=sqlite:/app/data/chat.sqlite
# The embedded database (the default) outlives the container in a volume.
VOLUME /app/data
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/health/ready || exit 1
# SIGTERM starts the graceful shutdown (WebSockets closed with 1001, stores finished).
STOPSIGNAL SIGTERM
ENTRYPOINT ["chat-server"]
CMD ["serve"]
