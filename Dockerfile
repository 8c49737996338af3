# Vital Inverse web app for a Hugging Face Space (Docker SDK, CPU).
#   docker build -t vital-inverse . && docker run -p 7860:7860 [-e ANTHROPIC_API_KEY] vital-inverse
# ANTHROPIC_API_KEY (optional: tutorials written by Claude) comes only from the environment
# (a Space secret); it is never baked into the image.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    MPLCONFIGDIR=/home/user/.cache/matplotlib \
    NUMBA_CACHE_DIR=/home/user/.cache/numba

# Spaces run the container as uid 1000
RUN useradd --create-home --uid 1000 user
WORKDIR /home/user/app

# The CPU build of torch first (the default wheel pulls in CUDA), then the pinned rest;
# the test-only packages are left out of the image.
COPY requirements.txt .
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && grep -vE '^(pytest|hypothesis|playwright)==' requirements.txt > /tmp/requirements-app.txt \
 && pip install -r /tmp/requirements-app.txt \
 && rm /tmp/requirements-app.txt

COPY --chown=user . .
USER user
# build matplotlib's font cache now rather than on the first start-up
RUN python -c "import matplotlib.figure" && python -m compileall -q app.py vital_inverse

EXPOSE 7860
CMD ["python", "app.py"]
