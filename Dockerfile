# The PayGo gateway and scheduler image (one image, two commands: `paygo serve --no-scheduler`, `paygo scheduler`).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY kernel kernel
COPY paygo paygo
COPY gateway gateway
COPY billing billing
COPY chains chains
COPY scheduler scheduler
COPY regtest regtest
COPY migrations migrations
RUN pip install --no-cache-dir . && useradd --system --uid 10001 paygo
USER paygo
EXPOSE 8080
ENV LISTEN_ADDR=0.0.0.0:8080
CMD ["paygo", "serve"]
