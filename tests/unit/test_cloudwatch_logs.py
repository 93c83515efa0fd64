import gzip
import json

import pytest

from connectors.formats.cloudwatch_logs import (CONTROL_MESSAGE, BadSubscriptionRecord, LogEvent, control_message,
                                        decode_subscription_record, encode_subscription_record)


def test_data_message_round_trip():
    events = [LogEvent("1", 1700000000000, "line one, with 'quotes'"), LogEvent("2", 1700000000001, "Zürich 東京")]
    data = encode_subscription_record(log_group="/aws/rds/cluster/c1/audit", log_stream="i-1.audit.log.0", events=events)
    record = decode_subscription_record(data)
    assert not record.is_control
    assert record.log_group == "/aws/rds/cluster/c1/audit" and record.log_stream == "i-1.audit.log.0"
    assert record.log_events == tuple(events)
    assert record.subscription_filters == ("ledgersync",)


def test_aws_example_record():
    # The shape AWS documents for a subscription filter's Kinesis records.
    body = {"owner": "111111111111", "logGroup": "CloudTrail/logs", "logStream": "111111111111_CloudTrail/logs_us-east-1",
            "subscriptionFilters": ["Destination"], "messageType": "DATA_MESSAGE",
            "logEvents": [{"id": "31953106606966983378809025079804211143289615424298221568",
                           "timestamp": 1432826855000, "message": "{\"eventVersion\":\"1.03\"}"}]}
    record = decode_subscription_record(gzip.compress(json.dumps(body).encode()))
    assert record.owner == "111111111111"
    assert record.log_events[0].id.startswith("3195310660696698")


def test_control_message_is_recognised():
    record = decode_subscription_record(control_message())
    assert record.is_control and record.message_type == CONTROL_MESSAGE


# mtime=0: gzip stamps the time, and the test ids (pytest-xdist compares them between workers) must not change.
@pytest.mark.parametrize("data, reason", [
    (b"plain text", "not gzip"),
    (gzip.compress(mtime=0, data=b"{not json"), "not JSON"),
    (gzip.compress(mtime=0, data=b"[1, 2]"), "not an object"),
    (gzip.compress(mtime=0, data=b'{"messageType": "OTHER"}'), "unknown messageType"),
    (gzip.compress(mtime=0, data=b'{"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s", "logEvents": [{"id": "1"}]}'),
     "message"),
    (gzip.compress(mtime=0, data=b'{"messageType": "DATA_MESSAGE", "logEvents": []}'), "logGroup"),
    (gzip.compress(mtime=0, data=b'{"messageType": "DATA_MESSAGE"}' * 3)[:-6], "truncated|corrupt"),
])
def test_bad_records_say_why(data, reason):
    with pytest.raises(BadSubscriptionRecord, match=reason):
        decode_subscription_record(data)
