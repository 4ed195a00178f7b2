// The peer for bench/run.py: the Benthos stream engine (github.com/redpanda-data/benthos/v4,
// MIT; the core Redpanda Connect is built on) with only the components this comparison needs:
//
//   - http_server input (core): answers only after the output acknowledged the message(s);
//   - mapping / unarchive processors (core): the JSON callback to the canonical record;
//   - mms_avro_encode processor (here): Avro + Confluent wire format, schema id fetched from
//     the registry once at start-up (what schema_registry_encode does after its first call);
//   - mms_kafka output (here): franz-go, acks=all, idempotent, lz4, 5 ms linger (the
//     producer kafka_franz wraps, with the connector's settings).
//
// Redpanda Connect itself (github.com/redpanda-data/connect/v4) is not used: see bench/README.md.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

func main() {
	err := service.RegisterProcessor("mms_avro_encode", service.NewConfigSpec().
		Field(service.NewStringField("url")).
		Field(service.NewStringField("subject")).
		Field(service.NewStringField("schema_file")), newEncoder)
	if err != nil {
		panic(err)
	}
	err = service.RegisterBatchOutput("mms_kafka", service.NewConfigSpec().
		Field(service.NewStringField("seed_brokers")).
		Field(service.NewStringField("topic")).
		Field(service.NewIntField("max_in_flight").Default(1024)), newOutput)
	if err != nil {
		panic(err)
	}
	service.RunCLI(context.Background())
}

// ---- Avro encoding -------------------------------------------------------------------------

type encoder struct {
	schema avro.Schema
	prefix []byte // magic byte 0 + big-endian schema id
}

func newEncoder(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
	url, _ := conf.FieldString("url")
	subject, _ := conf.FieldString("subject")
	file, _ := conf.FieldString("schema_file")
	text, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	schema, err := avro.Parse(string(text))
	if err != nil {
		return nil, err
	}
	id, err := register(url, subject, string(text))
	if err != nil {
		return nil, err
	}
	prefix := make([]byte, 5)
	binary.BigEndian.PutUint32(prefix[1:], uint32(id))
	return &encoder{schema: schema, prefix: prefix}, nil
}

// register posts the schema once (idempotent for an identical schema) and returns its id.
func register(url, subject, schema string) (int, error) {
	body, _ := json.Marshal(map[string]string{"schema": schema, "schemaType": "AVRO"})
	resp, err := http.Post(fmt.Sprintf("%s/subjects/%s/versions", strings.TrimRight(url, "/"), subject),
		"application/vnd.schemaregistry.v1+json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("registry answered %d: %s", resp.StatusCode, raw)
	}
	var out struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return 0, err
	}
	return out.ID, nil
}

func (e *encoder) Process(_ context.Context, msg *service.Message) (service.MessageBatch, error) {
	v, err := msg.AsStructured()
	if err != nil {
		return nil, err
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("record is not an object")
	}
	normalise(rec)
	data, err := avro.Marshal(e.schema, rec)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(e.prefix)+len(data))
	out = append(append(out, e.prefix...), data...)
	msg.SetBytes(out)
	return service.MessageBatch{msg}, nil
}

func (e *encoder) Close(context.Context) error { return nil }

// normalise turns the mapping's JSON-ish values into the Go types the Avro schema wants.
func normalise(rec map[string]any) {
	for _, k := range []string{"occurred_at", "received_at"} {
		if n, ok := asInt(rec[k]); ok {
			rec[k] = time.UnixMicro(n).UTC()
		}
	}
	if n, ok := asInt(rec["segment_count"]); ok {
		rec["segment_count"] = int32(n)
	}
	for _, k := range []string{"to", "cc", "bcc"} {
		if rec[k] == nil {
			rec[k] = []any{}
		}
	}
	if media, ok := rec["media"].([]any); ok {
		for _, m := range media {
			if mm, ok := m.(map[string]any); ok {
				if n, ok := asInt(mm["size"]); ok {
					mm["size"] = n
				}
			}
		}
	} else {
		rec["media"] = []any{}
	}
	if attrs, ok := rec["attributes"].(map[string]any); ok {
		for k, v := range attrs {
			if _, isStr := v.(string); !isStr {
				b, _ := json.Marshal(v)
				attrs[k] = string(b)
			}
		}
	} else {
		rec["attributes"] = map[string]any{}
	}
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case uint64:
		return int64(n), true
	case float64:
		return int64(n), true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

// ---- Kafka output --------------------------------------------------------------------------

type output struct {
	seeds  []string
	topic  string
	client *kgo.Client
}

func newOutput(conf *service.ParsedConfig, _ *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
	seeds, _ := conf.FieldString("seed_brokers")
	topic, _ := conf.FieldString("topic")
	inFlight, _ := conf.FieldInt("max_in_flight")
	return &output{seeds: strings.Split(seeds, ","), topic: topic}, service.BatchPolicy{}, inFlight, nil
}

func (o *output) Connect(context.Context) error {
	if o.client != nil {
		return nil
	}
	client, err := kgo.NewClient(
		kgo.SeedBrokers(o.seeds...),
		kgo.DefaultProduceTopic(o.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), // acks=all; idempotence is franz-go's default
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.RecordDeliveryTimeout(120*time.Second),
		kgo.MaxBufferedRecords(1_000_000),
	)
	if err != nil {
		return err
	}
	o.client = client
	return nil
}

func (o *output) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	records := make([]*kgo.Record, 0, len(batch))
	for _, msg := range batch {
		value, err := msg.AsBytes()
		if err != nil {
			return err
		}
		key, _ := msg.MetaGet("kafka_key")
		rec := &kgo.Record{Key: []byte(key), Value: value}
		for _, h := range []string{"event_id", "provider", "event_type"} {
			if v, ok := msg.MetaGet(h); ok {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h, Value: []byte(v)})
			}
		}
		records = append(records, rec)
	}
	return o.client.ProduceSync(ctx, records...).FirstErr()
}

func (o *output) Close(context.Context) error {
	if o.client != nil {
		o.client.Close()
	}
	return nil
}
