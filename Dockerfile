# One image for every connector service in docker-compose.yml: the worker, the API, the codec
# server and the one-shot setup (and, for demos, the emulators).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
# The whole source tree, less what .dockerignore leaves out (tests, local state, secrets), so
# a new module is in the image without an edit here.
COPY . .
RUN pip install .
# The workflow sandbox runs each workflow's module again for every workflow run: from bytecode
# written here, since `nobody` cannot write it at run time.
RUN python -m compileall -q /app
USER nobody
CMD ["python", "-m", "worker"]
