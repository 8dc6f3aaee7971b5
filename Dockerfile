# One image for the worker and the API (and, for demos, the emulators).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY api ./api
COPY activities ./activities
COPY clients ./clients
COPY domain ./domain
COPY emulators ./emulators
COPY telemetry ./telemetry
COPY workflows ./workflows
COPY worker.py settings.py launcher.py temporal_connection.py webhook_registration.py ./
RUN pip install .
# The workflow sandbox runs each workflow's module again for every workflow run: from bytecode
# written here, since `nobody` cannot write it at run time.
RUN python -m compileall -q /app
USER nobody
CMD ["python", "-m", "worker"]
