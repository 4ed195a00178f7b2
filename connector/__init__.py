"""The MMS connector: provider callbacks in, canonical Avro records on Kafka out."""
