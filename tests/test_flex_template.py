"""The Dataflow Flex Template packaging: templates/metadata.json mirrors the
pipeline's flags, templates/Dockerfile installs the same package `pip install .`
builds, pinned to the same Beam."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from pipeline.options import MailchimpStreamOptions

ROOT = Path(__file__).resolve().parent.parent
METADATA = ROOT / "templates" / "metadata.json"
DOCKERFILE = ROOT / "templates" / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

# google.dataflow.v1beta3.ParameterType
PARAM_TYPES = {
    "DEFAULT", "TEXT", "GCS_READ_BUCKET", "GCS_WRITE_BUCKET", "GCS_READ_FILE",
    "GCS_WRITE_FILE", "GCS_READ_FOLDER", "GCS_WRITE_FOLDER", "PUBSUB_TOPIC",
    "PUBSUB_SUBSCRIPTION", "BIGQUERY_TABLE", "JAVASCRIPT_UDF_FILE",
    "SERVICE_ACCOUNT", "MACHINE_TYPE", "KMS_KEY_NAME", "WORKER_REGION",
    "WORKER_ZONE", "BOOLEAN", "ENUM", "NUMBER",
}
SECRET_VERSION = "projects/my-project/secrets/mailchimp-api-key/versions/latest"


def _flags() -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False)
    MailchimpStreamOptions._add_argparse_args(parser)
    return {a.dest: a for a in parser._actions
            if not isinstance(a, argparse._HelpAction)}


def _metadata() -> dict:
    return json.loads(METADATA.read_text(encoding="utf-8"))


def _params() -> dict[str, dict]:
    return {p["name"]: p for p in _metadata()["parameters"]}


# --- (a) the metadata file itself ---------------------------------------------

def test_metadata_is_a_streaming_template_with_parameters():
    meta = _metadata()
    assert isinstance(meta["name"], str) and meta["name"].strip()
    assert isinstance(meta["description"], str) and meta["description"].strip()
    assert meta["streaming"] is True
    assert isinstance(meta["parameters"], list) and meta["parameters"]
    if "defaultStreamingMode" in meta:
        # Only valid when the template supports both modes.
        assert meta["defaultStreamingMode"] in {"EXACTLY_ONCE", "AT_LEAST_ONCE"}
        assert meta.get("supportsAtLeastOnce") is True
        assert meta.get("supportsExactlyOnce") is True


def test_every_parameter_is_well_formed():
    names = []
    for p in _metadata()["parameters"]:
        names.append(p["name"])
        for key in ("name", "label", "helpText"):
            assert isinstance(p.get(key), str) and p[key].strip(), (p.get("name"), key)
        assert re.fullmatch(r"[a-z][a-z0-9_]*", p["name"]), p["name"]
        assert isinstance(p.get("isOptional"), bool), p["name"]
        if "paramType" in p:
            assert p["paramType"] in PARAM_TYPES, p
        for rx in p.get("regexes", []):
            re.compile(rx)
            # Dataflow's validator is not Python's: keep to the syntax RE2
            # and Java share (no lookaround, no backreferences).
            assert not re.search(r"\(\?<?[=!]|\\[1-9]", rx), (p["name"], rx)
            assert rx.startswith("^") and rx.endswith("$"), (p["name"], rx)
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


# --- (b) one parameter per flag, same help ------------------------------------

def test_parameters_are_exactly_the_pipeline_flags():
    flags, params = _flags(), _params()
    assert set(params) == set(flags), {
        "flags without a parameter": sorted(set(flags) - set(params)),
        "parameters without a flag": sorted(set(params) - set(flags))}


@pytest.mark.parametrize("name", sorted(_flags()))
def test_help_text_is_the_flag_help(name):
    assert _params()[name]["helpText"] == _flags()[name].help


def test_only_sync_config_is_required():
    assert {n for n, p in _params().items() if not p["isOptional"]} == {"sync_config"}


@pytest.mark.parametrize("name", sorted(_flags()))
def test_numeric_flags_are_number_parameters(name):
    is_number = _flags()[name].type in (int, float)
    assert (_params()[name].get("paramType") == "NUMBER") == is_number


# --- (c) the API key is never a plain parameter -------------------------------

def test_no_api_key_parameter_but_the_secret_name():
    names = set(_params())
    assert "mailchimp_api_key_secret" in names
    assert {n for n in names if "api_key" in n} == {"mailchimp_api_key_secret"}
    assert not {n for n in names if "token" in n or "password" in n}


def test_api_key_secret_is_a_secret_manager_version_name():
    p = _params()["mailchimp_api_key_secret"]
    assert p.get("paramType", "TEXT") == "TEXT"
    assert p["regexes"]
    for rx in p["regexes"]:
        assert re.fullmatch(rx, SECRET_VERSION)
        assert not re.fullmatch(rx, "0123456789abcdef0123456789abcdef-us6")  # a raw key
        assert not re.fullmatch(rx, "projects/my-project/secrets/mailchimp-api-key")


# --- (d) every regex: a realistic value passes, a wrong one does not ----------

REGEX_CASES = {
    "sync_config": ("gs://my-bucket/mailchimp/sync.yaml", "/tmp/sync.yaml"),
    "input_files": ("gs://my-bucket/exports/*.jsonl.gz", "exports/*.zip"),
    "input_subscription": ("projects/my-project/subscriptions/amplitude-events",
                           "projects/my-project/topics/amplitude-events"),
    "input_topic": ("projects/my-project/topics/amplitude-events",
                    "amplitude-events"),
    "event_time_attribute": ("event_time", "event time"),
    "dead_letter_topic": ("projects/my-project/topics/mailchimp-dead-letters",
                          "projects/my-project/subscriptions/dead-letters"),
    "output_window_secs": ("60", "-1"),
    "summary_refresh_secs": ("5", "0.0"),
    "output_dir": ("gs://my-bucket/mailchimp-stream/output", "output"),
    "mailchimp_base_url": ("https://us6.api.mailchimp.com/3.0", "us6.api.mailchimp.com"),
    "mailchimp_api_key_secret": (SECRET_VERSION, "abc123-us6"),
    "max_connections": ("5", "0"),
    "dedupe_window": ("200000", "-1"),
    "dedupe_window_secs": ("3600", "0"),
    "batch_size": ("5000", "5k"),
    "max_buffering_secs": ("2.5", "0"),
    "shards_per_audience": ("16", "1.5"),
    "max_retries": ("0", "-3"),
    "request_timeout_secs": ("130", "soon"),
    "merge_fields_refresh_secs": ("300.0", "5m"),
}


def test_every_regex_has_examples():
    with_regexes = {n for n, p in _params().items() if p.get("regexes")}
    assert with_regexes <= set(REGEX_CASES), sorted(with_regexes - set(REGEX_CASES))


@pytest.mark.parametrize("name,good,bad",
                         [(n, g, b) for n, (g, b) in sorted(REGEX_CASES.items())])
def test_regex_accepts_real_value_and_rejects_wrong_one(name, good, bad):
    params = _params()
    assert name in params, f"{name} is not a parameter"
    regexes = params[name].get("regexes") or []
    assert regexes, f"{name} has no regexes"
    assert all(re.fullmatch(rx, good) for rx in regexes), (name, good)
    assert not all(re.fullmatch(rx, bad) for rx in regexes), (name, bad)


NUMBER_PROBES = ["0", "1", "10", "1.5", "0.25", "60.0", "-1", "1e3", "1,5",
                 " 7", "inf", "nan", "", "ten"]


@pytest.mark.parametrize("name", sorted(n for n, a in _flags().items()
                                        if a.type in (int, float)))
def test_number_regex_accepts_only_what_the_flag_parses(name):
    kind = _flags()[name].type
    regexes = _params()[name]["regexes"]
    for probe in NUMBER_PROBES:
        if all(re.fullmatch(rx, probe) for rx in regexes):
            value = kind(probe)  # raises if the regex lets through a bad value
            assert value >= 0, (name, probe)


# --- (e) the Dockerfile installs the project, pinned to the same Beam ---------

def _dockerfile_lines() -> list[str]:
    """Instructions, comments dropped, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _instructions(keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in _dockerfile_lines()
            if line.split(None, 1)[0].upper() == keyword]


