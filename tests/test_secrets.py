"""Secret masking: names matched by the configured patterns, values masked in dicts and text."""

import pytest
from django.core.exceptions import ValidationError

from container_manager.rules.secrets import (
    MASK,
    is_secret_name,
    mask_env,
    mask_env_text,
    unmask_env_text,
)


def test_default_patterns_match_secret_looking_names():
    secret = ["API_KEY", "aws_secret_access_key", "GITHUB_TOKEN", "DB_PASSWORD", "GCP_CREDENTIALS"]
    assert all(is_secret_name(name) for name in secret)
    assert not any(is_secret_name(name) for name in ["DEBUG", "PATH", "MODE"])


def test_patterns_come_from_settings(settings):
    settings.CONTAINER_MANAGER = {"SECRET_NAME_PATTERNS": ["PRIVATE_*"]}
    assert is_secret_name("private_thing") and not is_secret_name("API_KEY")


def test_mask_env_masks_nested_values_and_url_passwords():
    masked = mask_env(
        {
            "MODE": "fast",
            "API_TOKEN": "t",
            "nested": {"secret_key": "s", "region": "eu"},
            "DATABASE_URL": "postgresql://app:pa55@db:5432/app",
            "PORT": 5432,
        }
    )
    assert masked == {
        "MODE": "fast",
        "API_TOKEN": MASK,
        "nested": {"secret_key": MASK, "region": "eu"},
        "DATABASE_URL": f"postgresql://app:{MASK}@db:5432/app",
        "PORT": 5432,
    }


def test_mask_env_text_keeps_layout():
    text = '# comment\n\nPASSWORD="a b"\nNAME=x=y\nnot a line'
    assert mask_env_text(text) == f"# comment\n\nPASSWORD={MASK}\nNAME=x=y\nnot a line"
    assert mask_env_text("") == ""


def test_default_patterns_cover_common_secret_names():
    names = ["DB_PASS", "PASSWD", "SENTRY_DSN", "AUTH", "GITHUB_PAT", "JWT", "PRIVATE_KEY",
             "TLS_CERT", "MYSQL_PWD", "oauth_client", "SESSION_COOKIE", "SALT"]  # fmt: skip
    assert [name for name in names if not is_secret_name(name)] == []
    assert not any(is_secret_name(name) for name in ["DEBUG", "PATH", "LOG_LEVEL", "PORT"])


def test_url_password_holding_an_at_sign_is_masked_whole():
    masked = mask_env({"URL": "postgres://app:p@ss@db:5432/x", "C": "tcp://u@corp:a/b@h:2376"})
    assert masked == {"URL": f"postgres://app:{MASK}@db:5432/x", "C": f"tcp://u@corp:{MASK}@h:2376"}
    assert "ss@db" not in mask_env_text("DATABASE_URL=postgres://app:p@ss@db/x")


def test_unmask_env_text_keeps_what_was_left_masked_and_takes_what_was_typed():
    stored = 'A_TOKEN="t 1"\nURL=pg://u:pw@db/x\nMODE=slow\n# keep\nB_SECRET=s'
    shown = mask_env_text(stored)
    assert "pw" not in shown and "t 1" not in shown and shown.endswith(f"B_SECRET={MASK}")
    edited = shown.replace("slow", "fast").replace(f"B_SECRET={MASK}", "B_SECRET=new")
    assert unmask_env_text(edited + "\nEXTRA=1", stored) == (
        'A_TOKEN="t 1"\nURL=pg://u:pw@db/x\nMODE=fast\n# keep\nB_SECRET=new\nEXTRA=1'
    )
    assert unmask_env_text("", stored) == ""  # a variable removed is removed


def test_unmask_env_text_refuses_a_mask_it_cannot_put_back():
    stored = "URL=pg://u:pw@db/x\nA_TOKEN=t"
    for edited, line in (
        (f"URL=pg://u:{MASK}@other/x", 1),  # the host changed: the password was never shown
        (f"MODE=fast\nNEW_KEY={MASK}", 2),  # nothing stored to keep
        (f"A_TOKEN={MASK}x", 1),
    ):
        with pytest.raises(ValidationError, match=f"line {line}: "):
            unmask_env_text(edited, stored)
