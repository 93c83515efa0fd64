"""The MSF zip: what goes in (and what is left to the runtime), where, and the run options."""
from __future__ import annotations

import os
import tomllib
import zipfile

import pytest

from job import msf_main
from job.cli.tools import package
from job.config.properties import MSF_PROPERTIES_PATH, parse_groups

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _project_dependencies() -> list:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)["project"]["dependencies"]


def test_every_runtime_dependency_but_pyflink_is_packaged():
    requirements = package.runtime_requirements()
    assert [r for r in _project_dependencies() if not r.startswith("apache-flink")] == requirements
    assert not any(r.startswith("apache-flink") for r in requirements)


def test_the_runtime_pin_is_the_projects_exact_apache_flink_version():
    assert f"apache-flink=={package.runtime_pin()}" in _project_dependencies()


def test_closure_follows_requirements_with_the_targets_markers():
    requires = {
        "root": ("1", ["a>=1", "b; python_version < '3.11'", "c; sys_platform == 'win32'", "d; extra == 'x'",
                       "e; python_version >= '3.11' and platform_machine == 'x86_64'"]),
        "a": ("2", ["e"]),
        "e": ("3", []),
    }
    assert package.dependency_closure("root", requires.get) == {"root": "1", "a": "2", "e": "3"}
    with pytest.raises(package.PackageError, match="missing-one"):
        package.dependency_closure("root", {"root": ("1", ["missing-one"])}.get)


def test_what_pyflink_brings_is_left_to_the_runtime():
    provided = package.provided_by_runtime(package.runtime_pin())
    # Shared with PyFlink/Beam: bundling another copy would shadow theirs on MSF.
    assert {"apache-flink", "apache-beam", "numpy", "protobuf", "python-dateutil"} <= set(provided)
    assert not {"boto3", "pymysql", "amazon-ion", "aws-kinesis-agg"} & set(provided)
    with pytest.raises(package.PackageError, match="apache-flink==0.0.1"):
        package.provided_by_runtime("0.0.1")


def test_bundle_is_what_the_runtime_lacks():
    report = {"install": [{"metadata": {"name": n, "version": v}} for n, v in
                          [("boto3", "1.2"), ("NumPy", "2.0"), ("PyMySQL", "1.2.4"), ("protobuf", "5.29.6")]]}
    resolved = package.parse_pip_report(report)
    bundle = package.to_bundle(resolved, {"numpy": "2.0", "protobuf": "5.29.6"})
    assert bundle == [package.Resolved("boto3", "1.2"), package.Resolved("pymysql", "1.2.4")]


def _repo_code_files() -> set:
    found = set()
    for name in package.CODE_PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, name)):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            found |= {os.path.relpath(os.path.join(folder, f), ROOT).replace(os.sep, "/")
                      for f in files if f.endswith(".py")}
    return found


@pytest.fixture
def small_zip(tmp_path):
    deps = tmp_path / "deps"
    (deps / "somedep").mkdir(parents=True)
    (deps / "somedep" / "__init__.py").write_text("VALUE = 1\n")
    (deps / "somedep" / "__pycache__").mkdir()
    (deps / "somedep" / "__pycache__" / "x.cpython-312.pyc").write_bytes(b"\0")
    (deps / "somedep-1.0.dist-info").mkdir()
    (deps / "somedep-1.0.dist-info" / "METADATA").write_text("Name: somedep\n")
    out = tmp_path / "out" / "ledgersync-msf.zip"
    jar = tmp_path / "connector.jar"  # stands in for connectors/jvm's build, which Maven makes
    jar.write_bytes(b"PK\x05\x06" + b"\0" * 18)
    count = package.write_zip(str(out), ROOT, str(deps), str(jar))
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        main_source = archive.read(package.MAIN_FILE).decode()
    assert count == len(names)
    return names, main_source


