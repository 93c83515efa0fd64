package ledgersync.kinesis;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.connectors.kinesis.serialization.KinesisDeserializationSchema;
import org.apache.flink.types.Row;

/**
 * Hands a Kinesis record to Python as it came: stream, shard id, sequence number, arrival
 * time (epoch ms), partition key and the raw bytes. PyFlink 1.20 has no deserialization
 * schema for raw bytes and cannot implement a Java interface, so this one class exists;
 * it holds no logic (decoding is Python: connectors/formats). Field order is the
 * contract with connectors/kinesis/source.py (RECORD_FIELDS).
 */
public final class RawRecordSchema implements KinesisDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    @Override
    public Row deserialize(byte[] recordValue, String partitionKey, String seqNum,
                           long approxArrivalTimestamp, String stream, String shardId) {
        return Row.of(stream, shardId, seqNum, approxArrivalTimestamp, partitionKey, recordValue);
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(
                new String[] {"stream", "shard_id", "sequence_number", "arrival_ms", "partition_key", "data"},
                Types.STRING, Types.STRING, Types.STRING, Types.LONG, Types.STRING,
                Types.PRIMITIVE_ARRAY(Types.BYTE));
    }
}
