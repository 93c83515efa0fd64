"""The Kinesis source: the official Flink connector's ``FlinkKinesisConsumer``, built from our properties.

This is the one module that knows which connector reads Kinesis. Today that is
``flink-connector-kinesis`` 4.3.0-1.19 (the newest served for Flink 1.20), shaded with its
runtime dependencies and our one-class ``ledgersync.kinesis.RawRecordSchema`` into the jar
that ``connectors/jvm/pom.xml`` builds. A later connector (``KinesisStreamsSource``: 5.x on
Flink 1.20, 6.x on 2.x) changes this module and the pom, nothing else.

What the connector does for us: it spreads the shards over the source's parallel
subtasks, de-aggregates KPL records, keeps each shard's position (sequence and
sub-sequence number) in Flink checkpoints, discovers new shards after a reshard, and
reads by polling (GetRecords) or enhanced fan-out (SubscribeToShard).

Each record reaches Python as a row of ``RECORD_FIELDS`` (the schema's field order).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import urlparse

# The schema class in our jar, and the order of the fields it hands over.
RECORD_SCHEMA_CLASS = "ledgersync.kinesis.RawRecordSchema"
CONSUMER_CLASS = "org.apache.flink.streaming.connectors.kinesis.FlinkKinesisConsumer"
RECORD_FIELDS = ("stream", "shard_id", "sequence_number", "arrival_ms", "partition_key", "data")
STREAM, SHARD_ID, SEQUENCE_NUMBER, ARRIVAL_MS, PARTITION_KEY, DATA = range(len(RECORD_FIELDS))

INITIAL_POSITIONS = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
POLLING, EFO = "POLLING", "EFO"
READER_TYPES = (POLLING, EFO)

# The connector's own property names (ConsumerConfigConstants, AWSConfigConstants in 4.3.0).
# Ours map onto the first group; the rest pass through under their own names where a key of
# ours would only rename them (``source.flink.shard.getrecords.maxrecordcount`` and so on).
INITIAL_POSITION_KEY = "flink.stream.initpos"
INITIAL_TIMESTAMP_KEY = "flink.stream.initpos.timestamp"
INITIAL_TIMESTAMP_FORMAT_KEY = "flink.stream.initpos.timestamp.format"
RECORD_PUBLISHER_KEY = "flink.stream.recordpublisher"
EFO_CONSUMER_NAME_KEY = "flink.stream.efo.consumername"
REGION_KEY = "aws.region"
ENDPOINT_KEY = "aws.endpoint"
CREDENTIALS_PROVIDER_KEY = "aws.credentials.provider"
PASS_THROUGH_KEYS = frozenset({
    "flink.list.shards.backoff.base", "flink.list.shards.backoff.expconst", "flink.list.shards.backoff.max",
    "flink.list.shards.maxretries", "flink.shard.adaptivereads", "flink.shard.consumer.error.recoverable",
    "flink.shard.discovery.intervalmillis", "flink.shard.getiterator.backoff.base",
    "flink.shard.getiterator.backoff.expconst", "flink.shard.getiterator.backoff.max",
    "flink.shard.getiterator.maxretries", "flink.shard.getrecords.backoff.base",
    "flink.shard.getrecords.backoff.expconst", "flink.shard.getrecords.backoff.max",
    "flink.shard.getrecords.intervalmillis", "flink.shard.getrecords.maxrecordcount",
    "flink.shard.getrecords.maxretries", "flink.shard.idle.interval",
    "flink.shard.subscribetoshard.backoff.base", "flink.shard.subscribetoshard.backoff.expconst",
    "flink.shard.subscribetoshard.backoff.max", "flink.shard.subscribetoshard.maxretries",
    "flink.shard.subscribetoshard.timeout",
    "flink.stream.deregisterstreamconsumer.backoff.base", "flink.stream.deregisterstreamconsumer.backoff.expconst",
    "flink.stream.deregisterstreamconsumer.backoff.max", "flink.stream.deregisterstreamconsumer.maxretries",
    "flink.stream.deregisterstreamconsumer.timeout", "flink.stream.describe.backoff.base",
    "flink.stream.describe.backoff.expconst", "flink.stream.describe.backoff.max", "flink.stream.describe.maxretries",
    "flink.stream.describestreamconsumer.backoff.base", "flink.stream.describestreamconsumer.backoff.expconst",
    "flink.stream.describestreamconsumer.backoff.max", "flink.stream.describestreamconsumer.maxretries",
    "flink.stream.efo.consumerarn", "flink.stream.efo.http-client.max-concurrency",
    "flink.stream.efo.http-client.read-timeout", "flink.stream.efo.registration",
    "flink.stream.registerstreamconsumer.backoff.base", "flink.stream.registerstreamconsumer.backoff.expconst",
    "flink.stream.registerstreamconsumer.backoff.max", "flink.stream.registerstreamconsumer.maxretries",
    "flink.stream.registerstreamconsumer.timeout",
    "aws.http-client.max-concurrency", "aws.http-client.read-timeout", "aws.http.protocol.version",
    "aws.trust.all.certificates",
})
# Credential provider settings: aws.credentials.provider (AUTO, BASIC, ENV_VAR, SYS_PROP,
# PROFILE, ASSUME_ROLE, WEB_IDENTITY_TOKEN) and its sub-keys (….basic.accesskeyid,
# ….role.arn, ….profile.name, …), also under the connector's names.
PASS_THROUGH_PREFIXES = (CREDENTIALS_PROVIDER_KEY,)
# How often the connector lists shards to find the children of a reshard (its default is
# 10 s; ledgersync's 1 s lets a run that waits for "caught up" see children sooner).
DEFAULT_DISCOVERY_INTERVAL_MS = "1000"
DISCOVERY_INTERVAL_KEY = "flink.shard.discovery.intervalmillis"
# The connector gives up on a shard (and fails the job) after 3 failed GetRecords or
# GetShardIterator calls in a row: about a second of throttling or of an endpoint that
# restarts. ledgersync waits longer before a restart (10 attempts with backoff up to 1 s:
# about 10 s; ListShards 20 attempts, up to 5 s apart); a user's own value wins.
PATIENT_RETRIES = {"flink.shard.getrecords.maxretries": "10", "flink.shard.getiterator.maxretries": "10",
                   "flink.list.shards.maxretries": "20"}

# Local stand-ins (moto, LocalStack: an endpoint on this machine) speak JSON, not CBOR. The
# connector shades AWS SDK v1, which renamed the SDK's system property
# (com.amazonaws.sdk.disableCbor does nothing): the environment variable or the shaded
# property works for v1; EFO goes through SDK v2 (CBOR_ENABLED, aws.cborEnabled). Another
# endpoint (a VPC or FIPS endpoint of real Kinesis) keeps CBOR, as AWS itself does.
LOCAL_ENDPOINT_ENVIRONMENT = {"AWS_CBOR_DISABLE": "true", "CBOR_ENABLED": "false"}
LOCAL_ENDPOINT_JAVA_OPTS = ("-Dorg.apache.flink.kinesis.shaded.com.amazonaws.sdk.disableCbor=true "
                            "-Daws.cborEnabled=false")


def is_local_endpoint(endpoint: Optional[str]) -> bool:
    """An endpoint on this machine: a local stand-in that needs CBOR off."""
    if not endpoint:
        return False
    host = urlparse(endpoint).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def is_pass_through(key: str) -> bool:
    return key in PASS_THROUGH_KEYS or key.startswith(PASS_THROUGH_PREFIXES)


@dataclass(frozen=True)
class SourceSettings:
    """The Kinesis source (``source.*``)."""

    stream: str
    region: str
    endpoint: Optional[str] = None
    initial_position: str = INITIAL_POSITIONS[0]
    initial_timestamp: Optional[_dt.datetime] = None
    reader_type: str = POLLING
    efo_consumer_name: Optional[str] = None
    # Connector keys given in the properties under their own names.
    connector: dict = field(default_factory=dict)
    # Keys for a local endpoint that accepts any credentials (see local_credentials).
    local_credentials: Optional[tuple] = None


def local_credentials() -> tuple:
    """(access key, secret key) for a local endpoint: boto3's own chain where it finds keys
    (so moto's or LocalStack's account follows the user's setting), else moto's defaults."""
    import boto3

    found = boto3.session.Session().get_credentials()
    if found is not None:
        frozen = found.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key
    return "testing", "testing"


def consumer_properties(settings: SourceSettings) -> dict:
    """The ``java.util.Properties`` the FlinkKinesisConsumer gets, as a dict of strings."""
    props = {REGION_KEY: settings.region, INITIAL_POSITION_KEY: settings.initial_position,
             RECORD_PUBLISHER_KEY: settings.reader_type, DISCOVERY_INTERVAL_KEY: DEFAULT_DISCOVERY_INTERVAL_MS,
             **PATIENT_RETRIES}
    if settings.initial_position == "AT_TIMESTAMP":
        if settings.initial_timestamp is None:
            raise ValueError("source.initial.position=AT_TIMESTAMP needs source.initial.timestamp")
        # In the connector's default date format (SimpleDateFormat "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
        # in UTC), named explicitly: a decimal of epoch seconds, which it also takes, went
        # through that lenient parser first and started after every record (tried here).
        when = settings.initial_timestamp.astimezone(_dt.timezone.utc)
        if is_local_endpoint(settings.endpoint):
            # With CBOR off the shaded SDK v1 still writes GetShardIterator's Timestamp in
            # epoch milliseconds (CBOR's unit) where the JSON protocol means seconds (seen
            # on the wire here: 1796642979114 for 11:29:39.114), so a local stand-in would
            # start after every record. The instant whose milliseconds are our seconds goes
            # out as those seconds: whole seconds only, rounded down, on local endpoints.
            when = _dt.datetime.fromtimestamp(int(when.timestamp()) / 1000, _dt.timezone.utc)
        props[INITIAL_TIMESTAMP_KEY] = when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+00:00"
        props[INITIAL_TIMESTAMP_FORMAT_KEY] = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
    if settings.reader_type == EFO:
        if not settings.efo_consumer_name:
            raise ValueError("source.reader.type=EFO needs source.efo.consumer.name")
        props[EFO_CONSUMER_NAME_KEY] = settings.efo_consumer_name
    if settings.endpoint:
        props[ENDPOINT_KEY] = settings.endpoint
        if settings.local_credentials and not any(k.startswith(CREDENTIALS_PROVIDER_KEY) for k in settings.connector):
            # A local stand-in takes any key; the default chain would end at the EC2
            # metadata service, which is not there.
            access, secret = settings.local_credentials
            props.update({CREDENTIALS_PROVIDER_KEY: "BASIC",
                          f"{CREDENTIALS_PROVIDER_KEY}.basic.accesskeyid": access,
                          f"{CREDENTIALS_PROVIDER_KEY}.basic.secretkey": secret})
    props.update({k: str(v) for k, v in settings.connector.items()})
    return props


def add_kinesis_source(env, settings: SourceSettings, uid: str):
    """The source as a PyFlink DataStream of ``RECORD_FIELDS`` rows, at the job's parallelism.

    PyFlink 1.20 wraps no FlinkKinesisConsumer that takes a Java deserialization schema
    (its wrapper fails on a Java object), so the consumer is built through the gateway."""
    from pyflink.datastream.data_stream import DataStream
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    if is_local_endpoint(settings.endpoint):
        # A mini-cluster runs in this JVM: the system properties reach the consumer's SDK
        # clients (a separate cluster gets them with env.java.opts, job/cli/local/cluster.py).
        for option in LOCAL_ENDPOINT_JAVA_OPTS.split():
            name, _, value = option[len("-D"):].partition("=")
            jvm.java.lang.System.setProperty(name, value)
    j_props = jvm.java.util.Properties()
    for key, value in consumer_properties(settings).items():
        j_props.setProperty(key, value)
    try:
        schema = jvm.ledgersync.kinesis.RawRecordSchema()
        consumer = jvm.org.apache.flink.streaming.connectors.kinesis.FlinkKinesisConsumer(
            settings.stream, schema, j_props)
    except TypeError as exc:  # py4j: a JavaPackage, not a class, when the jar is not on the classpath
        raise RuntimeError(f"{RECORD_SCHEMA_CLASS} is not on the classpath: the job needs the connector jar "
                           "(make jar; locally pipeline.jars, on MSF lib/ and jarfile)") from exc
    j_stream = env._j_stream_execution_environment.addSource(consumer).name(uid).uid(uid)
    return DataStream(j_stream)



def record_parts(record) -> tuple:
    """(stream, shard id, sequence number, bytes) of one source row (see RECORD_FIELDS)."""
    return record[STREAM], record[SHARD_ID], record[SEQUENCE_NUMBER], record[DATA]
