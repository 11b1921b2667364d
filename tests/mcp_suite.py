"""Checks Wharf's MCP surface (docs/mcp.md) with the official MCP Python SDK client.

Over stdio (`wharf --config CFG mcp`, started by the client) or over
streamable HTTP (`<base>/mcp` of a running `wharf serve`, with a bearer token):

    mcp_suite.py stdio --wharf BIN --config CFG --work DIR [--nolink-config CFG2] [CHECK ...]
    mcp_suite.py http --url BASE --token TOKEN --work DIR [--token-bob TOKEN] [CHECK ...]

`--work` is a sandbox root of the server's principal (the suite writes its
files there, each check in a directory of its own). For stdio, CFG should set
`[server] public_url` to a `wharf serve` on the same catalog, so that links
can be fetched; CFG2 (no public_url) is for the check that links then fail.
With no CHECK named, every check for the transport runs; `--list` prints them.

Each check prints one line, `ok <check>: …` or `FAIL <check>: …` (then its
details on stderr); the exit code is 1 if any check failed, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import sys
import time
import traceback
import urllib.error
import urllib.request
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

MIB = 1 << 20
KIB = 1 << 10

TOOLS = [
    "upload_files",
    "download_file",
    "get_file_info",
    "list_files",
    "delete_files",
    "update_file",
    "create_download_link",
    "download_stats",
    "list_providers",
    "read_file",
    "register_file",
    "file_stats",
]

# JSON Schema `format`s that are not JSON Schema's own (schemars writes them for
# Rust integers and floats); validators warn about every one of them.
NONSTANDARD_FORMATS = {
    "uint", "uint8", "uint16", "uint32", "uint64", "uint128",
    "int8", "int16", "int32", "int64", "int128",
    "float", "double",
}

UPLOADED_KEYS = {"id", "provider", "remote_id", "sha256", "size", "name", "mime", "deduplicated", "backup_id"}
FILE_KEYS = {
    "id", "provider", "remote_id", "sha256", "size", "name", "mime", "purpose",
    "created_at", "state", "description", "tags", "uri",
}
DOWNLOADED_KEYS = {"id", "path", "sha256", "size", "source", "kind", "verified"}
LINK_KEYS = {"url", "token", "expires_at", "size", "sha256", "file_type"}
PROVIDER_KEYS = {"name", "wit_version", "download", "stat", "list", "delete", "presign", "persistent"}

# What docs/mcp.md's table says of each tool's annotations. `None`: not stated.
# (readOnly, destructive, idempotent, openWorld)
ANNOTATIONS = {
    "upload_files": (False, False, True, True),
    "download_file": (False, False, True, True),
    "get_file_info": (True, None, None, True),
    "list_files": (True, None, None, None),
    "delete_files": (None, True, True, True),
    "update_file": (False, False, True, None),
    "create_download_link": (False, False, None, None),
    "download_stats": (True, None, None, None),
    "list_providers": (True, None, None, None),
    "read_file": (True, None, None, True),
    "register_file": (False, False, True, True),
    "file_stats": (True, None, None, False),
}
# The MCP defaults for an absent hint.
HINT_DEFAULTS = {"read_only_hint": False, "destructive_hint": True, "idempotent_hint": False, "open_world_hint": True}

INLINE_CAP = 8 * MIB
READ_FILE_CAP = 64 * KIB
RESOURCE_CAP = MIB


class Failure(Exception):
    """A check's expectation did not hold."""


_T0 = time.monotonic()


def log(message: str) -> None:
    """A timestamped progress line on stderr (shown when a check fails)."""
    print(f"[{time.monotonic() - _T0:8.3f}] {message}", file=sys.stderr, flush=True)


def expect(condition: Any, message: str) -> None:
    if not condition:
        raise Failure(message)


def short(value: Any, limit: int = 600) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} chars)"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def text_of(result: Any) -> str:
    return " ".join(block.text for block in result.content if getattr(block, "type", None) == "text")


def links_of(result: Any) -> list[Any]:
    return [block for block in result.content if getattr(block, "type", None) == "resource_link"]


def file_uri(file_id: str) -> str:
    return f"wharf://files/{file_id}"


# ---- plain HTTP (no proxy) ----

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
         timeout: float = 60) -> tuple[int, Any, bytes]:
    """One request; returns (status, headers, body) for any status."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def http_get(url: str) -> tuple[int, Any, bytes]:
    return http("GET", url)


# ---- the connection ----

class Ctx:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.transport: str = args.transport
        self.work = Path(args.work).resolve()
        self.run_id = uuid.uuid4().hex[:8]

    def dir(self, check: str) -> Path:
        """A fresh directory for one check, inside the sandbox root."""
        path = self.work / f"suite-{self.transport}-{check}-{self.run_id}"
        path.mkdir(parents=True, exist_ok=False)
        return path

    def tag(self, check: str) -> str:
        """A name fragment no other check or run uses."""
        return f"{check}-{self.transport}-{uuid.uuid4().hex[:10]}"

    @asynccontextmanager
    async def connect(self, *, token: str | None = None, mode: str = "auto", config: str | None = None,
                      read_timeout: float = 300) -> AsyncIterator[Client]:
        if self.transport == "stdio":
            server = StdioServerParameters(
                command=self.args.wharf,
                args=["--config", config or self.args.config, "mcp"],
                cwd=str(self.work),
            )
            async with Client(server, mode=mode, cache=None, read_timeout_seconds=read_timeout) as client:
                yield client
        else:
            headers = {"Authorization": f"Bearer {token or self.args.token}"}
            async with create_mcp_http_client(headers=headers) as http_client:
                transport = streamable_http_client(f"{self.args.url}/mcp", http_client=http_client)
                async with Client(transport, mode=mode, cache=None, read_timeout_seconds=read_timeout) as client:
                    yield client


def write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


def write_big(directory: Path, name: str, size: int) -> tuple[str, str]:
    """A file of `size` bytes no other file has (a random head on a random
    1 MiB block repeated); returns (path, sha256)."""
    path = directory / name
    block = os.urandom(MIB)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        head = os.urandom(64)
        out.write(head)
        digest.update(head)
        left = size - len(head)
        while left > 0:
            chunk = block[: min(left, MIB)]
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    return str(path), digest.hexdigest()


async def call_ok(client: Client, name: str, arguments: dict[str, Any], **kwargs: Any) -> Any:
    try:
        result = await client.call_tool(name, arguments, **kwargs)
    except MCPError as error:
        raise Failure(f"{name} {short(arguments, 300)}: JSON-RPC error {error.code}: {error.message}") from error
    expect(not result.is_error, f"{name} {short(arguments, 300)} failed: {text_of(result)}")
    expect(isinstance(result.structured_content, dict), f"{name}: no structuredContent object: {short(result.structured_content)}")
    return result


async def call_error(client: Client, name: str, arguments: dict[str, Any], mentions: list[str]) -> str:
    """The call must give a tool result with isError whose text names every one of `mentions`."""
    try:
        result = await client.call_tool(name, arguments)
    except MCPError as error:
        raise Failure(
            f"{name} {short(arguments, 300)}: expected a tool result with isError, got JSON-RPC error {error.code}: {error.message}"
        ) from error
    text = text_of(result)
    expect(result.is_error, f"{name} {short(arguments, 300)}: expected isError, got {short(result.structured_content)} / {short(text)}")
    missing = [m for m in mentions if m.lower() not in text.lower()]
    expect(not missing, f"{name}: the error text does not name {missing}: {text!r}")
    return text


async def error_of_any_kind(client: Client, name: str, arguments: dict[str, Any]) -> str:
    """The call must fail, as a JSON-RPC error or a tool error; returns the message."""
    try:
        result = await client.call_tool(name, arguments)
    except MCPError as error:
        return f"JSON-RPC error {error.code}: {error.message}"
    expect(result.is_error, f"{name} {short(arguments, 300)} should fail, got {short(result.structured_content)}")
    return "tool error: " + text_of(result)


def check_links(result: Any, expected: dict[str, int]) -> None:
    """A resource_link per file id: wharf://files/{id}, a name, a MIME type, the size."""
    links = {link.uri: link for link in links_of(result)}
    for file_id, size in expected.items():
        link = links.get(file_uri(file_id))
        expect(link is not None, f"no resource_link {file_uri(file_id)} in the result content: {short([b.model_dump() for b in result.content])}")
        expect(link.name, f"resource_link {link.uri} has no name")
        expect(link.mime_type, f"resource_link {link.uri} has no mimeType")
        expect(link.size == size, f"resource_link {link.uri}: size {link.size}, expected {size}")
    expect(text_of(result).strip(), "no text summary in the result content")


