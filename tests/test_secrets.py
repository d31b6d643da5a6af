"""Secret masking: names matched by the configured patterns, values masked in dicts and text."""

from container_manager.secrets import MASK, is_secret_name, mask_env, mask_env_text


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
