from tests.helpers.fixtures import repo_path, run  # noqa: F401 - the CLI fixtures