async def upload_bytes(client: Client, name: str, data: bytes, mime: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"filename": name, "content": b64(data)}
    if mime:
        item["mime_type"] = mime
    result = await call_ok(client, "upload_files", {"files": [item]})
    entry = result.structured_content["files"][0]
    expect(entry.get("file"), f"upload of {name}: {short(entry)}")
    return entry["file"]


async def upload_path(client: Client, path: str, **kwargs: Any) -> dict[str, Any]:
    result = await call_ok(client, "upload_files", {"files": [path]}, **kwargs)
    entry = result.structured_content["files"][0]
    expect(entry.get("file"), f"upload of {path}: {short(entry)}")
    return entry["file"]


def unknown_id() -> str:
    return "wf_" + uuid.uuid4().hex


async def list_all(client: Client, arguments: dict[str, Any]) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        args = dict(arguments)
        if cursor:
            args["cursor"] = cursor
        page = (await call_ok(client, "list_files", args)).structured_content
        files.extend(page["files"])
        cursor = page.get("next_cursor")
        if not cursor:
            return files
    raise Failure("list_files: more than 100 pages")


async def all_resources(client: Client) -> list[Any]:
    resources: list[Any] = []
    cursor = None
    for _ in range(1000):
        page = await client.list_resources(cursor=cursor, cache_mode="bypass")
        resources.extend(page.resources)
        cursor = page.next_cursor
        if not cursor:
            return resources
    raise Failure("resources/list: more than 1000 pages")


def fetch_link(url: str, expected: bytes, what: str) -> Any:
    status, headers, body = http_get(url)
    expect(status == 200, f"GET {url} ({what}): HTTP {status}: {short(body.decode(errors='replace'))}")
    expect(body == expected, f"GET {url} ({what}): {len(body)} bytes that differ from the {len(expected)} uploaded")
    return headers


# ---- the checks ----

Check = Callable[[Ctx], Awaitable[str]]
CHECKS: dict[str, tuple[Check, set[str]]] = {}


def check(name: str, transports: set[str] = frozenset({"stdio", "http"})) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS[name] = (fn, set(transports))
        return fn

    return register


def walk_formats(node: Any, path: str, found: list[str]) -> None:
    if isinstance(node, dict):
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in NONSTANDARD_FORMATS:
            found.append(f"{path}.format={fmt}")
        for key, value in node.items():
            walk_formats(value, f"{path}.{key}", found)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            walk_formats(value, f"{path}[{i}]", found)


@check("tools_listed")
async def tools_listed(ctx: Ctx) -> str:
    async with ctx.connect() as client:
        listing = await client.list_tools(cache_mode="bypass")
        tools = {tool.name: tool for tool in listing.tools}
        missing = [name for name in TOOLS if name not in tools]
        expect(not missing, f"tools missing: {missing}; listed: {sorted(tools)}")
        problems: list[str] = []
        for name in TOOLS:
            tool = tools[name]
            if not (isinstance(tool.input_schema, dict) and tool.input_schema.get("type") == "object"):
                problems.append(f"{name}: inputSchema is not an object schema: {short(tool.input_schema, 200)}")
            if not isinstance(tool.output_schema, dict) or not tool.output_schema:
                problems.append(f"{name}: no outputSchema")
            if not tool.description:
                problems.append(f"{name}: no description")
            found: list[str] = []
            walk_formats(tool.input_schema, f"{name}.inputSchema", found)
            walk_formats(tool.output_schema, f"{name}.outputSchema", found)
            problems.extend(found)
        expect(not problems, "; ".join(problems))
        return f"{len(tools)} tools, all {len(TOOLS)} of docs/mcp.md with input and output schemas, no non-standard formats (protocol {client.protocol_version})"


@check("tool_annotations")
async def tool_annotations(ctx: Ctx) -> str:
    async with ctx.connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools(cache_mode="bypass")).tools}
        problems = []
        for name, wanted in ANNOTATIONS.items():
            tool = tools.get(name)
            if tool is None:
                problems.append(f"{name}: not listed")
                continue
            annotations = tool.annotations
            for hint, value in zip(HINT_DEFAULTS, wanted):
                if value is None:
                    continue
                actual = getattr(annotations, hint, None) if annotations else None
                effective = HINT_DEFAULTS[hint] if actual is None else actual
                if effective != value:
                    problems.append(f"{name}: {hint} is {actual!r} (effective {effective}), docs say {value}")
        expect(not problems, "; ".join(problems))
        return "annotations as in docs/mcp.md's table"


@check("upload_files")
async def upload_files(ctx: Ctx) -> str:
    d = ctx.dir("upload_files")
    tag = ctx.tag("up")
    data = os.urandom(100_000)
    path = write(d, f"{tag}.bin", data)
    async with ctx.connect() as client:
        result = await call_ok(client, "upload_files", {"files": [path]})
        entries = result.structured_content["files"]
        expect(len(entries) == 1, f"one entry per input: {short(entries)}")
        entry = entries[0]
        expect(isinstance(entry.get("input"), str) and f"{tag}.bin" in entry["input"], f"input names the path: {short(entry)}")
        uploaded = entry.get("file") or {}
        expect(UPLOADED_KEYS <= uploaded.keys(), f"file lacks {UPLOADED_KEYS - uploaded.keys()}: {short(uploaded)}")
        expect(uploaded["sha256"] == sha256(data) and uploaded["size"] == len(data), f"sha256/size: {short(uploaded)}")
        expect(uploaded["name"] == f"{tag}.bin", f"name: {uploaded['name']!r}")
        expect(uploaded["deduplicated"] is False, f"a new file is not deduplicated: {short(uploaded)}")
        check_links(result, {uploaded["id"]: len(data)})

        again = await call_ok(client, "upload_files", {"files": [path]})
        second = again.structured_content["files"][0]["file"]
        expect(second["id"] == uploaded["id"] and second["deduplicated"] is True, f"same bytes → same record, deduplicated: {short(second)}")

        missing = str(d / f"{tag}-missing.bin")
        await call_error(client, "upload_files", {"files": [missing]}, [f"{tag}-missing.bin"])

        other = write(d, f"{tag}-other.bin", os.urandom(1000))
        partial = await call_ok(client, "upload_files", {"files": [other, missing]})
        first, bad = partial.structured_content["files"]
        expect(first.get("file") and not first.get("error"), f"the good item uploads: {short(first)}")
        expect(not bad.get("file") and f"{tag}-missing.bin" in (bad.get("error") or ""), f"the missing item's error names it: {short(bad)}")
        return f"uploaded {uploaded['id']}, deduplicated on repeat; a missing path → isError naming it; partial failure → per-item error"


