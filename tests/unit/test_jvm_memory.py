"""The mini-cluster's JVM bounds (job/cli/local/memory.py): added to JVM_ARGS, the user's own win."""
from job.cli.local.memory import DEFAULT_JVM_FLAGS, JVM_ARGS, bound_jvm_memory, jvm_args


def test_every_bound_is_added_to_empty_jvm_args():
    assert jvm_args("").split() == [default for _, default in DEFAULT_JVM_FLAGS]
    assert jvm_args("").startswith("-Xmx")


def test_a_bound_the_user_sets_is_theirs_and_the_others_are_added():
    flags = jvm_args("-Xmx2g -Dfoo=bar").split()
    assert flags[:2] == ["-Xmx2g", "-Dfoo=bar"]
    assert not any(f.startswith("-Xmx") and f != "-Xmx2g" for f in flags)
    assert "-XX:MaxMetaspaceSize=192m" in flags and "-XX:MaxDirectMemorySize=128m" in flags


def test_bounding_twice_changes_nothing():
    environ = {JVM_ARGS: "-XX:MaxDirectMemorySize=1g"}
    bound_jvm_memory(environ)
    once = environ[JVM_ARGS]
    bound_jvm_memory(environ)
    assert environ[JVM_ARGS] == once and once.count("MaxDirectMemorySize") == 1 and "-Xmx512m" in once


def test_an_out_of_memory_failure_names_the_setting_and_other_failures_stay_as_they_are():
    from job.cli.local.memory import explain_failure

    oom = explain_failure("Caused by: java.lang.OutOfMemoryError: Java heap space")
    assert oom.startswith("Caused by: java.lang.OutOfMemoryError: Java heap space (")
    assert "JVM_ARGS=-Xmx2g" in oom and "-Xmx512m" in oom
    assert explain_failure("Caused by: java.net.ConnectException: refused") == \
        "Caused by: java.net.ConnectException: refused"
