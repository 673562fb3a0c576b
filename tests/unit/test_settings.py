"""Settings from the environment: defaults, bounds, and every problem reported at once."""

from __future__ import annotations

import pytest

from backbone.settings import Settings, SettingsError


def test_no_database_url_means_development_mode_on_sqlite() -> None:
    settings = Settings.from_env({})
    assert settings.development
    assert settings.database_url == "sqlite:///var/backbone.sqlite3"
    assert settings.did_domain == "localhost"
    assert settings.password_hash_iterations == 100_000
    assert settings.jwt_lifetime_s == 300


def test_a_database_url_means_production_and_requires_a_signing_key() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"BACKBONE_DATABASE_URL": "postgresql://u:secret@db/backbone"})
    assert raised.value.problems == ["BACKBONE_JWT_SIGNING_KEY is required outside development mode"]


def test_postgres_urls_get_the_psycopg_driver() -> None:
    settings = Settings.from_env(
        {"BACKBONE_DATABASE_URL": "postgresql://u:secret@db/backbone", "BACKBONE_JWT_SIGNING_KEY": "k" * 32}
    )
    assert settings.database_url == "postgresql+psycopg://u:secret@db/backbone"
    assert settings.database_kind == "postgresql"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "BACKBONE_JWT_LIFETIME_S": "5",
                "BACKBONE_DB_POOL_SIZE": "many",
                "BACKBONE_ENVIRONMENT": "staging",
                "BACKBONE_DID_DOMAIN": "127.0.0.1",
                "BACKBONE_POOL_SIZE": "3",
            }
        )
    problems = raised.value.problems
    assert len(problems) == 5
    assert "BACKBONE_JWT_LIFETIME_S: 5 is outside 60..3600" in problems
    assert "BACKBONE_DB_POOL_SIZE: 'many' is not an integer" in problems
    assert "BACKBONE_ENVIRONMENT: 'staging' is not one of development, production" in problems
    assert any(problem.startswith("BACKBONE_DID_DOMAIN") for problem in problems)
    assert "BACKBONE_POOL_SIZE is not a known setting" in problems
    assert "BACKBONE_POOL_SIZE" in str(raised.value)


def test_secrets_stay_out_of_repr_and_descriptions() -> None:
    settings = Settings.from_env(
        {
            "BACKBONE_DATABASE_URL": "postgresql://user:hunter2@db/backbone",
            "BACKBONE_JWT_SIGNING_KEY": "s3cret-signing-key-s3cret-signing-key",
        }
    )
    shown = repr(settings) + str(settings.describe())
    assert "hunter2" not in shown
    assert "s3cret" not in shown
    assert "user:***@db" in settings.describe()["database"]


def test_the_blob_store_is_a_local_directory_under_var_by_default() -> None:
    settings = Settings.from_env({"BACKBONE_VAR_DIR": "/srv/backbone"})
    assert settings.blob_store == "local"
    assert str(settings.blob_path) == "/srv/backbone/blobs"
    assert str(Settings.from_env({"BACKBONE_BLOB_DIR": "/data/blobs"}).blob_path) == "/data/blobs"


def test_an_s3_blob_store_needs_its_endpoint_and_credentials_all_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "BACKBONE_BLOB_STORE": "S3",
                "BACKBONE_S3_BUCKET": "No_Such_Bucket",
                "BACKBONE_S3_SECURE": "maybe",
            }
        )
    problems = raised.value.problems
    assert "BACKBONE_S3_ENDPOINT is required with BACKBONE_BLOB_STORE=s3" in problems
    assert "BACKBONE_S3_ACCESS_KEY is required with BACKBONE_BLOB_STORE=s3" in problems
    assert "BACKBONE_S3_SECRET_KEY is required with BACKBONE_BLOB_STORE=s3" in problems
    assert any(problem.startswith("BACKBONE_S3_BUCKET") for problem in problems)
    assert "BACKBONE_S3_SECURE: 'maybe' is not true or false" in problems
    assert len(problems) == 5


def test_the_s3_secret_stays_out_of_repr_and_descriptions() -> None:
    settings = Settings.from_env(
        {
            "BACKBONE_BLOB_STORE": "s3",
            "BACKBONE_S3_ENDPOINT": "127.0.0.1:9000",
            "BACKBONE_S3_ACCESS_KEY": "backbone",
            "BACKBONE_S3_SECRET_KEY": "an-s3-secret-nobody-may-see",
            "BACKBONE_S3_SECURE": "false",
        }
    )
    assert settings.s3_secure is False
    assert settings.s3_bucket == "backbone-files"
    assert "an-s3-secret-nobody-may-see" not in repr(settings)
    assert "an-s3-secret-nobody-may-see" not in str(settings.describe())
    assert settings.describe()["blob_store"] == "s3 127.0.0.1:9000/backbone-files"