@check("mixed_upload")
async def mixed_upload(ctx: Ctx) -> str:
    d = ctx.dir("mixed_upload")
    tag = ctx.tag("mixed")
    on_disk = os.urandom(50_000)
    inline = f"inline text {tag}\n".encode() * 100
    path = write(d, f"{tag}.bin", on_disk)
    async with ctx.connect() as client:
        result = await call_ok(
            client,
            "upload_files",
            {"files": [path, {"filename": f"{tag}.txt", "content": b64(inline), "mime_type": "text/plain"}]},
        )
        entries = result.structured_content["files"]
        expect(len(entries) == 2, f"two entries: {short(entries)}")
        a, b = entries[0].get("file") or {}, entries[1].get("file") or {}
        expect(a.get("sha256") == sha256(on_disk) and a.get("size") == len(on_disk), f"the path: {short(entries[0])}")
        expect(b.get("sha256") == sha256(inline) and b.get("size") == len(inline), f"the inline item: {short(entries[1])}")
        expect(b.get("name") == f"{tag}.txt", f"the inline item's name: {short(b)}")
        expect((b.get("mime") or "").startswith("text/plain"), f"the inline item's mime_type is kept: {short(b)}")
        check_links(result, {a["id"]: len(on_disk), b["id"]: len(inline)})
        return f"a path and base64 content in one call: {a['id']}, {b['id']}"


@check("download_file")
async def download_file(ctx: Ctx) -> str:
    d = ctx.dir("download_file")
    tag = ctx.tag("down")
    one, two = os.urandom(70_000), os.urandom(30_000)
    async with ctx.connect() as client:
        first = await upload_bytes(client, f"{tag}-1.bin", one)
        second = await upload_bytes(client, f"{tag}-2.bin", two)
        destination = str(d / "restored.bin")
        result = await call_ok(client, "download_file", {"file_id": first["id"], "destination": destination})
        got = result.structured_content
        expect(DOWNLOADED_KEYS <= got.keys(), f"result lacks {DOWNLOADED_KEYS - got.keys()}: {short(got)}")
        expect(got["verified"] is True and got["sha256"] == sha256(one) and got["size"] == len(one), short(got))
        expect(got["kind"] == "original", f"kind: {got['kind']!r}")
        expect(Path(got["path"]).read_bytes() == one, f"the bytes at {got['path']} differ")
        check_links(result, {first["id"]: len(one)})

        many = d / "many"
        many.mkdir()
        several = await call_ok(client, "download_file", {"file_ids": [first["id"], second["id"]], "destination": str(many)})
        items = several.structured_content.get("files") or []
        expect(len(items) == 2, f"two entries: {short(several.structured_content)}")
        by_id = {item.get("file_id"): item for item in items}
        for uploaded, data in ((first, one), (second, two)):
            item = by_id.get(uploaded["id"]) or {}
            written = item.get("file") or {}
            expect(not item.get("error") and DOWNLOADED_KEYS <= written.keys(), f"{uploaded['id']}: {short(item)}")
            expect(written["verified"] is True and Path(written["path"]).read_bytes() == data, f"{uploaded['id']}: {short(item)}")
            expect(Path(written["path"]).parent.resolve() == many.resolve(), f"{uploaded['id']} written outside {many}: {written['path']}")

        info = (await call_ok(client, "get_file_info", {"file_id": first["id"]})).structured_content
        expect(info.get("downloads"), f"get_file_info lists the download: {short(info)}")

        bogus = unknown_id()
        await call_error(client, "download_file", {"file_id": bogus, "destination": str(d / "x.bin")}, [bogus])
        await call_error(client, "download_file", {"file_id": first["id"], "destination": "/etc/wharf-evil"}, ["/etc/wharf-evil"])
        return "one file verified, two at once into a directory; an unknown id and a path outside the roots → isError naming them"


@check("get_file_info")
async def get_file_info(ctx: Ctx) -> str:
    tag = ctx.tag("info")
    data = os.urandom(10_000)
    async with ctx.connect() as client:
        uploaded = await upload_bytes(client, f"{tag}.bin", data)
        result = await call_ok(client, "get_file_info", {"file_id": uploaded["id"]})
        info = result.structured_content
        file = info.get("file") or {}
        expect(FILE_KEYS <= file.keys(), f"file lacks {FILE_KEYS - file.keys()}: {short(file)}")
        expect(file["id"] == uploaded["id"] and file["sha256"] == sha256(data) and file["size"] == len(data), short(file))
        expect(file["uri"] == file_uri(uploaded["id"]), f"uri: {file['uri']!r}")
        expect(isinstance(info.get("copies"), list) and isinstance(info.get("downloads"), list), f"copies and downloads are lists: {short(info)}")
        check_links(result, {uploaded["id"]: len(data)})
        bogus = unknown_id()
        await call_error(client, "get_file_info", {"file_id": bogus}, [bogus])
        return f"{uploaded['id']}: File with uri, copies, downloads; an unknown id → isError naming it"


@check("list_files")
async def list_files(ctx: Ctx) -> str:
    tag = ctx.tag("list")
    async with ctx.connect() as client:
        ids = set()
        for i in range(3):
            ids.add((await upload_bytes(client, f"{tag}-{i}.txt", f"{tag} {i}\n".encode()))["id"])
        result = await call_ok(client, "list_files", {"name": tag})
        files = result.structured_content["files"]
        expect({f["id"] for f in files} == ids, f"name filter {tag!r}: {short([f.get('name') for f in files])}")
        for f in files:
            expect(FILE_KEYS <= f.keys(), f"a listed File lacks {FILE_KEYS - f.keys()}: {short(f)}")
        expect(not result.structured_content.get("next_cursor"), f"no next_cursor on the last page: {short(result.structured_content)}")

        page = (await call_ok(client, "list_files", {"name": tag, "limit": 2})).structured_content
        expect(len(page["files"]) == 2 and page.get("next_cursor"), f"limit 2 of 3 → 2 files and a next_cursor: {short(page)}")
        rest = (await call_ok(client, "list_files", {"name": tag, "limit": 2, "cursor": page["next_cursor"]})).structured_content
        expect(len(rest["files"]) == 1 and not rest.get("next_cursor"), f"the second page: {short(rest)}")
        expect({f["id"] for f in page["files"] + rest["files"]} == ids, "the pages together list the three files once each")

        at_local = (await call_ok(client, "list_files", {"name": tag, "provider": "local"})).structured_content
        expect(len(at_local["files"]) == 3, f"provider filter: {short(at_local)}")
        refusal = await error_of_any_kind(client, "list_files", {"limit": 5000})
        expect("limit" in refusal.lower() or "1000" in refusal, f"limit 5000 refused, naming the limit: {refusal}")
        return f"name filter, provider filter, paging by next_cursor; limit 5000 refused ({short(refusal, 120)})"


