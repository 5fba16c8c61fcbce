# The scrAiber backend image (also runs the MLflow server in docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    SCRAIBER_DATA_DIR=/var/lib/scraiber

WORKDIR /app
# CPU build of the pinned torch pair first (the default wheel is a multi-GB CUDA build)
COPY .ci/constraints.txt .ci/constraints.txt
RUN pip install --index-url https://download.pytorch.org/whl/cpu -c .ci/constraints.txt torch torchvision
COPY pyproject.toml README.md ./
COPY label_config label_config
COPY ml_backend ml_backend
COPY active_learning active_learning
COPY tracking_analysis tracking_analysis
COPY benchmarks benchmarks
COPY scraiber scraiber
RUN pip install -c .ci/constraints.txt . \
    && useradd --system --home-dir /var/lib/scraiber --create-home scraiber
USER scraiber
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9090/health', timeout=4)"
CMD ["scraiber", "backend", "--host", "0.0.0.0", "--port", "9090"]
