# python-mcp-server for the Kubernetes manifests. Build from the repository root:
#   docker build -f deploy/kubernetes/server.Dockerfile -t registry.example.com/python-mcp-server:0.1.0 .
FROM python:3.11-slim
RUN useradd --uid 1000 --gid 100 --create-home mcp
COPY . /src
RUN pip install --no-cache-dir "/src[data]" && rm -rf /src
USER mcp
ENTRYPOINT ["python-mcp-server"]