@check("delete_files")
async def delete_files(ctx: Ctx) -> str:
    tag = ctx.tag("del")
    async with ctx.connect() as client:
        a = await upload_bytes(client, f"{tag}-a.bin", os.urandom(2000))
        b = await upload_bytes(client, f"{tag}-b.bin", os.urandom(2000))
        result = await call_ok(client, "delete_files", {"file_ids": [a["id"], b["id"]]})
        items = {item.get("file_id"): item for item in result.structured_content["files"]}
        for uploaded in (a, b):
            expect((items.get(uploaded["id"]) or {}).get("deleted") is True, f"{uploaded['id']}: {short(items)}")
        await call_error(client, "get_file_info", {"file_id": a["id"]}, [a["id"]])
        listed = await list_all(client, {"name": tag})
        expect(not listed, f"deleted files are not listed: {short(listed)}")

        bogus = unknown_id()
        failed = await client.call_tool("delete_files", {"file_ids": [bogus]})
        if failed.is_error:
            expect(bogus in text_of(failed), f"isError text names {bogus}: {text_of(failed)!r}")
            how = "isError naming it"
        else:
            item = (failed.structured_content or {}).get("files", [{}])[0]
            expect(item.get("deleted") is False, f"an unknown id is not deleted: {short(failed.structured_content)}")
            expect(item.get("error") and bogus in item["error"], f"its error names it: {short(item)}")
            how = "deleted: false with an error naming it"
        return f"two deleted and gone; an unknown id → {how}"


@check("update_file")
async def update_file(ctx: Ctx) -> str:
    tag = ctx.tag("upd")
    async with ctx.connect() as client:
        uploaded = await upload_bytes(client, f"{tag}.txt", b"to be renamed\n")
        arguments = {"file_id": uploaded["id"], "name": f"{tag}-renamed.txt", "description": "a description", "tags": ["one", "two"]}
        result = await call_ok(client, "update_file", arguments)
        file = result.structured_content
        expect(FILE_KEYS <= file.keys(), f"File lacks {FILE_KEYS - file.keys()}: {short(file)}")
        expect(file["name"] == f"{tag}-renamed.txt" and file["description"] == "a description", short(file))
        expect(sorted(file["tags"]) == ["one", "two"], f"tags: {file['tags']!r}")
        info = (await call_ok(client, "get_file_info", {"file_id": uploaded["id"]})).structured_content["file"]
        expect(info["name"] == f"{tag}-renamed.txt" and sorted(info["tags"]) == ["one", "two"], f"get_file_info after: {short(info)}")
        edits = {"file_id": uploaded["id"], "add_tags": [f"{tag}-3"], "remove_tags": ["one"], "attributes": {"client": "acme", "none": None}}
        edited = (await call_ok(client, "update_file", edits)).structured_content
        expect(sorted(edited["tags"]) == sorted([f"{tag}-3", "two"]), f"add_tags/remove_tags: {edited['tags']!r}")
        expect(edited.get("attributes") == {"client": "acme"}, f"attributes: {short(edited)}")
        listed = (await call_ok(client, "list_files", {"tag": f"{tag}-3"})).structured_content["files"]
        expect([f["id"] for f in listed] == [uploaded["id"]], f"list_files tag: {short(listed)}")
        bogus = unknown_id()
        await call_error(client, "update_file", {"file_id": bogus, "name": "x"}, [bogus])
        return "name, description, tags and attributes updated and seen by get_file_info and list_files; an unknown id → isError naming it"


@check("create_download_link")
async def create_download_link(ctx: Ctx) -> str:
    d = ctx.dir("create_download_link")
    tag = ctx.tag("link")
    data = os.urandom(40_000)
    on_disk = os.urandom(30_000)
    path = write(d, f"{tag}.bin", on_disk)
    async with ctx.connect() as client:
        uploaded = await upload_bytes(client, f"{tag}-stored.bin", data)
        link = (await call_ok(client, "create_download_link", {"file_id": uploaded["id"]})).structured_content
        expect(LINK_KEYS <= link.keys(), f"Link lacks {LINK_KEYS - link.keys()}: {short(link)}")
        expect(link["size"] == len(data) and link["sha256"] == sha256(data), short(link))
        fetch_link(link["url"], data, "a stored file's link")
        status, _, _ = http_get(link["url"])
        expect(status == 410, f"max_downloads defaults to 1: a second GET gave {status}, expected 410")

        by_path = (await call_ok(
            client,
            "create_download_link",
            {"path": path, "expiry_minutes": 10, "max_downloads": 2, "filename": f"{tag}-nice.bin"},
        )).structured_content
        expect(by_path["size"] == len(on_disk), short(by_path))
        headers = fetch_link(by_path["url"], on_disk, "a path's link")
        expect(f"{tag}-nice.bin" in (headers.get("Content-Disposition") or ""), f"filename: {headers.get('Content-Disposition')!r}")
        fetch_link(by_path["url"], on_disk, "a path's link, second of max_downloads 2")

        missing = str(d / f"{tag}-missing.bin")
        await call_error(client, "create_download_link", {"path": missing}, [f"{tag}-missing.bin"])
        refusal = await error_of_any_kind(client, "create_download_link", {"file_id": uploaded["id"], "expiry_minutes": 61})
        return f"links to a stored file and a path download the same bytes; a missing path → isError; expiry 61 refused ({short(refusal, 100)})"


@check("link_needs_serve", {"stdio"})
async def link_needs_serve(ctx: Ctx) -> str:
    expect(ctx.args.nolink_config, "needs --nolink-config")
    tag = ctx.tag("nolink")
    async with ctx.connect(config=ctx.args.nolink_config) as client:
        uploaded = await upload_bytes(client, f"{tag}.bin", os.urandom(1000))
        text = await call_error(client, "create_download_link", {"file_id": uploaded["id"]}, ["wharf serve", "public_url"])
        return f"without [server] public_url: {short(text, 160)}"


@check("upload_link")
async def upload_link(ctx: Ctx) -> str:
    d = ctx.dir("upload_link")
    tag = ctx.tag("uplink")
    data = os.urandom(60_000)
    path = write(d, f"{tag}.bin", data)
    async with ctx.connect() as client:
        result = await call_ok(client, "upload_files", {"files": [path], "link": True, "expiry_minutes": 5})
        entry = result.structured_content["files"][0]
        link = entry.get("link") or {}
        expect(LINK_KEYS <= link.keys(), f"link: true gives a Link: {short(entry)}")
        fetch_link(link["url"], data, "upload_files link: true")
        return f"link: true → {link['url'][:60]}… serves the same bytes"


@check("download_stats")
async def download_stats(ctx: Ctx) -> str:
    tag = ctx.tag("stats")
    async with ctx.connect() as client:
        before = (await call_ok(client, "download_stats", {})).structured_content
        for key in ("total", "active", "used", "expired"):
            expect(isinstance(before.get(key), int), f"{key} is an integer: {short(before)}")
        uploaded = await upload_bytes(client, f"{tag}.bin", os.urandom(1000))
        link = (await call_ok(client, "create_download_link", {"file_id": uploaded["id"]})).structured_content
        middle = (await call_ok(client, "download_stats", {})).structured_content
        expect(middle["total"] >= before["total"] + 1 and middle["active"] >= before["active"] + 1, f"a new link counts: {before} → {middle}")
        status, _, _ = http_get(link["url"])
        expect(status == 200, f"GET the link: {status}")
        after = (await call_ok(client, "download_stats", {})).structured_content
        expect(after["used"] >= before["used"] + 1, f"a used-up link counts as used: {before} → {after}")
        return f"{before} → {after}"