def _beam_pin() -> str:
    deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = [m.group(1) for d in deps
            if (m := re.fullmatch(r"apache-beam(?:\[[^\]]*\])?\s*==\s*([0-9][^\s,;]*)",
                                  d.strip()))]
    assert len(pins) == 1, f"pyproject.toml must pin apache-beam==X exactly once: {deps}"
    return pins[0]


def _workdir() -> str:
    args = {m.group(1): m.group(2) for a in _instructions("ARG")
            if (m := re.fullmatch(r"(\w+)=(\S+)", a))}
    workdirs = _instructions("WORKDIR")
    assert workdirs, "no WORKDIR"
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), workdirs[-1])


def _copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of the COPY instructions from the build context."""
    out = []
    for args in _instructions("COPY"):
        parts = args.split()
        if any(p.startswith("--from") for p in parts):
            continue
        parts = [p for p in parts if not p.startswith("--")]
        out.append((parts[:-1], parts[-1]))
    return out


def test_final_image_is_the_beam_sdk_image_pinned_to_pyproject():
    froms = _instructions("FROM")
    final = froms[-1].split()[0]
    m = re.fullmatch(r"apache/beam_python(3\.\d+)_sdk:(\S+)", final)
    assert m, f"final stage must be Beam's SDK image, is {final}"
    assert m.group(2) == _beam_pin()
    # Any other mention of a Beam version in the Dockerfile agrees too.
    text = "\n".join(_dockerfile_lines())
    for version in re.findall(r"apache[-_]beam\S*?==([0-9][^\s\"']*)", text):
        assert version == _beam_pin()
    for version in re.findall(r"beam_python3\.\d+_sdk:(\S+)", text):
        assert version == _beam_pin()
    # The launcher image is for the same Python as the SDK image.
    launcher = [f for f in froms if "template-launcher-base" in f]
    assert launcher, "no Flex Template launcher image"
    assert f"python{m.group(1).replace('.', '')}-template-launcher-base" in launcher[0]
    requires = tomllib.loads(PYPROJECT.read_text())["project"]["requires-python"]
    floor = re.fullmatch(r">=\s*3\.(\d+)", requires.strip())
    assert floor and int(m.group(1).split(".")[1]) >= int(floor.group(1))


def test_dockerfile_installs_the_project_from_pyproject():
    copied = {Path(s).as_posix().rstrip("/") for sources, _ in _copies() for s in sources}
    for needed in ("pyproject.toml", "setup.py", "README.md", "pipeline", "transforms"):
        assert needed in copied, f"{needed} is not copied into the image"
    installs = [r for r in _instructions("RUN") if re.search(r"\bpip\d?\s+install\b", r)]
    assert any(re.search(r"""\bpip\d?\s+install\b[^&;|]*\s["']?\.(\[gcp\])?["']?(\s|$)""", r)
               for r in installs), installs
    assert not any(re.search(r"\binstall\b[^&;|]*\s-e\s", r) for r in installs), \
        "install the package itself, not an editable link to /template"


