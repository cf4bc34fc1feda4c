"""Auto-install (opt-in, MCP_AUTO_INSTALL): install what code imports but cannot find.

Before a run, the code's imports are read with ``ast`` (never executed). Top-level modules
that neither the standard library, the workspace nor the session's environment provides
are mapped to distribution names (``cv2`` is ``opencv-python``...) and installed into the
session's own package folder (its environment is shared, so it is left unchanged).
Imports guarded by ``try: ... except ImportError`` are optional and left
alone. The result's ``dependencies_info`` says what was missing and what happened; a
failed install never stops the run (the code then meets its ImportError as usual).
"""

from __future__ import annotations

import ast
import asyncio
import importlib.machinery
import sys
from pathlib import Path

from python_mcp_server.core.execution.service import ExecutionRequest
from python_mcp_server.core.packages.environments import EnvironmentManager
from python_mcp_server.core.packages.requirements import PackageSpec, parse_specifier
from python_mcp_server.core.packages.service import PackageService
from python_mcp_server.core.sessions.owners import SessionRef
from python_mcp_server.core.sessions.session import ExecutionOutcome, KernelSession
from python_mcp_server.errors import InvalidInputError, PackageInstallationError
from python_mcp_server.models.packages import DependenciesInfo

NOTE_KEY = "dependencies_info"

#: Import names whose distribution is named differently (dotted keys match sub-packages).
IMPORT_TO_DISTRIBUTION: dict[str, str] = {
    "cv2": "opencv-python",
    "PIL": "pillow",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "yaml": "pyyaml",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "jwt": "pyjwt",
    "Crypto": "pycryptodome",
    "Cryptodome": "pycryptodomex",
    "OpenSSL": "pyopenssl",
    "serial": "pyserial",
    "usb": "pyusb",
    "magic": "python-magic",
    "docx": "python-docx",
    "pptx": "python-pptx",
    "fitz": "pymupdf",
    "attr": "attrs",
    "gi": "pygobject",
    "wx": "wxpython",
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
    "zmq": "pyzmq",
    "git": "gitpython",
    "github": "pygithub",
    "Levenshtein": "levenshtein",
    "slugify": "python-slugify",
    "multipart": "python-multipart",
    "telegram": "python-telegram-bot",
    "discord": "discord.py",
    "mpl_toolkits": "matplotlib",
    "pkg_resources": "setuptools",
    "faiss": "faiss-cpu",
    "Bio": "biopython",
    "jose": "python-jose",
    "ldap": "python-ldap",
    "websocket": "websocket-client",
    "socks": "pysocks",
    "nacl": "pynacl",
    "dns": "dnspython",
    "kafka": "kafka-python",
    "cairo": "pycairo",
    "OpenGL": "pyopengl",
    "umap": "umap-learn",
    "community": "python-louvain",
    "absl": "absl-py",
    "ruamel": "ruamel.yaml",
    "lxml_html_clean": "lxml-html-clean",
    "sentence_transformers": "sentence-transformers",
    "Image": "pillow",
    "osgeo": "gdal",
    "shapefile": "pyshp",
    "win32api": "pywin32",
    "win32com": "pywin32",
    "pythoncom": "pywin32",
    "xdist": "pytest-xdist",
    "google.protobuf": "protobuf",
    "google.cloud.storage": "google-cloud-storage",
    "google.cloud.bigquery": "google-cloud-bigquery",
    "google.generativeai": "google-generativeai",
    "googleapiclient": "google-api-python-client",
    "grpc": "grpcio",
    "speech_recognition": "SpeechRecognition",
    "tensorflow_hub": "tensorflow-hub",
}
_OPTIONAL_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


def _ipython_free(code: str) -> str:
    """Blank IPython-only lines (``%magic``, ``!shell``) so ``ast`` can read the rest."""
    lines = []
    for line in code.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            lines.append(line[: len(line) - len(stripped)] + "pass")
        else:
            lines.append(line)
    return "\n".join(lines)


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    kind = handler.type
    if kind is None:
        return True
    names = kind.elts if isinstance(kind, ast.Tuple) else [kind]
    return any(isinstance(n, ast.Name) and n.id in _OPTIONAL_ERRORS for n in names)


