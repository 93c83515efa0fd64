"""The connector jar (connectors/jvm): built by Maven when it is missing or older than its
sources, so `ledgersync run` works from a fresh clone as `make run` does."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Callable, Optional

from job.cli.project import PROJECT_ROOT

JVM_DIR = os.path.join(PROJECT_ROOT, "connectors", "jvm")
JAR_PATH = os.path.join(JVM_DIR, "target", "ledgersync-kinesis.jar")


class JarError(RuntimeError):
    pass


def sources() -> list:
    found = [os.path.join(JVM_DIR, "pom.xml")]
    for root, _, files in os.walk(os.path.join(JVM_DIR, "src")):
        found += [os.path.join(root, name) for name in files]
    return found


def jar_is_current(jar: str = JAR_PATH) -> bool:
    if not os.path.isfile(jar):
        return False
    built = os.path.getmtime(jar)
    return all(os.path.getmtime(path) <= built for path in sources())


def ensure_connector_jar(say: Optional[Callable[[str], None]] = None) -> str:
    """The jar's path, after building it if it is missing or stale."""
    if jar_is_current():
        return JAR_PATH
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarError(f"the Kinesis connector jar {JAR_PATH} is missing and Maven (mvn) is not installed: "
                       "install Maven 3.8+ and Java 17 (make install does), or run `make jar`")
    if say:
        say(f"building the Kinesis connector jar with Maven (connectors/jvm; the first build downloads the "
            "connector, a few minutes) ...")
    result = subprocess.run([mvn, "-q", "-B", "package", "-DskipTests"], cwd=JVM_DIR,
                            capture_output=True, text=True)
    if result.returncode != 0 or not os.path.isfile(JAR_PATH):
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise JarError(f"Maven could not build {JAR_PATH} (exit {result.returncode}):\n{tail}")
    os.utime(JAR_PATH)  # newer than every source, also when Maven found nothing to do
    return JAR_PATH
