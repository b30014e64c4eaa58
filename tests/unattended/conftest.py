from tests.engine.conftest import repo_path, run  # noqa: F401 - the CLI fixtures
