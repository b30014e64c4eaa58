"""Schema validation: every problem with its path, literal secrets refused, references, round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from safehold.config.introspect import kind_models, sections
from safehold.config.loader import ConfigInvalid, load_config, parse_toml, problems, validate
from safehold.config.schema import Config, parse_duration
from safehold.errors import ConfigError
from safehold.secrets import SecretRef

GOOD = """
version = 1
[repository]
url = "/srv/backup/safehold"
password = { file = "/root/.safehold-pass" }
options = { connections = 4 }

[offsite.backupserver]
url = "sftp://backup@backup.example.com//srv/safehold"
password = { env = "OFFSITE_PASSWORD" }

[components.app]
kind = "files"
optional = false
paths = ["/var/www/app"]
excludes = ["vendor/", "node_modules/"]

[components.database]
kind = "mysql"
databases = ["askproai_db"]
password = { file = "/var/www/app/.env", key = "DB_PASSWORD" }

[components.retell]
kind = "saas/retell"
optional = true
api_key = "file:/var/www/app/.env:RETELL_API_KEY"

[profiles.quick]
components = ["app", "database"]
tags = ["quick"]
retention = { daily = 7, weekly = 4, monthly = 12, yearly = 3 }
offsite = ["backupserver"]

[profiles.external]
components = ["retell"]

[defaults]
profile = "quick"

[objectives]
rpo = "24h"
rto = "90m"

[notifications]
urls = [{ env = "SLACK_WEBHOOK_URL" }, "command:pass show apprise/mail"]
on = ["failure", "success"]
healthchecks_ping = "env:HC_PING_URL"

[drill]
mysql_scratch_host = "127.0.0.1"
mysql_scratch_password = { env = "DRILL_PW" }
keep_sandbox = true

[[hooks.before_backup]]
command = ["php", "/var/www/app/artisan", "down"]
on_failure = "abort"
timeout = 120

[[hooks.after_backup]]
command = ["php", "/var/www/app/artisan", "up"]
on_failure = "continue"
always = true

[[health_checks]]
name = "website"
kind = "http"
url = "https://app.example.com/health"
expect_status = 200

