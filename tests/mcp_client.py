"""Drives `wharf mcp` with the official MCP Python SDK client over stdio.

Usage: mcp_client.py WHARF_BINARY CONFIG WORKDIR

Lists the tools, uploads base64 content, downloads it back by id, and checks
the bytes and the structured results. Prints one line per check; exits non-zero
on the first failure.
"""

import asyncio
import base64
import hashlib
import os
import sys

from mcp import Client, StdioServerParameters


async def main(binary: str, config: str, workdir: str) -> None:
    server = StdioServerParameters(command=binary, args=["--config", config, "mcp"], cwd=workdir)
    async with Client(server, raise_exceptions=True) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"upload_files", "download_file"} <= tools.keys(), f"tools listed: {sorted(tools)}"
        assert tools["download_file"].output_schema is not None, "download_file declares its output"
        print("listed tools:", ", ".join(sorted(tools)))

        content = os.urandom(200_000) + b"\x00 binary tail \xff"
        digest = hashlib.sha256(content).hexdigest()
        upload = await client.call_tool(
            "upload_files",
            {"files": [{"filename": "blob.bin", "content": base64.b64encode(content).decode()}]},
        )
        assert not upload.is_error, upload.content
        uploaded = upload.structured_content["files"][0]["file"]
        assert uploaded["sha256"] == digest, uploaded
        assert uploaded["size"] == len(content), uploaded
        print("uploaded", uploaded["id"], uploaded["sha256"])

        again = await client.call_tool(
            "upload_files",
            {"files": [{"filename": "same.bin", "content": base64.b64encode(content).decode()}]},
        )
        again_file = again.structured_content["files"][0]["file"]
        assert again_file["id"] == uploaded["id"] and again_file["deduplicated"], again_file
        print("deduplicated to", again_file["id"])

        download = await client.call_tool(
            "download_file", {"file_id": uploaded["id"], "destination": "restored.bin"}
        )
        assert not download.is_error, download.content
        result = download.structured_content
        assert result["verified"] is True and result["sha256"] == digest, result
        with open(result["path"], "rb") as f:
            assert f.read() == content, "downloaded bytes differ"
        print("downloaded to", result["path"])

        refused = await client.call_tool("download_file", {"file_id": uploaded["id"], "destination": "/etc/evil"})
        assert refused.is_error, refused
        text = " ".join(block.text for block in refused.content if hasattr(block, "text"))
        assert "outside the sandbox roots" in text, text
        print("refused a destination outside the sandbox")

        bad = await client.call_tool("upload_files", {"files": [{"filename": "x", "content": "%%%"}]})
        assert bad.is_error, bad
        print("refused invalid base64")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
