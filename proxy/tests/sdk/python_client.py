#!/usr/bin/env python3
"""The official Python MCP SDK (`mcp` on PyPI) as a client of mcp-proxy in front of mock-mcp.

Usage: python_client.py URL KEY

Connects with the SDK's Streamable HTTP client and a `ClientSession` (initialize +
Mcp-Session-Id: the 2025-11-25 era), sending `Authorization: Bearer KEY`, and checks the
mock's whole surface with exact values. One line per check; the first failure exits 1 with
a message naming the check. Run by proxy/tests/sdk_clients.rs; works directly against a
mock-mcp URL too (the mock ignores the key).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import warnings
from importlib.metadata import version as package_version
from typing import Any, Callable

import anyio
import mcp.types as types
from mcp.client.session import ClientSession

try:  # sampling, roots, logging and resources/subscribe are deprecated as of 2026-07-28 (SEP-2577);
    # the 2025-11-25 era this script speaks has them, and the mock serves them on purpose.
    from mcp.shared.exceptions import MCPDeprecationWarning

    warnings.filterwarnings("ignore", category=MCPDeprecationWarning)
except ImportError:
    pass

try:  # mcp >= 1.23 (and 2.x)
    from mcp.client.streamable_http import streamable_http_client as _http_client

    _NEW_API = True
except ImportError:  # older releases
    from mcp.client.streamable_http import streamablehttp_client as _http_client  # type: ignore

    _NEW_API = False

try:  # the version `ClientSession.initialize` offers
    from mcp.types.version import LATEST_HANDSHAKE_VERSION as OFFERED
except ImportError:
    OFFERED = types.LATEST_PROTOCOL_VERSION

try:
    import httpx2 as httpx  # mcp 2.x
except ImportError:  # mcp 1.x
    import httpx  # type: ignore

TOOLS = [
    "add", "bump", "echo", "elicit", "fail", "initial_roots", "log", "meta", "poke", "progress",
    "roots", "sample", "sleep", "structured",
]
STATIC_RESOURCES = [
    "mock://static/readme", "mock://static/config.json", "mock://static/logo.png", "mock://counter",
]
TEMPLATES = ["mock://items/{id}"]
PROMPTS = ["greet", "summarize", "plain"]
LOGO_PNG_BASE64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
ROOTS = ["file:///a", "file:///b"]
WAIT_S = 5.0
QUIET_S = 0.3


USAGE = "usage: python_client.py URL KEY"


class CheckFailed(Exception):
    pass


def fail(message: str) -> None:
    raise CheckFailed(message)


def expect(name: str, got: Any, want: Any) -> None:
    if got != want:
        fail(f"{name}: expected {want!r}, got {got!r}")


class Recorder:
    """Every notification and server→client request the session saw, in arrival order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.logs: list[types.LoggingMessageNotificationParams] = []
        self._changed = anyio.Event()

    def push(self, kind: str, value: Any) -> None:
        self.events.append((kind, value))
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, what: str, pred: Callable[[list[tuple[str, Any]]], bool]) -> None:
        with anyio.move_on_after(WAIT_S):
            while not pred(self.events):
                await self._changed.wait()
            return
        fail(f"timed out after {WAIT_S}s waiting for {what}; recorded {self.kinds()}")

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    # --- the session's callbacks ---

    async def sampling(
        self, context: Any, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        prompt = ""
        for message in params.messages:
            blocks = message.content if isinstance(message.content, list) else [message.content]
            prompt += "".join(b.text for b in blocks if getattr(b, "type", None) == "text")
        self.push("sampling/createMessage", (prompt, params.max_tokens))
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"reply to {prompt}"),
            model="mock-model",
        )

    async def elicitation(self, context: Any, params: Any) -> types.ElicitResult:
        message = params.message
        self.push("elicitation/create", message)
        if "decline" in message:
            return types.ElicitResult(action="decline")
        if "cancel" in message:
            return types.ElicitResult(action="cancel")
        return types.ElicitResult(action="accept", content={"name": "Ferris"})

    async def list_roots(self, context: Any) -> types.ListRootsResult:
        self.push("roots/list", None)
        return types.ListRootsResult(roots=[types.Root(uri=u) for u in ROOTS])

    async def logging(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)
        self._changed.set()
        self._changed = anyio.Event()

    async def message_handler(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.push("exception", message)
            return
        method = getattr(message, "method", type(message).__name__)
        self.push(method, getattr(message, "params", None))


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", None) == "text")


class Checks:
    def __init__(self, session: ClientSession, rec: Recorder) -> None:
        self.s = session
        self.rec = rec
        self.count = 0

    def ok(self, name: str, detail: str) -> None:
        self.count += 1
        print(f"ok   {name}: {detail}", flush=True)

    async def call_text(self, tool: str, args: dict[str, Any], **kw: Any) -> str:
        result = await self.s.call_tool(tool, args, **kw)
        if result.is_error:
            fail(f"tools/call {tool}: unexpected tool error {text_of(result)!r}")
        return text_of(result)

    async def all_pages(self, lister: Callable[..., Any], field: str) -> tuple[list[Any], int]:
        items: list[Any] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor is not None else None
            page = await lister(params=params)
            pages += 1
            items.extend(getattr(page, field))
            cursor = page.next_cursor
            if cursor is None:
                return items, pages
            if pages > 50:
                fail(f"{field}: more than 50 pages, cursor {cursor!r}")

    async def run(self) -> None:
        s, rec = self.s, self.rec

        await s.send_ping()
        self.ok("ping", "empty result")

        tools, pages = await self.all_pages(s.list_tools, "tools")
        expect("tools/list names", sorted(t.name for t in tools), TOOLS)
        self.ok("tools/list", f"{len(tools)} tools in {pages} page(s): {', '.join(t.name for t in tools)}")

        expect("echo", await self.call_text("echo", {"text": "hello"}), "hello")
        self.ok("tools/call echo", "'hello'")

        expect("add", await self.call_text("add", {"a": 2, "b": 3}), "5")
        self.ok("tools/call add", "2 + 3 = '5'")

        expect("sleep", await self.call_text("sleep", {"ms": 10}), "slept 10ms")
        self.ok("tools/call sleep", "'slept 10ms'")

        result = await s.call_tool("structured", {"a": 2, "b": 3})
        expect("structured isError", bool(result.is_error), False)
        expect("structured structuredContent", result.structured_content, {"sum": 5})
        self.ok("tools/call structured", f"structuredContent {json.dumps(result.structured_content)}")

        result = await s.call_tool("fail", {"message": "boom"})
        expect("fail isError", result.is_error, True)
        expect("fail text", text_of(result), "boom")
        self.ok("tools/call fail", "isError true, 'boom'")

        result = await s.call_tool("meta", {}, meta={"sdk/probe": "py"})
        expect("meta _meta", (result.meta or {}).get("mock/echo"), {"sdk/probe": "py"})
        self.ok("tools/call meta", f"_meta {json.dumps(result.meta)}")

        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(p: float, total: float | None, message: str | None) -> None:
            progress.append((p, total, message))

        steps = 4
        text = await self.call_text("progress", {"steps": steps, "ms": 20}, progress_callback=on_progress)
        expect("progress result", text, f"done {steps} steps")
        want = [(float(i), float(steps), f"step {i}/{steps}") for i in range(1, steps + 1)]
        expect("progress notifications", [(float(p), t, m) for p, t, m in progress], want)
        self.ok("tools/call progress", f"progress callback got {[int(p) for p, _, _ in progress]} of {steps}")

        expect("sample", await self.call_text("sample", {"prompt": "hello"}), "sampled: reply to hello")
        sampled = [v for k, v in rec.events if k == "sampling/createMessage"]
        expect("sampling/createMessage seen by the callback", sampled, [("hello", 100)])
        self.ok("tools/call sample", "'sampled: reply to hello' (sampling callback: prompt 'hello', maxTokens 100)")

        expect(
            "elicit accept",
            await self.call_text("elicit", {"message": "your name?"}),
            'accepted: {"name":"Ferris"}',
        )
        self.ok("tools/call elicit (accept)", "'accepted: {\"name\":\"Ferris\"}'")
        expect("elicit decline", await self.call_text("elicit", {"message": "please decline"}), "declined")
        self.ok("tools/call elicit (decline)", "'declined'")
        expect("elicit cancel", await self.call_text("elicit", {"message": "please cancel"}), "cancelled")
        self.ok("tools/call elicit (cancel)", "'cancelled'")

        expect("roots", await self.call_text("roots", {}), ",".join(ROOTS))
        self.ok("tools/call roots", f"'{','.join(ROOTS)}'")

        resources, pages = await self.all_pages(s.list_resources, "resources")
        expect("resources/list URIs", [str(r.uri) for r in resources], STATIC_RESOURCES)
        self.ok("resources/list", f"{len(resources)} resources in {pages} page(s)")

        templates, pages = await self.all_pages(s.list_resource_templates, "resource_templates")
        expect("resources/templates/list", [t.uri_template for t in templates], TEMPLATES)
        self.ok("resources/templates/list", f"{TEMPLATES} in {pages} page(s)")

        async def read_one(uri: str) -> Any:
            result = await s.read_resource(uri)
            expect(f"resources/read {uri}: number of contents", len(result.contents), 1)
            content = result.contents[0]
            expect(f"resources/read {uri}: uri", str(content.uri), uri)
            return content

        c = await read_one("mock://static/readme")
        expect("readme text", getattr(c, "text", None), "mock-mcp readme")
        self.ok("resources/read readme", "'mock-mcp readme'")
        c = await read_one("mock://static/config.json")
        expect("config.json text", getattr(c, "text", None), '{"mode":"mock"}')
        expect("config.json mimeType", c.mime_type, "application/json")
        self.ok("resources/read config.json", "'{\"mode\":\"mock\"}' application/json")
        c = await read_one("mock://static/logo.png")
        expect("logo.png blob", getattr(c, "blob", None), LOGO_PNG_BASE64)
        expect("logo.png mimeType", c.mime_type, "image/png")
        self.ok("resources/read logo.png", "blob (1x1 PNG) image/png")
        c = await read_one("mock://items/abc")
        expect("items/abc text", getattr(c, "text", None), "item abc")
        self.ok("resources/read mock://items/abc", "'item abc'")

        await s.subscribe_resource("mock://counter")
        bumped = await self.call_text("bump", {})
        await rec.wait_for(
            "notifications/resources/updated for mock://counter",
            lambda ev: any(
                k == "notifications/resources/updated" and str(v.uri) == "mock://counter" for k, v in ev
            ),
        )
        c = await read_one("mock://counter")
        expect("counter after bump", getattr(c, "text", None), bumped)
        self.ok("resources/subscribe + bump", f"notifications/resources/updated mock://counter, counter = {bumped}")

        prompts, pages = await self.all_pages(s.list_prompts, "prompts")
        expect("prompts/list names", [p.name for p in prompts], PROMPTS)
        self.ok("prompts/list", f"{PROMPTS} in {pages} page(s)")

        for style, want in [(None, "Hello, Ferris!"), ("pirate", "Ahoy, Ferris!")]:
            args = {"name": "Ferris"} if style is None else {"name": "Ferris", "style": style}
            got = await s.get_prompt("greet", args)
            expect(f"prompts/get greet {args} messages", len(got.messages), 1)
            expect(f"prompts/get greet {args} role", got.messages[0].role, "user")
            expect(f"prompts/get greet {args} text", getattr(got.messages[0].content, "text", None), want)
            self.ok(f"prompts/get greet style={style}", repr(want))

        greet = types.PromptReference(type="ref/prompt", name="greet")
        items = types.ResourceTemplateReference(type="ref/resource", uri="mock://items/{id}")
        for ref, arg, prefix, want in [
            (greet, "style", "p", ["pirate"]),
            (greet, "name", "b", ["bob"]),
            (items, "id", "ab", ["abc", "abd"]),
        ]:
            got = await s.complete(ref, {"name": arg, "value": prefix})
            what = f"completion/complete {getattr(ref, 'name', None) or ref.uri} {arg}={prefix!r}"
            expect(what, got.completion.values, want)
            self.ok(what, repr(want))

        # logging: the session's default level (info) first, then setLevel warning.
        expect("log info (default level)", await self.call_text("log", {"level": "info", "message": "py-info-1"}), "logged")
        await rec.wait_for("notifications/message py-info-1", lambda _: any(l.data == "py-info-1" for l in rec.logs))
        log = next(l for l in rec.logs if l.data == "py-info-1")
        expect("log py-info-1 level", log.level, "info")
        expect("log py-info-1 logger", log.logger, "mock")
        self.ok("tools/call log info (default level info)", "'logged', notification received, logger 'mock'")

        await s.set_logging_level("warning")
        self.ok("logging/setLevel warning", "empty result")
        expect(
            "log info after setLevel warning: the mock's answer",
            await self.call_text("log", {"level": "info", "message": "py-info-2"}),
            "filtered",
        )
        expect("log error", await self.call_text("log", {"level": "error", "message": "py-error"}), "logged")
        await rec.wait_for("notifications/message py-error", lambda _: any(l.data == "py-error" for l in rec.logs))
        log = next(l for l in rec.logs if l.data == "py-error")
        expect("log py-error level", log.level, "error")
        expect("log py-error logger", log.logger, "mock")
        await anyio.sleep(QUIET_S)
        if any(l.data == "py-info-2" for l in rec.logs):
            fail("log info after setLevel warning: the notification arrived anyway")
        self.ok("tools/call log info after setLevel warning", "'filtered', no notification")
        self.ok("tools/call log error after setLevel warning", "'logged', notification received, logger 'mock'")

        for what, method in [
            ("tools", "notifications/tools/list_changed"),
            ("resources", "notifications/resources/list_changed"),
            ("prompts", "notifications/prompts/list_changed"),
        ]:
            expect(f"poke {what}", await self.call_text("poke", {"what": what}), "poked")
            await rec.wait_for(method, lambda ev, m=method: any(k == m for k, _ in ev))
            self.ok(f"tools/call poke what={what}", f"'poked', {method} received")

        errors = [v for k, v in rec.events if k == "exception"]
        if errors:
            fail(f"the transport reported errors: {errors!r}")


async def main(url: str, key: str) -> int:
    started = time.monotonic()
    rec = Recorder()
    headers = {"Authorization": f"Bearer {key}"}
    if _NEW_API:
        http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0, read=300.0))
        transport = _http_client(url, http_client=http)
    else:
        http = None
        transport = _http_client(url, headers=headers)
    checks: Checks | None = None
    try:
        async with transport as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(
                read,
                write,
                read_timeout_seconds=30,
                sampling_callback=rec.sampling,
                elicitation_callback=rec.elicitation,
                list_roots_callback=rec.list_roots,
                logging_callback=rec.logging,
                message_handler=rec.message_handler,
                client_info=types.Implementation(name="mcp-proxy-sdk-test-python", version="0"),
            ) as session:
                init = await session.initialize()
                print(
                    f"python mcp SDK {package_version('mcp')}: offered {OFFERED}, negotiated protocol "
                    f"{init.protocol_version}, server {init.server_info.name} {init.server_info.version}",
                    flush=True,
                )
                checks = Checks(session, rec)
                checks.ok("initialize", f"protocolVersion {init.protocol_version}")
                await checks.run()
    except CheckFailed as e:
        print(f"FAIL {e}", flush=True)
        return 1
    except BaseException as e:  # noqa: BLE001 - report anything, an ExceptionGroup included
        inner = e
        while isinstance(inner, BaseExceptionGroup) and len(inner.exceptions) == 1:
            inner = inner.exceptions[0]
        if isinstance(inner, CheckFailed):
            print(f"FAIL {inner}", flush=True)
            return 1
        print(f"FAIL unexpected error after {checks.count if checks else 0} checks: {inner!r}", flush=True)
        traceback.print_exception(e)
        return 1
    finally:
        if http is not None:
            await http.aclose()
    print(f"passed {checks.count if checks else 0} checks in {time.monotonic() - started:.2f}s", flush=True)
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        sys.exit(2)
    sys.exit(anyio.run(main, args[0], args[1]))