def test_telemetry_defaults_metrics_on_and_no_trace_exporter() -> None:
    settings = Settings.from_env({})
    assert settings.metrics_enabled
    assert settings.metrics_dir is None
    assert (settings.traces_exporter, settings.traces_sampler, settings.traces_sampler_arg) == (
        "none",
        "parentbased_always_on",
        1.0,
    )


def test_the_standard_otel_variables_choose_exporter_and_sampler() -> None:
    settings = Settings.from_env(
        {
            "OTEL_TRACES_EXPORTER": "OTLP",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
            "BACKBONE_METRICS": "false",
            "BACKBONE_METRICS_DIR": "/tmp/metrics",
        }
    )
    assert (settings.traces_exporter, settings.traces_sampler, settings.traces_sampler_arg) == (
        "otlp",
        "parentbased_traceidratio",
        0.1,
    )
    assert not settings.metrics_enabled
    assert str(settings.metrics_dir) == "/tmp/metrics"


def test_bad_otel_values_are_reported_with_the_rest() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "OTEL_TRACES_EXPORTER": "zipkin",
                "OTEL_TRACES_SAMPLER": "sometimes",
                "OTEL_TRACES_SAMPLER_ARG": "2",
                "BACKBONE_HEALTH_TIMEOUT_S": "0",
            }
        )
    assert sorted(raised.value.problems) == [
        "BACKBONE_HEALTH_TIMEOUT_S: 0.0 is outside 0.1..60.0",
        "OTEL_TRACES_EXPORTER: 'zipkin' is not one of none, console, otlp",
        "OTEL_TRACES_SAMPLER: 'sometimes' is not one of always_on, always_off, traceidratio, "
        "parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG: 2.0 is outside 0..1",
    ]


def test_the_bus_is_in_process_by_default_and_rabbitmq_on_request() -> None:
    assert Settings.from_env({}).bus == "inprocess"
    settings = Settings.from_env(
        {
            "BACKBONE_BUS": "rabbitmq",
            "BACKBONE_RABBITMQ_URL": "amqp://backbone:hunter2@broker:5672/enmeshed",
            "BACKBONE_RABBITMQ_EXCHANGE": "enmeshed-stage",
            "BACKBONE_RABBITMQ_MAX_HANDLER_ATTEMPTS": "7",
        }
    )
    assert settings.bus == "rabbitmq"
    assert settings.rabbitmq_exchange == "enmeshed-stage"
    assert settings.rabbitmq_max_handler_attempts == 7
    shown = repr(settings) + str(settings.describe())
    assert "hunter2" not in shown, "the broker password is never shown"
    assert "backbone:***@broker" in settings.describe()["bus"]


def test_bad_bus_settings_are_all_reported_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {
                "BACKBONE_BUS": "kafka",
                "BACKBONE_RABBITMQ_URL": "http://user:hunter2@broker",
                "BACKBONE_RABBITMQ_EXCHANGE": "no spaces",
                "BACKBONE_RABBITMQ_PREFETCH": "0",
            }
        )
    problems = "\n".join(raised.value.problems)
    assert "BACKBONE_BUS: 'kafka' is not one of inprocess, rabbitmq" in problems
    assert "BACKBONE_RABBITMQ_URL" in problems
    assert "hunter2" not in problems
    assert "BACKBONE_RABBITMQ_EXCHANGE" in problems
    assert "BACKBONE_RABBITMQ_PREFETCH: 0 is outside 1..1000" in problems


def test_the_admin_ui_settings_have_defaults_like_device_log_ins_and_bounds() -> None:
    development = Settings.from_env({})
    assert development.admin_ui_session_lifetime_s == 1800
    assert development.admin_ui_max_failed_sign_ins == 3
    assert development.admin_ui_lockout_s == 60
    production = Settings.from_env(
        {"BACKBONE_DATABASE_URL": "postgresql://db/backbone", "BACKBONE_JWT_SIGNING_KEY": "k" * 32}
    )
    assert production.admin_ui_lockout_s == 600
    chosen = Settings.from_env(
        {
            "BACKBONE_ADMIN_UI_SESSION_LIFETIME_S": "600",
            "BACKBONE_ADMIN_UI_MAX_FAILED_SIGN_INS": "5",
            "BACKBONE_ADMIN_UI_LOCKOUT_S": "0",
        }
    )
    assert (
        chosen.admin_ui_session_lifetime_s,
        chosen.admin_ui_max_failed_sign_ins,
        chosen.admin_ui_lockout_s,
    ) == (
        600,
        5,
        0,
    )
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(
            {"BACKBONE_ADMIN_UI_SESSION_LIFETIME_S": "10", "BACKBONE_ADMIN_UI_MAX_FAILED_SIGN_INS": "0"}
        )
    assert refused.value.problems == [
        "BACKBONE_ADMIN_UI_SESSION_LIFETIME_S: 10 is outside 60..86400",
        "BACKBONE_ADMIN_UI_MAX_FAILED_SIGN_INS: 0 is outside 1..1000",
    ]
