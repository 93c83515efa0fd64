"""The local JVM's flags (job/cli/local/jvm.py): each default added to JVM_ARGS, the user's own win."""
from job.cli.local.jvm import JVM_ARGS, LOCAL_JVM_FLAGS, apply_local_jvm_defaults, explain_failure, jvm_args


def test_every_default_is_added_to_empty_jvm_args():
    assert jvm_args("").split() == [default for _, default in LOCAL_JVM_FLAGS]
    assert "-XX:TieredStopAtLevel=1" in jvm_args("") and "-Xmx512m" in jvm_args("")


def test_a_flag_the_user_sets_is_theirs_and_the_others_are_added():
    flags = jvm_args("-Xmx2g -Dfoo=bar -XX:TieredStopAtLevel=4").split()
    assert flags[:3] == ["-Xmx2g", "-Dfoo=bar", "-XX:TieredStopAtLevel=4"]
    assert [f for f in flags if f.startswith("-Xmx")] == ["-Xmx2g"]
    assert [f for f in flags if f.startswith("-XX:TieredStopAtLevel=")] == ["-XX:TieredStopAtLevel=4"]
    assert "-XX:MaxMetaspaceSize=256m" in flags and "-XX:MaxDirectMemorySize=256m" in flags


def test_applying_twice_changes_nothing():
    environ = {JVM_ARGS: "-XX:MaxDirectMemorySize=1g"}
    once = apply_local_jvm_defaults(environ)
    assert apply_local_jvm_defaults(environ) == once == environ[JVM_ARGS]
    assert once.count("MaxDirectMemorySize") == 1 and "-Xmx512m" in once


def test_an_out_of_memory_failure_names_the_setting_and_other_failures_stay_as_they_are():
    oom = explain_failure("Caused by: java.lang.OutOfMemoryError: Java heap space")
    assert oom.startswith("Caused by: java.lang.OutOfMemoryError: Java heap space (")
    assert "JVM_ARGS=-Xmx2g" in oom and "-Xmx512m" in oom
    assert explain_failure("Caused by: java.net.ConnectException: refused") == \
        "Caused by: java.net.ConnectException: refused"


def test_the_backfill_has_its_own_heap_and_the_other_defaults():
    from job.cli.local.jvm import BACKFILL_JVM_FLAGS, local_jvm_flags

    flags = jvm_args("", local_jvm_flags("backfill")).split()
    assert [f for f in flags if f.startswith("-Xmx")] == [dict(BACKFILL_JVM_FLAGS)["-Xmx"]] != ["-Xmx512m"]
    assert len(flags) == len(LOCAL_JVM_FLAGS) and "-XX:TieredStopAtLevel=1" in flags
    assert local_jvm_flags("run") == local_jvm_flags("verify") == LOCAL_JVM_FLAGS
    environ = {JVM_ARGS: "-Xmx1g"}
    assert "-Xmx1g" in apply_local_jvm_defaults(environ, command="backfill") and "-Xmx256m" not in environ[JVM_ARGS]