@check("register_file")
async def register_file(ctx: Ctx) -> str:
    async with ctx.connect() as client:
        # The suite's principal is granted no references: nothing is
        # registered by accident, and the refusal says how to allow it.
        message = await call_error(client, "register_file", {"reference": "0" * 64}, ["may not register", "references"])
        return f"refused: {message[:100]}"


@check("file_stats")
async def file_stats(ctx: Ctx) -> str:
    tag = ctx.tag("fstats")
    async with ctx.connect() as client:
        before = (await call_ok(client, "file_stats", {})).structured_content
        data = os.urandom(1500)
        uploaded = await upload_bytes(client, f"{tag}.bin", data)
        await upload_bytes(client, f"{tag}-again.bin", data)
        after = (await call_ok(client, "file_stats", {})).structured_content
        expect(after["uploads"] >= before["uploads"] + 1, f"the first upload sent bytes: {before['uploads']} → {after['uploads']}")
        expect(after["dedup_hits"] >= before["dedup_hits"] + 1, f"the second was deduplicated: {short(after)}")
        expect(after["bytes_not_sent"] >= before["bytes_not_sent"] + len(data), f"bytes not sent: {short(after)}")
        expect(uploaded["provider"] in after["providers"], f"files per provider: {short(after)}")
        return f"uploads {before['uploads']} → {after['uploads']}, dedup {before['dedup_hits']} → {after['dedup_hits']}"


@check("list_providers")
async def list_providers(ctx: Ctx) -> str:
    async with ctx.connect() as client:
        result = (await call_ok(client, "list_providers", {})).structured_content
        providers = {p.get("name"): p for p in result.get("providers", [])}
        local = providers.get("local")
        expect(local is not None, f"the local provider is listed: {short(result)}")
        expect(PROVIDER_KEYS <= local.keys(), f"provider lacks {PROVIDER_KEYS - local.keys()}: {short(local)}")
        expect(result.get("inline_content_max_bytes") == INLINE_CAP, f"inline_content_max_bytes: {result.get('inline_content_max_bytes')}")
        expect(result.get("read_file_max_bytes") == READ_FILE_CAP, f"read_file_max_bytes: {result.get('read_file_max_bytes')}")
        return f"providers {sorted(providers)}; inline cap {INLINE_CAP}, read_file cap {READ_FILE_CAP}"


@check("read_file")
async def read_file(ctx: Ctx) -> str:
    tag = ctx.tag("read")
    small = f"hello from {tag}\nsecond line ✓\n"
    big = "".join(f"line {i:06d} of a long text\n" for i in range(5000))  # ~130 KB
    async with ctx.connect() as client:
        note = await upload_bytes(client, f"{tag}.txt", small.encode(), "text/plain")
        got = (await call_ok(client, "read_file", {"file_id": note["id"]})).structured_content
        for key in ("file_id", "name", "mime", "size", "text", "truncated"):
            expect(key in got, f"read_file lacks {key}: {short(got)}")
        expect(got["text"] == small and got["truncated"] is False and got["size"] == len(small.encode()), short(got))

        long = await upload_bytes(client, f"{tag}-long.txt", big.encode(), "text/plain")
        cut = (await call_ok(client, "read_file", {"file_id": long["id"]})).structured_content
        expect(cut["truncated"] is True, f"a {len(big)}-byte text is truncated: {short(cut)}")
        expect(0 < len(cut["text"].encode()) <= READ_FILE_CAP and big.startswith(cut["text"]), f"at most {READ_FILE_CAP} bytes of its start: {len(cut['text'].encode())}")
        ten = (await call_ok(client, "read_file", {"file_id": long["id"], "max_bytes": 10})).structured_content
        expect(ten["text"] == big[:10] and ten["truncated"] is True, f"max_bytes 10: {short(ten)}")

        binary = await upload_bytes(client, f"{tag}.bin", os.urandom(5000) + b"\x00\xff", "application/octet-stream")
        await call_error(client, "read_file", {"file_id": binary["id"]}, ["create_download_link"])
        bogus = unknown_id()
        await call_error(client, "read_file", {"file_id": bogus}, [bogus])
        return "text whole, long text truncated at 64 KiB, max_bytes honoured; binary → isError naming create_download_link"


async def _progress_call(client: Client, name: str, arguments: dict[str, Any]) -> tuple[Any, list[tuple[float, float | None]]]:
    events: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total))

    result = await call_ok(client, name, arguments, progress_callback=on_progress)
    # A notification may be handled just after the result; give it a moment.
    await anyio.sleep(0.2)
    return result, events


def check_progress(events: list[tuple[float, float | None]], size: int, what: str) -> str:
    expect(events, f"{what}: no notifications/progress for {size} bytes")
    progress = [p for p, _ in events]
    expect(progress == sorted(progress), f"{what}: progress goes backwards: {progress}")
    expect(all(t == size for _, t in events), f"{what}: total is not {size} in every notification: {events}")
    last_progress, last_total = events[-1]
    expect(last_progress == last_total == size, f"{what}: the last notification is {events[-1]}, expected ({size}, {size})")
    return f"{len(events)} notifications, last {int(last_progress)}/{int(last_total)}"


@check("progress_upload")
async def progress_upload(ctx: Ctx) -> str:
    d = ctx.dir("progress_upload")
    size = 20 * MIB
    path, digest = write_big(d, "twenty.bin", size)
    async with ctx.connect() as client:
        result, events = await _progress_call(client, "upload_files", {"files": [path]})
        expect(result.structured_content["files"][0]["file"]["sha256"] == digest, "sha256 of the upload")
        return "upload of 20 MiB by path: " + check_progress(events, size, "upload")


@check("progress_download")
async def progress_download(ctx: Ctx) -> str:
    d = ctx.dir("progress_download")
    size = 20 * MIB
    path, digest = write_big(d, "twenty.bin", size)
    async with ctx.connect() as client:
        uploaded = await upload_path(client, path)
        result, events = await _progress_call(client, "download_file", {"file_id": uploaded["id"], "destination": str(d / "back.bin")})
        expect(result.structured_content["sha256"] == digest and result.structured_content["verified"] is True, "the download is verified")
        return "download of 20 MiB: " + check_progress(events, size, "download")


async def _cancelled_call(client: Client, name: str, arguments: dict[str, Any]) -> str:
    """Starts a call and cancels it mid-transfer: at the first progress
    notification past 0 bytes (or after 60 s); fails if the call finished first."""
    moving = anyio.Event()
    seen: list[tuple[float, float | None]] = []
    outcome: dict[str, Any] = {}

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))
        if progress > 0:
            moving.set()

    async def run() -> None:
        try:
            outcome["result"] = await client.call_tool(name, arguments, progress_callback=on_progress)
        except Exception as error:  # cancellation is a BaseException and passes through
            outcome["error"] = error
        moving.set()

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        group.start_soon(run)
        # An upload by path hashes the whole file before its first progress.
        with anyio.move_on_after(60):
            await moving.wait()
        log(f"{name}: cancelling after {time.monotonic() - started:.3f} s, progress {seen[-1] if seen else None}")
        group.cancel_scope.cancel()
    log(f"{name}: the call is cancelled ({time.monotonic() - started:.3f} s)")
    if "result" in outcome:
        result = outcome["result"]
        raise Failure(
            f"{name} finished before it was cancelled ({time.monotonic() - started:.2f} s; isError={result.is_error}); the check needs a slower transfer"
        )
    expect("error" not in outcome, f"{name} failed before it was cancelled: {outcome.get('error')!r}")
    return f"cancelled after {time.monotonic() - started:.2f} s at {seen[-1] if seen else 'no progress yet'}"


