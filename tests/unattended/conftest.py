from tests.helpers.fixtures import repo_path, run  # noqa: F401 - the CLI fixtures
from tests.notify.conftest import http_receiver  # noqa: F401 - the HTTP receiver fixture