[[health_checks]]
name = "db"
kind = "mysql"
component = "database"
"""


def doc(text: str = GOOD) -> dict[str, Any]:
    return parse_toml(textwrap.dedent(text))


def test_good_config_validates_and_builds_sources() -> None:
    cfg = validate(doc())
    assert list(cfg.components) == ["app", "database", "retell"]
    assert cfg.components["retell"].optional is True
    src = cfg.build_source("database")
    assert type(src).__name__ == "MySQLSource"
    assert src.options.password == SecretRef(file="/var/www/app/.env", key="DB_PASSWORD")
    assert cfg.build_source("retell").options.api_key == SecretRef(
        file="/var/www/app/.env", key="RETELL_API_KEY"
    )
    assert cfg.notifications.urls[1] == SecretRef(command="pass show apprise/mail")
    assert parse_duration(cfg.objectives.rto or "").total_seconds() == 5400
    assert cfg.profile_components() == ["app", "database"]
    with pytest.raises(ConfigError, match="no component 'nope'"):
        cfg.build_source("nope")


def test_every_error_is_reported_with_its_path() -> None:
    data = doc()
    data["components"]["database"]["host"] = 5
    data["components"]["database"]["portt"] = 3306
    data["components"]["app"]["paths"] = "/var/www/app"
    data["components"]["bad"] = {"kind": "nosuchkind"}
    data["repository"]["colour"] = "blue"
    data["objectives"]["rpo"] = "soon"
    data["hooks"]["before_backup"][0]["on_failure"] = "panic"
    data["health_checks"][0]["url"] = None
    del data["health_checks"][0]["url"]
    found = problems(data)
    expected = [
        "At 'components.database.host': Input should be a valid string",
        "At 'components.database.portt': Extra inputs are not permitted",
        "At 'components.app.paths': Input should be a valid list",
        "At 'components.bad.kind': unknown source kind 'nosuchkind'",
        "At 'repository.colour': Extra inputs are not permitted",
        "At 'objectives.rpo': 'soon' is not a duration",
        "At 'hooks.before_backup[0].on_failure': Input should be 'abort' or 'continue'",
        "At 'health_checks[0]': an http check needs 'url'",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in found), (line, found)
    assert len(found) == len(expected)
    with pytest.raises(ConfigInvalid) as info:
        validate(data, "x.toml")
    err = info.value
    assert err.exit_code == 2 and err.problems == found
    assert err.message.splitlines()[0] == "x.toml: 8 problems in the configuration"
    assert err.message.splitlines()[1:] == found


def test_literal_secrets_are_refused_everywhere_without_echoing_them() -> None:
    data = doc()
    data["repository"]["password"] = "hunter2-repo"
    data["components"]["database"]["password"] = "hunter2-db"
    data["components"]["retell"]["api_key"] = "key_hunter2"
    data["notifications"]["urls"] = ["https://hooks.slack.com/services/T0/B0/hunter2"]
    data["drill"]["mysql_scratch_password"] = "hunter2-drill"
    data["repository"]["options"]["secret_access_key"] = "hunter2-s3"
    found = problems(data)
    paths = [p.split("'")[1] for p in found]
    assert paths == [
        "repository.password",
        "repository.options",
        "notifications.urls[0]",
        "drill.mysql_scratch_password",
        "components.database.password",
        "components.retell.api_key",
    ]
    assert all("literal secrets are not allowed here" in p for p in found if "options" not in p)
    assert "looks like a secret" in found[1]
    with pytest.raises(ConfigInvalid) as info:
        validate(data)
    assert "hunter2" not in str(info.value) and "hunter2" not in "".join(found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:DB_PASSWORD", SecretRef(env="DB_PASSWORD")),
        ("ENV:X", SecretRef(env="X")),
        ("file:/root/.safehold-pass", SecretRef(file="/root/.safehold-pass")),
        ("file:/var/www/app/.env:DB_PASSWORD", SecretRef(file="/var/www/app/.env", key="DB_PASSWORD")),
        ("FILE:/var/www/app/.env:DB_PASSWORD", SecretRef(file="/var/www/app/.env", key="DB_PASSWORD")),
        ("file:/etc/a:b/pass", SecretRef(file="/etc/a:b/pass")),
        ("command:pass show db", SecretRef(command="pass show db")),
    ],
)
def test_reference_strings(text: str, expected: SecretRef) -> None:
    assert SecretRef.model_validate(text) == expected


@pytest.mark.parametrize("text", ["hunter2", "env:", "file:", "http://x", "", "envDB"])
def test_other_strings_are_literals(text: str) -> None:
    with pytest.raises(ValidationError, match="literal secrets are not allowed"):
        SecretRef.model_validate(text)


def test_secret_reference_resolves_from_dotenv(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('DB_PASSWORD="p w"\n')
    assert SecretRef.model_validate(f"file:{env}:DB_PASSWORD").resolve() == "p w"


def test_cross_reference_errors() -> None:
    data = doc()
    data["profiles"]["quick"]["components"] = ["app", "storage"]
    data["profiles"]["quick"]["offsite"] = ["glacier"]
    data["defaults"]["profile"] = "daily"
    data["drill"]["profile"] = "weekly"
    data["health_checks"][1]["component"] = "app"
    data["health_checks"].append({"name": "cache", "kind": "redis", "component": "redis"})
    assert problems(data) == [
        "At 'profiles.quick.components[1]': no component named 'storage' (defined: app, database, retell)",
        "At 'profiles.quick.offsite[0]': no off-site repository named 'glacier' (defined: backupserver)",
        "At 'defaults.profile': no profile named 'daily' (defined: external, quick)",
        "At 'drill.profile': no profile named 'weekly' (defined: external, quick)",
        "At 'health_checks[1].component': component 'app' is not of kind 'mysql'",
        "At 'health_checks[2].component': no component named 'redis'",
    ]


def test_structure_rules() -> None:
    data = doc()
    data["components"]["Bad Name"] = {"kind": "files", "paths": ["/x"]}
    data["hooks"]["before_backup"][0]["always"] = True
    data["health_checks"][0]["component"] = "database"
    data["profiles"]["quick"]["components"] = []
    data["version"] = 2
    found = problems(data)
    assert "At 'version': Input should be 1" in found
    assert any(p.startswith("At 'components': component name 'Bad Name'") for p in found)
    assert "At 'hooks.before_backup': 'always' is only meaningful in after_backup hooks" in found
    assert "At 'health_checks[0]': component not used by a http check" in found
    assert any(
        p.startswith("At 'profiles.quick.components': List should have at least 1 item") for p in found
    )


def test_model_validate_alone_also_checks_components_and_references() -> None:
    data = doc()
    data["components"]["app"]["paths"] = 5
    with pytest.raises(ValidationError, match="At 'paths': Input should be a valid list"):
        Config.model_validate(data)
    data = doc()
    data["defaults"]["profile"] = "nope"
    with pytest.raises(ValidationError, match=r"At 'defaults\.profile': no profile named 'nope'"):
        Config.model_validate(data)
    assert Config.model_validate(doc()) == validate(doc())


def test_toml_round_trip() -> None:
    cfg = validate(doc())
    text = cfg.to_toml()
    assert validate(parse_toml(text)) == cfg
    assert 'password = { file = "/var/www/app/.env", key = "DB_PASSWORD" }' in text
    assert "[[hooks.after_backup]]" in text and "[components.database]" in text
    assert text.startswith("version = 1\n")


def test_durations() -> None:
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration("7d").days == 7
    assert parse_duration("1h30m").total_seconds() == 5400
    for bad in ("", "24", "h", "0h", "1y", "-1h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_every_option_has_a_description_and_an_example() -> None:
    models: list[type[BaseModel]] = [s.model for s in sections()] + [SecretRef]
    models += [m for _, m in kind_models()]
    lacking = [
        f"{m.__name__}.{name}"
        for m in models
        for name, info in m.model_fields.items()
        if not (info.description and info.examples)
    ]
    # nested tables are documented by their own section; their field's description suffices
    lacking = [x for x in lacking if x not in {"Config.repository", "Config.defaults", "Config.objectives",
                                               "Config.notifications", "Config.drill", "Config.hooks",
                                               "Config.status", "Config.schedule",
                                               "Config.preflight"}]  # fmt: skip
    assert lacking == []


def test_load_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from safehold.config import loader

    explicit, via_env, system = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "c.toml"
    for path, url in ((explicit, "/a"), (via_env, "/b"), (system, "/c")):
        path.write_text(f'[repository]\nurl = "{url}"\n')
    monkeypatch.setattr(loader, "SYSTEM_PATH", system)
    monkeypatch.setattr(loader, "USER_PATH", tmp_path / "none.toml")
    monkeypatch.setenv("SAFEHOLD_CONFIG", str(via_env))
    assert load_config(explicit).repository.url == "/a"
    assert load_config(None).repository.url == "/b"
    monkeypatch.delenv("SAFEHOLD_CONFIG")
    assert load_config(None).repository.url == "/c"
    monkeypatch.setattr(loader, "SYSTEM_PATH", tmp_path / "gone.toml")
    with pytest.raises(ConfigError, match="no configuration file found"):
        load_config(None)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[repository\nurl=1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 1"):
        load_config(bad)
