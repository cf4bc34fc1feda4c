# The kernel image Enterprise Gateway runs for each session (KERNEL_IMAGE): Enterprise
# Gateway's Python kernel image plus the data stack run_python_code users expect.
#   docker build -f deploy/kubernetes/kernel.Dockerfile -t registry.example.com/python-mcp-kernel:0.1.0 .
FROM elyra/kernel-py:3.3.0
RUN pip install --no-cache-dir numpy pandas matplotlib
