"""Runs the hiredis client (tests/kvstore/hiredis_client.cpp) against a fresh pobj-kv.
Arguments: the client binary. POBJ_KV names the server binary."""

import subprocess
import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kv_server import KvServer  # noqa: E402

with KvServer() as server:
    server.start()
    result = subprocess.run([sys.argv[1], str(server.port)], capture_output=True, text=True, timeout=120)
    print(result.stdout, end="")
    print(result.stderr, end="", file=sys.stderr)
    code = server.close()
sys.exit(result.returncode or (code != 0))
