"""The CloudFormation template for MSF: cfn-lint passes, and it agrees with the package and
with the job's properties."""
from __future__ import annotations

import os
import subprocess
import sys

import yaml

from job.cli.tools import package
from job.config.properties import parse_groups

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATE = os.path.join(ROOT, "flink-conf", "msf-template.yaml")


def _cfn_lint(path: str) -> subprocess.CompletedProcess:
    # Errors, warnings and the informational checks: the template is kept clean of all three.
    command = "import sys; from cfnlint.runner import main; sys.argv[0] = 'cfn-lint'; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", command, "--include-checks", "I", "--", path],
                          capture_output=True, text=True, timeout=300)


def test_cfn_lint_passes_on_the_template():
    result = _cfn_lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_fails_on_a_broken_copy(tmp_path):
    broken = tmp_path / "broken.yaml"
    with open(TEMPLATE) as handle:
        broken.write_text(handle.read().replace("RuntimeEnvironment: FLINK-1_20", "RuntimeEnvironment: FLINK-0_1"))
    result = _cfn_lint(str(broken))
    assert result.returncode != 0 and "FLINK-0_1" in result.stdout


class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {("Ref" if suffix == "Ref" else f"Fn::{suffix}"): value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def _template() -> dict:
    with open(TEMPLATE) as handle:
        return yaml.load(handle, Loader=_CfnLoader)


SAMPLE_PARAMETERS = {
    "StreamName": "revisions", "InitialPosition": "TRIM_HORIZON", "AuroraHost": "db.example", "AuroraPort": "3306",
    "AuroraDatabase": "ledger", "AuroraUser": "ledgersync", "History": "true", "Order": "false",
    "DbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf", "AWS::Region": "eu-west-1",
    "SourceFormat": "qldb", "ReaderType": "POLLING", "EfoConsumerName": "ledgersync", "DsqlKeys": "",
    "AuroraSslMode": "AUTO", "AuroraCaBundle": "",
}
NO_VALUE = object()


def _condition(name: str, parameters: dict) -> bool:
    test = _template()["Conditions"][name]
    (function, args), = test.items()
    if function == "Fn::Not":
        (inner,) = args
        (function, args), = inner.items()
        negate = True
    else:
        negate = False
    assert function == "Fn::Equals", test
    left, right = (parameters[a["Ref"]] if isinstance(a, dict) else a for a in args)
    return (left == right) != negate


def _resolve(value, parameters=None):
    parameters = parameters or SAMPLE_PARAMETERS
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return NO_VALUE if value["Ref"] == "AWS::NoValue" else parameters[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        name, then, otherwise = value["Fn::If"]
        return _resolve(then if _condition(name, parameters) else otherwise, parameters)
    assert not isinstance(value, (dict, list)), f"unexpected intrinsic in a property: {value}"
    return value


def _job_groups(parameters=None) -> list:
    app = _application()
    groups = []
    for g in app["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"]:
        resolved = {k: _resolve(v, parameters) for k, v in g["PropertyMap"].items()}
        groups.append({"PropertyGroupId": g["PropertyGroupId"],
                       "PropertyMap": {k: v for k, v in resolved.items() if v is not NO_VALUE}})
    return groups


def _application() -> dict:
    resources = _template()["Resources"]
    return next(r for r in resources.values() if r["Type"] == "AWS::KinesisAnalyticsV2::Application")["Properties"]


def test_template_runs_what_the_package_holds_on_flink_1_20():
    app = _application()
    assert app["RuntimeEnvironment"] == "FLINK-1_20"
    groups = {g["PropertyGroupId"]: g["PropertyMap"]
              for g in app["ApplicationConfiguration"]["EnvironmentProperties"]["PropertyGroups"]}
    assert groups[package.RUN_OPTIONS_GROUP] == package.run_options()
    assert app["ApplicationConfiguration"]["ApplicationCodeConfiguration"]["CodeContentType"] == "ZIPFILE"


def test_template_job_properties_are_valid_job_properties():
    props = parse_groups(_job_groups(), origin="msf-template.yaml")
    assert props["source.stream.name"] == "revisions"
    assert props["sink.mysql.secret.arn"] == SAMPLE_PARAMETERS["DbSecretArn"]
    assert props["sink.mysql.password"] is None  # the password never sits in the template
    assert props["replication.history"] is True and props["replication.order"] is False
    assert props["source.format"] == "qldb" and props["source.reader.type"] == "POLLING"
    assert props["sink.mysql.ssl.mode"] == "AUTO" and props["sink.mysql.ssl.ca"] is None  # TLS on toward Aurora
    dsql = parse_groups(_job_groups({**SAMPLE_PARAMETERS, "SourceFormat": "dsql-cdc", "DsqlKeys": "orders=id",
                                     "ReaderType": "EFO"}), origin="msf-template.yaml")
    assert dsql["source.format"] == "dsql-cdc" and dsql["source.dsql.keys"] == "orders=id"
    assert dsql["source.reader.type"] == "EFO" and dsql["source.efo.consumer.name"] == "ledgersync"


def test_template_has_the_parameters_users_set():
    parameters = _template()["Parameters"]
    for name in ("StreamName", "AuroraHost", "AuroraDatabase", "SubnetIds", "SecurityGroupIds", "History",
                 "Order", "DbSecretArn", "CodeBucketName", "CodeKey", "SourceFormat", "DsqlKeys", "StreamKmsKeyArn",
                 "ReaderType", "EfoConsumerName"):
        assert name in parameters
    assert parameters["CodeKey"]["Default"] == os.path.basename(package.DEFAULT_OUTPUT)


def test_role_reads_only_the_stream_and_the_secret():
    resources = _template()["Resources"]
    role = next(r for r in resources.values() if r["Type"] == "AWS::IAM::Role")["Properties"]
    raw = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    conditional = {s["Fn::If"][1]["Sid"]: (s["Fn::If"][0], s["Fn::If"][1]) for s in raw if "Fn::If" in s}
    statements = [s for s in raw if "Sid" in s] + [statement for _, statement in conditional.values()]
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid["ReadStream"]["Action"]) == {"kinesis:ListShards", "kinesis:GetShardIterator",
                                                   "kinesis:GetRecords", "kinesis:DescribeStream",
                                                   "kinesis:DescribeStreamSummary"}
    # Only with EFO: the consumer's calls; only with a customer key on the stream: kms:Decrypt on it.
    assert conditional["EnhancedFanOutConsumer"][0] == "UsesEfo"
    assert "kinesis:SubscribeToShard" in conditional["EnhancedFanOutConsumer"][1]["Action"]
    assert conditional["DecryptStream"][0] == "StreamHasCustomerKey"
    assert conditional["DecryptStream"][1]["Resource"] == {"Ref": "StreamKmsKeyArn"}
    assert by_sid["ReadSecret"]["Resource"] == {"Ref": "DbSecretArn"}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a.endswith(":*") or a == "*" for a in actions), statement
        if statement["Resource"] == "*":
            assert all(a.startswith(("ec2:Describe", "cloudwatch:PutMetricData")) for a in actions), statement
