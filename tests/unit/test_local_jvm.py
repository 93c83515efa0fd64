from job.cli.local.jvm import JVM_ARGS_ENV, LOCAL_JVM_ARGS, apply_local_jvm_defaults


def test_the_local_defaults_apply_when_jvm_args_is_unset():
    environ = {}
    assert apply_local_jvm_defaults(environ) == " ".join(LOCAL_JVM_ARGS)
    assert environ[JVM_ARGS_ENV] == "-XX:TieredStopAtLevel=1"


def test_a_users_jvm_args_stay_as_they_are_even_empty():
    for users in ("-Xmx2g", ""):
        environ = {JVM_ARGS_ENV: users}
        assert apply_local_jvm_defaults(environ) == users
        assert environ[JVM_ARGS_ENV] == users
