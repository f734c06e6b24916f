# The ai-usage service: OTLP receiver and analytics API (one image, the
# command picks the role). Used by docker-compose.yml.
# The wheel is built where a C compiler is, for the compiled protobuf
# decode-and-map (ingest/_spanmap.c); the image that runs it has none.
FROM python:3.11-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY app ./app
COPY ingest ./ingest
COPY clickhouse ./clickhouse
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/ai-usage
COPY --from=build /wheels /wheels
RUN pip install /wheels/*.whl \
    && rm -rf /wheels \
    && python -c "import ingest._spanmap" \
    && useradd --system --uid 10001 --home-dir /var/lib/ai-usage --create-home ai-usage

USER ai-usage
# Listen on all interfaces inside the container; compose publishes the ports.
ENV AI_USAGE_HOST=0.0.0.0 \
    XDG_DATA_HOME=/var/lib/ai-usage
# 4318 OTLP/HTTP (and the API with --role all), 4317 OTLP/gRPC, 8080 the API with --role api
EXPOSE 4317 4318 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('AI_USAGE_PORT', '4318'), timeout=3)"

ENTRYPOINT ["ai-usage"]
CMD ["serve"]