def test_zip_layout_main_file_and_packages_at_the_root_deps_under_pyfiles(small_zip):
    names, _ = small_zip
    top = {name.split("/")[0] for name in names}
    assert top == {package.MAIN_FILE, "job", "connectors", package.DEPS_DIR, "lib"}
    assert package.JAR_ARCNAME in names and package.JAR_ARCNAME.startswith("lib/")
    assert {n for n in names if n.startswith(("job/", "connectors/"))} == set(package.runtime_modules(ROOT))
    assert "job/msf_main.py" in names
    assert {n for n in names if n.startswith(package.DEPS_DIR + "/")} == {
        "python-packages/somedep/__init__.py", "python-packages/somedep-1.0.dist-info/METADATA"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


# Tooling: what a local user or a developer runs, never the job on MSF.
TOOLING = ("job/cli/main.py", "job/cli/__main__.py", "job/cli/local/runner.py", "job/cli/local/driver.py", "job/cli/local/services.py", "job/cli/local/cluster.py",
           "job/cli/tools/package.py", "job/cli/tools/bench/main.py", "job/cli/tools/simulate/qldb.py", "job/cli/tools/simulate/audit.py", "job/cli/tools/record.py",
           "job/cli/audit.py", "job/cli/local/audit_source.py", "job/cli/tools/ship_audit.py", "job/cli/show.py", "job/cli/tools/delay_proxy.py")


def test_the_zip_carries_the_runtime_and_no_tooling(small_zip):
    names, _ = small_zip
    assert not [n for n in names if n in TOOLING or n.startswith("job/bench_")]
    # ... and every module the runtime imports, at any depth (the job's own operators included).
    for needed in ("job/pipeline/assembly.py", "job/functions/decode.py", "job/functions/writer.py", "job/functions/order.py",
                   "job/functions/audit.py", "connectors/kinesis/source.py", "connectors/mysql/writer.py",
                   "connectors/formats/qldb.py", "connectors/formats/kpl.py", "job/__init__.py", "connectors/__init__.py"):
        assert needed in names, needed


def test_runtime_modules_are_the_code_packages_without_the_tooling_folder(tmp_path):
    for path in ("job/__init__.py", "job/msf_main.py", "job/a/__init__.py", "job/a/b.py", "connectors/__init__.py",
                 "connectors/c.py", "job/cli/__init__.py", "job/cli/tool.py", "job/cli/x/y.py", "job/a/notes.txt"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("")
    assert package.runtime_modules(str(tmp_path)) == [
        "connectors/__init__.py", "connectors/c.py", "job/__init__.py", "job/a/__init__.py", "job/a/b.py",
        "job/msf_main.py"]


def test_the_main_file_starts_msf_main(small_zip):
    _, main_source = small_zip
    compile(main_source, package.MAIN_FILE, "exec")
    assert "from job.msf_main import main" in main_source
    assert "os.path.realpath(__file__)" in main_source  # Flink starts it from a link elsewhere


def test_run_options_name_what_the_zip_holds(small_zip):
    names, _ = small_zip
    options = package.run_options()
    assert set(options) == {"python", "pyFiles", "jarfile"}
    assert options["python"] in names and options["jarfile"] in names
    assert options["pyFiles"].endswith("/") and any(n.startswith(options["pyFiles"]) for n in names)


def test_zip_is_the_same_for_the_same_inputs(tmp_path):
    deps = tmp_path / "deps"
    deps.mkdir()
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    package.write_zip(str(first), ROOT, str(deps))
    package.write_zip(str(second), ROOT, str(deps))
    assert first.read_bytes() == second.read_bytes()


def test_msf_properties_path_unless_one_is_passed(monkeypatch):
    monkeypatch.delenv(msf_main.PROPERTIES_ENV, raising=False)
    assert msf_main.properties_path([]) == MSF_PROPERTIES_PATH
    assert msf_main.properties_path(["--properties", "/x/p.json", "--flink-arg"]) == "/x/p.json"
    monkeypatch.setenv(msf_main.PROPERTIES_ENV, "/env/p.json")
    assert msf_main.properties_path([]) == "/env/p.json"
    assert msf_main.properties_path(["--properties", "/x/p.json"]) == "/x/p.json"


def test_workers_get_a_directory_holding_just_the_code_packages(tmp_path):
    staged = msf_main.stage_code_for_workers(ROOT, str(tmp_path / "code"))
    assert sorted(os.listdir(staged)) == ["connectors", "job"]
    copied = set()
    for folder, _, files in os.walk(staged):
        copied |= {os.path.relpath(os.path.join(folder, f), staged).replace(os.sep, "/") for f in files}
    assert copied == _repo_code_files()
    with pytest.raises(RuntimeError, match="job"):
        msf_main.stage_code_for_workers(str(tmp_path / "empty"), str(tmp_path / "code2"))


def test_msf_run_options_group_is_accepted_in_the_properties_file():
    groups = [
        {"PropertyGroupId": package.RUN_OPTIONS_GROUP, "PropertyMap": package.run_options()},
        {"PropertyGroupId": "source", "PropertyMap": {"stream.name": "s"}},
        {"PropertyGroupId": "sink", "PropertyMap": {"mysql.host": "h", "mysql.database": "d", "mysql.user": "u",
                                                    "mysql.password": "p"}},
    ]
    assert parse_groups(groups)["source.stream.name"] == "s"


def test_the_lock_pins_every_bundled_distribution(tmp_path):
    lock = tmp_path / "msf-requirements.lock"
    bundle = [package.Resolved("boto3", "1.44.18"), package.Resolved("pymysql", "1.2.4")]
    package.write_lock(bundle, str(lock))
    pins = package.read_lock(str(lock))
    assert pins == {"boto3": "1.44.18", "pymysql": "1.2.4"}
    package.check_against_lock(bundle, pins)
    with pytest.raises(package.PackageError, match=r"boto3==1.45.0 \(lock: 1.44.18\).*--update-lock"):
        package.check_against_lock([package.Resolved("boto3", "1.45.0"), bundle[1]], pins)
    with pytest.raises(package.PackageError, match="pymysql==1.2.4 in the lock but not needed"):
        package.check_against_lock(bundle[:1], pins)


def test_the_committed_lock_covers_the_runtime_requirements():
    pins = package.read_lock()
    for requirement in package.runtime_requirements():
        name = package.canonical(requirement.split("=")[0].split(">")[0].split("<")[0].strip())
        assert name in pins, name


def test_added_files_go_under_certs_and_never_shadow_the_zips_own(tmp_path):
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert package.extra_files([str(bundle)]) == [(str(bundle), "certs/global-bundle.pem")]
    assert package.extra_files([f"{bundle}:tls/rds.pem"]) == [(str(bundle), "tls/rds.pem")]
    with pytest.raises(package.PackageError, match="shadow"):
        package.extra_files([f"{bundle}:job/x.pem"])
    with pytest.raises(package.PackageError, match="not a file"):
        package.extra_files([str(tmp_path / "missing.pem")])