@check("cancel_download")
async def cancel_download(ctx: Ctx) -> str:
    d = ctx.dir("cancel_download")
    size = 200 * MIB
    path, _ = write_big(d, "big.bin", size)
    destination = d / "destination"
    destination.mkdir()
    async with ctx.connect() as client:
        log("cancel_download: uploading 200 MiB")
        started = time.monotonic()
        uploaded = await upload_path(client, path)
        # A whole download takes about as long: wait longer than that before
        # deciding that a cancelled one did not go on.
        settle = max(3.0, 1.5 * (time.monotonic() - started))
        os.unlink(path)
        log("cancel_download: downloading, to be cancelled")
        when = await _cancelled_call(client, "download_file", {"file_id": uploaded["id"], "destination": str(destination)})
        log(f"cancel_download: {when}")
        # The server stops the transfer and removes what it wrote: wait for
        # the directory to be empty, then make sure it stays so.
        deadline = time.monotonic() + 10
        while any(destination.iterdir()) and time.monotonic() < deadline:
            await anyio.sleep(0.1)
        leftovers = sorted(p.name for p in destination.iterdir())
        expect(not leftovers, f"{when}; 10 s later the destination still holds {leftovers}")
        log(f"cancel_download: the destination is empty; watching it for {settle:.1f} s")
        await anyio.sleep(settle)
        later = sorted(f"{p.name} ({p.stat().st_size} bytes)" for p in destination.iterdir())
        expect(not later, f"{when}; the download went on and wrote {later}")
        # The session still works, and no download was recorded.
        info = (await call_ok(client, "get_file_info", {"file_id": uploaded["id"]})).structured_content
        recorded = [dl for dl in info.get("downloads", []) if str(destination) in str(dl.get("destination"))]
        expect(not recorded, f"{when}; a download was recorded: {short(recorded)}")
        log("cancel_download: get_file_info answered after the cancellation")
    return f"{when}; nothing at the destination {settle:.0f} s later, no download recorded"


@check("cancel_upload")
async def cancel_upload(ctx: Ctx) -> str:
    d = ctx.dir("cancel_upload")
    tag = ctx.tag("cancelup")
    size = 200 * MIB
    calibration, _ = write_big(d, f"{tag}-calibration.bin", 20 * MIB)
    path, _ = write_big(d, f"{tag}.bin", size)
    async with ctx.connect() as client:
        started = time.monotonic()
        await upload_path(client, calibration)
        # Ten times as many bytes: wait longer than the whole upload would take.
        settle = max(3.0, 15 * (time.monotonic() - started))
        when = await _cancelled_call(client, "upload_files", {"files": [path]})
        log(f"cancel_upload: {when}; watching for a record for {settle:.1f} s")
        await anyio.sleep(settle)
        listed = await list_all(client, {"name": f"{tag}.bin"})
        expect(not listed, f"{when}; the cancelled upload left a record: {short(listed)}")
        return f"{when}; no record {settle:.0f} s later"


@check("inline_cap")
async def inline_cap(ctx: Ctx) -> str:
    tag = ctx.tag("cap")
    async with ctx.connect() as client:
        tools = {tool.name: tool for tool in (await client.list_tools(cache_mode="bypass")).tools}
        description = (tools.get("upload_files").description or "") if "upload_files" in tools else ""
        expect("8 MiB" in description or str(INLINE_CAP) in description, f"upload_files' description names the inline cap: {description!r}")
        at_cap = await upload_bytes(client, f"{tag}-at.bin", os.urandom(INLINE_CAP))
        expect(at_cap["size"] == INLINE_CAP, short(at_cap))
        over = os.urandom(INLINE_CAP + 1)
        try:
            result = await client.call_tool("upload_files", {"files": [{"filename": f"{tag}-over.bin", "content": b64(over)}]})
        except MCPError as error:
            raise Failure(f"an over-cap item: expected isError, got JSON-RPC error {error.code}: {error.message}") from error
        text = text_of(result)
        expect(result.is_error, f"an over-cap item is refused with isError: {short(result.structured_content)} / {short(text)}")
        expect("8 MiB" in text or str(INLINE_CAP) in text, f"the error names the cap: {text!r}")
        expect("path" in text.lower() and "/api/files" in text, f"the error names the alternatives (a path, POST /api/files): {text!r}")
        listed = await list_all(client, {"name": f"{tag}-over"})
        expect(not listed, f"nothing recorded for the refused item: {short(listed)}")
        return f"exactly 8 MiB accepted; 8 MiB + 1 refused: {short(text, 160)}"


@check("resources")
async def resources(ctx: Ctx) -> str:
    tag = ctx.tag("res")
    text = f"resource text {tag}\nÜnïcode line\n"
    small = os.urandom(3000)
    large = os.urandom(MIB + 512 * KIB)
    async with ctx.connect() as client:
        note = await upload_bytes(client, f"{tag}.txt", text.encode(), "text/plain")
        blob = await upload_bytes(client, f"{tag}-small.bin", small, "application/octet-stream")
        huge = await upload_bytes(client, f"{tag}-large.bin", large, "application/octet-stream")

        listed = {r.uri: r for r in await all_resources(client)}
        for f in (note, blob, huge):
            expect(file_uri(f["id"]) in listed, f"resources/list lacks {file_uri(f['id'])} ({len(listed)} listed)")
        expect(listed[file_uri(note["id"])].name, "a listed resource has a name")

        templates = await client.list_resource_templates(cache_mode="bypass")
        expect(any(t.uri_template == "wharf://files/{id}" for t in templates.resource_templates),
               f"resources/templates/list: {[t.uri_template for t in templates.resource_templates]}")

        read = await client.read_resource(file_uri(note["id"]), cache_mode="bypass")
        expect(len(read.contents) == 1 and getattr(read.contents[0], "text", None) == text, f"text resource: {short(read.model_dump())}")
        expect(read.contents[0].uri == file_uri(note["id"]), f"uri of the contents: {read.contents[0].uri}")

        read = await client.read_resource(file_uri(blob["id"]), cache_mode="bypass")
        content = read.contents[0] if read.contents else None
        expect(content is not None and getattr(content, "blob", None) and base64.b64decode(content.blob) == small,
               f"a small binary resource comes as a base64 blob of its bytes: {short(read.model_dump())}")

        try:
            read = await client.read_resource(file_uri(huge["id"]), cache_mode="bypass")
        except MCPError as error:
            expect("create_download_link" in error.message, f"the error for a {len(large)}-byte resource names create_download_link: {error.message!r}")
        else:
            raise Failure(f"reading a {len(large)}-byte binary resource gave {short(read.model_dump(), 200)}, expected an error")
        bogus = unknown_id()
        try:
            await client.read_resource(file_uri(bogus), cache_mode="bypass")
        except MCPError as error:
            expect(bogus in error.message, f"the error for an unknown resource names it: {error.message!r}")
        else:
            raise Failure("reading an unknown resource succeeded")
        return "listed as wharf://files/{id}, template listed; text read, small blob read, a 1.5 MiB binary → error naming create_download_link"