def test_dockerfile_ships_the_launcher_and_the_beam_entrypoint():
    copies_from = [a for a in _instructions("COPY") if "--from" in a]
    assert any("/opt/google/dataflow/python_template_launcher" in a for a in copies_from)
    entrypoint = _instructions("ENTRYPOINT")
    assert entrypoint and json.loads(entrypoint[-1]) == ["/opt/apache/beam/boot"]


def test_gcp_extra_brings_secret_manager():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("google-cloud-secret-manager") for d in extras["gcp"])


# --- (f) the launcher's main file exists and starts the pipeline --------------

def _py_file_in_repo() -> Path:
    envs = " ".join(_instructions("ENV"))
    m = re.search(r"""FLEX_TEMPLATE_PYTHON_PY_FILE[= ]["']?([^"'\s]+)""", envs)
    assert m, "FLEX_TEMPLATE_PYTHON_PY_FILE is not set"
    workdir = _workdir()
    in_image = m.group(1).replace("${WORKDIR}", workdir).replace("$WORKDIR", workdir)
    for sources, dest in _copies():
        target = dest if dest.startswith("/") else f"{workdir}/{dest}"
        target = os.path.normpath(target)
        if len(sources) == 1 and target == os.path.normpath(in_image):
            return ROOT / sources[0]
        if target == os.path.normpath(in_image).rsplit("/", 1)[0]:  # COPY a b dir/
            for s in sources:
                if Path(s).name == Path(in_image).name:
                    return ROOT / s
    pytest.fail(f"no COPY puts {in_image} in the image")


