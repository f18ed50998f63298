"""The command line: --help, unknown flags, values out of range and every
start-up mistake end with exit 2 and what to fix, never a traceback; Beam's
own flags keep working; the runner decides whether we wait."""
from __future__ import annotations

import argparse
import http.server
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.cli import is_local_runner
from pipeline.config import ConfigError, parse_config
from pipeline.options import LIMITS, MailchimpStreamOptions
from tests.helpers import API_KEY, AUDIENCE, PUBSUB_PROJECT, write_jsonl

ROOT = Path(__file__).resolve().parent.parent
METADATA = ROOT / "templates" / "metadata.json"
SYNC = {"syncs": [{"name": "newsletter", "audience_id": AUDIENCE,
                   "send_users": {"enabled": True, "properties": ["FNAME"]}}]}
RECORD = {"user_id": "u1", "event_type": "signed_up", "insert_id": "i1",
          "user_properties": {"email": "ada@example.com", "FNAME": "Ada"}}
PROJECT = PUBSUB_PROJECT
NOT_CHECKED_YET = "no Mailchimp credentials"  # the first check after the flags


def _our_flags() -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    MailchimpStreamOptions._add_argparse_args(parser)
    return {a.dest: a for a in parser._actions}


def _squeeze(text: str) -> str:
    """Text without whitespace: help wraps lines wherever it likes."""
    return "".join(text.split())


def _python(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MAILCHIMP_STREAM_BEAM_LOGS"}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def files(tmp_path):
    config = tmp_path / "sync.json"
    config.write_text(json.dumps(SYNC))
    records = write_jsonl(tmp_path / "in.jsonl", [RECORD])
    return config, records


@pytest.fixture
def no_credentials(monkeypatch):
    for name in ("MAILCHIMP_API_KEY", "MAILCHIMP_OAUTH_TOKEN",
                 "MAILCHIMP_OAUTH_METADATA_URL"):
        monkeypatch.delenv(name, raising=False)


def run_main(capsys, *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return status, out.err


# --- help ---------------------------------------------------------------------

def test_help_lists_every_flag_with_its_help_and_default_and_no_import_noise():
    done = _python("-m", "pipeline", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m pipeline ")
    text = _squeeze(done.stdout)
    for dest, action in _our_flags().items():
        assert _squeeze(f"--{dest}") in text
        assert _squeeze(action.help) in text, dest
        if action.default not in (None, False):  # a switch shows no default
            assert _squeeze(f"{action.help} (default: {action.default})") in text, dest
    assert _squeeze("python -m pipeline check --sync_config PATH") in text
    # Where Beam's own options are.
    assert "--help_beam" in done.stdout
    assert "beam.apache.org/releases/pydoc/" in done.stdout
    assert "Failed to import" not in done.stderr
    assert "apitools" not in done.stderr
    assert done.stderr == ""


def test_console_script_help_names_itself():
    script = Path(sys.executable).parent / "mailchimp-stream"
    if not script.exists():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    done = subprocess.run([str(script), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mailchimp-stream ")
    assert "--max_connections" in done.stdout and done.stderr == ""


def test_beam_import_warnings_are_shown_only_when_asked_for():
    baseline = _python("-c", "import apache_beam").stderr.strip()
    if not baseline:
        pytest.skip("Beam logs nothing at import in this environment")
    quiet = _python("-m", "pipeline", "--help")
    loud = _python("-m", "pipeline", "--help",
                   env_extra={"MAILCHIMP_STREAM_BEAM_LOGS": "1"})
    assert quiet.returncode == loud.returncode == 0
    assert quiet.stderr == ""
    for line in baseline.splitlines():
        assert line in loud.stderr


def test_help_beam_lists_beams_options(capsys):
    assert main(["--help_beam"]) == 0
    out = capsys.readouterr().out
    for flag in ("--runner", "--project", "--streaming", "--direct_num_workers",
                 "--direct_running_mode", "--setup_file", "--temp_location",
                 "--sdk_container_image"):
        assert re.search(rf"^\s+{flag}\b", out, re.M), flag
    assert "StandardOptions:" in out and "GoogleCloudOptions:" in out
    assert "--sync_config" not in out  # ours are in --help


# --- unknown flags ----------------------------------------------------------------

@pytest.mark.parametrize("typo, meant", [
    (["--batch_sise", "10"], "--batch_size"),
    (["--batch_sise=10"], "--batch_size"),
    (["--runnr", "FnApiRunner"], "--runner"),
    (["--direct_num_worker", "2"], "--direct_num_workers"),
])
def test_an_unknown_flag_stops_the_run_with_a_suggestion(capsys, files, typo, meant):
    config, records = files
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records), *typo)
    assert status == 2
    assert f"unknown flag {typo[0].split('=')[0]}: did you mean {meant}?" in err


def test_a_stray_argument_stops_the_run(capsys, files):
    config, records = files
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records), "extra")
    assert status == 2 and "unexpected argument 'extra'" in err


def test_dry_run_is_refused_on_a_remote_runner(capsys, files):
    """Beam's DataflowRunner reads --dry_run as its own: it would submit
    nothing, not run a dry run."""
    config, records = files
    status, err = run_main(capsys, "--sync_config", str(config), "--input_files",
                           str(records), "--runner=DataflowRunner", "--dry_run")
    assert status == 2 and "--dry_run runs on a local runner only" in err


@pytest.mark.parametrize("flags, dry", [
    (["--dry_run"], True), (["--dry_run=true"], True), (["--dry_run=false"], False),
    ([], False)])
def test_dry_run_parses_for_us_and_for_beam(files, flags, dry):
    from apache_beam.options.pipeline_options import TestOptions
    from pipeline import cli
    from pipeline.options import MailchimpStreamOptions
    config, records = files
    options = cli.parse(["--sync_config", str(config), "--input_files", str(records),
                         *flags])
    assert options.view_as(MailchimpStreamOptions).dry_run is dry
    assert bool(options.view_as(TestOptions).dry_run) is dry


BEAM_FLAGS = [
    ["--runner", "FnApiRunner"], ["--runner=DataflowRunner"], ["--project", "my-project"],
    ["--region", "europe-west1"], ["--streaming"], ["--direct_num_workers", "2"],
    ["--direct_running_mode", "multi_threading"], ["--direct_runner_bundle_repeat", "0"],
    ["--setup_file", "./setup.py"], ["--temp_location", "/tmp"],
    ["--staging_location", "gs://b/staging"], ["--template_location", "gs://b/t.json"],
    ["--job_name", "mailchimp-stream-1"], ["--experiments", "use_runner_v2"],
    ["--sdk_container_image", "gcr.io/p/i:1"], ["--max_num_workers", "3"],
    ["--service_account_email", "sa@p.iam.gserviceaccount.com"],
    ["--save_main_session"], ["--labels", "team=data"],
    ["--dataflow_service_options", "enable_prime"], ["--environment_type", "LOOPBACK"],
]


@pytest.mark.parametrize("flag", BEAM_FLAGS, ids=lambda f: f[0].split("=")[0])
def test_beams_own_flags_are_accepted(capsys, files, no_credentials, flag):
    config, records = files
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records), *flag)
    assert status == 2 and NOT_CHECKED_YET in err  # got past the flags


