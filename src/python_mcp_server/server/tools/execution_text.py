"""The text form of an execution result: what a model reads, in the fewest characters.

``structuredContent`` carries the fields for programs; the text block carries the same
outcome as a person would read it in a notebook: the output, the value, the traceback,
and one bracketed line for each thing the server did or noticed. A call with nothing to
show says ``[ok]``.
"""

from __future__ import annotations

from python_mcp_server.models.execution import ExecutionResult


def execution_text(result: ExecutionResult) -> str:
    """Plain text of one execution (see the module docstring)."""
    parts: list[str] = []
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    for item in result.outputs:
        if item.path:
            parts.append(f"[{item.mime_type} saved: {item.path}]")
        elif item.text:
            label = "" if item.mime_type == "text/plain" else f"[{item.mime_type}]\n"
            parts.append(label + item.text.rstrip("\n"))
    if result.result is not None:
        parts.append(result.result)
    error = result.error
    if error is not None:
        if error.traceback:
            parts.append("\n".join(line.rstrip("\n") for line in error.traceback))
        else:
            parts.append(f"{error.ename}: {error.evalue}" if error.evalue else error.ename)
        if error.code:
            parts.append(f"[{error.code}]")
    parts.extend(_notes(result))
    return "\n".join(parts) if parts else "[ok]"


def _notes(result: ExecutionResult) -> list[str]:
    notes: list[str] = []
    if result.status == "timeout" and result.error is None:
        notes.append("[timeout]")
    if result.message:
        notes.append(f"[{result.message}]")
    if result.kernel_restarted and not (result.message and "restart" in result.message):
        notes.append("[the kernel was restarted; variables were lost]")
    if result.restored_variables:
        notes.append(f"[restored from snapshot: {', '.join(result.restored_variables)}]")
    for label, path in (("stdout", result.stdout_path), ("stderr", result.stderr_path)):
        if path:
            notes.append(f"[full {label}: {path}]")
    if result.new_files:
        notes.append(f"[new files: {', '.join(result.new_files)}]")
    for warning in result.warnings:
        notes.append(f"[safety {warning.severity}: line {warning.line}: {warning.message}]")
    info = result.dependencies_info
    if info is not None and (info.installed or info.failed or info.error):
        installed = ", ".join(p.name for p in info.installed) or "nothing"
        failed = f"; failed: {', '.join(info.failed)}" if info.failed else ""
        notes.append(f"[auto-install: installed {installed}{failed}]")
    return notes