def test_flex_template_py_file_exists_in_the_repo():
    path = _py_file_in_repo()
    assert path.is_file(), path


def test_flex_template_py_file_runs_the_pipeline_entry_point(tmp_path):
    # As the launcher does: `python FILE --flags` from another directory.
    # A bad source stops main() before any pipeline runs, with its exit status.
    proc = subprocess.run(
        [sys.executable, str(_py_file_in_repo()),
         "--sync_config", str(ROOT / "pipeline/local/data/sync.json"),
         "--input_files", str(tmp_path / "nothing-*.jsonl")],
        cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "mailchimp-stream: --input_files" in proc.stderr
    assert "matches no file" in proc.stderr


# --- (g) what the image installs is the package `pip install .` builds ---------

def _build_wheel(src: Path, out: Path) -> subprocess.CompletedProcess:
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-input",
            "--disable-pip-version-check", "-w", str(out)]
    proc = subprocess.run(base + ["--no-build-isolation", str(src)],
                          capture_output=True, text=True, timeout=240)
    if proc.returncode != 0 and "bdist_wheel" in proc.stdout + proc.stderr:
        # This environment lacks the build backend's requirements
        # (setuptools>=68 with bdist_wheel): let pip fetch them, as docker build does.
        proc = subprocess.run(base + [str(src)], capture_output=True, text=True,
                              timeout=240)
        if proc.returncode != 0 and "build dependencies" in proc.stdout + proc.stderr:
            pytest.skip("cannot get the build backend (setuptools) without network")
    return proc


def test_docker_context_builds_the_package_with_its_data(tmp_path):
    """Build a wheel from exactly what the Dockerfile copies (so the copies
    are enough to build) and check it holds the code and the package data."""
    src = tmp_path / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for sources, _ in _copies():
        for s in sources:
            path = ROOT / s
            if path.is_dir():
                shutil.copytree(path, src / s, ignore=ignore)
            else:
                (src / s).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, src / s)
    try:
        proc = _build_wheel(src, tmp_path / "dist")
    except subprocess.TimeoutExpired:
        pytest.skip("pip wheel did not finish in 240 s")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    wheels = list((tmp_path / "dist").glob("mailchimp_stream-*.whl"))
    assert len(wheels) == 1, list((tmp_path / "dist").iterdir())
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    for needed in ("pipeline/__main__.py", "pipeline/options.py", "transforms/sink.py",
                   "transforms/mailchimp/client.py",
                   "pipeline/local/data/input/events.jsonl"):
        assert needed in names, f"{needed} missing from the wheel"
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "pipeline.__main__:main" in zipfile.ZipFile(wheels[0]).read(entry_points).decode()


# --- (f) pinned images and locked dependencies --------------------------------

LOCK = ROOT / "templates" / "requirements.lock"


def test_the_launcher_image_is_pinned():
    launcher = next(f.split()[0] for f in _instructions("FROM")
                    if "template-launcher-base" in f)
    image, _, tag = launcher.rpartition(":")
    assert image and tag and tag != "latest", f"pin a dated tag: {launcher}"


def test_the_image_installs_from_the_lock_file_before_the_package():
    assert any("templates/requirements.lock" in sources for sources, _ in _copies())
    installs = [r for r in _instructions("RUN") if re.search(r"\bpip\d?\s+install\b", r)]
    from_lock = [i for i, r in enumerate(installs) if re.search(r"\s-r\s+\S*requirements\.lock", r)]
    package = [i for i, r in enumerate(installs) if "--no-deps" in r]
    assert from_lock and package and from_lock[0] < package[0], installs


def test_the_lock_pins_everything_the_package_needs():
    from packaging.requirements import Requirement
    pins = {Requirement(line.split("#")[0].strip()).name.lower(): Requirement(
                line.split("#")[0].strip()).specifier
            for line in LOCK.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith(("#", "-"))}
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    needed = project["dependencies"] + project["optional-dependencies"]["gcp"]
    for dependency in map(Requirement, needed):
        name = dependency.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in {LOCK.name}: run make lock"
        (pin,) = pins[name]
        assert pin.operator == "==" and dependency.specifier.contains(pin.version), (
            f"{LOCK.name} pins {name}{pin}, pyproject.toml wants {dependency}: run make lock")
    assert str(pins["apache-beam"]) == f"=={_beam_pin()}"