def test_a_run_with_beam_flags_completes(capsys, files, emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    config, records = files
    status, err = run_main(
        capsys, "--sync_config", str(config), "--input_files", str(records),
        "--output_dir", str(tmp_path / "out"), "--mailchimp_base_url", emulator.base_url,
        "--runner", "FnApiRunner", "--direct_num_workers", "1",
        "--direct_running_mode", "in_memory", "--project", "my-project",
        "--temp_location", str(tmp_path), "--job_name", "cli-test")
    assert status == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["members"]["upserted"] == 1


# --- values -----------------------------------------------------------------------

@pytest.mark.parametrize("flag, value, message", [
    ("--max_connections", "0", "must be from 1 to 10 (Mailchimp allows 10"),
    ("--max_connections", "11", "must be from 1 to 10"),
    ("--batch_size", "0", "must be at least 1"),
    ("--dedupe_window", "-5", "must be at least 1"),
    ("--shards_per_audience", "0", "must be at least 1"),
    ("--summary_refresh_secs", "0", "must be at least 1"),
    ("--max_retries", "-1", "must be at least 0"),
    ("--max_buffering_secs", "0", "must be more than 0"),
    ("--output_window_secs", "inf", "must be more than 0"),
    ("--request_timeout_secs", "nan", "must be more than 0"),
    ("--merge_fields_refresh_secs", "-1", "must be at least 0"),
    ("--batch_size", "5k", "invalid int value: '5k'"),
])
def test_numbers_out_of_range_stop_the_run_naming_the_flag(capsys, files, flag,
                                                            value, message):
    config, records = files
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records), flag, value)
    assert status == 2
    assert flag in err and message in err