class _ImportFinder(ast.NodeVisitor):
    def __init__(self) -> None:
        self.modules: list[str] = []
        self._optional = 0

    def _add(self, module: str) -> None:
        if self._optional == 0 and module not in self.modules:
            self.modules.append(module)

    def visit_Try(self, node: ast.Try) -> None:
        optional = any(_catches_import_errors(h) for h in node.handlers)
        self._optional += optional
        for child in node.body:
            self.visit(child)
        self._optional -= optional
        for handler in node.handlers:
            self.visit(handler)
        for child in [*node.orelse, *node.finalbody]:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module and node.module != "__future__":
            self._add(node.module)


def find_imports(code: str) -> list[str]:
    """Dotted module names imported by ``code`` outside optional (try/except) blocks."""
    try:
        tree = ast.parse(_ipython_free(code))
    except (SyntaxError, ValueError):
        return []
    finder = _ImportFinder()
    finder.visit(tree)
    return finder.modules


def distribution_for(module: str) -> str:
    """The distribution that provides ``module`` (longest known dotted prefix, else its name)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        known = IMPORT_TO_DISTRIBUTION.get(".".join(parts[:end]))
        if known is not None:
            return known
    return parts[0]


def missing_modules(modules: list[str], path: list[str]) -> list[str]:
    """The modules (dotted) whose top-level package cannot be found on ``path``."""
    missing = []
    for module in modules:
        top = module.split(".")[0]
        if top in sys.stdlib_module_names or top in sys.builtin_module_names:
            continue
        if importlib.machinery.PathFinder.find_spec(top, path) is None:
            missing.append(module)
    return missing


def session_ref(session: KernelSession) -> SessionRef:
    """The session as its owner names it (auto-install installs for the session itself)."""
    return SessionRef(session.owner, session.session_id)


class AutoInstallHook:
    """The execution hook that installs missing imports before code runs."""

    def __init__(
        self, packages: PackageService, environments: EnvironmentManager, workspace: Path
    ) -> None:
        self._packages = packages
        self._environments = environments
        self._workspace = workspace

    async def before(self, session: KernelSession, request: ExecutionRequest) -> None:
        modules = find_imports(request.code)
        if not modules:
            return
        name = session.venv_name or self._environments.default_name
        kernel_path = await self._environments.kernel_sys_path(name)
        own = self._packages.target(name, session_ref(session)).session_site
        path = [str(self._workspace), *([str(own)] if own is not None else []), *kernel_path]
        missing = await asyncio.to_thread(missing_modules, modules, path)
        if not missing:
            return
        specs: list[PackageSpec] = []
        for module in missing:
            try:
                spec = parse_specifier(distribution_for(module))
            except InvalidInputError:
                continue
            if spec.name not in {s.name for s in specs}:
                specs.append(spec)
        info = DependenciesInfo(
            venv_name=name,
            missing_imports=sorted({m.split(".")[0] for m in missing}),
            requested=[s.name for s in specs],
        )
        request.notes[NOTE_KEY] = info
        await self._install(name, session_ref(session), specs, info)

    async def _install(
        self, name: str, session_id: SessionRef, specs: list[PackageSpec], info: DependenciesInfo
    ) -> None:
        """Install all at once; if that fails, one by one so the others still land."""
        batches = [specs] if len(specs) == 1 else [specs, *([s] for s in specs)]
        errors: list[str] = []
        for batch in batches:
            try:
                result = await self._packages.install_specs(name, batch, session_id=session_id)
            except PackageInstallationError as exc:
                if len(batch) == 1:
                    info.failed.append(batch[0].name)
                    errors.append(exc.message)
                continue
            info.installed += [p for p in result.packages if p.status != "already_satisfied"]
            info.duration_seconds += result.duration_seconds
            if batch is specs:
                break
        info.duration_seconds = round(info.duration_seconds, 3)
        info.error = "; ".join(errors) or None

    async def after(
        self, session: KernelSession, request: ExecutionRequest, outcome: ExecutionOutcome
    ) -> None:
        info = request.notes.get(NOTE_KEY)
        if isinstance(info, DependenciesInfo):
            outcome.result.dependencies_info = info