@check("bad_arguments")
async def bad_arguments(ctx: Ctx) -> str:
    """docs/mcp.md: arguments that do not fit the input schema are a tool error
    (isError); an unknown tool is a protocol (JSON-RPC) error."""
    problems, seen = [], []
    async with ctx.connect() as client:
        for what, arguments, names in (
            ("a number for get_file_info's file_id", {"file_id": 12345}, []),
            ("get_file_info without file_id", {}, ["file_id"]),
        ):
            try:
                result = await client.call_tool("get_file_info", arguments)
            except MCPError as error:
                problems.append(f"{what}: expected a tool error (isError), got JSON-RPC error {error.code}: {error.message}")
                continue
            text = text_of(result)
            if not result.is_error:
                problems.append(f"{what}: expected isError, got {short(result.structured_content)}")
            elif not text.strip() or any(n not in text for n in names):
                problems.append(f"{what}: the error text should say what is wrong (naming {names}): {text!r}")
            else:
                seen.append(f"{what} → isError ({short(text, 80)})")
        try:
            result = await client.call_tool("no_such_tool", {})
        except MCPError as error:
            seen.append(f"an unknown tool → JSON-RPC error {error.code}")
        else:
            problems.append(f"an unknown tool: expected a JSON-RPC error, got a tool result with isError={result.is_error}: {text_of(result)!r}")
    expect(not problems, "; ".join(problems))
    return "; ".join(seen)


@check("legacy_client")
async def legacy_client(ctx: Ctx) -> str:
    """An older client: the initialize handshake at 2025-11-25."""
    async with ctx.connect(mode="legacy") as client:
        expect(client.protocol_version == "2025-11-25", f"negotiated {client.protocol_version}")
        result = await call_ok(client, "list_files", {"limit": 5})
        expect(isinstance(result.structured_content.get("files"), list), short(result.structured_content))
        return f"initialize at {client.protocol_version}, list_files answered"


# ---- HTTP only ----


@check("principals", {"http"})
async def principals(ctx: Ctx) -> str:
    expect(ctx.args.token_bob, "needs --token-bob")
    tag = ctx.tag("alice")
    async with ctx.connect() as alice:
        mine = await upload_bytes(alice, f"{tag}.txt", b"alice's secret\n", "text/plain")
    async with ctx.connect(token=ctx.args.token_bob) as bob:
        bobs = await list_all(bob, {})
        expect(all(f["id"] != mine["id"] for f in bobs), "bob's list_files shows alice's file")
        expect(not await list_all(bob, {"name": tag}), "bob's list_files by name finds alice's file")
        await call_error(bob, "get_file_info", {"file_id": mine["id"]}, [mine["id"]])
        await call_error(bob, "read_file", {"file_id": mine["id"]}, [mine["id"]])
        await error_of_any_kind(bob, "create_download_link", {"file_id": mine["id"]})
        deleted = await bob.call_tool("delete_files", {"file_ids": [mine["id"]]})
        if not deleted.is_error:
            expect(deleted.structured_content["files"][0].get("deleted") is False, f"bob deleted alice's file: {short(deleted.structured_content)}")
        uris = {r.uri for r in await all_resources(bob)}
        expect(file_uri(mine["id"]) not in uris, "bob's resources/list shows alice's file")
        try:
            await bob.read_resource(file_uri(mine["id"]), cache_mode="bypass")
        except MCPError:
            pass
        else:
            raise Failure("bob read alice's file as a resource")
    async with ctx.connect() as alice:
        still = (await call_ok(alice, "get_file_info", {"file_id": mine["id"]})).structured_content
        expect(still["file"]["id"] == mine["id"], "alice still has her file")
    return "bob does not see alice's file in list_files or resources/list; get_file_info, read_file, links, delete, resources/read of it fail"


def initialize_body(request_id: int = 1, version: str = "2025-11-25") -> bytes:
    return json.dumps({
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "wharf-suite", "version": "0"}},
    }).encode()


MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@check("auth_required", {"http"})
async def auth_required(ctx: Ctx) -> str:
    base = ctx.args.url
    wanted = f'resource_metadata="{base}/.well-known/oauth-protected-resource"'
    for what, extra in (("no token", {}), ("a bad token", {"Authorization": "Bearer wharf-not-a-token"})):
        status, headers, body = await anyio.to_thread.run_sync(
            lambda: http("POST", f"{base}/mcp", headers={**MCP_HEADERS, **extra}, body=initialize_body())
        )
        expect(status == 401, f"{what}: HTTP {status}, expected 401: {short(body.decode(errors='replace'))}")
        challenge = headers.get("WWW-Authenticate") or ""
        expect(challenge.lower().startswith("bearer"), f"{what}: WWW-Authenticate {challenge!r}")
        expect(wanted in challenge, f"{what}: WWW-Authenticate {challenge!r} lacks {wanted}")
    return f"401 with WWW-Authenticate: Bearer {wanted}"


@check("protected_resource_metadata", {"http"})
async def protected_resource_metadata(ctx: Ctx) -> str:
    base = ctx.args.url
    status, headers, body = await anyio.to_thread.run_sync(lambda: http("GET", f"{base}/.well-known/oauth-protected-resource"))
    expect(status == 200, f"HTTP {status}: {short(body.decode(errors='replace'))}")
    try:
        metadata = json.loads(body)
    except ValueError as error:
        raise Failure(f"not JSON ({error}): {short(body.decode(errors='replace'))}") from error
    expect(metadata.get("resource") == f"{base}/mcp", f"resource: {metadata.get('resource')!r}, expected {base}/mcp")
    expect(metadata.get("authorization_servers") == [], f"authorization_servers is empty (tokens come from wharf token create): {short(metadata)}")
    expect("header" in (metadata.get("bearer_methods_supported") or []), f"bearer_methods_supported: {short(metadata)}")
    return f"resource {metadata['resource']}"


@check("foreign_origin", {"http"})
async def foreign_origin(ctx: Ctx) -> str:
    url = f"{ctx.args.url}/mcp"
    auth = {"Authorization": f"Bearer {ctx.args.token}"}
    initialize = json.loads(initialize_body())

    def run() -> str:
        status, _, reply = post_jsonrpc(url, initialize, {**auth, "Origin": "https://evil.example"})
        expect(status == 403, f"Origin https://evil.example: HTTP {status}, expected 403: {short(reply)}")
        status, headers, reply = post_jsonrpc(url, initialize, {**auth, "Origin": ctx.args.url})
        expect(status == 200 and reply and "result" in reply, f"the server's own Origin {ctx.args.url}: HTTP {status}: {short(reply)}")
        session = headers.get("Mcp-Session-Id")
        if session:
            http("DELETE", url, headers={**auth, "Mcp-Session-Id": session})
        return "a foreign Origin → 403; the server's own Origin passes"

    return await anyio.to_thread.run_sync(run)


@check("foreign_host", {"http"})
async def foreign_host(ctx: Ctx) -> str:
    """docs/mcp.md: `Host` must name the server (loopback names, the listen
    address, public_url's host), against DNS rebinding. (The status for a
    foreign Host is not documented; 403, as for a foreign Origin, 400 and 421
    are accepted.)"""
    url = f"{ctx.args.url}/mcp"
    port = ctx.args.url.rsplit(":", 1)[1]
    auth = {"Authorization": f"Bearer {ctx.args.token}"}
    initialize = json.loads(initialize_body())

    def run() -> str:
        status, _, reply = post_jsonrpc(url, initialize, {**auth, "Host": f"evil.example:{port}"})
        expect(status in (400, 403, 421), f"Host evil.example:{port}: HTTP {status}, expected a refusal: {short(reply)}")
        refused = status
        status, headers, reply = post_jsonrpc(url, initialize, {**auth, "Host": f"localhost:{port}"})
        expect(status == 200 and reply and "result" in reply, f"Host localhost:{port}: HTTP {status}: {short(reply)}")
        session = headers.get("Mcp-Session-Id")
        if session:
            http("DELETE", url, headers={**auth, "Mcp-Session-Id": session})
        return f"Host evil.example → {refused}; Host localhost passes"

    return await anyio.to_thread.run_sync(run)


