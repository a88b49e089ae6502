FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY allocator ./allocator
COPY streams ./streams
RUN pip install --no-cache-dir .
ENV ALLOCATOR_WEB_PORT=6066
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=2)"
ENTRYPOINT ["allocator"]
CMD ["worker", "-l", "info", "--web-port", "6066"]
