"""The advisory code-safety check and the policy that applies it around execution.

``check_code_safety`` reads the code's syntax tree (never regular expressions): calls that
run shell commands, processes or native code, imports of risky modules, and obfuscation
(getattr on the builtins, decoded strings fed to exec, introspection escapes). IPython
syntax (``!cmd``, ``%%bash``) is translated the way the kernel translates it first.

This is advice, not protection: Python is too dynamic for a syntax check to prove code
harmless. The kernel sandbox and its limits are what protect the machine.
``SafetyHook`` applies ``MCP_SAFETY_MODE``: ``warn`` adds the findings to the result,
``block`` refuses unsafe code with UNSAFE_CODE unless the caller passed allow_unsafe and
the server permits it (``MCP_ALLOW_UNSAFE``).
"""

from __future__ import annotations

import ast
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from python_mcp_server.core.safety import rules
from python_mcp_server.errors import UnsafeCodeError
from python_mcp_server.models.safety import SafetyWarning

if TYPE_CHECKING:
    from python_mcp_server.core.execution.service import ExecutionRequest
    from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession

#: ``ask`` checks like ``warn`` here; the server asks the user first (server/approval.py).
SafetyMode = Literal["off", "warn", "block", "ask"]
_MAX_NESTED_SOURCE = 3  # exec("...") strings are checked this many levels deep
_NOTE_KEY = "safety_warnings"
#: Reports the hook remembers (the newest codes checked), and the longest code remembered:
#: an agent often runs the same short code again, whose syntax tree need not be read twice.
REMEMBERED_REPORTS = 256
REMEMBERED_CODE_CHARS = 4096


@dataclass(frozen=True)
class SafetyReport:
    """Findings for one piece of code."""

    warnings: list[SafetyWarning] = field(default_factory=list)

    @property
    def is_safe(self) -> bool:
        return not any(w.severity == "high" for w in self.warnings)


def check_code_safety(code: str) -> SafetyReport:
    """Check code for dangerous calls, risky modules and obfuscation. Advisory only."""
    return SafetyReport(warnings=_check(code, depth=0, line_offset=0))


def _parse(code: str) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError:
        # IPython syntax (!cmd, %magic, %%cell): check what the kernel will really run.
        from IPython.core.inputtransformer2 import TransformerManager

        transformed: str = TransformerManager().transform_cell(code)  # type: ignore[no-untyped-call]
        return ast.parse(transformed)


def _check(code: str, *, depth: int, line_offset: int) -> list[SafetyWarning]:
    try:
        tree = _parse(code)
    except (RecursionError, MemoryError):
        return [_too_deep(line_offset + 1)]
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None) or 1
        return [
            SafetyWarning(
                line=line + line_offset,
                col=max(0, (getattr(exc, "offset", None) or 1) - 1),
                category="syntax",
                message=f"the code does not parse ({getattr(exc, 'msg', exc)}); "
                "the kernel will report the error",
                severity="low",
            )
        ]
    analyzer = _Analyzer(depth=depth, line_offset=line_offset)
    try:
        analyzer.visit(tree)
    except RecursionError:
        return [*analyzer.findings, _too_deep(line_offset + 1)]
    return analyzer.findings


def _too_deep(line: int) -> SafetyWarning:
    return SafetyWarning(
        line=line,
        col=0,
        category="obfuscation",
        message="the code is nested too deeply to check",
        severity="high",
    )