@check("oversized_body", {"http"})
async def oversized_body(ctx: Ctx) -> str:
    """docs/mcp.md: messages up to 64 MiB are read over HTTP; a longer one gets 413."""
    import http.client
    import socket

    host, port = ctx.args.url.removeprefix("http://").rsplit(":", 1)
    head = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "upload_files", "arguments": {"files": [{"filename": "big.bin", "content": ""}]}}})
    cut = head.index('"content": "') + len('"content": "')
    body = head[:cut].encode() + b"A" * (64 * MIB + 1024) + head[cut:].encode()

    def run() -> str:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        sent = "all"
        try:
            connection.putrequest("POST", "/mcp")
            for name, value in {**MCP_HEADERS, "Authorization": f"Bearer {ctx.args.token}",
                                "MCP-Protocol-Version": "2025-11-25", "Content-Length": str(len(body))}.items():
                connection.putheader(name, value)
            connection.endheaders()
            view = memoryview(body)
            for offset in range(0, len(body), MIB):
                try:
                    connection.send(view[offset:offset + MIB])
                except (BrokenPipeError, ConnectionResetError, socket.timeout):
                    sent = f"{offset} bytes (the server stopped reading)"
                    break
            try:
                response = connection.getresponse()
            except (ConnectionResetError, http.client.RemoteDisconnected) as error:
                raise Failure(f"a {len(body)}-byte body: no response ({error!r}; sent {sent}), expected 413") from error
            detail = response.read(2000).decode(errors="replace")
            expect(response.status == 413, f"a {len(body)}-byte body: HTTP {response.status}, expected 413: {short(detail)}")
            return f"a {len(body)}-byte message → 413 (sent {sent})"
        finally:
            connection.close()

    return await anyio.to_thread.run_sync(run)


def read_jsonrpc(response: Any, want_id: int) -> dict[str, Any]:
    """The JSON-RPC response with `want_id` from a JSON or an SSE body."""
    kind = response.headers.get("Content-Type") or ""
    if kind.startswith("application/json"):
        return json.loads(response.read())
    expect(kind.startswith("text/event-stream"), f"unexpected Content-Type {kind!r}")
    data: list[str] = []
    while True:
        raw = response.readline()
        if not raw:
            raise Failure(f"the event stream ended without a response to id {want_id}")
        line = raw.decode().rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif line == "":
            payload = "\n".join(data).strip()
            data = []
            if not payload:
                continue  # an event without data (e.g. the priming event of a resumable stream)
            message = json.loads(payload)
            if message.get("id") == want_id:
                return message


def post_jsonrpc(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any, dict[str, Any] | None]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={**MCP_HEADERS, **headers})
    try:
        with _opener.open(request, timeout=60) as response:
            if "id" not in body:
                return response.status, response.headers, None
            return response.status, response.headers, read_jsonrpc(response, body["id"])
    except urllib.error.HTTPError as error:
        return error.code, error.headers, {"http_error_body": error.read().decode(errors="replace")}


@check("legacy_session_raw", {"http"})
async def legacy_session_raw(ctx: Ctx) -> str:
    """An older client by hand: initialize at 2025-11-25, Mcp-Session-Id, notifications/initialized, tools/call."""
    url = f"{ctx.args.url}/mcp"
    auth = {"Authorization": f"Bearer {ctx.args.token}"}

    def run() -> str:
        status, headers, reply = post_jsonrpc(url, json.loads(initialize_body(1)), auth)
        expect(status == 200, f"initialize: HTTP {status}: {short(reply)}")
        expect(reply and reply.get("result", {}).get("protocolVersion") == "2025-11-25", f"initialize: {short(reply)}")
        session = headers.get("Mcp-Session-Id")
        expect(session, f"initialize at 2025-11-25 gives an Mcp-Session-Id header: {dict(headers)}")
        in_session = {**auth, "Mcp-Session-Id": session, "MCP-Protocol-Version": "2025-11-25"}
        status, _, _ = post_jsonrpc(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, in_session)
        expect(status in (200, 202), f"notifications/initialized: HTTP {status}")
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "list_files", "arguments": {"limit": 3}}}
        status, _, reply = post_jsonrpc(url, call, in_session)
        expect(status == 200 and reply, f"tools/call: HTTP {status}: {short(reply)}")
        result = reply.get("result") or {}
        expect(not result.get("isError") and isinstance((result.get("structuredContent") or {}).get("files"), list), f"tools/call list_files: {short(reply)}")
        status, _, _ = http("DELETE", url, headers=in_session)
        expect(status in (200, 202, 204, 405), f"DELETE the session: HTTP {status}")
        return f"session {session[:12]}…: initialize, initialized, list_files answered; DELETE {status}"

    return await anyio.to_thread.run_sync(run)


# ---- running ----

def leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; the SDK's task groups wrap what a check raises."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaves(inner)]
    return [error]


async def run_checks(ctx: Ctx, names: list[str]) -> int:
    failed = 0
    for name in names:
        fn, _ = CHECKS[name]
        started = time.monotonic()
        try:
            with anyio.fail_after(600):
                summary = await fn(ctx)
        except BaseException as error:  # noqa: BLE001 - report everything, keep going
            if isinstance(error, KeyboardInterrupt):
                raise
            failed += 1
            found = leaves(error)
            failures = [e for e in found if isinstance(e, Failure)]
            if failures:
                detail = " | ".join(str(e) for e in failures)
            else:
                detail = " | ".join("".join(traceback.format_exception_only(type(e), e)).strip() for e in found)
                traceback.print_exception(error, file=sys.stderr)
            print(f"FAIL {name}: {detail}", flush=True)
        else:
            print(f"ok {name}: {summary} ({time.monotonic() - started:.1f} s)", flush=True)
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("checks", nargs="*")
    parser.add_argument("--wharf", help="stdio: the wharf binary")
    parser.add_argument("--config", help="stdio: the config (with [server] public_url)")
    parser.add_argument("--nolink-config", help="stdio: the same config without public_url")
    parser.add_argument("--url", help="http: the server's base URL (http://HOST:PORT)")
    parser.add_argument("--token", help="http: a bearer token")
    parser.add_argument("--token-bob", help="http: a token of another principal")
    parser.add_argument("--work", help="a sandbox root of the server's principal")
    parser.add_argument("--list", action="store_true", help="print the checks for the transport")
    args = parser.parse_intermixed_args()

    available = [name for name, (_, transports) in CHECKS.items() if args.transport in transports]
    if args.list:
        print("\n".join(available))
        return 0
    unknown = [name for name in args.checks if name not in CHECKS]
    wrong = [name for name in args.checks if name in CHECKS and name not in available]
    if unknown or wrong:
        parser.error(f"unknown checks {unknown}; not for {args.transport}: {wrong}")
    if not args.work:
        parser.error("--work is required")
    if args.transport == "stdio" and not (args.wharf and args.config):
        parser.error("stdio needs --wharf and --config")
    if args.transport == "http" and not (args.url and args.token):
        parser.error("http needs --url and --token")
    args.url = (args.url or "").rstrip("/")
    ctx = Ctx(args)
    return 1 if asyncio.run(run_checks(ctx, args.checks or available)) else 0


if __name__ == "__main__":
    sys.exit(main())
