FROM python:3.11-slim
# The worker runs as an unprivileged user. It writes only faust's data folder
# (~/.cache/allocator, or ALLOCATOR_DATA_DIR) and, with the default SQLite URL,
# ./allocator.db: so it owns its home and the /app folder, while the installed
# code stays root's.
RUN useradd --create-home --uid 10001 --user-group allocator
WORKDIR /app
COPY pyproject.toml README.md ./
COPY allocator ./allocator
COPY streams ./streams
RUN pip install --no-cache-dir . && chown allocator:allocator /app
USER allocator
ENV ALLOCATOR_WEB_PORT=6066
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2)"
ENTRYPOINT ["allocator"]
CMD ["worker", "-l", "info", "--web-port", "6066"]
