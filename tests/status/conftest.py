from tests.e2e.conftest import cli  # noqa: F401 - fixture
