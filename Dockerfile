# CPU-only image of the web app with the shipped weights baked in.
#   docker build -t brain-tumor-mri .
#   docker run --rm -p 7860:7860 brain-tumor-mri
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1

RUN useradd --create-home --uid 1000 app
WORKDIR /home/app/src

# CPU wheels of the pinned torch/torchvision first, so requirements.txt finds them satisfied
# instead of pulling the multi-gigabyte CUDA build.
COPY requirements.txt .
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 \
 && pip install -r requirements.txt

COPY --chown=app:app brain_tumor/ brain_tumor/
COPY --chown=app:app weights/ weights/
COPY --chown=app:app examples/ examples/
COPY --chown=app:app app.py LICENSE ./

USER app
# Export both models to ONNX once, at build time, so the container starts without that step.
RUN python -c "import app; app.load_models(None)"
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)" || exit 1
CMD ["python", "app.py"]