class _Analyzer(ast.NodeVisitor):
    """One pass over a module: resolves import aliases, then judges calls and attributes."""

    def __init__(self, *, depth: int, line_offset: int) -> None:
        self.depth = depth
        self.line_offset = line_offset
        self.findings: list[SafetyWarning] = []
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []
        self.decoded_names: set[str] = set()
        self._seen: set[tuple[int, int, str]] = set()

    # --- reporting -----------------------------------------------------------------------
    def add(self, node: ast.AST, category: str, severity: str, message: str) -> None:
        line = getattr(node, "lineno", 1) + self.line_offset
        col = getattr(node, "col_offset", 0)
        key = (line, col, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.findings.append(
            SafetyWarning.model_validate(
                {
                    "line": line,
                    "col": col,
                    "category": category,
                    "severity": severity,
                    "message": message,
                }
            )
        )

    # --- name resolution -----------------------------------------------------------------
    def qualname(self, node: ast.AST) -> str | None:
        """``os.system`` for ``os.system`` / ``o.system`` / ``system`` (from os import ...)."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id in ("__builtins__", "builtins"):
                return "builtins"
            for module in self.star_modules:
                candidate = f"{module}.{node.id}"
                if rules.call_rule(candidate) is not None:
                    return candidate
            if node.id in rules.TRACKED_BUILTINS:
                return f"builtins.{node.id}"
            if node.id == "get_ipython":
                return "get_ipython"
            return None
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        if isinstance(node, ast.Call):
            func = self.qualname(node.func)
            if func == "get_ipython":
                return "ipython"
            literal = _first_str_arg(node)
            if func in ("builtins.__import__", "importlib.import_module") and literal:
                return _canonical(literal)
            if func == "builtins.getattr" and len(node.args) >= 2:
                base = self.qualname(node.args[0])
                name = _str_constant(node.args[1])
                if base and name:
                    return f"{base}.{name}"
        return None

    # --- imports -------------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            module = _canonical(alias.name)
            if alias.asname:
                self.aliases[alias.asname] = module
            else:
                top = alias.name.split(".", 1)[0]
                self.aliases[top] = _canonical(top)
            self._judge_module(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = _canonical(node.module or "")
        if node.level == 0 and module:
            self._judge_module(node, module)
        for alias in node.names:
            if alias.name == "*":
                self.star_modules.append(module)
                continue
            qualified = f"{module}.{alias.name}" if module else alias.name
            self.aliases[alias.asname or alias.name] = qualified

    def _judge_module(self, node: ast.AST, module: str) -> None:
        rule = rules.module_rule(module)
        if rule is not None:
            severity, why = rule
            top = _canonical(module.split(".", 1)[0])
            self.add(node, "dangerous_module", severity, f"imports {top}: {why}")

    # --- assignments (decoded data flowing into exec) -----------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        if self._is_decoded(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.decoded_names.add(target.id)
        self.generic_visit(node)

    def _is_decoded(self, node: ast.AST) -> bool:
        for child in ast.walk(node):
            if isinstance(child, ast.Name) and child.id in self.decoded_names:
                return True
            if not isinstance(child, ast.Call):
                continue
            name = self.qualname(child.func)
            if name in rules.DECODERS:
                return True
            if isinstance(child.func, ast.Attribute) and child.func.attr in (rules.DECODER_METHODS):
                return True
        return isinstance(node, ast.Subscript) and _is_reversal(node.slice)

    # --- calls ---------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualname(node.func)
        if name is not None:
            self._judge_call(node, name)
        self.generic_visit(node)

    def _judge_call(self, node: ast.Call, name: str) -> None:
        literal = _first_str_arg(node)
        if name == "builtins.getattr":
            self._judge_getattr(node)
            return
        if name in ("ipython.run_line_magic", "ipython.run_cell_magic") and literal:
            magic = literal.lstrip("%")
            if magic in rules.SHELL_MAGICS:
                self.add(node, "dangerous_call", "high", f"%{magic} runs a shell script")
            return
        if name in rules.CODE_SINKS and node.args and self._is_decoded(node.args[0]):
            self.add(
                node,
                "obfuscation",
                "high",
                f"{_short(name)}() is fed a decoded or computed string, which hides the code",
            )
        if name in ("builtins.__import__", "importlib.import_module"):
            if literal is None:
                self.add(
                    node, "obfuscation", "high", f"{_short(name)}() imports a computed module name"
                )
            else:
                self._judge_module(node, literal)
            return
        if name in ("builtins.exec", "builtins.eval", "builtins.compile") and literal:
            self.add(node, "dangerous_call", "medium", f"{_short(name)}() runs code from a string")
            self._check_nested_source(node, literal)
            return
        rule = rules.call_rule(name)
        if rule is not None:
            severity, why = rule
            self.add(node, "dangerous_call", severity, f"{_short(name)}() {why}")

    def _judge_getattr(self, node: ast.Call) -> None:
        if len(node.args) < 2:
            return
        target = self.qualname(node.args[0])
        attribute = _str_constant(node.args[1])
        top = target.split(".", 1)[0] if target else None
        if top == "builtins":
            self.add(node, "obfuscation", "high", "getattr() on the builtins hides which is called")
        elif attribute is None and top and rules.module_rule(top):
            self.add(
                node, "obfuscation", "high", f"getattr() on {top} with a computed attribute name"
            )
        elif attribute in rules.ESCAPE_ATTRIBUTES:
            self.add(node, "obfuscation", "high", f"getattr() reaches {attribute}")

    def _check_nested_source(self, node: ast.Call, source: str) -> None:
        if self.depth >= _MAX_NESTED_SOURCE:
            return
        line = getattr(node, "lineno", 1) + self.line_offset - 1
        for finding in _check(source, depth=self.depth + 1, line_offset=line):
            if finding.category != "syntax":
                self.add(
                    node, finding.category, finding.severity, f"in a string: {finding.message}"
                )

    # --- attributes and subscripts -------------------------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in rules.ESCAPE_ATTRIBUTES:
            self.add(
                node,
                "obfuscation",
                "high",
                f"{node.attr} is introspection used to escape restrictions",
            )
        elif node.attr == "environ" and self.qualname(node) == "os.environ":
            self.add(node, "dangerous_call", "low", "os.environ: reads environment variables")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        container = node.value
        name = self.qualname(container.func) if isinstance(container, ast.Call) else None
        base = self.qualname(container)
        key = _str_constant(node.slice)
        if name in rules.NAMESPACE_CALLS and key is not None:
            self.add(
                node, "obfuscation", "high", f"{_short(name)}()[{key!r}] looks a name up by string"
            )
        elif base is not None and base.split(".", 1)[0] == "builtins":
            self.add(node, "obfuscation", "high", "indexing the builtins hides which is used")
        self.generic_visit(node)


def _canonical(module: str) -> str:
    top, _, rest = module.partition(".")
    top = rules.MODULE_ALIASES.get(top, top)
    return f"{top}.{rest}" if rest else top


def _short(name: str) -> str:
    if name.startswith("ipython."):
        return "get_ipython()." + name.removeprefix("ipython.")
    return name.removeprefix("builtins.")


def _str_constant(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _first_str_arg(node: ast.Call) -> str | None:
    return _str_constant(node.args[0]) if node.args else None


def _is_reversal(node: ast.AST) -> bool:
    if not isinstance(node, ast.Slice) or node.step is None:
        return False
    step = node.step
    return (
        isinstance(step, ast.UnaryOp)
        and isinstance(step.op, ast.USub)
        and isinstance(step.operand, ast.Constant)
    )


# --- the policy around execution ---------------------------------------------------------
@dataclass(frozen=True)
class SafetyPolicy:
    """MCP_SAFETY_MODE and whether allow_unsafe=True may pass block mode (MCP_ALLOW_UNSAFE)."""

    mode: SafetyMode = "warn"
    allow_unsafe: bool = False


#: Findings an execution result carries. Lower ones (``import os``, deleting a file) are
#: what ordinary code does; they stay visible through check_code_safety.
RESULT_SEVERITIES: frozenset[str] = frozenset({"high"})


class SafetyHook:
    """ExecutionHook: warn adds high findings to the result; block refuses unsafe code.

    The report of a short code is remembered (the newest ``REMEMBERED_REPORTS``), so a code
    run again is not parsed again: the check reads nothing but the code's text.
    """

    def __init__(self, policy: SafetyPolicy) -> None:
        self.policy = policy
        self._reports: OrderedDict[str, SafetyReport] = OrderedDict()

    def report(self, code: str) -> SafetyReport:
        """``check_code_safety(code)``, remembered for short codes."""
        report = self._reports.get(code)
        if report is not None:
            self._reports.move_to_end(code)
            return report
        report = check_code_safety(code)
        if len(code) <= REMEMBERED_CODE_CHARS:
            self._reports[code] = report
            if len(self._reports) > REMEMBERED_REPORTS:
                self._reports.popitem(last=False)
        return report

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        if self.policy.mode == "off":
            return
        report = self.report(request.code)
        if self.policy.mode == "block" and not report.is_safe:
            if not request.allow_unsafe:
                raise UnsafeCodeError(
                    f"the code was refused by the safety check (MCP_SAFETY_MODE=block): "
                    f"{_summary(report)}. Pass allow_unsafe=True if this server permits it "
                    "(MCP_ALLOW_UNSAFE)"
                )
            if not self.policy.allow_unsafe:
                raise UnsafeCodeError(
                    f"allow_unsafe=True was given but this server does not permit it "
                    f"(MCP_ALLOW_UNSAFE is off); the code was refused: {_summary(report)}"
                )
        shown = [w for w in report.warnings if w.severity in RESULT_SEVERITIES]
        if shown:
            request.notes[_NOTE_KEY] = shown

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        found = request.notes.get(_NOTE_KEY)
        if found:
            outcome.result.warnings = list(found)


def findings_summary(report: SafetyReport, limit: int = 3) -> str:
    """The high findings of a report in one line (``line N: message; ...``)."""
    return _summary(report, limit)


def _summary(report: SafetyReport, limit: int = 3) -> str:
    high = [w for w in report.warnings if w.severity == "high"]
    parts = [f"line {w.line}: {w.message}" for w in high[:limit]]
    if len(high) > limit:
        parts.append(f"and {len(high) - limit} more")
    return "; ".join(parts)
