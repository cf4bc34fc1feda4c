"""A read-only request whose reply the kernel drops is sent once more, never left hanging.

ipykernel sends no reply to a shell request when a KeyboardInterrupt (our interrupt, a
SIGINT) lands in that request's handler outside the parts IPython guards; it logs
"KeyboardInterrupt caught in kernel" and still publishes the request's idle status. Here a
real kernel stops inside such a part until the test interrupts it: in completion, a custom
matcher's completion text whose concatenation (``str.__radd__``, run while ipykernel
rectifies the completions) waits; in inspection, an object's ``getdoc()``. Lost once, the
request is sent again and answers; lost twice, the call fails with KERNEL_REPLY_LOST instead
of waiting out its timeout (before, the completion waited 30 s and failed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client

from python_mcp_server.server.services import Services
from tests.helpers import run, wait_for_path

#: Completion of ``gated_`` and inspection of ``gated``: the first ``{blocks}`` of their
#: handlers each write ``entered-N`` and then wait until an interrupt (or a ``release``
#: file) ends them.
GATED = """
import os, time
from IPython.core.completer import SimpleCompletion, context_matcher

def gate():
    gate.entered += 1
    if gate.entered <= {blocks}:
        open(f'entered-{{gate.entered}}', 'w').close()
        while not os.path.exists('release'):
            time.sleep(0.01)
gate.entered = 0

class GatedText(str):
    def __radd__(self, other):
        gate()
        return str.__add__(other, str(self))

@context_matcher()
def answering_matcher(context):
    if context.token != 'gated_':
        return {{'completions': []}}
    return {{'completions': [SimpleCompletion(GatedText('gated_answer'), type='gated')]}}

get_ipython().Completer.custom_matchers.append(answering_matcher)

class Gated:
    def getdoc(self):
        gate()
        return 'The gated documentation.'

gated = Gated()
"""

REQUESTS = {
    "code_completion": {"code": "gated_"},
    "inspect_object": {"code": "gated"},
}


async def call_interrupting(
    client: Client[Any], services: Services, workspace: Path, tool: str, *, interrupts: int
) -> Any:
    """``tool`` on the gated names, with the kernel interrupted inside each of the first
    ``interrupts`` handlers; the tool's result."""
    await run(client, GATED.format(blocks=interrupts))
    session = services.sessions.get("default")
    pending = asyncio.ensure_future(client.call_tool(tool, REQUESTS[tool], raise_on_error=False))
    try:
        for entered in range(1, interrupts + 1):
            await wait_for_path(workspace / f"entered-{entered}")
            await session.client.interrupt()
        return await pending
    finally:
        (workspace / "release").touch()  # a failing test leaves no handler waiting
        await asyncio.gather(pending, return_exceptions=True)


@pytest.mark.parametrize("tool", list(REQUESTS))
async def test_a_reply_lost_to_an_interrupt_is_asked_for_again(
    client: Client[Any], services: Services, workspace: Path, tool: str
) -> None:
    result = await call_interrupting(client, services, workspace, tool, interrupts=1)
    assert not result.is_error, result.content
    answer = result.structured_content
    if tool == "code_completion":
        assert answer["matches"] == ["gated_answer"]
    else:
        assert "The gated documentation." in answer["text"]
    kernel = services.sessions.get("default").client
    assert not kernel._pending  # neither the lost request nor its resend is left waiting
    # The session goes on with its kernel and variables: the handler ran twice.
    data = await run(client, "gate.entered")
    assert data["kernel_restarted"] is False
    assert data["result"] == "2"


async def test_a_reply_lost_twice_fails_with_a_clear_code(
    client: Client[Any], services: Services, workspace: Path
) -> None:
    result = await call_interrupting(client, services, workspace, "code_completion", interrupts=2)
    assert result.is_error
    text = result.content[0].text
    assert text.startswith("KERNEL_REPLY_LOST:"), text
    assert "complete_request twice" in text
    assert not services.sessions.get("default").client._pending
    # The next completion, with no interrupt, answers.
    done = await client.call_tool("code_completion", REQUESTS["code_completion"])
    assert done.structured_content is not None
    assert done.structured_content["matches"] == ["gated_answer"]
