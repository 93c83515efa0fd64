"""Everything that touches the outside: Kinesis, record decoding, MySQL, credentials."""
