"""The ledgersync Flink job: entry point, pipeline assembly, keyed state, CLI."""