@pytest.mark.parametrize("flag, value", [
    ("--max_connections", "1"), ("--max_connections", "10"), ("--max_retries", "0"),
    ("--merge_fields_refresh_secs", "0"), ("--max_buffering_secs", "0.5")])
def test_numbers_at_the_edges_are_accepted(capsys, files, no_credentials, flag, value):
    config, records = files
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records), flag, value)
    assert status == 2 and NOT_CHECKED_YET in err


def _regexes(name: str) -> list[str]:
    params = {p["name"]: p for p in json.loads(METADATA.read_text())["parameters"]}
    return params[name]["regexes"]


@pytest.mark.parametrize("name", sorted(n for n, a in _our_flags().items()
                                        if a.type in (int, float)))
def test_flag_ranges_and_template_regexes_agree(name):
    assert name in LIMITS, f"--{name} has no range in pipeline/options.py LIMITS"
    kind, limit = _our_flags()[name].type, LIMITS[name]
    for probe in ["0", "1", "2", "5", "9", "10", "11", "16", "200000", "0.5",
                  "1.5", "60.0", "-1", "-5"]:
        try:
            value = kind(probe)
        except ValueError:
            continue
        by_template = all(re.fullmatch(rx, probe) for rx in _regexes(name))
        assert by_template == limit.accepts(value), (name, probe)


@pytest.mark.parametrize("url, ok", [
    ("https://us6.api.mailchimp.com/3.0", True),
    ("http://127.0.0.1:8080/3.0/", True),
    ("us6.api.mailchimp.com/3.0", False),
    ("http://127.0.0.1:8080", False),
    ("https://us6.api.mailchimp.com/", False),
])
def test_base_url_needs_scheme_and_version(capsys, files, no_credentials, url, ok):
    config, records = files
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records), "--mailchimp_base_url", url)
    assert status == 2
    if ok:
        assert NOT_CHECKED_YET in err
    else:
        assert f"--mailchimp_base_url {url} needs" in err
        assert "e.g. https://us6.api.mailchimp.com/3.0" in err
    assert all(bool(re.fullmatch(rx, url)) == ok
               for rx in _regexes("mailchimp_base_url"))


# --- output_dir -------------------------------------------------------------------

def test_output_dir_that_is_a_file_stops_the_run(capsys, files, tmp_path):
    config, records = files
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    status, err = run_main(capsys, "--sync_config", str(config), "--input_files",
                           str(records), "--output_dir", str(a_file))
    assert status == 2 and f"--output_dir {a_file} is a file" in err


def test_output_dir_under_a_file_stops_the_run(capsys, files, tmp_path):
    config, records = files
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    status, err = run_main(capsys, "--sync_config", str(config), "--input_files",
                           str(records), "--output_dir", str(a_file / "out" / "deeper"))
    assert status == 2
    assert f"cannot be created: {a_file} is a file" in err


# --- credentials ------------------------------------------------------------------

def test_secret_manager_without_the_gcp_extra_says_how_to_install_it(capsys, files,
                                                                     no_credentials):
    if importlib.util.find_spec("google.cloud.secretmanager") is not None:
        pytest.skip("google-cloud-secret-manager is installed here")
    config, records = files
    status, err = run_main(
        capsys, "--sync_config", str(config), "--input_files", str(records),
        "--mailchimp_api_key_secret", "projects/my-project/secrets/k/versions/1")
    assert status == 2
    assert "--mailchimp_api_key_secret" in err
    assert "pip install 'mailchimp-stream[gcp]'" in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_oauth_metadata_endpoint_stops_the_run(capsys, files, monkeypatch,
                                                            no_credentials):
    config, records = files
    url = f"http://127.0.0.1:{_closed_port()}/oauth2/metadata"
    monkeypatch.setenv("MAILCHIMP_OAUTH_TOKEN", "s3cr3t-t0ken")
    monkeypatch.setenv("MAILCHIMP_OAUTH_METADATA_URL", url)
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records))
    assert status == 2
    assert f"cannot reach Mailchimp's OAuth metadata endpoint {url}" in err
    assert "s3cr3t-t0ken" not in err


