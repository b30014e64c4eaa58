"""The safehold CLI as the test suite runs it: ``[sys.executable, tests/helpers/cli.py, ARGS...]`` (:data:`SAFEHOLD`).

It is ``safehold`` with one difference: key files it creates use the cheapest KDF parameters the reader
accepts (see ``tests/conftest.py``). It is a file of the test suite, run by path, so nothing a production
job inherits (environment, configuration, options) can select it.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: The command prefix that runs the CLI in a test (any working folder; -P keeps tests/ off sys.path).
SAFEHOLD = [sys.executable, "-P", str(Path(__file__).resolve())]

if __name__ == "__main__":
    import os
    import tempfile

    # A test that builds its environment from scratch still never writes the real audit log.
    os.environ.setdefault(
        "SAFEHOLD_AUDIT_LOG", os.path.join(tempfile.gettempdir(), "safehold-tests", "audit.jsonl")
    )

    from safehold.cli.main import entry
    from safehold.engine.format import keys

    keys.use_kdf_params_for_new_keys(keys.CHEAPEST_KDF_PARAMS)
    entry()
