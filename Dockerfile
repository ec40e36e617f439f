# MTL Lab — mirrors the README's set-up-and-run command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MTL_LAB_HOME=/home/mtl/.mtl_lab

RUN useradd --create-home --uid 1000 mtl
WORKDIR /app

# Dependencies first (requirements.txt pins torch==2.13.0 and ends with `-e .`, so the project
# files it needs are copied before installing; the workshop lessons are package data inside mtl_core,
# and nothing reads assets/, the README's screenshots). PyPI's Linux torch wheel is the multi-GB CUDA
# build, so torch comes from PyTorch's CPU index first; the README's command then finds it satisfied.
# `--build-arg WITH_RAY=1` also installs the optional Ray executor (requirements-ray.txt, pinned
# ray[default]; see the README's "Running on a Ray cluster"): the image can then serve the app with
# MTL_LAB_EXECUTOR=ray, or be started as a cluster node (`ray start --head` / `ray start --address …`).
ARG WITH_RAY=0
COPY --chown=mtl:mtl requirements.txt requirements-ray.txt pyproject.toml README.md ./
COPY --chown=mtl:mtl mtl_core ./mtl_core
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && /opt/venv/bin/pip install -r requirements.txt \
 && if [ "$WITH_RAY" = "1" ]; then /opt/venv/bin/pip install -r requirements-ray.txt; fi
ENV PATH="/opt/venv/bin:$PATH"

COPY --chown=mtl:mtl app ./app
COPY --chown=mtl:mtl .streamlit ./.streamlit

USER mtl
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() == b'ok' else 1)"

# Inside a container the app must listen on every interface to be reached through the published
# port, so it serves others only with a presenter passcode (otherwise it exits saying how to set it):
#   docker run -p 8501:8501 -e MTL_LAB_PRESENTER_PASSCODE='a-long-phrase' mtl-lab
CMD ["streamlit", "run", "app/server.py", "--server.port", "8501", "--server.address", "0.0.0.0", "--server.headless", "true", "--server.fileWatcherType", "none"]
