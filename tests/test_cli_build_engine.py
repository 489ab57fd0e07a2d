"""``flowengine run`` builds its engine as the server does: the private-network guard of
http.request applies to it too."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_flowengine_run_honours_http_block_private(tmp_path):
    workflow = {
        "name": "fetch",
        "nodes": [
            {
                "id": "get",
                "node_type": "http.request",
                "config": {"url": {"type": "String", "value": "http://127.0.0.1:9/"}},
            }
        ],
    }
    path = tmp_path / "fetch.json"
    path.write_text(json.dumps(workflow))
    environment = {**os.environ, "FLOWENGINE_HTTP_BLOCK_PRIVATE": "1"}
    finished = subprocess.run(
        [sys.executable, "-m", "flowengine", "run", str(path)], capture_output=True, text=True, env=environment, timeout=60
    )
    assert finished.returncode == 1
    result = json.loads(finished.stdout[finished.stdout.index("{") :])
    assert result["status"] == "failed"
    assert "BlockedDestination" in result["error"], result["error"]
    assert "FLOWENGINE_HTTP_BLOCK_PRIVATE=1 forbids it" in result["error"]
