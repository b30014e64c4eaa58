"""The sample and the reference are generated from the schema and cover all of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from safehold.config.docgen import END, START, readme_section, reference, sample, update_readme
from safehold.config.introspect import kind_models, sections
from safehold.config.loader import parse_toml, validate
from safehold.errors import ConfigError


def test_sample_passes_check_and_uses_examples() -> None:
    cfg = validate(parse_toml(sample()), "sample")
    assert set(cfg.components) == {"app", "database"}
    assert cfg.components["app"].kind == "files" and cfg.components["database"].kind == "mysql"
    assert cfg.profiles["quick"].components == ["app", "database"]
    assert cfg.repository.url == "/srv/backup/safehold"


def test_sample_names_every_option() -> None:
    text = sample()
    keys = set(re.findall(r"^(?:# )?([A-Za-z_][A-Za-z0-9_-]*) = ", text, flags=re.M))
    for sec in sections():
        for opt in sec.options:
            assert opt.name in keys, (sec.header, opt.name)
    for kind, model in kind_models():
        assert f'kind = "{kind}"' in text
        for name in model.model_fields:
            assert name in keys, (kind, name)


def test_sample_commented_components_are_valid_when_uncommented() -> None:
    """Uncommenting a whole commented-out component block gives a valid component."""
    text = sample()
    blocks = re.findall(r"^# (\[components\.[^\]]+\])\n((?:# .*\n)+)", text, flags=re.M)
    assert len(blocks) == len(kind_models()) - 2
    for header, body in blocks:
        lines = [line[2:] for line in body.splitlines() if re.match(r"^# (kind|[a-z_]+ = )", line)]
        required = [ln for ln in lines if not ln.startswith(("optional",))]
        doc = parse_toml('[repository]\nurl = "/r"\n' + header + "\n" + "\n".join(required) + "\n")
        validate(doc, header)


def test_reference_lists_every_option_and_kind() -> None:
    text = reference()
    for sec in sections():
        if sec.path:
            assert f"### `{sec.header}`" in text
        for opt in sec.options:
            assert f"| `{opt.name}` |" in text
    for kind, model in kind_models():
        section = text.split(f"#### `{kind}`", 1)[1].split("\n#### ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in section, (kind, name)
    assert "| `url` | string | required |" in text
    assert '| `on_failure` | "abort" or "continue" | `"abort"` |' in text


def test_update_readme(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n## Configuration reference\n\n{START}\nold\n{END}\n\n## Exit codes\n")
    assert update_readme(readme) is True
    text = readme.read_text()
    assert readme_section(text) == reference()
    assert text.startswith("# x\n") and text.endswith(f"{END}\n\n## Exit codes\n")
    assert update_readme(readme) is False
    readme.write_text("no markers")
    with pytest.raises(ConfigError, match="markers"):
        update_readme(readme)