class _OAuthMetadata(http.server.BaseHTTPRequestHandler):
    """Mailchimp's OAuth metadata endpoint: the data centre of a token."""
    api_endpoint = ""
    token = ""

    def do_GET(self):
        if self.headers.get("Authorization") != f"OAuth {self.token}":
            self.send_response(401)
            self.end_headers()
            return
        body = json.dumps({"dc": "local", "api_endpoint": self.api_endpoint}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_an_oauth_token_finds_its_data_centre_at_the_configured_endpoint(
        capsys, files, emulator, monkeypatch, no_credentials, tmp_path):
    handler = type("Handler", (_OAuthMetadata,), {
        "api_endpoint": emulator.base_url.removesuffix("/3.0"), "token": API_KEY})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MAILCHIMP_OAUTH_TOKEN", API_KEY)
        monkeypatch.setenv("MAILCHIMP_OAUTH_METADATA_URL",
                           f"http://127.0.0.1:{server.server_port}/oauth2/metadata")
        config, records = files
        status, err = run_main(capsys, "--sync_config", str(config), "--input_files",
                               str(records), "--output_dir", str(tmp_path / "out"))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["members"]["upserted"] == 1


# --- Pub/Sub ----------------------------------------------------------------------

@pytest.mark.parametrize("flag, kind", [
    ("--input_subscription", "subscription"), ("--input_topic", "topic")])
def test_a_missing_pubsub_source_stops_the_run_naming_it(capsys, files, pubsub,
                                                          flag, kind):
    config, _ = files
    missing = f"projects/{PROJECT}/{kind}s/nope"
    status, err = run_main(capsys, "--sync_config", str(config), flag, missing)
    assert status == 2
    assert f"{flag} {missing}: no such Pub/Sub {kind}" in err


def test_a_missing_dead_letter_topic_stops_the_run(capsys, files, pubsub):
    config, _ = files
    subscription = pubsub[4]["events-pipeline"]  # exists: the check goes on
    missing = f"projects/{PROJECT}/topics/no-dead-letters"
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_subscription", subscription,
                           "--dead_letter_topic", missing)
    assert status == 2
    assert f"--dead_letter_topic {missing}: no such Pub/Sub topic" in err
    assert "--input_subscription" not in err


# --- config -----------------------------------------------------------------------

def test_a_sync_name_yaml_reads_as_a_boolean_gets_a_quoting_hint(capsys, tmp_path):
    config = tmp_path / "sync.yaml"
    config.write_text(f"syncs:\n  - name: off\n    audience_id: {AUDIENCE}\n"
                      f"    send_users: {{enabled: true}}\n")
    records = write_jsonl(tmp_path / "in.jsonl", [RECORD])
    status, err = run_main(capsys, "--sync_config", str(config),
                           "--input_files", str(records))
    assert status == 2
    assert "syncs[0].name: text expected, got the boolean false" in err
    assert 'quotes, e.g. name: "off"' in err


def test_a_boolean_in_a_list_of_names_gets_the_hint_too():
    raw = {"syncs": [{"name": "s", "audience_id": "a", "send_events": {
        "enabled": True, "event_types": [True]}}]}
    with pytest.raises(ConfigError, match=r"event_types\[0\]: text expected, "
                                          r"got the boolean true .*quotes"):
        parse_config(raw)


# --- runners and modules ----------------------------------------------------------

@pytest.mark.parametrize("runner, local", [
    ("FnApiRunner", True), ("fnapirunner", True), ("BundleBasedDirectRunner", True),
    ("DirectRunner", True), ("direct", True), ("SwitchingDirectRunner", True),
    ("PrismRunner", True), ("prism", True),
    ("apache_beam.runners.portability.fn_api_runner.FnApiRunner", True),
    (None, True),
    ("DataflowRunner", False), ("dataflow", False), ("Dataflow", False),
    ("PortableRunner", False), ("FlinkRunner", False), ("SparkRunner", False),
    ("apache_beam.runners.dataflow.dataflow_runner.DataflowRunner", False),
    ("my_company.runners.ClusterRunner", False),
])
def test_runner_classification(runner, local):
    assert is_local_runner(runner) is local


def test_credentials_live_in_their_own_module():
    from transforms.mailchimp import client, credentials
    for name in ("Credentials", "Endpoint", "API_KEY_ENV", "OAUTH_TOKEN_ENV",
                 "OAUTH_METADATA_URL"):
        assert hasattr(credentials, name)
        assert not hasattr(client, name), f"client.py still has {name}"
