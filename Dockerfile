# llm-proxy-db as a container image: the migration step of llm-proxy's deployment (a Kubernetes
# Job, a Helm pre-install/pre-upgrade hook or an init container: deploy/, docs/deployment.md).
#
#   docker build -t llm-proxy-db:0.1.0 .
#   docker run --rm -v llm-proxy-data:/data llm-proxy-db:0.1.0              # setup (SQLite)
#   docker run --rm -e DB_DRIVER=postgres -e DATABASE_URL_FILE=/run/secrets/database-url \
#     -v "$PWD/database-url:/run/secrets/database-url:ro" llm-proxy-db:0.1.0 migrate up
#
# No image is built in this repository's CI: tests/test_deployment.py runs these install steps
# (the wheel, a fresh virtualenv, the constraints) and the Job's command against real databases.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS wheel
WORKDIR /src
COPY . .
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim
# Both server drivers by default; EXTRAS= builds a SQLite-only image with no driver at all.
ARG EXTRAS=postgres,mysql
ENV PATH=/opt/llm-proxy-db/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATABASE_PATH=/data/llm-proxy.db
COPY constraints.txt /tmp/constraints.txt
COPY --from=wheel /wheels /tmp/wheels
RUN python -m venv /opt/llm-proxy-db \
    && wheel="$(ls /tmp/wheels/llm_proxy_db-*.whl)" \
    && /opt/llm-proxy-db/bin/pip install --no-cache-dir -c /tmp/constraints.txt "${wheel}${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /tmp/wheels /tmp/constraints.txt \
    && groupadd --system --gid 10001 llmproxy \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --create-home llmproxy
USER 10001:10001
WORKDIR /data
ENTRYPOINT ["llm-proxy-db"]
CMD ["setup"]
